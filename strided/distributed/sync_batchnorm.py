"""``SyncBatchNorm``: batch norm over the global batch of data-parallel training (torch's ``nn.SyncBatchNorm``).

It lives here, above :mod:`strided.nn`, because its forward and backward
communicate; the layer itself is :class:`strided.nn.BatchNorm2d`'s with the
batch statistics summed over the processes (the ``_sum_over_replicas`` hook).
"""
from __future__ import annotations

from functools import partial

from ..io import register_module, register_torch_layer
from ..nn import Module
from ..nn.normalization import BatchNormBase
from .collectives import all_reduce_sum
from .process import is_distributed


class SyncBatchNorm(BatchNormBase):
    """Batch norm whose training statistics are those of the global batch of data-parallel training.

    In training mode the mean and variance of each channel are computed
    over every process's batch together (the processes of
    ``process_group``, an mpi4py communicator; the world of
    :mod:`strided.distributed` when None): the count and sums are summed
    over the processes, then the centred sums of squares (two allreduces of
    C + 1 and C float64 values per forward, one of 2C per backward), so the
    result equals :class:`BatchNorm2d` on the concatenated global batch up to
    the order of the additions. The running statistics follow torch (unbiased
    variance over the global count). In eval mode, and in a single process,
    it is exactly :class:`BatchNorm1d`/:class:`BatchNorm2d`. Every process
    must call forward and backward together (they communicate).

    Args:
        num_features (int): C, the number of channels.
        eps (float): added to the variance. Default 1e-5.
        momentum (float or None): running-statistics factor; None for a cumulative average. Default 0.1.
        affine (bool): learn a per-channel scale (``weight``) and shift (``bias``). Default True.
        track_running_stats (bool): keep ``running_mean``/``running_var`` for eval mode. Default True.
        process_group: an mpi4py communicator whose processes share the statistics; None for every process.
        dtype: float32 (default) or float64.

    Shape:
        x: (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W); y: the same.

    Examples::

        >>> model = nn.SyncBatchNorm.convert_sync_batchnorm(strided.models.fashion_cnn())
    """
    _ndims, _layout = (2, 3, 4, 5), "(N, C, *)"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.process_group = process_group

    def get_config(self) -> dict:
        """The constructor arguments without ``process_group`` (a live communicator, not part of the model)."""
        config = super().get_config()
        config.pop("process_group", None)
        return config

    def _sum_over_replicas(self):
        if not self.training:
            return None
        if not is_distributed(self.process_group):
            return None
        return partial(all_reduce_sum, group=self.process_group)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """Replace every BatchNorm1d/BatchNorm2d in ``module`` by a SyncBatchNorm; returns the result.

        The new layers keep the old ones' arguments, mode, parameters (the
        same Parameter objects, so an optimizer built on them still trains
        them) and running statistics, and take their place in the parent
        (same name, same position). A batch norm given as ``module`` itself is
        returned converted; other modules are changed in place and returned.
        """
        if isinstance(module, BatchNormBase) and not isinstance(module, SyncBatchNorm):
            dtype = (module.running_mean.dtype if module.track_running_stats else
                     module.weight.dtype if module.affine else None)
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats, process_group, dtype)
            if module.affine:
                sync.weight, sync.bias = module.weight, module.bias
            if module.track_running_stats:
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    sync.register_buffer(name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children(remove_duplicate=False)):
            converted = cls.convert_sync_batchnorm(child, process_group)
            if converted is not child:
                setattr(module, name, converted)   # in its place: the children keep their order
        return module


def _to_torch(torch, layer: SyncBatchNorm, dtype):
    """torch.nn.SyncBatchNorm with the layer's arguments (process_group None: torch's default group)."""
    return torch.nn.SyncBatchNorm(layer.num_features, layer.eps, layer.momentum, layer.affine,
                                  layer.track_running_stats, dtype=dtype)


def _from_torch(torch, module, dtype) -> SyncBatchNorm:
    """A SyncBatchNorm with a torch.nn.SyncBatchNorm's arguments (its process group is torch's, not kept)."""
    return SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                         module.track_running_stats, dtype=dtype)


register_module(SyncBatchNorm)  # strided.save/load describe and rebuild it like the layers of strided.nn
register_torch_layer(SyncBatchNorm, "SyncBatchNorm", _to_torch, _from_torch)  # to_torch/from_torch
