"""docs/model.md §6, §8: the surrogate Lyapunov spectrum."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from refimpl.dynamics import flossing, lyapunov
from refimpl.check import gradcheck
from refimpl.model import network
from refimpl.model.config import LossConfig, LyapunovConfig, network_config

from conftest import configs

seeds = st.integers(0, 2**16)


@given(configs(reset_grads=("attached", "ignored")), seeds)
def test_sum_of_full_spectrum_is_mean_log_det(cfg, seed):
    params, inputs, _ = gradcheck.random_problem(cfg, 25, 1, seed, LossConfig())
    traj = network.simulate(cfg, params, inputs)
    logdets = [np.linalg.slogdet(network.dense_jacobian(cfg, params, traj, t)) for t in range(25)]
    assume(all(sign != 0 for sign, _ in logdets))  # a singular D_t has no finite log det
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lyapunov.DegenerateSpectrumWarning)
        warnings.simplefilter("ignore", lyapunov.ConditioningWarning)  # such cases are assumed away below
        res = lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=cfg.state_size))
    # log R_ii of a nearly singular step carries a relative error ~ eps·cond(R) (docs/testing.md)
    assume(not res.degenerate and res.qr_condition < 1e6)
    assert abs(res.exponents.sum() - np.mean([ld for _, ld in logdets])) <= 1e-10 * max(1.0, abs(res.exponents.sum()))


@pytest.mark.parametrize("syn", ["new", "old"])
@pytest.mark.parametrize("T", [200, 800])
def test_uncoupled_cells_have_log_beta_and_log_alpha(syn, T):
    cfg = network_config(layers=(3, 2), n_in=1, n_out=1, reset="none", syn_input=syn, tau_mem=10.0, tau_syn=5.0)
    params = network.init_params(cfg)
    for l in (1, 2):
        params[f"layer{l}/W_rec"][:] = 0.0
    params["layer2/W_in"][:] = 0.0
    inputs = np.random.default_rng(0).standard_normal((T, 1, 1))
    res = lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=10))
    expected = np.sort(np.r_[np.full(5, -0.1), np.full(5, -0.2)])[::-1]
    err = np.max(np.abs(np.sort(res.exponents)[::-1] - expected))
    assert err < 3.0 / T  # the finite-time error of a non-normal map shrinks like 1/T


def test_fixed_linear_map_gives_log_abs_eigenvalues():
    """A rate network at its fixed point x = 0 (no input, no bias) is the linear map W_rec."""
    cfg = network_config(cell="rate", layers=(6,), n_in=1, n_out=1)
    params = network.init_params(cfg, 3, g_rec=1.3)
    inputs = np.zeros((2000, 1, 1))
    res = lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=6, transient=200))
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(params["layer1/W_rec"]))))[::-1]
    np.testing.assert_allclose(np.sort(res.exponents)[::-1], expected, atol=5e-3)


@given(seeds, st.sampled_from(["engelken", "spytorch", "stork"]), st.sampled_from([1, 2, 3]))
def test_jacobian_lambda1_matches_two_trajectories(seed, dialect, ons):
    cfg = network_config(dialect=dialect, layers=(6,), n_in=2, n_out=1, smooth=True, reset_grad="attached",
        surrogate={"name": "sigmoid", "slope": 2.0})  # fmt: skip
    params, inputs, _ = gradcheck.random_problem(cfg, 150, 1, seed, LossConfig())
    lc = LyapunovConfig(k=1, ons=ons, warmup=5, transient=3, seed=seed)
    res = lyapunov.spectrum(cfg, params, inputs, lc)
    direct = lyapunov.direct_lambda1(cfg, params, inputs, lc)
    assert abs(res.exponents[0] - direct) <= max(res.error[0], 1e-6)


@given(configs(), seeds)
def test_k1_exponent_does_not_depend_on_ons(cfg, seed):
    """With k = 1 the QR is a normalization: the telescoping product is the same for any ons."""
    params, inputs, _ = gradcheck.random_problem(cfg, 24, 1, seed, LossConfig())
    lam = []
    for ons in (1, 2, 3, 4):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lam.append(lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=1, ons=ons)).exponents[0])
        # a product that underflows (flagged by a warning) or vanishes has no precise log
        assume(not caught)
    assume(np.all(np.isfinite(lam)))
    np.testing.assert_allclose(lam, lam[0], rtol=1e-10, atol=1e-12)


def test_subnormal_products_are_flagged():
    """A rate network resting at x = 0 is the linear map W_rec; 1e-78 per step underflows in 4."""
    cfg = network_config(cell="rate", layers=(2,), n_in=1, n_out=1)
    params = network.init_params(cfg, 0)
    params["layer1/W_rec"][:] = [[0.0, 1e-78], [1e-78, 0.0]]
    with pytest.warns(lyapunov.PrecisionWarning, match="smaller lyapunov.ons"):
        lyapunov.spectrum(cfg, params, np.zeros((12, 1, 1)), LyapunovConfig(k=1, ons=4))


def test_schedule_of_qr_steps():
    steps = lyapunov.qr_steps(10, LyapunovConfig(ons=3, warmup=2, transient=1))
    assert [t for t, q, _ in steps if q] == [4, 7]  # t + 1 - warmup ≡ 0 mod 3
    assert [t for t, _, c in steps if c] == [7]  # the first QR step is transient


def test_zero_diagonal_reports_minus_inf_and_flossing_refuses():
    cfg = network_config(layers=(3,), n_in=1, n_out=1, reset="zero", reset_grad="detached")
    params = network.init_params(cfg)
    params["layer1/b"][:] = 5.0  # every neuron spikes every other step: zero-reset rows in D_t
    inputs = np.zeros((20, 1, 1))
    lc = LyapunovConfig(k=6)
    with pytest.warns(lyapunov.DegenerateSpectrumWarning, match="R_ii = 0"):
        res = lyapunov.spectrum(cfg, params, inputs, lc)
    assert np.isneginf(res.exponents).any() and not np.isnan(res.exponents).any()
    with pytest.raises(flossing.FlossingError, match="smaller lyapunov.k"):
        flossing.value_and_grad(cfg, params, inputs, lc)


def test_summary_statistics():
    assert lyapunov.kaplan_yorke([0.5, -0.2, -1.0]) == pytest.approx(2 + 0.3 / 1.0)
    assert lyapunov.kaplan_yorke([-0.1, -0.2]) == 0.0
    assert lyapunov.participation_ratio(np.ones(4) / 2) == pytest.approx(4.0)
    cfg = network_config(layers=(4,), n_in=1, n_out=1)
    params, inputs, _ = gradcheck.random_problem(cfg, 60, 1, 0, LossConfig())
    res = lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=4))
    assert res.local.shape == (60, 4) and np.all(np.isfinite(res.error))
    np.testing.assert_allclose(res.exponents_per_ms, res.exponents / cfg.dt)
    assert res.entropy_rate == pytest.approx(np.sum(np.clip(res.exponents, 0, None)))


def test_bad_lyapunov_settings():
    cfg = network_config(layers=(3,), n_in=1, n_out=1)
    params = network.init_params(cfg)
    inputs = np.zeros((10, 1, 1))
    with pytest.raises(ValueError, match="lyapunov.k"):
        lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=7))
    with pytest.raises(ValueError, match="transient"):
        lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=1, ons=5, transient=2))
    with pytest.raises(ValueError, match="Q0"):
        lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=2), Q0=np.ones((6, 2)))
