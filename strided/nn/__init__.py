"""Layers and losses, named and parameterised like ``torch.nn``."""
from . import init
from .activation import Gaussian, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter, Sequential
from .normalization import BatchNorm1d, BatchNorm2d, SyncBatchNorm
from .pooling import AvgPool2d, MaxPool2d

__all__ = [
    "Module", "Parameter", "Sequential", "Conv2d", "Linear", "Flatten", "MaxPool2d", "AvgPool2d",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Gaussian", "Softmax", "Identity", "BatchNorm1d", "BatchNorm2d",
    "SyncBatchNorm", "Dropout", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "MSELoss", "init",
]
