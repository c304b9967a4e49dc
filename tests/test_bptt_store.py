"""What BPTT stores (docs/performance.md, "BPTT"): the lean forward pass of ``store="bptt"`` and the
listed nonzeros of spike rasters give the same numbers, bit for bit, as the pass that keeps everything."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.check import gradcheck
from refimpl.grad import adjoint
from refimpl.linalg.sparse import SPARSE_DENSITY, matmul_wt, nonzeros_by_step, outer_acc_listed
from refimpl.model import network
from refimpl.model.config import LossConfig, network_config

from conftest import configs, losses as loss_strategy

seeds = st.integers(0, 2**16)


@settings(max_examples=40)
@given(configs(), loss_strategy, seeds, st.booleans())
def test_lean_store_gives_the_same_gradient_bit_for_bit(cfg, loss, seed, smooth):
    if cfg.cell == "clif" and smooth:
        from dataclasses import replace

        cfg = replace(cfg, smooth=True)
    params, inputs, targets = gradcheck.random_problem(cfg, 12, 3, seed, loss)
    inputs = inputs * (np.random.default_rng(seed).random(inputs.shape) < 0.2)  # spike-like: mostly zeros
    v_all, g_all, t_all = adjoint.value_and_grad(cfg, params, inputs, targets, loss, store="all")
    v, g, t = adjoint.value_and_grad(cfg, params, inputs, targets, loss)
    assert v == v_all
    assert g.keys() == g_all.keys()
    for k in g:
        np.testing.assert_array_equal(g[k], g_all[k], err_msg=k)
    np.testing.assert_array_equal(t.y, t_all.y)
    for l in range(cfg.n_layers):
        np.testing.assert_array_equal(t.V[l], t_all.V[l])
        np.testing.assert_array_equal(t.S[l], t_all.S[l])
        np.testing.assert_array_equal(t.lin[l].s, t_all.lin[l].s)
        assert t.I[l] is None and t.lin[l].s2 is None and t.lin[l].m is None and t.lin[l].rho is None
        attached = cfg.cell == "clif" and cfg.reset_grad == "attached"
        if attached:
            np.testing.assert_array_equal(t.lin[l].c, t_all.lin[l].c)
        else:
            assert t.lin[l].c is None and not np.any(t_all.lin[l].c)  # c = 0 unless attached


@given(configs(max_layers=2), seeds)
def test_select_of_a_lean_trajectory_finds_the_nonzeros_again(cfg, seed):
    loss = LossConfig()
    params, inputs, targets = gradcheck.random_problem(cfg, 10, 3, seed, loss)
    traj = network.simulate(cfg, params, inputs, store="bptt")
    one = network.select(traj, 1)
    assert one.Z_nz is None
    for l in range(cfg.n_layers):
        (zp, zi), (sp, si) = one.nonzeros(l)
        np.testing.assert_array_equal(zi, np.flatnonzero(one.Z[l][: len(zp) - 1]) % (one.Z[l][0].size))
        assert sp[-1] == np.count_nonzero(one.S[l])


@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 9), st.floats(0.0, 1.0), seeds)
def test_listed_products_equal_the_dense_ones(T, B, n, density, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, B, n)) * (rng.random((T, B, n)) < density)
    ptr, idx = nonzeros_by_step(X)
    assert ptr[0] == 0 and ptr[-1] == len(idx) == np.count_nonzero(X)
    for t in range(T):
        np.testing.assert_array_equal(idx[ptr[t] : ptr[t + 1]], np.flatnonzero(X[t]))
    N = 4
    W = rng.standard_normal((N, n))
    J = rng.standard_normal((B, N))
    for t in range(T):
        out = rng.standard_normal((B, N))
        want = X[t] @ W.T + 0.5 * out
        matmul_wt(X[t], ptr[t], ptr[t + 1], idx, W, np.ascontiguousarray(W.T), 0.5, out)
        np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-13)
        GT = rng.standard_normal((n, N))
        want = GT + X[t].T @ J
        outer_acc_listed(J, X[t], ptr[t], ptr[t + 1], idx, GT)
        np.testing.assert_allclose(GT, want, rtol=1e-13, atol=1e-13)
    # the dense path is taken above the density threshold, the listed one at or below it
    assert 0.0 < SPARSE_DENSITY < 1.0


def test_store_must_be_known():
    cfg = network_config(layers=(3,), n_in=2, n_out=1)
    loss = LossConfig()
    params, inputs, targets = gradcheck.random_problem(cfg, 5, 1, 0, loss)
    with pytest.raises(ValueError, match="store must be one of"):
        adjoint.value_and_grad(cfg, params, inputs, targets, loss, store="some")
    with pytest.raises(ValueError, match="store must be one of"):
        network.simulate(cfg, params, inputs, store="")
