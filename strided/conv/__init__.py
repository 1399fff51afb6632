"""Convolution algorithms behind one interface, and the choice between them.

Each algorithm lives in its own file and implements
:class:`~strided.conv.base.ConvAlgorithm`; ``get(name)`` returns one and
``choose(geom, dtype, name)`` resolves ``'auto'`` (or an algorithm that
cannot run a geometry) to one that can, with the reason.
"""
from __future__ import annotations

import numpy as np

from .. import _checks
from ..geometry import ConvGeometry
from .base import ConvAlgorithm
from .naive import Naive
from .strided import Strided

ALGORITHMS: dict[str, ConvAlgorithm] = {a.name: a for a in (Strided(), Naive())}
DEFAULT = "strided"


def names() -> tuple[str, ...]:
    return ("auto", *ALGORITHMS)


def get(name: str) -> ConvAlgorithm:
    _checks.choice("algorithm", name, tuple(ALGORITHMS))
    return ALGORITHMS[name]


def choose(geom: ConvGeometry, dtype, name: str = "auto") -> tuple[ConvAlgorithm, str]:
    """Return ``(algorithm, reason)`` for ``name`` (an algorithm name or ``'auto'``)."""
    _checks.choice("algorithm", name, names())
    if name == "auto":
        return ALGORITHMS[DEFAULT], "default"
    alg = ALGORITHMS[name]
    why = alg.supports(geom, np.dtype(dtype))
    if why is None:
        return alg, "requested"
    return ALGORITHMS[DEFAULT], f"{name} cannot run this geometry ({why}); using {DEFAULT}"
