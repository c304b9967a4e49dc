"""The fused one-layer kernels (docs/performance.md) equal the step-by-step reference path.

The step-by-step path is the one checked against finite differences and forward mode
(tests/test_flossing.py); the fused kernels are the fast path that one-layer networks take.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st


@pytest.mark.parametrize(
    "kw",
    [
        dict(layers=(5,), n_in=2),
        dict(layers=(6,), n_in=3, syn_input="old", reset="subtract", reset_grad="attached"),
        dict(layers=(5,), n_in=2, reset_grad="attached"),
        dict(layers=(4,), n_in=2, reset_grad="ignored", input_gain="unit"),
        dict(cell="rate", layers=(6,), n_in=2, readout={"tau_out": 5.0, "source": "state"}),
        dict(cell="binary", layers=(6,), n_in=2, readout={"tau_out": 5.0, "source": "state"}),
    ],
)
def test_fused_one_layer_kernels_equal_the_step_by_step_path(kw, monkeypatch):
    """The fused kernels (docs/performance.md) against the step-by-step reference path."""
    from refimpl.dynamics import flossing, lyapunov
    from refimpl.check import gradcheck
    from refimpl.model import network
    from refimpl.model.config import FlossConfig, LossConfig, LyapunovConfig, network_config

    cfg = network_config(n_out=1, **kw)
    params, inputs, _ = gradcheck.random_problem(cfg, 24, 2, 3, LossConfig())
    fc = FlossConfig(params=("W_in", "W_rec", "b") + network.initial_state_names(cfg), target=-0.05)
    lc = LyapunovConfig(k=min(4, cfg.state_size), ons=2, warmup=2, transient=1, batch_index=1)
    fused = [lyapunov.spectrum(cfg, params, inputs, lc), flossing.value_and_grad(cfg, params, inputs, lc, fc),
        flossing.value_and_grad(cfg, params, inputs, lc, fc, checkpoint_every=3)]  # fmt: skip
    monkeypatch.setattr(lyapunov, "fused_ok", lambda cfg: False)
    monkeypatch.setattr(flossing, "fused_ok", lambda cfg: False)
    ref = [lyapunov.spectrum(cfg, params, inputs, lc), flossing.value_and_grad(cfg, params, inputs, lc, fc),
        flossing.value_and_grad(cfg, params, inputs, lc, fc, checkpoint_every=3)]  # fmt: skip
    np.testing.assert_allclose(fused[0].exponents, ref[0].exponents, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fused[0].Q_final, ref[0].Q_final, rtol=0, atol=1e-12)
    assert fused[0].participation_ratio == pytest.approx(ref[0].participation_ratio, rel=1e-12)
    for a, b in zip(fused[1:], ref[1:]):
        assert a.loss == pytest.approx(b.loss, rel=1e-12)
        scale = max(np.max(np.abs(v)) for v in b.grads.values())
        for key in b.grads:
            np.testing.assert_allclose(a.grads[key], b.grads[key], rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("fault", ["structured_drop_reset_term", "flossing_drop_sigma2", "qr_backward_wrong_copyltu"])
def test_every_deliberate_fault_reaches_the_fused_kernels(fault):
    """The fused one-layer kernels compute every one-layer spectrum, flossing gradient and benchmarked number;
    each deliberate fault of the flossing gradient must change what they return (not only the step-by-step
    path's), and then the checks must fail."""
    from refimpl.dynamics import flossing, lyapunov
    from refimpl.check import gradcheck
    from refimpl.model.config import LossConfig, LyapunovConfig, network_config

    cfg = network_config(cell="clif", layers=(6,), n_in=3, n_out=2, reset_grad="attached")
    assert lyapunov.fused_ok(cfg)
    params, inputs, _ = gradcheck.random_problem(cfg, 20, 1, 0, LossConfig())
    lcfg = LyapunovConfig(k=3)
    clean = flossing.value_and_grad(cfg, params, inputs, lcfg).grads["layer1/W_rec"]
    with gradcheck.inject(fault):
        wrong = flossing.value_and_grad(cfg, params, inputs, lcfg).grads["layer1/W_rec"]
        rows = gradcheck.run(cfg, T=20, B=2, seed=0, loss=LossConfig("bce_per_step", t0=2))
    assert np.abs(wrong - clean).max() > 1e-3 * np.abs(clean).max()
    assert any(not r.passed and r.check.startswith("flossing") for r in rows)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 9),
    st.integers(1, 40),
    st.integers(0, 2**31 - 1),
    st.sampled_from([1.0, 1e-310, 1e300, 0.0]),
    st.booleans(),
)
def test_abs_max_by_bits_is_the_max_of_abs(k, M, seed, scale, special):
    """The rank test's ``max |A|`` (an integer maximum over the bit patterns) is ``np.max(np.abs(A))``:
    signs, zeros of both signs, subnormals, huge values and infinities; nan gives nan."""
    from refimpl.dynamics.fused import _abs_max

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((k, M)) * scale
    if special:
        X.flat[rng.integers(X.size)] = -0.0
        X.flat[rng.integers(X.size)] = -np.inf if seed % 2 else 5e-324
    assert _abs_max(X) == np.max(np.abs(X))
    X.flat[rng.integers(X.size)] = np.nan
    assert np.isnan(_abs_max(X))
