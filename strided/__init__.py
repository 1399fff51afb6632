"""strided: convolutional neural networks from scratch in NumPy.

Packages: ``strided.functional`` (the stateless core), ``strided.nn``
(layers and losses), ``strided.conv`` (convolution algorithms),
``strided.optim`` (optimizers and schedulers), ``strided.models``.
"""
from . import conv, functional, models, nn
from .gradcheck import GradcheckError, gradcheck
from .random import manual_seed

__version__ = "0.1.0"
