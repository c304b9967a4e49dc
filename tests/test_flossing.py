"""docs/model.md §7, §8: the exact flossing gradient, reverse vs forward vs finite differences."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from refimpl.dynamics import flossing, lyapunov
from refimpl.check import gradcheck
from refimpl.model import network
from refimpl.model.config import FlossConfig, LossConfig, LyapunovConfig, network_config

from conftest import SMOOTH_SURROGATES, configs, kink_margin

seeds = st.integers(0, 2**16)


def _settings(cfg, draw_k, ons, warmup, transient, seed):
    return LyapunovConfig(k=min(draw_k, cfg.state_size), ons=ons, warmup=warmup, transient=transient, seed=seed)


def _well_conditioned(cfg, params, inputs, lc):
    """The fwd/rev and FD tolerances presume cond(R) <= 1e4 at every QR step: the
    derivatives pass through R⁻¹ and lose log10(cond) digits (docs/testing.md)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assume(lyapunov.spectrum(cfg, params, inputs, lc).qr_condition < 1e4)


def _all_params(cfg):
    return FlossConfig(params=("W_in", "W_rec", "b") + network.initial_state_names(cfg), target=-0.05)


@given(configs(), seeds, st.integers(1, 4), st.integers(1, 3), st.integers(0, 3), st.integers(0, 2))
def test_reverse_equals_forward_mode(cfg, seed, k, ons, warmup, transient):
    params, inputs, _ = gradcheck.random_problem(cfg, 16, 1, seed, LossConfig())
    lc = _settings(cfg, k, ons, warmup, transient, seed)
    _well_conditioned(cfg, params, inputs, lc)
    try:
        rows = gradcheck.check_flossing(cfg, params, inputs, lc, _all_params(cfg), "fwd_rev", seed)
    except flossing.FlossingError:
        assume(False)  # a vanished R_ii: flossing correctly refuses (tested elsewhere)
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


@given(configs(reset_grads=("attached",), surrogates=SMOOTH_SURROGATES), seeds, st.integers(1, 3), st.integers(1, 2))
def test_reverse_equals_finite_differences_in_smooth_mode(cfg, seed, k, ons):
    cfg = replace(cfg, smooth=True)
    params, inputs, _ = gradcheck.random_problem(cfg, 14, 1, seed, LossConfig())
    lc = _settings(cfg, k, ons, 2, 1, seed)
    _well_conditioned(cfg, params, inputs, lc)
    rows = gradcheck.check_flossing(cfg, params, inputs, lc, _all_params(cfg), "fd", seed)
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "triangle"])
def test_kinked_surrogates_against_finite_differences(surrogate):
    cfg = network_config(layers=(4, 3), n_in=2, n_out=1, smooth=True, reset_grad="attached",
        surrogate={"name": surrogate, "slope": 1.0})  # fmt: skip
    params, inputs, _ = gradcheck.random_problem(cfg, 14, 1, 4, LossConfig())
    assert kink_margin(cfg, params, inputs) > 1e-2
    rows = gradcheck.check_flossing(cfg, params, inputs, LyapunovConfig(k=3), _all_params(cfg), "fd")
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


@given(seeds, st.integers(1, 7))
def test_checkpointing_gives_the_same_gradient(seed, every):
    cfg = network_config(layers=(4, 3), n_in=2, n_out=1, reset_grad="attached")
    params, inputs, _ = gradcheck.random_problem(cfg, 20, 1, seed, LossConfig())
    lc = LyapunovConfig(k=3, ons=2, warmup=1, transient=1)
    a = flossing.value_and_grad(cfg, params, inputs, lc)
    b = flossing.value_and_grad(cfg, params, inputs, lc, checkpoint_every=every)
    assert a.loss == b.loss
    for key in a.grads:
        np.testing.assert_allclose(a.grads[key], b.grads[key], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fault", ["flossing_drop_sigma2", "qr_backward_wrong_copyltu"])
@pytest.mark.parametrize("mode", ["fwd_rev", "fd"])
def test_checker_catches_a_wrong_derivative(fault, mode):
    cfg = network_config(layers=(5,), n_in=2, n_out=1, reset_grad="attached", smooth=(mode == "fd"),
        surrogate={"name": "sigmoid", "slope": 2.0})  # fmt: skip
    params, inputs, _ = gradcheck.random_problem(cfg, 14, 1, 1, LossConfig())
    lc, fc = LyapunovConfig(k=3), _all_params(cfg)
    assert all(r.passed for r in gradcheck.check_flossing(cfg, params, inputs, lc, fc, mode))
    with gradcheck.inject(fault):
        rows = gradcheck.check_flossing(cfg, params, inputs, lc, fc, mode)
    assert not all(r.passed for r in rows)


def test_only_flossed_parameters_are_returned():
    cfg = network_config(layers=(4,), n_in=2, n_out=1)
    params, inputs, _ = gradcheck.random_problem(cfg, 10, 1, 0, LossConfig())
    res = flossing.value_and_grad(cfg, params, inputs, LyapunovConfig(k=2), FlossConfig(params=("W_rec",)))
    assert sorted(res.grads) == ["layer1/W_rec"]
    with pytest.raises(ValueError, match="flossing.params"):
        flossing.value_and_grad(cfg, params, inputs, LyapunovConfig(k=2), FlossConfig(params=("x0",)))
    with pytest.raises(ValueError, match="checkpoint_every"):
        flossing.value_and_grad(cfg, params, inputs, LyapunovConfig(k=2), checkpoint_every=0)
