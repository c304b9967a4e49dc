"""docs/model.md §5, §8: the surrogate gradient by BPTT, checked two independent ways."""

import numpy as np
import pytest
from dataclasses import replace
from hypothesis import assume, given, strategies as st

from refimpl.grad import adjoint
from refimpl.check import gradcheck
from refimpl.model import losses, network
from refimpl.model.config import LossConfig, network_config

from conftest import configs, kink_margin, losses as loss_strategy

seeds = st.integers(0, 2**16)


@given(configs(), loss_strategy, seeds)
def test_reverse_equals_forward_mode(cfg, loss, seed):
    params, inputs, targets = gradcheck.random_problem(cfg, 14, 2, seed, loss)
    rows = gradcheck.check_bptt(cfg, params, inputs, targets, loss, "fwd_rev", seed)
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


@given(configs(reset_grads=("attached",)), loss_strategy, seeds)
def test_reverse_equals_finite_differences_in_smooth_mode(cfg, loss, seed):
    cfg = replace(cfg, smooth=True)
    params, inputs, targets = gradcheck.random_problem(cfg, 12, 2, seed, loss)
    assume(kink_margin(cfg, params, inputs) > 1e-2)
    value, grads, _ = adjoint.value_and_grad(cfg, params, inputs, targets, loss)
    # finite differences resolve nothing below the rounding of the loss (a saturated loss)
    assume(max(np.max(np.abs(g)) for g in grads.values()) > 1e-7 * (1.0 + abs(value)))
    rows = gradcheck.check_bptt(cfg, params, inputs, targets, loss, "fd", seed)
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


@given(st.sampled_from(["bce_per_step", "mse_per_step", "ce_max", "ce_mean", "ce_last"]), seeds)
def test_loss_gradient_against_finite_differences(name, seed):
    rng = np.random.default_rng(seed)
    loss = LossConfig(name, t0=1)
    y = rng.standard_normal((6, 3, 3))
    targets = rng.integers(0, 3, 3) if name.startswith("ce_") else (rng.random(y.shape) < 0.5).astype(float)
    _, ybar = losses.loss_and_grad(loss, y, targets)
    d = rng.standard_normal(y.shape)
    fd = gradcheck.richardson(lambda h: losses.loss_and_grad(loss, y + h * d, targets)[0], 1e-4)
    assert abs(fd - np.sum(ybar * d)) <= 1e-8 * max(1.0, abs(fd))


def test_batch_elements_are_independent():
    cfg = network_config(layers=(5, 4), n_in=2, n_out=2, reset_grad="attached")
    loss = LossConfig()
    params, inputs, targets = gradcheck.random_problem(cfg, 15, 3, 1, loss)
    full = network.simulate(cfg, params, inputs)
    one = network.simulate(cfg, params, inputs[:, 1:2])
    # equal up to rounding: BLAS sums a batch of 1 and a batch of 3 in different orders
    for a, b in zip(full.V + full.I + full.S, one.V + one.I + one.S):
        np.testing.assert_allclose(a[:, 1:2], b, rtol=0, atol=1e-13)
    np.testing.assert_allclose(full.y[:, 1:2], one.y, rtol=0, atol=1e-13)
    # the batch gradient is the mean of the per-element gradients (per-element losses are means)
    _, g_full, _ = adjoint.value_and_grad(cfg, params, inputs, targets, loss)
    parts = [adjoint.value_and_grad(cfg, params, inputs[:, b : b + 1], targets[:, b : b + 1], loss)[1] for b in range(3)]
    for k in g_full:
        np.testing.assert_allclose(g_full[k], sum(p[k] for p in parts) / 3, rtol=1e-12, atol=1e-15)


def test_bit_identical_for_the_same_seed():
    cfg = network_config(layers=(6,), n_in=2, n_out=2)
    loss = LossConfig()
    a = adjoint.value_and_grad(cfg, *gradcheck.random_problem(cfg, 20, 2, 7, loss), loss)
    b = adjoint.value_and_grad(cfg, *gradcheck.random_problem(cfg, 20, 2, 7, loss), loss)
    assert a[0] == b[0]
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k])


@pytest.mark.parametrize("fault", ["bptt_drop_reset_term", "bptt_flip_W_rec", "bptt_rho_from_S_ignored"])
@pytest.mark.parametrize("mode", ["fwd_rev", "fd"])
def test_checker_catches_a_wrong_derivative(fault, mode):
    cfg = network_config(layers=(5,), n_in=2, n_out=2, reset_grad="attached", smooth=(mode == "fd"),
        surrogate={"name": "sigmoid", "slope": 2.0})  # fmt: skip
    loss = LossConfig()
    problem = gradcheck.random_problem(cfg, 15, 2, 3, loss)
    assert all(r.passed for r in gradcheck.check_bptt(cfg, *problem, loss, mode))
    with gradcheck.inject(fault):
        rows = gradcheck.check_bptt(cfg, *problem, loss, mode)
    assert not all(r.passed for r in rows)


def test_uncoupled_cell_matches_closed_form():
    """One clif neuron, W_rec = 0, reset none: V_t is a double-exponential filter of the input."""
    cfg = network_config(layers=(1,), n_in=1, n_out=1, reset="none")
    p = network.init_params(cfg)
    p["layer1/W_in"][:] = 1.0
    u = np.zeros((30, 1, 1))
    u[0] = 1.0
    traj = network.simulate(cfg, p, u)
    a, b = np.exp(-1 / 5), np.exp(-1 / 10)
    I_expect = a ** np.arange(30)  # I_{t+1} = a^t
    V = np.zeros(31)
    for t in range(30):
        V[t + 1] = b * V[t] + (1 - b) * I_expect[t]
    np.testing.assert_allclose(traj.I[0][1:, 0, 0], I_expect, rtol=1e-14)
    np.testing.assert_allclose(traj.V[0][:, 0, 0], V, rtol=1e-14)
