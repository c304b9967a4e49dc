"""Exact gradients of losses of an event-driven simulation (docs/exact.md §6–7).

A loss of the exact simulation depends on the parameters through the spike times ``t_k`` and the
sampled membranes ``V(t_j)``. Every loss here returns ``∂L/∂t_k`` and ``∂L/∂V_i(t_j)`` (and the
gradients of its own readout weights), and the parameter gradient is

    dL/dp = Σ_k ∂L/∂t_k · dt_k/dp + Σ_j Σ_i ∂L/∂V_i(t_j) · dV_i(t_j)/dp

computed two ways: with the forward sensitivities of
:func:`refimpl.exact.events.simulate_with_sensitivities` (the implicit derivative of each crossing,
``dt_k/dp = -(∂V_k/∂p)/V'_k`` at ``t_k``, carried through every later event by the saltation rule), or
by the adjoint pass of :mod:`refimpl.exact.adjoint` (EventProp). Losses (the readouts of docs/model.md §1.2 in continuous time):

* :func:`first_spike_loss` — ``½ Σ_i (t_i^{first} - target_i)²`` over the top layer's neurons;
* :func:`spike_readout_loss` — a leaky readout of the top layer's spikes, ``τ_out dU/dt = -U + W_out s(t)
  + b_out`` with ``s`` a sum of unit impulses, scored by ``½ mean_j ‖U(t_j) - y_j‖²``;
* :func:`membrane_readout_loss` — the instantaneous readout of the top layer's membranes,
  ``U(t_j) = W_out V(t_j) + b_out``, scored the same way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.checks import check_choice
from refimpl.exact.adjoint import backward_kernel
from refimpl.exact.events import ExactConfig, simulate_recorded, simulate_with_sensitivities

GRAD_METHODS = ("adjoint", "forward")


class LossTerms(NamedTuple):
    """A loss of an exact simulation and its partial derivatives (shapes of the result's records)."""

    value: float
    dL_dt: np.ndarray  # (n_spikes,)
    dL_dV: np.ndarray  # (n_samples, N)
    readout_grads: dict


def _top(cfg: ExactConfig):
    off = sum(cfg.layers[:-1])
    return off, off + cfg.layers[-1]


def first_spike_loss(targets):
    """``½ Σ_i (t_i - target_i)²`` for the first spike ``t_i`` of each top-layer neuron (``targets`` in ms,
    one per top neuron). A neuron that does not fire contributes ``½ (t_end - target)²`` without a
    gradient (no spike time to move: the exact gradient is zero there)."""
    targets = np.asarray(targets, float)

    def loss(cfg, res, t_end, sample_times):
        lo, hi = _top(cfg)
        if targets.shape != (hi - lo,):
            raise ValueError(f"targets must have one entry per top-layer neuron ({hi - lo}), got {targets.shape}")
        dt = np.zeros(res.spike_times.size)
        value = 0.0
        for n, i in enumerate(range(lo, hi)):
            idx = np.nonzero(res.spike_units == i)[0]
            if idx.size:
                e = res.spike_times[idx[0]] - targets[n]
                dt[idx[0]] = e
            else:
                e = t_end - targets[n]
            value += 0.5 * e * e
        return LossTerms(value, dt, np.zeros((len(sample_times), cfg.n_neurons)), {})

    return loss


def spike_readout_loss(W_out, b_out, tau_out, targets):
    """The leaky readout of the top layer's spikes, ``U(t) = b_out + Σ_{t_k < t} W_out[:, k] e^{-(t - t_k)/τ_out}/τ_out``,
    against ``targets`` ``(n_samples, n_out)`` at the sample times: ``½ mean_j ‖U(t_j) - y_j‖²``."""
    W_out, b_out, targets = np.asarray(W_out, float), np.asarray(b_out, float), np.asarray(targets, float)

    def loss(cfg, res, t_end, sample_times):
        lo, hi = _top(cfg)
        top = (res.spike_units >= lo) & (res.spike_units < hi)
        tk, uk = res.spike_times[top], res.spike_units[top] - lo
        ts = np.asarray(sample_times, float)
        lag = ts[:, None] - tk[None, :]  # (n_samples, n_top_spikes)
        kern = np.where(lag > 0, np.exp(-np.maximum(lag, 0.0) / tau_out) / tau_out, 0.0)
        U = b_out[None, :] + kern @ W_out[:, uk].T  # (n_samples, n_out)
        err = (U - targets) / len(ts)
        value = 0.5 * float(np.sum((U - targets) * err))
        dt = np.zeros(res.spike_times.size)
        # ∂U(t_j)/∂t_k = W_out[:, k] e^{-(t_j - t_k)/τ_out} / τ_out²  (a later spike has decayed less)
        dt[top] = np.einsum("jo,ok,jk->k", err, W_out[:, uk], kern / tau_out)
        grads = {"readout/W_out": np.zeros_like(W_out), "readout/b_out": err.sum(axis=0)}
        np.add.at(grads["readout/W_out"].T, uk, (kern.T @ err))
        return LossTerms(value, dt, np.zeros((len(ts), cfg.n_neurons)), grads)

    return loss


def membrane_readout_loss(W_out, b_out, targets):
    """``U(t_j) = W_out V_top(t_j) + b_out`` against ``targets`` ``(n_samples, n_out)``: ``½ mean_j ‖U - y‖²``."""
    W_out, b_out, targets = np.asarray(W_out, float), np.asarray(b_out, float), np.asarray(targets, float)

    def loss(cfg, res, t_end, sample_times):
        lo, hi = _top(cfg)
        Vt = res.sample_V[:, lo:hi]
        U = Vt @ W_out.T + b_out
        err = (U - targets) / len(sample_times)
        dV = np.zeros((len(sample_times), cfg.n_neurons))
        dV[:, lo:hi] = err @ W_out
        grads = {"readout/W_out": err.T @ Vt, "readout/b_out": err.sum(axis=0)}
        return LossTerms(0.5 * float(np.sum((U - targets) * err)), np.zeros(res.spike_times.size), dV, grads)

    return loss


def unflatten(cfg: ExactConfig, g: np.ndarray) -> dict:
    """A gradient over the stacked ``(W_in, W, b)`` (flat, the order of
    :func:`~refimpl.exact.events.simulate_with_sensitivities`) as the layer parameters it came from."""
    N, n_in = cfg.n_neurons, cfg.n_in
    gW_in = g[: N * n_in].reshape(N, n_in)
    gW = g[N * n_in : N * n_in + N * N].reshape(N, N)
    gb = g[N * n_in + N * N :]
    off = cfg.offsets
    out = {}
    for l in range(len(cfg.layers)):
        rows = slice(off[l], off[l + 1])
        p = f"layer{l + 1}/"
        out[p + "W_in"] = gW_in[rows].copy() if l == 0 else gW[rows, off[l - 1] : off[l]].copy()
        out[p + "W_rec"] = gW[rows, rows].copy()
        out[p + "b"] = gb[rows].copy()
    return out


def value_and_grad(cfg: ExactConfig, params: dict, input_times, input_units, t_end: float, loss, *, sample_times=(),
        V0=None, I0=None, method: str = "adjoint", fault: int = 0):  # fmt: skip
    """``(L, grads, result)``: the loss of the exact simulation and its exact gradient with respect to the
    layer parameters and the loss's readout parameters, by the adjoint (EventProp) pass (``method =
    "adjoint"``, the default; also ``grads["V0"]``, ``grads["I0"]``) or by forward sensitivities
    (``"forward"``, cost ∝ the number of parameters: for checks). ``fault`` (tests only) drops a term of
    the saltation in either pass."""
    check_choice("method", method, GRAD_METHODS)
    if method == "forward":
        res, dt_dp, dV_dp = simulate_with_sensitivities(cfg, params, input_times, input_units, t_end, V0=V0, I0=I0,
            sample_times=sample_times, fault=fault)  # fmt: skip
        terms = loss(cfg, res, t_end, sample_times)
        g = terms.dL_dt @ dt_dp
        if dV_dp.size:
            g = g + np.einsum("jn,jnp->p", terms.dL_dV, dV_dp)
        grads = unflatten(cfg, g)
    else:
        res, log, (W_in, W, _) = simulate_recorded(cfg, params, input_times, input_units, t_end, V0=V0, I0=I0,
            sample_times=sample_times)  # fmt: skip
        terms = loss(cfg, res, t_end, sample_times)
        gW_in, gW, gb, lV, lI = backward_kernel(log.kind, log.idx, log.t, log.v_minus, log.v_plus, res.spike_units, W,
            cfg.n_in, np.ascontiguousarray(terms.dL_dt, float), np.ascontiguousarray(terms.dL_dV, float), float(t_end),
            float(cfg.tau_mem), float(cfg.tau_syn), int(fault))  # fmt: skip
        grads = unflatten(cfg, np.concatenate([gW_in.ravel(), gW.ravel(), gb]))
        grads["V0"], grads["I0"] = lV, lI
    grads.update(terms.readout_grads)
    return terms.value, grads, res
