"""Ready-made networks."""
from __future__ import annotations

from . import nn


def lenet5(num_classes: int = 10, in_channels: int = 1, dtype=None) -> nn.Sequential:
    """LeNet-5 on 28x28 inputs (seed 001), layer for layer torch's ``Sequential`` of the same modules.

    x: (N, in_channels, 28, 28) -> logits (N, num_classes).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2, dtype=dtype), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5, dtype=dtype), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120, dtype=dtype), nn.Tanh(),
        nn.Linear(120, 84, dtype=dtype), nn.Tanh(),
        nn.Linear(84, num_classes, dtype=dtype),
    )
