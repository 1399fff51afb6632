"""strided: convolutional neural networks from scratch in NumPy.

Packages: ``strided.functional`` (the stateless core), ``strided.nn``
(layers and losses), ``strided.conv`` (convolution algorithms),
``strided.optim`` (optimizers and schedulers), ``strided.models``,
``strided.data`` (datasets), ``strided.train`` (fit/evaluate),
``strided.io`` (save/load, checkpoints, torch and ONNX), ``strided.utils``
(gradient clipping), ``strided.viz`` (figures);
``strided.summary`` (a model's layers in a table), ``strided.predict`` (a trained classifier on new images).
"""
from ._version import __version__
from . import conv, data, distributed, functional, io, models, nn, optim, train, utils
from .gradcheck import GradcheckError, gradcheck
from .inference import Classifier, Predictions, predict
from .summary import ModelSummary, summary
from .io import export_onnx, load, save
from .random import manual_seed
from .train import evaluate, fit

