"""A time-stepped reference for the exact simulation: the library's discrete cLIF model
(docs/model.md §1.1, dialect ``engelken``: ``I_{t+1} = α I_t + W_in z_t + W_rec S_t + b_d``,
``V_{t+1} = (1 - S_t)(β V_t + (1 - β) I_{t+1})``) at a step ``dt``, with the continuous model's
parameters mapped so that the two agree as ``dt → 0`` (docs/exact.md §4):

* the input spikes of ``[t dt, (t+1) dt)`` are counted into ``z_t``;
* the bias of the current, ``b`` (``τ_s dI/dt = -I + b``), becomes ``b_d = (1 - α) b`` per step, so that
  both currents relax to ``b``;
* a discrete spike ``S_t = 1`` is read as the time ``t dt`` (its crossing lies in ``((t-1) dt, t dt]``).

Its spike times carry errors of order ``dt`` (the crossing is rounded up to the grid, every jump arrives
up to one step late, and the discrete reset holds the membrane at zero for one step).
"""

from __future__ import annotations

import math

import numpy as np

from refimpl.checks import check_float
from refimpl.exact.events import ExactConfig, check_events


def bin_events(input_times, input_units, n_in: int, T: int, dt: float) -> np.ndarray:
    """The input spikes of ``[t dt, (t+1) dt)`` counted into ``z_t`` (``(T, 1, n_in)``)."""
    in_t, in_u = check_events(input_times, input_units, n_in)
    z = np.zeros((T, 1, n_in))
    steps = np.floor(in_t / dt).astype(np.int64)
    keep = steps < T
    np.add.at(z, (steps[keep], 0, in_u[keep]), 1.0)
    return z


def stepped_network(cfg: ExactConfig, params: dict, dt: float, *, n_out: int = 1, readout=None, surrogate=None,
        reset_grad: str = "detached"):  # fmt: skip
    """The discrete model (``NetworkConfig``, parameters) that approximates ``cfg`` at step ``dt``: dialect
    ``engelken``, the same weights, the bias ``(1 - α) b`` per step, a zero initial state; ``readout``,
    ``surrogate`` (dicts of :func:`refimpl.model.config.network_config`) and ``reset_grad`` choose what
    the surrogate gradient of the discrete model sees. The readout weights are zero (set them)."""
    from refimpl.model.config import network_config

    if cfg.t_ref != 0.0:
        raise ValueError(f"the time-stepped reference has no refractoriness; t_ref must be 0, got {cfg.t_ref}")
    kw = {} if readout is None else {"readout": readout}
    if surrogate is not None:
        kw["surrogate"] = surrogate
    net = network_config("engelken", layers=cfg.layers, n_in=cfg.n_in, n_out=n_out, dt=dt, tau_mem=cfg.tau_mem,
        tau_syn=cfg.tau_syn, theta=cfg.theta, reset="zero" if cfg.reset == "zero" else "subtract",
        reset_grad=reset_grad, **kw)  # fmt: skip
    alpha = math.exp(-dt / cfg.tau_syn)
    p = {}
    for l, n in enumerate(cfg.layers):
        k = f"layer{l + 1}/"
        p[k + "W_in"] = np.asarray(params[k + "W_in"], float)
        p[k + "W_rec"] = np.asarray(params[k + "W_rec"], float)
        p[k + "b"] = (1.0 - alpha) * np.asarray(params[k + "b"], float)
        p[k + "V0"], p[k + "I0"] = np.zeros(n), np.zeros(n)  # the exact simulation's default start
    p["readout/W_out"] = np.zeros((n_out, cfg.layers[-1]))
    p["readout/b_out"] = np.zeros(n_out)
    return net, p


def stepped(cfg: ExactConfig, params: dict, input_times, input_units, t_end: float, dt: float):
    """Spike times and units of the discrete model at step ``dt`` (ms), ordered by time then unit as the
    exact simulation orders them; units count over all layers. Zero reset and no refractoriness only."""
    from refimpl.model.network import simulate as simulate_stepped

    dt = check_float("dt", dt, lo=0.0, lo_open=True)
    t_end = check_float("t_end", t_end, lo=0.0)
    net, p = stepped_network(cfg, params, dt)
    T = int(math.ceil(t_end / dt))
    traj = simulate_stepped(net, p, bin_events(input_times, input_units, cfg.n_in, T, dt))
    times, units, off = [], [], 0
    for l, n in enumerate(cfg.layers):
        S = traj.S[l][:, 0]  # (T+1, n): S_0 … S_T
        t_idx, i_idx = np.nonzero(S > 0.5)
        times.append(t_idx * dt)
        units.append(i_idx + off)
        off += n
    t_all, u_all = np.concatenate(times), np.concatenate(units)
    order = np.lexsort((u_all, t_all))
    return t_all[order], u_all[order].astype(np.int64)
