"""Escape-noise neurons by exact enumeration (refimpl/exact/escape.py, docs/exact.md §10): the gradient of
the expected loss is right, the expected surrogate gradient equals it exactly for one neuron without
reset under a loss linear in the spikes, and is biased — and not a gradient field — elsewhere."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.exact.escape import EscapeNet, expectations, loop_integral
from refimpl.exact.escape import flat_params as _params


def _fd(net, p, x, h=1e-6):
    g = np.zeros_like(p)
    for k in range(p.size):
        q = p.copy()
        q[k] += h
        up = expectations(net, q, x).loss
        q[k] -= 2 * h
        g[k] = (up - expectations(net, q, x).loss) / (2 * h)
    return g


X = np.random.default_rng(0).uniform(0, 1, 10)
BIASED = [(EscapeNet(N=1, T=8, loss="quadratic"), {}), (EscapeNet(N=1, T=8, reset=1), {}),
    (EscapeNet(N=1, T=8), {"W": [[0.5]]}), (EscapeNet(N=2, T=6), {"w_in": [1.0, 0.0], "W": [[0, 0], [1.0, 0]]}),
    (EscapeNet(N=2, T=6), {"w_in": [1.0, 0.5], "W": [[0.3, -0.5], [1.0, 0.3]]})]  # fmt: skip


@pytest.mark.parametrize("net, kw", BIASED + [(EscapeNet(N=1, T=8, escape="exponential"), {})])
def test_gradient_of_the_expected_loss_matches_central_differences(net, kw):
    """The score-function gradient of the enumerated expected loss against central differences (1e-7); the
    expected surrogate gradient, where it is biased, fails the same check (the check can fail)."""
    p = _params(net, **kw)
    e = expectations(net, p, X[: net.T])
    fd = _fd(net, p, X[: net.T])
    assert np.abs(e.grad - fd).max() <= 1e-7 * np.abs(fd).max()
    if net.escape == "sigmoid":
        assert np.abs(e.surrogate - fd).max() > 1e-3 * np.abs(fd).max()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 10), st.floats(-1.0, 2.0), st.floats(-0.5, 1.0), st.sampled_from(["sigmoid", "exponential"]),
    st.floats(0.5, 5.0), st.integers(0, 1000))  # fmt: skip
def test_one_neuron_without_reset_has_an_unbiased_surrogate_gradient(T, w_in, b, esc, gamma, seed):
    """One neuron, no reset, no self-connection, a loss linear in the spikes: its membrane does not depend
    on its spikes, so E[SG] = ∇E[L] exactly (to rounding) for either escape function and any slope."""
    net = EscapeNet(N=1, T=T, escape=esc, gamma=gamma)
    x = np.random.default_rng(seed).uniform(0, 1, T)
    e = expectations(net, _params(net, w_in, None, b), x)
    assert np.abs(e.surrogate - e.grad).max() <= 1e-12 * max(np.abs(e.grad).max(), 1e-12)


@pytest.mark.parametrize("net, kw", BIASED)
def test_reset_recurrence_depth_and_nonlinear_losses_bias_it(net, kw):
    e = expectations(net, _params(net, **kw), X[: net.T])
    assert np.linalg.norm(e.surrogate - e.grad) > 1e-3 * np.linalg.norm(e.grad)


def test_the_expected_surrogate_gradient_is_not_a_gradient_field():
    """Around a closed loop in parameter space ∮ ∇E[L]·dp vanishes (to 1e-12); ∮ E[SG]·dp does not, for a
    reset neuron and for two layers — and it does vanish for the one unbiased case."""
    x = X[:8]
    for net, kw, i, j, nonzero in ((EscapeNet(N=1, T=8), {}, 0, 2, False), (EscapeNet(N=1, T=8, reset=1), {}, 0, 2, True),
            (EscapeNet(N=2, T=6), {"w_in": [1.0, 0.0], "W": [[0, 0], [1.0, 0]]}, 0, 4, True)):  # fmt: skip
        li = loop_integral(net, _params(net, **kw), x[: net.T], i, j, radius=0.3, n=32)
        assert abs(li["gradient"]) < 1e-12
        assert (abs(li["surrogate"]) > 1e-3) if nonzero else (abs(li["surrogate"]) < 1e-12), (net, li)


def test_bad_networks_are_refused():
    with pytest.raises(ValueError, match="N·T"):
        EscapeNet(N=2, T=9)
    with pytest.raises(ValueError, match="escape"):
        EscapeNet(escape="linear")
    with pytest.raises(ValueError, match="params"):
        expectations(EscapeNet(N=1, T=3), np.zeros(2), np.zeros(3))
