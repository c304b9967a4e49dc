"""The surrogate gradient of the time-stepped model of an exact network, and how it compares with the
exact gradient (docs/exact.md §9).

For a continuous-time network, input spikes and a membrane readout scored at sample times, the exact
gradient is :func:`refimpl.exact.gradients.value_and_grad`; the surrogate gradient is BPTT
(docs/model.md §5) through the discrete model of the same network at step ``dt``
(:func:`refimpl.exact.reference.stepped_network`), with the output ``y_t = W_out V_{t+1}`` scored at the
steps that end at the sample times. Both are returned per parameter block of layer 1 and of the
readout-free network (``W_in``, ``W_rec``, ``b``; the bias gradient of the discrete model is mapped back
through ``b_d = (1 - α) b``).
"""

from __future__ import annotations

import math

import numpy as np

from refimpl.exact.events import ExactConfig
from refimpl.exact.gradients import membrane_readout_loss, value_and_grad
from refimpl.exact.reference import bin_events, stepped_network

BLOCKS = ("W_in", "W_rec", "b")


def exact_gradient(cfg: ExactConfig, params, input_times, input_units, t_end, W_out, sample_times, targets):
    """``(L, {block: gradient}, result)`` of ``½ mean_j ‖W_out V_top(t_j) - y_j‖²`` for a one-layer network."""
    loss = membrane_readout_loss(W_out, np.zeros(W_out.shape[0]), targets)
    L, g, res = value_and_grad(cfg, params, input_times, input_units, t_end, loss, sample_times=sample_times)
    return L, {k: g["layer1/" + k] for k in BLOCKS}, res


def surrogate_gradient(cfg: ExactConfig, params, input_times, input_units, t_end, W_out, sample_times, targets, dt,
        surrogate=("fast_sigmoid", 10.0), reset_grad: str = "detached"):  # fmt: skip
    """``(L, {block: gradient})``: the same loss and its surrogate gradient through the discrete model at
    step ``dt`` (sample times must be multiples of ``dt``)."""
    from refimpl.grad.adjoint import backward
    from refimpl.model.network import simulate

    sample_times = np.asarray(sample_times, float)
    steps = np.rint(sample_times / dt).astype(int) - 1  # y_t reads V_{t+1}, the membrane at (t+1) dt = t_j
    if np.any(np.abs((steps + 1) * dt - sample_times) > 1e-9 * max(1.0, float(sample_times.max()))) or steps.min() < 0:
        raise ValueError(f"sample_times must be positive multiples of dt = {dt}")
    n_out = W_out.shape[0]
    net, p = stepped_network(cfg, params, dt, n_out=n_out, readout={"source": "membrane", "tau_out": 0.0},
        surrogate={"name": surrogate[0], "slope": surrogate[1]}, reset_grad=reset_grad)  # fmt: skip
    p["readout/W_out"] = np.asarray(W_out, float)
    n_steps = int(round(t_end / dt))
    traj = simulate(net, p, bin_events(input_times, input_units, cfg.n_in, n_steps, dt))
    U = traj.y[steps, 0]
    err = (U - targets) / sample_times.size
    ybar = np.zeros_like(traj.y)
    ybar[steps, 0] = err
    g = backward(net, p, traj, ybar)
    alpha = math.exp(-dt / cfg.tau_syn)
    out = {"W_in": g["layer1/W_in"], "W_rec": g["layer1/W_rec"], "b": (1.0 - alpha) * g["layer1/b"]}
    return 0.5 * float(np.sum((U - targets) * err)), out


def compare_blocks(g_sg: dict, g_ex: dict) -> dict:
    """Per block: cosine similarity, norm ratio ``‖g_sg‖/‖g_exact‖`` and the fraction of agreeing signs over
    the entries with ``|g_exact| > 1e-3 max|g_exact|``; NaN (and an infinite ratio) for a block without an
    exact gradient or with an overflowed surrogate one."""
    out = {}
    for k in BLOCKS:
        a, e = np.ravel(g_sg[k]), np.ravel(g_ex[k])
        if not np.any(e) or not np.all(np.isfinite(a)):
            out[k] = {"cos": math.nan, "norm_ratio": math.inf if np.any(e) else math.nan, "sign": math.nan}
            continue
        with np.errstate(over="ignore"):
            na, ne = float(np.linalg.norm(a)), float(np.linalg.norm(e))
        big = np.abs(e) > 1e-3 * np.abs(e).max()
        cos = float(a @ e / (na * ne)) if math.isfinite(na) and na > 0 else math.nan
        out[k] = {"cos": cos, "norm_ratio": na / ne, "sign": float(np.mean(np.sign(a[big]) == np.sign(e[big])))}
    return out
