"""The surrogate rule (docs/model.md §2): σ', its derivative σ'' and its primitive Φ.

The spike ``H(x)`` has derivative zero almost everywhere; the surrogate rule
replaces every ``H'(x)`` by a smooth bump ``σ'(x; γ)``. Where the derivative
of ``σ'`` itself is needed (the flossing gradient differentiates the tangent
map, which contains ``σ'``), ``σ''`` is used. ``Φ`` is the primitive of ``σ'``
with ``Φ(-∞) = 0``: in *smooth mode* it replaces ``H`` in the forward pass, so
that the surrogate gradient becomes an exact gradient that finite
differences can check.

The scalar kernels are Numba functions selected by an integer code so that
the cell kernels can call them inside their loops without Python objects.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, vectorize

from refimpl.model.config import SURROGATES

#: Integer codes used inside the kernels, in the order of docs/model.md §2's table.
CODES = {name: i for i, name in enumerate(SURROGATES)}
FAST_SIGMOID, SIGMOID, ARCTAN, GAUSSIAN, TRIANGLE = range(5)

_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)


@njit(cache=True, inline="always")
def _logistic(z):
    # Two branches so that exp never overflows.
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, inline="always")
def _sign(x):
    # docs/model.md §2: sign(0) = 0.
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0


@njit(cache=True, inline="always")
def sigma_prime(x, code, gamma):
    """σ'(x; γ), the replacement of ``H'(x)``."""
    if code == FAST_SIGMOID:
        d = 1.0 + gamma * abs(x)
        return 1.0 / (d * d)
    if code == SIGMOID:
        # s(z) s(-z), not s (1 - s): 1 - s cancels once s ≈ 1 (docs/model.md §2 writes it this way)
        return gamma * _logistic(gamma * x) * _logistic(-gamma * x)
    if code == ARCTAN:
        a = 0.5 * math.pi * gamma * x
        return 0.5 * gamma / (1.0 + a * a)
    if code == GAUSSIAN:
        return math.exp(-0.5 * (gamma * x) ** 2)
    # TRIANGLE
    return max(0.0, 1.0 - gamma * abs(x))


@njit(cache=True, inline="always")
def sigma_second(x, code, gamma):
    """σ''(x; γ) = d σ'/dx, with ``sign(0) = 0`` at the kinks."""
    if code == FAST_SIGMOID:
        d = 1.0 + gamma * abs(x)
        return -2.0 * gamma * _sign(x) / (d * d * d)
    if code == SIGMOID:
        sp, sm = _logistic(gamma * x), _logistic(-gamma * x)
        return gamma * gamma * sp * sm * (sm - sp)
    if code == ARCTAN:
        c = 0.5 * math.pi * gamma
        a = c * x
        q = 1.0 + a * a
        return -gamma * c * c * x / (q * q)
    if code == GAUSSIAN:
        return -gamma * gamma * x * math.exp(-0.5 * (gamma * x) ** 2)
    # TRIANGLE
    if abs(x) < 1.0 / gamma:
        return -gamma * _sign(x)
    return 0.0


@njit(cache=True, inline="always")
def primitive(x, code, gamma):
    """Φ(x; γ) = ∫_{-∞}^x σ', the smooth-mode replacement of ``H``."""
    if code == FAST_SIGMOID:
        return x / (1.0 + gamma * abs(x)) + 1.0 / gamma
    if code == SIGMOID:
        return _logistic(gamma * x)
    if code == ARCTAN:
        return 0.5 + math.atan(0.5 * math.pi * gamma * x) / math.pi
    if code == GAUSSIAN:
        return _SQRT_HALF_PI / gamma * (1.0 + math.erf(gamma * x / math.sqrt(2.0)))
    # TRIANGLE: piecewise quadratic, continuous with its derivative.
    w = 1.0 / gamma
    if x <= -w:
        return 0.0
    if x <= 0.0:
        return 0.5 * gamma * (x + w) ** 2
    if x < w:
        return 0.5 * w + x - 0.5 * gamma * x * x
    return w


@njit(cache=True, inline="always")
def heaviside(x):
    """``H(x) = 1`` if ``x > 0`` else 0 (strict, docs/model.md §1.1)."""
    return 1.0 if x > 0.0 else 0.0


# -- array versions for analysis code and tests ------------------------------


@vectorize(["float64(float64, int64, float64)"], cache=True)
def sigma_prime_v(x, code, gamma):
    return sigma_prime(x, code, gamma)


@vectorize(["float64(float64, int64, float64)"], cache=True)
def sigma_second_v(x, code, gamma):
    return sigma_second(x, code, gamma)


@vectorize(["float64(float64, int64, float64)"], cache=True)
def primitive_v(x, code, gamma):
    return primitive(x, code, gamma)


def code_of(name: str) -> int:
    """Integer kernel code of a surrogate name."""
    if name not in CODES:
        raise ValueError(f"surrogate.name must be one of {list(CODES)}, got {name!r}")
    return CODES[name]


def evaluate(name: str, x, slope: float = 10.0):
    """``(σ', σ'', Φ)`` of the named surrogate at ``x`` (array), float64."""
    c = code_of(name)
    x = np.asarray(x, dtype=np.float64)
    return sigma_prime_v(x, c, float(slope)), sigma_second_v(x, c, float(slope)), primitive_v(x, c, float(slope))
