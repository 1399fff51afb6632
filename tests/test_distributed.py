"""strided.distributed: data-parallel training over MPI.

The multi-process tests start ``mpiexec -n N python tests/_distributed_worker.py SCENARIO OUT``
and compare what the ranks computed with one process training on the global batch (float64,
rtol 1e-10). They skip when mpi4py or mpiexec is missing, unless ``STRIDED_REQUIRE_MPI=1``
(set by scripts/test.sh), which turns a missing MPI into a failure.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import _distributed_worker as worker
import strided
from strided import distributed, nn
from strided.bench import distributed as bench
from strided.bench import scaling
from strided.distributed.process import launcher_world_size

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_distributed_worker.py"


def _mpiexec() -> list[str]:
    """The mpiexec command (the one installed beside this Python first), or skip/fail when MPI is missing."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        missing = "mpi4py is not installed (pip install strided[mpi] mpich)"
    else:
        beside = Path(sys.executable).parent / "mpiexec"
        exe = str(beside) if beside.exists() else shutil.which("mpiexec")
        if exe is not None:
            version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
            # Open MPI refuses more processes than cores, and root, unless told; MPICH's hydra allows both
            return [exe] + (["--oversubscribe", "--allow-run-as-root"] if "Open MPI" in version else [])
        missing = "mpiexec is not on the PATH (pip install mpich, or apt-get install mpich)"
    if os.environ.get("STRIDED_REQUIRE_MPI") == "1":
        pytest.fail(f"STRIDED_REQUIRE_MPI=1 but {missing}")
    pytest.skip(missing)


def run_mpi(n, scenario, out="-", timeout=60):
    """Run the worker's ``scenario`` in n processes; returns (CompletedProcess, seconds)."""
    return launch(n, [sys.executable, str(WORKER), scenario, str(out)], timeout=timeout)


def launch(n, argv, cwd=ROOT, timeout=60):
    """``mpiexec -n n ARGV`` (strings) in ``cwd``, with this checkout's strided; returns (CompletedProcess, seconds).

    Past ``timeout`` seconds the whole process group (mpiexec and the ranks) is killed and
    subprocess.TimeoutExpired raised: a hang fails the test instead of blocking the suite.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    args = _mpiexec() + ["-n", str(n), *argv]
    start = time.monotonic()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr), time.monotonic() - start


def run_ok(n, scenario, tmp_path):
    out = tmp_path / f"{scenario}.npz"
    proc, _ = run_mpi(n, scenario, out)
    assert proc.returncode == 0, f"mpiexec failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return dict(np.load(out))


def one_process(model, world):
    """The state after training ``model`` in one process on the global batches of a world of ``world``;
    also every rank's shard."""
    x, y = worker.dataset(world)
    shards = [distributed.shard_indices(len(x), 0, worker.SEED, r, world) for r in range(world)]
    state = worker.train(model, lambda m, dy: m.backward(dy), x, y, worker.global_order(shards),
                         batch_size=worker.BATCH * world)
    return state, shards


def assert_states_close(got: dict, want: dict, prefix=""):
    assert sorted(k.removeprefix(prefix) for k in got if k.startswith(prefix)) == sorted(want), sorted(got)
    for key, value in want.items():
        np.testing.assert_allclose(got[prefix + key], value, rtol=1e-10, atol=1e-13, err_msg=key)


# -- several processes --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_ddp_equals_one_process_on_the_global_batch(n, tmp_path):
    got = run_ok(n, "ddp", tmp_path)
    strided.manual_seed(0)  # rank 0's initial weights
    want, shards = one_process(worker.cnn(), n)
    # the shards of the ranks, gathered by the worker: the same as computed here, disjoint, covering the data
    np.testing.assert_array_equal(got["shards"], np.stack(shards))
    np.testing.assert_array_equal(np.sort(got["shards"].reshape(-1)), np.arange(worker.STEPS * worker.BATCH * n))
    for name in ("ddp_tiny", "ddp_default", "ddp_no_sync", "allreduce"):
        assert got[f"{name}_identical"], f"{name}: the replicas differ in some bit"
        assert_states_close(got, want, prefix=f"{name}/")
    np.testing.assert_array_equal(got["sum"], [sum(range(n)), n])
    np.testing.assert_allclose(got["mean"], [sum(range(n)) / n, 2.0], rtol=1e-15)


def test_sync_batchnorm_equals_batchnorm_on_the_global_batch(tmp_path):
    got = run_ok(2, "syncbn", tmp_path)
    assert got.pop("identical"), "the replicas differ in some bit"
    strided.manual_seed(0)
    want, _ = one_process(worker.cnn(bn=True), 2)
    assert any("running_var" in k for k in want)
    assert_states_close(got, want)


@pytest.mark.parametrize("n", [2, 3])
def test_the_pieces_of_a_training_run(n, tmp_path):
    got = run_ok(n, "training", tmp_path)
    assert got["writer"] == 1 and got["writer_here"]  # rank 0 alone
    # evaluation: contiguous disjoint shards covering the set; reduced, the same as evaluate on the whole set
    x, y = worker.evaluation_set()
    bounds = got["shards"]
    assert bounds[0, 0] == 0 and bounds[-1, 1] == len(x) and (bounds[1:, 0] == bounds[:-1, 1]).all()
    whole = strided.evaluate(distributed.convert_sync_batchnorm(worker.eval_model()), (x, y))
    np.testing.assert_array_equal(got["confusion"], whole["confusion"])
    assert got["accuracy"] == whole["accuracy"]
    np.testing.assert_allclose(got["loss"], whole["loss"], rtol=1e-12)
    np.testing.assert_allclose(got["per_class"], whole["per_class_accuracy"], rtol=1e-15)
    # metric sums: one reduction, integers stay integers
    assert got["loss_sum"] == 0.5 * sum(range(n)) and got["count"] == sum(range(1, n + 1)) and got["count_is_int"]
    np.testing.assert_array_equal(got["sum_confusion"], np.full((2, 2), sum(range(n))))
    assert got["sum_confusion"].dtype == np.int64
    np.testing.assert_allclose(got["vector"], np.arange(3.0) * sum(range(n)))
    # per-process generators through rank 0 and back
    assert got["generator_restored"]
    assert list(got["gathered_on_others"]) == [False] + [True] * (n - 1)
    assert list(got["broadcast"]) == ["runs/0"] * n
    assert str(got["same"]) == (f"raised: the dataset size on rank {n - 1} differs from the one on rank 0: rank 0 "
                                f"has 100, rank {n - 1} has 101. Every process must be given the same dataset size")
    assert str(got["same_ok"]) == "did not raise"
    assert str(got["layout"]).startswith("raised: the metrics (names, shapes, integer or float) on rank 1 differs")
    assert str(got["resume_1"]) == (f"raised: the checkpoint was written by a run of 1 process and this run has {n}: "
                                    "resume it with the same number (a single process), or start a new run from "
                                    "its model file")
    assert str(got["resume_world"]) == "did not raise"


def test_the_pieces_of_a_training_run_in_one_process():
    assert distributed.is_writer()
    assert distributed.evaluation_shard(7) == slice(0, 7)
    assert [distributed.evaluation_shard(7, r, 3) for r in range(3)] == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert distributed.evaluation_shard(1, 2, 3) == slice(1, 1)
    sums = {"n": 3, "loss": 1.5, "confusion": np.eye(2, dtype=np.int64)}
    got = distributed.all_reduce_metrics(sums)
    assert got == {"n": 3, "loss": 1.5, "confusion": got["confusion"]} and got["confusion"] is not sums["confusion"]
    metrics = {"loss": 0.5, "accuracy": 0.5, "per_class_accuracy": [1.0, 0.0], "confusion": [[1, 0], [1, 0]]}
    assert distributed.reduce_evaluation(metrics, 2) == metrics
    distributed.check_same("dataset size", 10)
    assert distributed.scatter_from_writer(distributed.gather_to_writer({"a": 1})) == {"a": 1}
    assert distributed.broadcast_from_writer("runs/x") == "runs/x"
    distributed.check_resume_world_size(None)
    with pytest.raises(ValueError, match="written by a run of 2 processes and this run has 1: resume it with the "
                                         "same number \\(mpiexec -n 2\\)"):
        distributed.check_resume_world_size(2)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\] for world_size 3, got 3"):
        distributed.evaluation_shard(5, 3, 3)
    with pytest.raises(TypeError, match=r"sums\['x'\] must be a number or an array of real numbers, got dtype <U1"):
        distributed.all_reduce_metrics({"x": "a"})


def test_ddp_names_the_rank_whose_model_differs(tmp_path):
    proc, _ = run_mpi(2, "mismatch", tmp_path / "message")
    assert proc.returncode == 0, proc.stderr
    for rank in (0, 1):
        line = (tmp_path / f"message.{rank}").read_text()
        assert line.startswith("raised: the model given to DistributedDataParallel on rank 1 differs from the one "
                               "on rank 0"), line
        assert "rank 0 has 8 parameters (961 values), rank 1 has 10 parameters (973 values)" in line


@pytest.mark.parametrize("scenario", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_in_bounded_time(scenario):
    proc, seconds = run_mpi(2, scenario, timeout=60)  # subprocess.TimeoutExpired (a failure) if it hangs
    assert proc.returncode != 0
    assert seconds < 60
    if scenario == "raise":
        assert "uncaught exception on rank 1 of 2" in proc.stderr
        assert "RuntimeError: rank 1 fails on purpose" in proc.stderr


# -- one process: everything is the identity, without MPI ---------------------------------------


def test_a_single_process_is_rank_0_of_a_world_of_one():
    distributed.init()
    distributed.init()  # idempotent
    assert (distributed.rank(), distributed.world_size(), distributed.is_distributed()) == (0, 1, False)
    assert distributed.communicator() is None
    a = np.arange(6).reshape(2, 3)
    total = distributed.all_reduce_sum(a)
    np.testing.assert_array_equal(total, a)
    assert total is not a and total.dtype == a.dtype
    mean = distributed.all_reduce_mean(a)
    assert mean.dtype == np.float64
    np.testing.assert_array_equal(mean, a)
    distributed.barrier()


def test_ddp_in_a_single_process_is_the_model(rng):
    strided.manual_seed(0)
    model = worker.cnn()
    strided.manual_seed(0)
    ddp = distributed.DistributedDataParallel(worker.cnn())
    x = rng.normal(size=(5, 1, 8, 8))
    dy = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(ddp(x), model(x))
    np.testing.assert_array_equal(ddp.backward(dy), model.backward(dy))
    assert list(ddp.state_dict()) == ["module." + k for k in model.state_dict()]  # torch's names
    for (_, p), (_, q) in zip(ddp.named_parameters(), model.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)
    before = {k: v.copy() for k, v in ddp.state_dict().items()}
    distributed.broadcast_parameters(ddp)
    distributed.all_reduce_gradients(ddp)
    for k, v in ddp.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_ddp_starts_each_bucket_as_soon_as_its_last_gradient_is_final(monkeypatch, rng):
    _mpiexec()  # skips (or fails when MPI is required) without mpi4py
    from mpi4py import MPI

    from strided.distributed import parallel
    events = []

    class RecordingComm:  # MPI's own one-process communicator, recording each reduction started
        def Get_size(self):
            return 1

        def Iallreduce(self, sendbuf, recvbuf, op):
            events.append(f"reduce {recvbuf.size}")
            return MPI.COMM_SELF.Iallreduce(sendbuf, recvbuf, op=op)

    monkeypatch.setattr(parallel, "communicator", lambda group=None: RecordingComm())
    strided.manual_seed(0)
    model = worker.cnn()
    strided.manual_seed(0)
    ddp = distributed.DistributedDataParallel(worker.cnn(), bucket_cap_mb=0.0005)  # 524 bytes: 65 float64
    for i, layer in enumerate(ddp.module):
        def backward(dy, need_input_grad=True, i=i, original=layer.backward):
            events.append(f"backward {i}")
            return original(dy, need_input_grad=need_input_grad)
        layer.backward = backward
    x, dy = rng.normal(size=(5, 1, 8, 8)), rng.normal(size=(5, 3))
    model(x), ddp(x)
    np.testing.assert_array_equal(ddp.backward(dy), model.backward(dy))
    # layers: 0 conv (4x1x3x3), 3 conv (6x4x3x3), 6 linear (12x54), 8 linear (3x12); buckets, last layer's first:
    # [8.bias 8.weight 6.bias] and [6.weight] final after layer 6, [3.bias], [3.weight], then [0.bias 0.weight]
    assert events == ["backward 8", "backward 7", "backward 6", "reduce 51", "reduce 648", "backward 5",
                      "backward 4", "backward 3", "reduce 6", "reduce 216", "backward 2", "backward 1",
                      "backward 0", "reduce 40"]
    for p, q in zip(ddp.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_backward_steps_open_plain_sequentials_only():
    class Block(nn.Sequential):
        pass
    inner = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    block = Block(nn.Linear(2, 2))
    model = nn.Sequential(inner, nn.Flatten(), block)
    from strided.distributed.parallel import backward_steps
    assert backward_steps(model) == [inner[0], inner[1], model[1], block]
    assert backward_steps(block) == [block]


def test_ddp_rejects_bad_arguments():
    with pytest.raises(TypeError, match="model must be a strided.nn.Module, got list"):
        distributed.DistributedDataParallel([nn.ReLU()])
    with pytest.raises(ValueError, match="bucket_cap_mb must be a finite number > 0, got 0"):
        distributed.DistributedDataParallel(nn.ReLU(), bucket_cap_mb=0)
    with pytest.raises(TypeError, match="array must hold real numbers, got dtype <U1"):
        distributed.all_reduce_sum(np.array(["a"]))


def test_sync_batchnorm_in_one_process_is_batchnorm(rng):
    for shape, plain in (((6, 3, 5, 4), nn.BatchNorm2d), ((6, 3), nn.BatchNorm1d), ((6, 3, 7), nn.BatchNorm1d)):
        sync, ref = distributed.SyncBatchNorm(3, momentum=None, dtype=np.float64), plain(3, momentum=None, dtype=np.float64)
        for _ in range(2):
            x, dy = rng.normal(size=shape), rng.normal(size=shape)
            np.testing.assert_array_equal(sync(x), ref(x))
            np.testing.assert_array_equal(sync.backward(dy), ref.backward(dy))
        for (k, v), (k2, v2) in zip(sync.state_dict().items(), ref.state_dict().items()):
            assert k == k2
            np.testing.assert_array_equal(v, v2)
        np.testing.assert_array_equal(sync.weight.grad, ref.weight.grad)
        sync.eval(), ref.eval()
        np.testing.assert_array_equal(sync(x), ref(x))


def test_convert_sync_batchnorm_keeps_order_parameters_and_statistics(rng, tmp_path):
    model = worker.cnn(bn=True)
    model(rng.normal(size=(4, 1, 8, 8)))  # running statistics away from their initial values
    model[1].eval()
    before = model.state_dict()
    params = list(model.parameters())
    converted = distributed.convert_sync_batchnorm(model)
    assert converted is model
    assert [type(m).__name__ for m in model] == [
        "Conv2d", "SyncBatchNorm", "ReLU", "MaxPool2d", "Conv2d", "Tanh", "Flatten", "Linear", "SyncBatchNorm",
        "ReLU", "Linear"]
    assert list(model.parameters()) == params  # the same Parameter objects: an optimizer keeps training them
    assert list(model.state_dict()) == list(before)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
        assert v.dtype == before[k].dtype
    assert not model[1].training and model[8].training
    single = distributed.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(3, eps=1e-3, affine=False))
    assert isinstance(single, distributed.SyncBatchNorm) and single.eps == 1e-3 and single.weight is None
    # saved and loaded like any layer (the communicator is not part of the file)
    strided.save(model, tmp_path / "m.npz")
    loaded = strided.load(tmp_path / "m.npz")
    assert isinstance(loaded[1], distributed.SyncBatchNorm)
    for k, v in loaded.state_dict().items():
        np.testing.assert_array_equal(v, model.state_dict()[k])


# -- shards ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 12])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_partition_the_epoch(n, world):
    order = np.random.default_rng([3, 2]).permutation(n)
    shards = [distributed.shard_indices(n, 2, 3, r, world) for r in range(world)]
    per_rank = -(-n // world)
    assert all(s.dtype == np.int64 and len(s) == per_rank for s in shards)
    dealt = np.stack(shards, axis=1).reshape(-1)  # position i of the padded order went to rank i % world
    padded = np.concatenate([order] * (1 + world))[:per_rank * world] if n else order
    np.testing.assert_array_equal(dealt, padded)  # the epoch's order, padded with its start
    assert set(dealt.tolist()) == set(range(n))
    kept = [distributed.shard_indices(n, 2, 3, r, world, drop_last=True) for r in range(world)]
    flat = np.concatenate(kept)
    assert all(len(s) == n // world for s in kept)
    assert len(set(flat.tolist())) == len(flat) == n - n % world  # disjoint, at most world - 1 left out
    np.testing.assert_array_equal(np.stack(kept, axis=1).reshape(-1), order[:n - n % world])


def test_shards_change_with_the_epoch_and_seed_only():
    a = distributed.shard_indices(100, 0, 1, 0, 2)
    np.testing.assert_array_equal(a, distributed.shard_indices(100, 0, 1, 0, 2))
    assert not np.array_equal(a, distributed.shard_indices(100, 1, 1, 0, 2))
    assert not np.array_equal(a, distributed.shard_indices(100, 0, 2, 0, 2))
    np.testing.assert_array_equal(distributed.shard_indices(5, 0, 1, 1, 2, shuffle=False), [1, 3, 0])


def test_shard_indices_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"rank must be in \[0, 1\] for world_size 2, got 2"):
        distributed.shard_indices(10, 0, 0, 2, 2)
    with pytest.raises(TypeError, match="n must be a non-negative int, got -1"):
        distributed.shard_indices(-1, 0, 0, 0, 2)
    with pytest.raises(ValueError, match="world_size must be a positive int, got 0"):
        distributed.shard_indices(10, 0, 0, 0, 0)


# -- detecting a launch -----------------------------------------------------------------------------


def test_launcher_world_size_reads_the_launchers_variables():
    assert launcher_world_size({}) is None
    assert launcher_world_size({"SLURM_NTASKS": "4"}) is None  # an allocation, not a process started by srun
    assert launcher_world_size({"PMI_RANK": "1", "PMI_SIZE": "3"}) == 3
    assert launcher_world_size({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}) == 2
    assert launcher_world_size({"SLURM_STEP_NUM_TASKS": "8"}) == 8
    assert launcher_world_size({"PMIX_RANK": "0"}) == 1


def _run_without_mpi4py(env_vars):
    code = ("import sys; sys.modules['mpi4py'] = None\n"  # as if mpi4py were not installed
            "from strided import distributed\n"
            "distributed.init(); print(distributed.rank(), distributed.world_size())")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI_", "PMIX", "SLURM"))}
    env.update(env_vars, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_without_mpi4py_a_single_process_runs_and_a_launched_world_fails_clearly():
    alone = _run_without_mpi4py({})
    assert alone.returncode == 0 and alone.stdout.split() == ["0", "1"], alone.stderr
    launched = _run_without_mpi4py({"PMI_RANK": "0", "PMI_SIZE": "2"})
    assert launched.returncode != 0
    assert "ImportError: distributed training needs mpi4py and an MPI library: pip install strided[mpi]" in \
        launched.stderr


# -- the benchmark ----------------------------------------------------------------------------------


def test_bench_distributed_runs_on_a_tiny_config(tmp_path):
    _mpiexec()  # skips (or fails when MPI is required) without MPI
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "strided", "bench", "distributed", "--models", "lenet5",
                           "--batch", "4", "--steps", "1", "--warmup", "1", "--rounds", "1", "--json", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "img/s 1x2" in proc.stdout and "fitted for 2 processes: alpha =" in proc.stdout
    report = json.loads(out.read_text())
    assert report["global_batch"] == 8 and list(report["models"]) == ["lenet5"]
    row = report["models"]["lenet5"]
    assert row["grad_bytes"] == 4 * sum(p.size for p in strided.models.lenet5().parameters())
    for key in ("images_per_s_1x2", "images_per_s_2x1", "images_per_s_2x1_sequential", "compute_1_thread_ms"):
        assert row[key] > 0, key
    assert [m["bytes"] for m in report["allreduce"]] == list(bench.SIZES)
    assert report["alpha"] >= 0 and report["beta"] >= 0


@pytest.mark.parametrize("world", [2, 3, 64])
def test_fit_alpha_beta_recovers_the_cost_model(world):
    alpha, beta = 3e-6, 2.5e-10
    measured = [{"bytes": n, "seconds": 2 * (world - 1) * alpha + 2 * (world - 1) / world * n * beta}
                for n in bench.SIZES]
    got = bench.fit_alpha_beta(measured, world)
    np.testing.assert_allclose(got, (alpha, beta), rtol=1e-9)


def test_ring_allreduce_cost_sums_over_buckets():
    alpha, beta, mib = 1e-5, 1e-9, 2 ** 20
    assert scaling.ring_allreduce_seconds(60 * mib, 1, alpha, beta) == 0.0
    # 60 MiB in 25 MiB buckets: 25, 25, 10
    want = sum(2 * 3 * alpha + 2 * 3 / 4 * n * mib * beta for n in (25, 25, 10))
    assert scaling.ring_allreduce_seconds(60 * mib, 4, alpha, beta) == pytest.approx(want, rel=1e-12)
    one = scaling.ring_allreduce_seconds(60 * mib, 4, alpha, beta, bucket_bytes=100 * mib)
    assert one == pytest.approx(2 * 3 * alpha + 1.5 * 60 * mib * beta, rel=1e-12)


def test_projection_hides_the_allreduce_behind_the_backward_only():
    alpha, beta = 0.0, 1e-9
    comm = scaling.ring_allreduce_seconds(1e6, 2, alpha, beta)   # 1 ms
    hidden = scaling.project_step(0.003, 1e6, 2, alpha, beta)    # backward 2 ms > 1 ms: all hidden
    assert hidden == {"step_s": 0.003, "allreduce_s": comm, "efficiency": 1.0}
    short = scaling.project_step(0.0006, 1e6, 2, alpha, beta)    # backward 0.4 ms: 0.6 ms exposed
    assert short["step_s"] == pytest.approx(0.0006 + comm - 0.0004, rel=1e-12)
    plain = scaling.project_step(0.003, 1e6, 2, alpha, beta, overlap=False)
    assert plain["step_s"] == pytest.approx(0.004, rel=1e-12) and plain["efficiency"] == pytest.approx(0.75)
    report = {"batch_per_process": 8, "machine": "m", "alpha": 2e-6, "beta": 1e-10,
              "allreduce": [{"bytes": 8, "seconds": 5e-6}],
              "models": {"m": {"grad_bytes": 4e6, "compute_1_thread_ms": 3.0, "allreduce_sequential_ms": 1.0,
                               "images_per_s_1x2": 1.0, "images_per_s_2x1": 1.0, "hidden": 0.5}}}
    got = scaling.project(report, worlds=(2, 64), networks={"net": (1e-5, 8e9)})["net"]["m"]
    assert got[64]["sequential"]["allreduce_s"] == pytest.approx(126 * 1e-5 + 2 * 63 / 64 * 4e6 * 1e-9)
    assert got[64]["overlap"]["efficiency"] < got[2]["overlap"]["efficiency"] <= 1.0
    assert "| m | " in scaling.format_projection(report, worlds=(2, 64), networks={"net": (1e-5, 8e9)})
