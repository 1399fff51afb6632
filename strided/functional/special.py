"""The error function, vectorised in NumPy (NumPy has none; GELU needs it).

    erf(x) = 2/sqrt(pi) * integral from 0 to x of exp(-t^2) dt        (odd: erf(-x) = -erf(x))

Three ranges of |x|, each computed where it is well conditioned:

    |x| <= 1       erf(x) = 2/sqrt(pi) * x * sum_n (-x^2)^n / (n! (2n + 1))
                   (the Taylor series, 20 terms by Horner's rule; its terms fall
                   below 1e-17 by n = 18 and never cancel by more than a factor 2)
    1 < |x| <= 6   erf(x) = 1 - exp(-x^2) * erfcx(x), where erfcx(x) = exp(x^2) erfc(x)
                   is smooth and slowly varying: on each of four intervals it is
                   the Chebyshev interpolant of degree 18 through the standard
                   library's ``math.erfc`` at the Chebyshev points
    |x| > 6        erf(x) = +-1 (erfc(6) = 2e-17 is below half a float64 ulp of 1)

Every coefficient is computed when the module is imported (the series' exactly
from fractions, the interpolants' from 19 values of ``math.erfc`` each), so no
constant here is copied from anywhere. In float64 the result is within a few
ulp of ``math.erf`` (tests/test_layers_norm_act.py holds it to 4 ulp over the
whole range); float32 inputs are computed in float32.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.polynomial import chebyshev

from .. import _checks

_SERIES_TERMS = 20
_SERIES = tuple(float(Fraction((-1) ** n, math.factorial(n) * (2 * n + 1))) for n in range(_SERIES_TERMS))
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_CUTS = (1.0, 2.0, 3.0, 4.5, 6.0)  # the series up to the first, the interpolants between, +-1 beyond the last
_DEGREE = 18


def _chebyshev_interpolant(f, lo: float, hi: float, degree: int) -> np.ndarray:
    """Coefficients (degree + 1,) of the interpolant of f at the Chebyshev points of the first kind on [lo, hi].

    c_j = (2 / n) * sum_k f(x_k) cos(pi j (k + 1/2) / n), halved for j = 0, where
    x_k maps cos(pi (k + 1/2) / n) from [-1, 1] to [lo, hi]; sums are exact (``math.fsum``).
    """
    n = degree + 1
    t = [math.cos(math.pi * (k + 0.5) / n) for k in range(n)]
    fx = [f(lo + (hi - lo) * (tk + 1) / 2) for tk in t]
    c = [2.0 / n * math.fsum(fx[k] * math.cos(math.pi * j * (k + 0.5) / n) for k in range(n)) for j in range(n)]
    c[0] /= 2
    return np.array(c)


_ERFCX = tuple(_chebyshev_interpolant(lambda v: math.erfc(v) * math.exp(v * v), lo, hi, _DEGREE)
               for lo, hi in zip(_CUTS[:-1], _CUTS[1:]))


def erf(x) -> np.ndarray:
    """The error function of every element of x (any shape, float32 or float64; others become float32).

    Returns an array of x's shape and dtype. NaN stays NaN, erf(+-inf) = +-1,
    erf(-0.0) = -0.0.
    """
    x = _checks.as_float_array("x", x)
    dt = x.dtype.type
    ax = np.abs(x)
    out = np.ones_like(ax)                     # |x| > 6 (and inf)
    small = ax <= _CUTS[0]
    z = ax[small]
    u = z * z
    acc = np.full_like(u, _SERIES[-1])
    for a in _SERIES[-2::-1]:
        acc *= u
        acc += dt(a)
    out[small] = z * (acc * dt(_TWO_OVER_SQRT_PI))
    for lo, hi, coef in zip(_CUTS[:-1], _CUTS[1:], _ERFCX):
        inside = (ax > lo) & (ax <= hi)
        z = ax[inside]
        t = (2 * z - dt(lo + hi)) / dt(hi - lo)
        out[inside] = 1 - np.exp(-z * z) * chebyshev.chebval(t, coef.astype(x.dtype))
    out[np.isnan(x)] = np.nan
    return np.copysign(out, x)
