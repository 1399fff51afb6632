"""Layers and losses, named and parameterised like ``torch.nn``."""
from .module import Module, Parameter, Sequential
