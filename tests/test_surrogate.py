"""docs/model.md §2: σ' is the derivative of Φ, σ'' the derivative of σ', Φ(-∞) = 0."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refimpl.model.config import SURROGATES
from refimpl.model.surrogate import evaluate

xs = st.floats(-3.0, 3.0, allow_nan=False)


@given(st.sampled_from(SURROGATES), st.sampled_from([0.5, 1.0, 2.0, 10.0]), xs)
def test_sigma_prime_is_derivative_of_primitive(name, slope, x):
    h = 1e-6
    kinks = {"fast_sigmoid": [0.0], "triangle": [0.0, 1 / slope, -1 / slope]}.get(name, [])
    if any(abs(x - k) < 1e-4 for k in kinks):
        return  # Φ'' jumps there and central differences are only O(h) accurate
    d1, d2, phi = evaluate(name, [x - h, x, x + h], slope)
    assert abs((phi[2] - phi[0]) / (2 * h) - d1[1]) <= 1e-6 * max(1.0, abs(d1[1])) + 1e-7


@given(st.sampled_from(SURROGATES), st.sampled_from([0.5, 1.0, 2.0, 10.0]), xs)
def test_sigma_second_is_derivative_of_sigma_prime(name, slope, x):
    h = 1e-7
    kinks = {"fast_sigmoid": [0.0], "triangle": [0.0, 1 / slope, -1 / slope]}.get(name, [])
    if any(abs(x - k) < 1e-5 for k in kinks):
        return  # σ'' jumps there; docs/model.md §2 fixes sign(0) = 0, checked below
    d1, d2, _ = evaluate(name, [x - h, x, x + h], slope)
    assert abs((d1[2] - d1[0]) / (2 * h) - d2[1]) <= 1e-5 * max(1.0, abs(d2[1]))


@pytest.mark.parametrize("name", SURROGATES)
def test_primitive_limits_and_table(name):
    slope = 3.0
    _, _, phi = evaluate(name, [-1e6], slope)
    assert abs(phi[0]) < 1e-5
    d1, d2, _ = evaluate(name, [0.0], slope)
    expected = {"fast_sigmoid": 1.0, "sigmoid": slope / 4, "arctan": slope / 2, "gaussian": 1.0, "triangle": 1.0}[name]
    assert d1[0] == pytest.approx(expected)
    assert d2[0] == 0.0  # sign(0) = 0 at the kinks, and symmetric bumps elsewhere


def test_wrong_derivative_fails_the_check():
    """The check above can fail: a σ' off by a factor fails the primitive test."""
    x, h = 0.3, 1e-6
    d1, _, phi = evaluate("sigmoid", [x - h, x, x + h], 2.0)
    assert abs((phi[2] - phi[0]) / (2 * h) - 1.01 * d1[1]) > 1e-6


def test_unknown_surrogate_is_rejected():
    with pytest.raises(ValueError, match="surrogate.name"):
        evaluate("fast_sigmoidd", [0.0])


@pytest.mark.parametrize("x", [5.0, 20.0, 60.0])
def test_tails_keep_full_relative_precision(x):
    """σ' in the tail must not come from a cancellation like 1 - s(γx)."""
    d1, d2, _ = evaluate("sigmoid", [x, -x], 1.0)
    exact = np.exp(-x) / (1 + np.exp(-x)) ** 2
    np.testing.assert_allclose(d1, exact, rtol=1e-13)
    np.testing.assert_allclose(d2, [-exact * np.tanh(x / 2), exact * np.tanh(x / 2)], rtol=1e-12)
