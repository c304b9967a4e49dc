"""refimpl.dynamics.batched: several trajectories on several threads give what one thread gives."""

import numpy as np
import pytest
from dataclasses import replace

from refimpl.check import gradcheck
from refimpl.dynamics import batched, flossing, lyapunov
from refimpl.model.config import FlossConfig, LossConfig, LyapunovConfig, network_config


def _problem(layers=(12,)):
    cfg = network_config(cell="clif", layers=layers, n_in=3, n_out=1)
    params, inputs, _ = gradcheck.random_problem(cfg, 60, 4, 0, LossConfig())
    return cfg, params, inputs, LyapunovConfig(k=4, warmup=5, transient=2)


@pytest.mark.parametrize("layers", [(12,), (6, 5)])
def test_spectra_are_the_per_trajectory_spectra_for_any_workers(layers):
    cfg, params, inputs, lcfg = _problem(layers)
    one = batched.spectra(cfg, params, inputs, lcfg, workers=1)
    two = batched.spectra(cfg, params, inputs, lcfg, workers=2)
    assert len(one) == inputs.shape[1]
    for b, (r1, r2) in enumerate(zip(one, two)):
        ref = lyapunov.spectrum(cfg, params, inputs, replace(lcfg, batch_index=b))
        np.testing.assert_array_equal(r1.exponents, ref.exponents)
        np.testing.assert_array_equal(r2.exponents, ref.exponents)
    assert not np.allclose(one[0].exponents, one[1].exponents)  # the trajectories differ


def test_floss_mean_is_the_mean_of_the_per_sequence_losses_and_gradients():
    cfg, params, inputs, lcfg = _problem()
    fcfg = FlossConfig()
    mean2 = batched.floss_mean(cfg, params, inputs, lcfg, fcfg, workers=2)
    mean1 = batched.floss_mean(cfg, params, inputs, lcfg, fcfg, workers=1)
    each = [flossing.value_and_grad(cfg, params, inputs, replace(lcfg, batch_index=b), fcfg) for b in range(4)]
    assert mean2.loss == mean1.loss == pytest.approx(np.mean([r.loss for r in each]), rel=1e-14)
    for key in each[0].grads:
        np.testing.assert_array_equal(mean2.grads[key], mean1.grads[key])
        np.testing.assert_allclose(mean1.grads[key], np.mean([r.grads[key] for r in each], axis=0), rtol=1e-13,
            atol=1e-15)  # fmt: skip


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_workers_is_refused_before_any_work(workers):
    cfg, params, inputs, lcfg = _problem()
    with pytest.raises(ValueError, match="workers"):
        batched.spectra(cfg, params, inputs, lcfg, workers=workers)


def test_bad_settings_are_refused_before_any_trajectory():
    cfg, params, inputs, lcfg = _problem()
    with pytest.raises(ValueError, match="lyapunov.k"):
        batched.floss_mean(cfg, params, inputs, replace(lcfg, k=999), workers=2)


@pytest.mark.parametrize("loss", ["bce_per_step", "mse_per_step", "ce_mean", "ce_last"])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_bptt_split_over_threads_is_bptt(loss, workers):
    from refimpl.grad import adjoint

    cfg = network_config(cell="clif", layers=(7, 5), n_in=3, n_out=3)
    lc = LossConfig(loss, t0=2)
    params, inputs, targets = gradcheck.random_problem(cfg, 30, 5, 1, lc)
    value, grads, _ = adjoint.value_and_grad(cfg, params, inputs, targets, lc)
    v2, g2 = adjoint.value_and_grad_split(cfg, params, inputs, targets, lc, workers=workers)
    assert v2 == pytest.approx(value, rel=1e-13)
    assert set(g2) == set(grads)
    for key in grads:
        np.testing.assert_allclose(g2[key], grads[key], rtol=1e-11, atol=1e-14 * max(1, np.abs(grads[key]).max()))


def test_bptt_split_keeps_per_trajectory_initial_states_apart():
    from refimpl.grad import adjoint

    cfg = network_config(cell="clif", layers=(6,), n_in=3, n_out=1)
    lc = LossConfig("bce_per_step")
    params, inputs, targets = gradcheck.random_problem(cfg, 20, 4, 2, lc)
    rng = np.random.default_rng(0)
    params = {**params, "layer1/V0": rng.random((4, 6)), "layer1/I0": rng.random((4, 6))}
    value, grads, _ = adjoint.value_and_grad(cfg, params, inputs, targets, lc)
    _, g2 = adjoint.value_and_grad_split(cfg, params, inputs, targets, lc, workers=2)
    assert g2["layer1/V0"].shape == (4, 6)
    np.testing.assert_allclose(g2["layer1/V0"], grads["layer1/V0"], rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(g2["layer1/I0"], grads["layer1/I0"], rtol=1e-12, atol=1e-16)
