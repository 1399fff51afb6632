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
  :func:`barrier`, :func:`communicator`
- models: :class:`DistributedDataParallel`, :func:`broadcast_parameters`,
  :func:`all_reduce_gradients`, :func:`convert_sync_batchnorm` (to :class:`SyncBatchNorm`)
- data and metrics: :func:`shard_indices`, :func:`all_reduce_sum`, :func:`all_reduce_mean`
"""
from .collectives import all_reduce_gradients, all_reduce_mean, all_reduce_sum, broadcast_parameters
from .parallel import DistributedDataParallel
from .process import barrier, communicator, init, is_distributed, rank, world_size
from .sampler import shard_indices
from .sync_batchnorm import SyncBatchNorm

convert_sync_batchnorm = SyncBatchNorm.convert_sync_batchnorm

__all__ = [
    "init", "rank", "world_size", "is_distributed", "barrier", "communicator",
    "DistributedDataParallel", "broadcast_parameters", "all_reduce_gradients", "SyncBatchNorm",
    "convert_sync_batchnorm", "shard_indices", "all_reduce_sum", "all_reduce_mean",
]
