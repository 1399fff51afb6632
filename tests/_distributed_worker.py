"""One process of the distributed tests, started by tests/test_distributed.py as
``mpiexec -n N python tests/_distributed_worker.py SCENARIO OUT_FILE``.

Scenarios (rank 0 writes what it finds to OUT_FILE, an .npz, unless said otherwise):
  ddp       k SGD steps of a small CNN (float64) with DistributedDataParallel (tiny and default buckets,
            and accumulating half batches with no_sync) and with all_reduce_gradients; each rank draws different initial weights (the wrapper
            must broadcast rank 0's); also the shards of every rank and the metric reductions
  syncbn    k SGD steps of a CNN whose BatchNorm2d/BatchNorm1d became SyncBatchNorm
  mismatch  rank 1 builds a larger model: DistributedDataParallel must raise on every rank
            (each rank writes what happened to OUT_FILE.RANK)
  training  the pieces of a training run: is_writer, evaluation_shard + reduce_evaluation (against
            evaluate on the whole set, recomputed by the test), all_reduce_metrics, check_same,
            gather_to_writer/scatter_from_writer, check_resume_world_size; rank 0 writes OUT_FILE.npz
  fit       strided.fit over 2 epochs with per-rank batch BATCH and validation, for cnn() and for cnn(bn=True)
            converted to SyncBatchNorm; rank 0 writes each model's state and history (keys "plain/..", "bn/..")
  syncbn_empty  a SyncBatchNorm forward and backward where rank 1's batch is empty: it must take part in the
            reductions (no hang); rank 0 writes its output, input gradient, parameter gradients and running statistics
  fail_alone  rank 1 fails while rank 0 waits in a barrier: fail_together says no within its timeout; then
            both fail and it says yes; rank 0 writes the answers
  raise     rank 1 raises after a barrier while rank 0 waits in another: the job must end (non-zero)
  kill      rank 1 kills itself with SIGKILL while rank 0 waits in a barrier: the job must end (non-zero)
"""
import os
import signal
import sys

import numpy as np

import strided
from strided import distributed, nn, optim

STEPS, BATCH, SEED, LR = 3, 4, 7, 0.1


def cnn(bn: bool = False, extra: bool = False) -> nn.Sequential:
    """A small float64 CNN on (N, 1, 8, 8); with ``bn`` a BatchNorm2d and a BatchNorm1d in it."""
    layers = [nn.Conv2d(1, 4, 3, dtype=np.float64)]
    layers += [nn.BatchNorm2d(4, dtype=np.float64)] if bn else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1, dtype=np.float64), nn.Tanh(), nn.Flatten(),
               nn.Linear(54, 12, dtype=np.float64)]
    layers += [nn.BatchNorm1d(12, dtype=np.float64)] if bn else []
    layers += [nn.ReLU(), nn.Linear(12, 3, dtype=np.float64)]
    layers += [nn.Linear(3, 3, dtype=np.float64)] if extra else []
    return nn.Sequential(*layers)


def global_order(shards):
    """The indices of the global batches, step after step: each step's slices of every rank's shard."""
    return np.concatenate([shard[s * BATCH:(s + 1) * BATCH] for s in range(STEPS) for shard in shards])


def dataset(world: int):
    """Images (STEPS * world * BATCH, 1, 8, 8) float64 and labels int64 in [0, 3), the same on every rank."""
    rng = np.random.default_rng(123)
    n = STEPS * world * BATCH
    return rng.normal(size=(n, 1, 8, 8)) * 2 + 0.5, rng.integers(0, 3, n)


def train(model, step_backward, x, y, order, batch_size=BATCH, no_sync=None):
    """STEPS SGD steps on consecutive ``batch_size`` slices of ``order`` (indices into x, y); returns the state dict.

    With ``no_sync`` (a context manager factory) each batch goes in two halves, the first one's
    backward inside ``no_sync()``: gradient accumulation, the same gradient as the whole batch.
    """
    opt = optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for s in range(STEPS):
        batch = order[s * batch_size:(s + 1) * batch_size]
        opt.zero_grad()
        if no_sync is None:
            loss_fn(model(x[batch]), y[batch])
            step_backward(model, loss_fn.backward())
        else:
            first, second = np.array_split(batch, 2)
            with no_sync():
                loss_fn(model(x[first]), y[first])
                step_backward(model, loss_fn.backward() / 2)
            loss_fn(model(x[second]), y[second])
            step_backward(model, loss_fn.backward() / 2)
        opt.step()
    return model.state_dict()


def replicas_identical(state) -> bool:
    """Whether every rank holds bit-identical arrays."""
    mine = b"".join(np.ascontiguousarray(v).tobytes() for v in state.values())
    return all(other == mine for other in distributed.communicator().allgather(mine))


def scenario_ddp(out):
    world, rank = distributed.world_size(), distributed.rank()
    x, y = dataset(world)
    shard = distributed.shard_indices(len(x), epoch=0, seed=SEED, rank=rank, world_size=world)
    results = {}
    for name, wrap, backward, accumulate in (
        ("ddp_tiny", lambda m: distributed.DistributedDataParallel(m, bucket_cap_mb=0.0005),
         lambda m, dy: m.backward(dy), False),
        ("ddp_default", distributed.DistributedDataParallel, lambda m, dy: m.backward(dy), False),
        ("ddp_no_sync", distributed.DistributedDataParallel, lambda m, dy: m.backward(dy), True),
        ("allreduce", lambda m: distributed.broadcast_parameters(m, root=0),
         lambda m, dy: (m.backward(dy), distributed.all_reduce_gradients(m)), False),
    ):
        strided.manual_seed(rank)  # different weights on every rank: rank 0's must win
        model = wrap(cnn())
        state = train(model, backward, x, y, shard, no_sync=model.no_sync if accumulate else None)
        results[f"{name}_identical"] = replicas_identical(state)
        for key, value in state.items():
            results[f"{name}/{key.removeprefix('module.')}"] = value
    results["shards"] = np.stack(distributed.communicator().allgather(shard))
    results["sum"] = distributed.all_reduce_sum(np.array([rank, 1], dtype=np.int64))
    results["mean"] = distributed.all_reduce_mean(np.array([float(rank), 2.0]))
    if rank == 0:
        np.savez(out, **results)


def scenario_syncbn(out):
    world, rank = distributed.world_size(), distributed.rank()
    x, y = dataset(world)
    shard = distributed.shard_indices(len(x), epoch=0, seed=SEED, rank=rank, world_size=world)
    strided.manual_seed(rank)
    model = distributed.DistributedDataParallel(distributed.convert_sync_batchnorm(cnn(bn=True)))
    state = train(model, lambda m, dy: m.backward(dy), x, y, shard)
    identical = replicas_identical(state)
    if rank == 0:
        np.savez(out, identical=identical, **{k.removeprefix("module."): v for k, v in state.items()})


def evaluation_set():
    """(images (23, 1, 8, 8) float64, labels in [0, 4)): the last class only at the end (a shard may lack it)."""
    rng = np.random.default_rng(5)
    y = np.concatenate([rng.integers(0, 3, 20), [3, 3, 3]])
    return rng.normal(size=(23, 1, 8, 8)), y


def eval_model():
    strided.manual_seed(3)
    layers = list(cnn(bn=True))
    return nn.Sequential(*layers[:-1], nn.Linear(12, 4, dtype=np.float64))


def _raised(call) -> str:
    try:
        call()
    except ValueError as exc:
        return f"raised: {exc}"
    return "did not raise"


def scenario_training(out):
    world, rank = distributed.world_size(), distributed.rank()
    x, y = evaluation_set()
    part = distributed.evaluation_shard(len(x))
    model = distributed.convert_sync_batchnorm(eval_model())
    mine = strided.evaluate(model, (x[part], y[part]))
    reduced = distributed.reduce_evaluation(mine, part.stop - part.start)
    sums = distributed.all_reduce_metrics({"loss_sum": 0.5 * rank, "count": rank + 1,
                                           "confusion": np.full((2, 2), rank, np.int64),
                                           "vector": np.arange(3.0) * rank})
    rng = np.random.default_rng(rank)
    rng.random(rank + 1)
    gathered = distributed.gather_to_writer(rng.bit_generator.state)
    restored = np.random.default_rng()
    restored.bit_generator.state = distributed.scatter_from_writer(gathered)
    results = {
        "writer": np.array(distributed.all_reduce_sum(np.array([distributed.is_writer()], np.int64))),
        "writer_here": distributed.is_writer(),
        "shard": np.array([part.start, part.stop]),
        "shards": np.array(distributed.communicator().allgather([part.start, part.stop])),
        "accuracy": reduced["accuracy"], "loss": reduced["loss"], "confusion": np.array(reduced["confusion"]),
        "per_class": np.array(reduced["per_class_accuracy"]),
        "loss_sum": sums["loss_sum"], "count": sums["count"], "sum_confusion": sums["confusion"],
        "vector": sums["vector"], "count_is_int": isinstance(sums["count"], int),
        "generator_restored": all(distributed.communicator().allgather(
            restored.random() == rng.random())),
        "gathered_on_others": distributed.communicator().allgather(gathered is None),
        "broadcast": distributed.communicator().allgather(distributed.broadcast_from_writer(f"runs/{rank}")),
        "same": _raised(lambda: distributed.check_same("dataset size", 100 + (rank == world - 1))),
        "same_ok": _raised(lambda: distributed.check_same("dataset size", 100)),
        "layout": _raised(lambda: distributed.all_reduce_metrics({"a": 1} if rank == 0 else {"a": 1.0})),
        "resume_1": _raised(lambda: distributed.check_resume_world_size(1)),
        "resume_world": _raised(lambda: distributed.check_resume_world_size(world)),
    }
    if rank == 0:
        np.savez(out, **results)


def fit_data(world: int):
    """(train, valid) pairs of float64 arrays for the fit scenario: the same on every rank."""
    x, y = dataset(world)
    rng = np.random.default_rng(9)
    return (x, y), (rng.normal(size=(11, 1, 8, 8)), rng.integers(0, 3, 11))


def fit_model(bn: bool):
    """The model the fit scenario trains (rank 0's weights, drawn from seed 0)."""
    strided.manual_seed(0)
    return cnn(bn=bn)


def fit_run(model, train, valid, batch_size, **kwargs):
    """2 epochs of strided.fit with SGD; returns (state dict, history)."""
    opt = optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-3)
    history = strided.fit(model, nn.CrossEntropyLoss(), opt, train, valid, epochs=2, batch_size=batch_size,
                          seed=SEED, progress=False, log=lambda *a: None, **kwargs)
    return model.state_dict(), history


def scenario_fit(out):
    world, rank = distributed.world_size(), distributed.rank()
    train_data, valid = fit_data(world)
    results = {}
    for name, bn in (("plain", False), ("bn", True)):
        model = fit_model(bn)
        if rank != 0:
            strided.manual_seed(rank)
            model = cnn(bn=bn)   # other weights: fit must start from rank 0's
        if bn:
            model = distributed.convert_sync_batchnorm(model)
        state, history = fit_run(model, train_data, valid, BATCH)
        results[f"{name}_identical"] = replicas_identical(state)
        results.update({f"{name}/{k}": v for k, v in state.items()})
        results.update({f"{name}/history/{k}": np.array(v, dtype=float) for k, v in history.items()
                        if k not in ("seconds", "images_per_s", "lr")})
    if rank == 0:
        np.savez(out, **results)


def syncbn_batch():
    """The batch of rank 0 in the syncbn_empty scenario: x (5, 3, 4, 4) float64 and dy of the same shape."""
    rng = np.random.default_rng(4)
    return rng.normal(size=(5, 3, 4, 4)) * 3 + 1, rng.normal(size=(5, 3, 4, 4))


def scenario_syncbn_empty(out):
    x, dy = syncbn_batch()
    if distributed.rank() != 0:
        x, dy = x[:0], dy[:0]
    layer = distributed.SyncBatchNorm(3, dtype=np.float64)
    y = layer(x)
    dx = layer.backward(dy)
    if distributed.rank() == 0:
        np.savez(out, y=y, dx=dx, weight=layer.weight.grad, bias=layer.bias.grad,
                 running_mean=layer.running_mean, running_var=layer.running_var)
    else:
        assert y.shape == x.shape and dx.shape == x.shape


def scenario_fail_alone(out):
    alone = None
    if distributed.rank() == 1:
        alone = distributed.fail_together(timeout=0.5)
    distributed.barrier()   # rank 0 waits here, as a rank waits in the training's collectives
    alone = distributed.communicator().bcast(alone, root=1)
    # rank 0's barrier completes rank 1's pending one; rank 1's second waits out its timeout (in a real
    # run a rank that saw False has aborted the job by then)
    together = distributed.fail_together(timeout=2)
    if distributed.rank() == 0:
        np.savez(out, alone=alone, together=together)


def scenario_mismatch(out):
    rank = distributed.rank()
    try:
        distributed.DistributedDataParallel(cnn(extra=rank == 1))
    except ValueError as exc:
        message = f"raised: {exc}"
    else:
        message = "did not raise"
    with open(f"{out}.{rank}", "w") as f:
        f.write(message)


def scenario_raise(out):
    distributed.barrier()
    if distributed.rank() == 1:
        raise RuntimeError("rank 1 fails on purpose")
    distributed.barrier()  # never completes: rank 1 is gone


def scenario_kill(out):
    distributed.barrier()
    if distributed.rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    distributed.barrier()


if __name__ == "__main__":
    distributed.init()
    if not distributed.is_distributed():
        sys.exit("this worker must run under mpiexec with more than one process")
    globals()[f"scenario_{sys.argv[1]}"](sys.argv[2])
