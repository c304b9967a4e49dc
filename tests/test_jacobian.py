"""docs/model.md §4, §8: structured products vs the dense Jacobian vs finite differences."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from refimpl.check import gradcheck
from refimpl.model import network
from refimpl.model.config import LossConfig, network_config

from conftest import configs, kink_margin

seeds = st.integers(0, 2**16)


@given(configs(), seeds, st.booleans())
def test_structured_products_match_dense(cfg, seed, smooth):
    cfg = replace(cfg, smooth=smooth)
    params, inputs, _ = gradcheck.random_problem(cfg, 10, 2, seed, LossConfig())
    rows = gradcheck.check_jacobians(cfg, params, inputs, [0, 4, 9], b=1, seed=seed)
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


@given(configs(reset_grads=("attached",)), seeds)
def test_dense_jacobian_matches_finite_differences(cfg, seed):
    cfg = replace(cfg, smooth=True)
    params, inputs, _ = gradcheck.random_problem(cfg, 8, 1, seed, LossConfig())
    assume(kink_margin(cfg, params, inputs) > 1e-2)
    rows = gradcheck.check_jacobians(cfg, params, inputs, [0, 3, 7], seed=seed, fd=True)
    assert all(r.passed for r in rows), gradcheck.format_table(rows)


def test_state_order_of_the_dense_jacobian():
    """x = [V1, I1, V2, I2]: ∂I1'/∂I1 = diag(α) sits in the second block of the diagonal."""
    cfg = network_config(layers=(3, 2), n_in=1, n_out=1)
    params, inputs, _ = gradcheck.random_problem(cfg, 5, 1, 0, LossConfig())
    D = network.dense_jacobian(cfg, params, network.simulate(cfg, params, inputs), 2)
    assert D.shape == (10, 10)
    np.testing.assert_allclose(np.diag(D[3:6, 3:6]), np.exp(-1 / 5))
    np.testing.assert_array_equal(D[0:6, 6:10], 0.0)  # no feedback from layer 2 to layer 1


@pytest.mark.parametrize(
    "fault,fd", [("dense_flip_block", False), ("dense_flip_block", True), ("structured_drop_reset_term", False)]
)
def test_checker_catches_a_wrong_jacobian(fault, fd):
    cfg = network_config(layers=(4,), n_in=2, n_out=1, reset_grad="attached", smooth=fd,
        surrogate={"name": "sigmoid", "slope": 2.0})  # fmt: skip
    params, inputs, _ = gradcheck.random_problem(cfg, 8, 1, 2, LossConfig())
    assert all(r.passed for r in gradcheck.check_jacobians(cfg, params, inputs, [2, 5], fd=fd))
    with gradcheck.inject(fault):
        rows = gradcheck.check_jacobians(cfg, params, inputs, [2, 5], fd=fd)
    assert not all(r.passed for r in rows)
