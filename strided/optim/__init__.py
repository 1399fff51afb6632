"""Optimizers and learning-rate schedulers, named and parameterised like ``torch.optim``.

    from strided.optim import SGD, StepLR
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = StepLR(opt, step_size=10)
    ...
    opt.zero_grad(); model.backward(crit.backward()); opt.step()   # each batch
    sched.step()                                                   # each epoch

Every optimizer updates ``Parameter.data`` in place, keeps its dtype, skips
parameters with no gradient or ``requires_grad=False``, and saves/loads its
state with ``state_dict()``/``load_state_dict()`` for bit-exact resumption.
"""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LinearLR, LRScheduler, MultiStepLR, OneCycleLR,
                           ReduceLROnPlateau, SequentialLR, StepLR)
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad",
    "lr_scheduler", "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR",
    "LinearLR", "SequentialLR", "ReduceLROnPlateau",
]
