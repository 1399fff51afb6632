"""Data-parallel training through ``fit`` and ``strided train`` under ``mpiexec -n 2``.

Ground truth: one process training on the global batch (float64, rtol 1e-10) for ``fit``, and an
uninterrupted 2-process run (bit for bit) for a resumed one. The multi-process tests skip without
mpi4py/mpiexec unless ``STRIDED_REQUIRE_MPI=1`` (see tests/test_distributed.py).
"""
import json
import sys

import numpy as np
import pytest

import _distributed_worker as worker
import strided
from strided import cli, distributed, io, nn, optim
from strided.data import ArrayDataset, DataLoader

from _fake_datasets import fake_idx_dataset
from test_distributed import assert_states_close, launch, run_ok


# -- fit --------------------------------------------------------------------------------------------


def test_fit_on_two_ranks_equals_one_process_with_twice_the_batch(tmp_path):
    got = run_ok(2, "fit", tmp_path)
    train, valid = worker.fit_data(2)
    for name, bn in (("plain", False), ("bn", True)):   # bn: SyncBatchNorm on the ranks, BatchNorm2d here
        assert got.pop(f"{name}_identical"), f"{name}: the replicas differ in some bit"
        state, history = worker.fit_run(worker.fit_model(bn), train, valid, 2 * worker.BATCH)
        if bn:
            assert any("running_var" in k for k in state)
        assert_states_close({k: v for k, v in got.items() if k.startswith(f"{name}/") and "/history/" not in k},
                            state, prefix=f"{name}/")
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            np.testing.assert_allclose(got[f"{name}/history/{key}"], history[key], rtol=1e-10, err_msg=key)


def test_sync_batchnorm_takes_part_in_the_reductions_with_an_empty_batch(tmp_path):
    got = run_ok(2, "syncbn_empty", tmp_path)   # rank 1's batch is empty; a hang fails run_mpi's timeout
    x, dy = worker.syncbn_batch()
    layer = nn.BatchNorm2d(3, dtype=np.float64)   # the global batch is rank 0's alone
    want = {"y": layer(x), "dx": layer.backward(dy)}
    want.update(weight=layer.weight.grad, bias=layer.bias.grad, running_mean=layer.running_mean,
                running_var=layer.running_var)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-13, err_msg=key)


def test_sync_batchnorm_alone_with_an_empty_batch_is_batchnorm():
    layer, plain = distributed.SyncBatchNorm(3, dtype=np.float64), nn.BatchNorm2d(3, dtype=np.float64)
    x = np.zeros((0, 3, 4, 4))
    assert layer(x).shape == x.shape == plain(x).shape
    np.testing.assert_array_equal(layer.running_var, plain.running_var)


def test_a_sharded_loader_deals_the_epoch_out_and_shard_0_of_1_is_the_whole_epoch():
    images = np.arange(11 * 4, dtype=np.float64).reshape(11, 1, 2, 2)
    ds = ArrayDataset(images, np.arange(11) % 3)
    whole = DataLoader(ds, 3, shuffle=True, seed=5)
    alone = whole.with_shard(0, 1)
    whole.set_epoch(2)
    alone.set_epoch(2)
    assert [y.tolist() for _, y in whole] == [y.tolist() for _, y in alone]
    order = DataLoader(ds, 3, shuffle=True, seed=5).order(2)
    padded = np.concatenate([order, order[:1]])   # 11 samples over 2 processes: the first one again
    parts = [DataLoader(ds, 3, shuffle=True, seed=5, shard=(r, 2)) for r in range(2)]
    for r, loader in enumerate(parts):
        loader.set_epoch(2)
        assert len(loader) == 2 and loader.num_samples == 6
        np.testing.assert_array_equal(np.concatenate([y for _, y in loader]), ds.labels[padded[r::2]])
    # a position saved and restored (what a checkpoint does) gives the same batches of the shard
    saved = DataLoader(ds, 3, shuffle=True, seed=5, shard=(1, 2))
    saved.set_epoch(4, start_batch=1)
    restored = DataLoader(ds, 3, shuffle=True, seed=0, shard=(1, 2))
    restored.load_state_dict(saved.state_dict())
    assert [y.tolist() for _, y in restored] == [y.tolist() for _, y in saved] != []


def test_bad_shards_and_distributed_alone_are_refused():
    ds = ArrayDataset(np.zeros((4, 1, 2, 2)), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"shard rank must be in \[0, 1\] for world_size 2, got 2"):
        DataLoader(ds, shard=(2, 2))
    with pytest.raises(TypeError, match=r"shard must be None or a pair \(rank, world_size\), got 3"):
        DataLoader(ds, shard=3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="distributed=True needs several processes started by an MPI launcher"):
        strided.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), (ds.images, ds.labels),
                    distributed=True, progress=False)


def test_fail_together_tells_a_failure_on_every_rank_from_one_on_some(tmp_path):
    got = run_ok(2, "fail_alone", tmp_path)
    assert not got["alone"] and got["together"]


# -- strided train under mpiexec --------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    fake_idx_dataset(root / "fashion-mnist", n_train=60, n_test=20)
    return root


def run_cli(n, args, cwd):
    """``mpiexec -n n python -m strided ARGS`` in ``cwd``: the CompletedProcess."""
    return launch(n, [sys.executable, "-m", "strided", *map(str, args)], cwd=cwd)[0]


def train_args(data_root, run_dir, epochs, *extra):
    """The arguments of a short ``strided train`` run, as strings."""
    return [str(a) for a in ["train", "--data-root", data_root, "--run-dir", run_dir, "--epochs", epochs, "--batch-size", 8,
            "--scheduler", "none", "--quiet", "--no-plots", *extra]]


@pytest.fixture(scope="module")
def two_rank_run(data_root, tmp_path_factory):
    """An uninterrupted 2-epoch run on 2 processes: (run directory, CompletedProcess)."""
    run_dir = tmp_path_factory.mktemp("runs") / "whole"
    proc = run_cli(2, train_args(data_root, run_dir, 2), run_dir.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_dir, proc


def test_train_under_mpiexec_writes_one_run_and_prints_once(two_rank_run):
    run_dir, proc = two_rank_run
    lines = proc.stdout.splitlines()
    for start in ("training lenet5", "epoch 1/2", "epoch 2/2", "test accuracy", "saved model"):
        assert sum(line.startswith(start) for line in lines) == 1, proc.stdout
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["best.npz", "checkpoint.npz", "config.json", "history.csv", "history.json", "metrics.json", "model.npz",
         "model_initial.npz"])
    assert len(list(run_dir.parent.iterdir())) == 1   # one run directory
    ck = io.load_checkpoint(run_dir / "checkpoint.npz")
    assert ck["rng_state"]["world_size"] == 2 and len(ck["rng_state"]["ranks"]) == 2
    # every process its own dropout stream
    assert ck["rng_state"]["ranks"][0]["global"] != ck["rng_state"]["ranks"][1]["global"]
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epoch"] == [1, 2]


def test_a_resumed_two_rank_run_ends_bit_identical_to_an_uninterrupted_one(two_rank_run, data_root, tmp_path):
    whole, _ = two_rank_run
    run_dir = tmp_path / "resumed"
    first = run_cli(2, train_args(data_root, run_dir, 1), tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_cli(2, ["train", "--resume", run_dir, "--epochs", 2, "--data-root", data_root, "--quiet",
                        "--no-plots"], tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("resumed from") == 1
    want, got = io.load_state_dict(whole / "model.npz"), io.load_state_dict(run_dir / "model.npz")
    assert sorted(want) == sorted(got)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert json.loads((run_dir / "history.json").read_text())["val_loss"] == \
        json.loads((whole / "history.json").read_text())["val_loss"]


def test_resuming_on_another_number_of_processes_is_refused(two_rank_run, data_root, tmp_path, capsys):
    whole, _ = two_rank_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in whole.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    before = (copy / "checkpoint.npz").read_bytes()
    assert cli.main(["train", "--resume", str(copy), "--epochs", "3", "--data-root", str(data_root), "--quiet",
                     "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert ("error: the checkpoint was written by a run of 2 processes and this run has 1: resume it with the "
            "same number (mpiexec -n 2)") in err
    assert (copy / "checkpoint.npz").read_bytes() == before


def test_a_bad_option_under_mpiexec_is_one_error_line_and_writes_nothing(data_root, tmp_path):
    proc = run_cli(2, train_args(data_root, tmp_path / "bad", 0), tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("error:") == 1, proc.stderr
    assert "error: --epochs must be a positive int, got 0" in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_no_distributed_under_mpiexec_trains_every_process_alone(data_root, tmp_path):
    proc = run_cli(2, train_args(data_root, tmp_path / "alone", 1, "--no-distributed"), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("training lenet5") == 2   # two plain runs, each printing
    ck = io.load_checkpoint(tmp_path / "alone" / "checkpoint.npz")
    assert "world_size" not in ck["rng_state"]       # a single process's checkpoint
    # the same as training here, alone
    assert cli.main(train_args(data_root, tmp_path / "here", 1)) == 0
    want, got = io.load_state_dict(tmp_path / "here" / "model.npz"), io.load_state_dict(tmp_path / "alone" / "model.npz")
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_an_error_on_one_rank_only_ends_the_job_in_bounded_time(data_root, tmp_path):
    # rank 1 alone is given a dataset the model cannot take: it fails while rank 0 goes on to training and
    # waits in a collective; rank 1 reports its error and ends the job (fail_together's 10 s, then MPI_Abort)
    strided_train = [sys.executable, "-m", "strided"] + train_args(data_root, tmp_path / "run", 1)
    proc, seconds = launch(1, strided_train + [":", "-n", "1"] + strided_train + ["--dataset", "cifar10"],
                           cwd=tmp_path)
    assert proc.returncode != 0
    assert seconds < 40
    assert proc.stderr.count("error:") == 1, proc.stderr
    assert "error: rank 1: model 'lenet5' takes 28x28 images, got a dataset of 32x32 images" in proc.stderr
