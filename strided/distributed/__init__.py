"""Data-parallel training over MPI: one process per replica, gradients averaged every step.

Launch the same script in N processes (``mpiexec -n N python train.py``,
``srun``, or across machines with a host file); each process trains a
replica of the model on its own shard of every batch, and the replicas
stay identical because they start from rank 0's weights and apply the same
averaged gradients. Needs mpi4py and an MPI library (``pip install
strided[mpi]``; MPICH from the system or ``pip install mpich``). A process
not started by an MPI launcher is rank 0 of a world of one and every
function here is the identity, so single-process code runs unchanged
without mpi4py. See docs/distributed.md.

- the processes: :func:`init`, :func:`rank`, :func:`world_size`, :func:`is_distributed`,
  :func:`barrier`, :func:`communicator`, :func:`joined`, :func:`abort`
- models: :class:`DistributedDataParallel`, :func:`broadcast_parameters`,
  :func:`all_reduce_gradients`, :func:`convert_sync_batchnorm` (to :class:`SyncBatchNorm`)
- data and metrics: :func:`shard_indices`, :func:`all_reduce_sum`, :func:`all_reduce_mean`,
  :func:`all_reduce_metrics`, :func:`evaluation_shard`, :func:`reduce_evaluation`
- a training run: :func:`is_writer`, :func:`check_same`, :func:`broadcast_from_writer`, :func:`gather_to_writer`,
  :func:`scatter_from_writer`, :func:`check_resume_world_size`, :func:`run_on_writer`, :func:`fail_together`
"""
from .collectives import all_reduce_gradients, all_reduce_mean, all_reduce_sum, broadcast_parameters, check_same
from .parallel import DistributedDataParallel
from .process import abort, barrier, communicator, init, is_distributed, joined, rank, world_size
from .sampler import shard_indices
from .sync_batchnorm import SyncBatchNorm
from .training import (
    all_reduce_metrics,
    broadcast_from_writer,
    check_resume_world_size,
    evaluation_shard,
    fail_together,
    gather_to_writer,
    is_writer,
    reduce_evaluation,
    run_on_writer,
    scatter_from_writer,
)

convert_sync_batchnorm = SyncBatchNorm.convert_sync_batchnorm

__all__ = [
    "init", "rank", "world_size", "is_distributed", "barrier", "communicator",
    "DistributedDataParallel", "broadcast_parameters", "all_reduce_gradients", "SyncBatchNorm",
    "convert_sync_batchnorm", "shard_indices", "all_reduce_sum", "all_reduce_mean", "all_reduce_metrics",
    "evaluation_shard", "reduce_evaluation", "is_writer", "check_same", "gather_to_writer", "scatter_from_writer",
    "broadcast_from_writer", "check_resume_world_size", "run_on_writer", "fail_together", "joined", "abort",
]
