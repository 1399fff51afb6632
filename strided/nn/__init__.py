"""Layers and losses, named and parameterised like ``torch.nn``."""
from . import init
from .activation import ELU, GELU, Gaussian, Hardswish, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .containers import Concat, Residual
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .linear import Flatten, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter, Sequential
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

__all__ = [
    "Module", "Parameter", "Sequential", "Residual", "Concat", "Conv2d", "ConvTranspose2d", "Linear", "Flatten", "MaxPool2d", "AvgPool2d",
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Gaussian", "Softmax", "Identity", "GELU", "SiLU", "ELU", "Hardswish",
    "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "Dropout", "Dropout2d",
    "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "MSELoss", "init",
]
