import numpy as np
import pytest

from refimpl.training.optim import AdamConfig, AdamState, adam_step, clip, global_norm


def test_first_adam_step_is_lr_times_sign():
    """After one step m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps)."""
    p = {"w": np.array([1.0, -2.0, 3.0])}
    g = {"w": np.array([0.5, -4.0, 1e-3])}
    cfg = AdamConfig(lr=0.1, eps=1e-8)
    out = adam_step(p, g, AdamState(), cfg)
    np.testing.assert_allclose(out["w"], p["w"] - 0.1 * g["w"] / (np.abs(g["w"]) + 1e-8), rtol=1e-14)


def test_adam_matches_closed_form_over_steps():
    rng = np.random.default_rng(0)
    cfg = AdamConfig(lr=0.01, beta1=0.8, beta2=0.95)
    p, state = {"w": rng.standard_normal(4)}, AdamState()
    gs = [rng.standard_normal(4) for _ in range(5)]
    w, mw, vw = p["w"].copy(), 0.0, 0.0
    for i, g in enumerate(gs):  # the update itself, written out: bias-corrected moments
        p = adam_step(p, {"w": g}, state, cfg)
        mw, vw = 0.8 * mw + 0.2 * g, 0.95 * vw + 0.05 * g * g
        w = w - cfg.lr * (mw / (1 - 0.8 ** (i + 1))) / (np.sqrt(vw / (1 - 0.95 ** (i + 1))) + cfg.eps)
    np.testing.assert_allclose(p["w"], w, rtol=1e-13)
    t = len(gs)
    m = sum((1 - 0.8) * 0.8 ** (t - 1 - i) * g for i, g in enumerate(gs))
    v = sum((1 - 0.95) * 0.95 ** (t - 1 - i) * g * g for i, g in enumerate(gs))
    assert state.t == t
    np.testing.assert_allclose(state.m["w"], m, rtol=1e-13)
    np.testing.assert_allclose(state.v["w"], v, rtol=1e-13)


def test_clipping():
    g = {"a": np.array([3.0]), "b": np.array([4.0])}
    c, n = clip(g, 1.0)
    assert n == 5.0 and global_norm(c) == pytest.approx(1.0)
    assert clip(g, 10.0)[0] is g


def test_bad_config():
    with pytest.raises(ValueError, match="lr"):
        AdamConfig(lr=-1)
    with pytest.raises(ValueError, match="beta2"):
        AdamConfig(beta2=1.0)
