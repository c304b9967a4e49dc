"""Exact BPTT under the surrogate rule: the reverse-mode gradient of the loss (docs/model.md §5).

The adjoint runs backward through time, one layer at a time from the top:
layer ``l`` receives the adjoint of its spikes from the readout (top layer)
or from the layer above (``z̄^{l+1}_t`` is the adjoint of ``S^l_t``), and
hands ``z̄^l`` down. Within a layer, each step is :func:`cell.vjp_step`
followed by the surrogate rule in reverse, ``V̄_t += σ'(V_t - θ) ⊙ S̄_t``
(see docs/derivations.md for the derivation).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.model import cell, readout
from refimpl.linalg.sparse import outer_acc_t
from refimpl.model.config import LossConfig, NetworkConfig
from refimpl.model.losses import check_targets, loss_and_grad
from refimpl.model.network import (check_inputs, check_params, initial_state_keys, initial_state_names, layer_params,
    layers_of, simulate)  # fmt: skip
from refimpl.threads import check_workers, map_threads

_E2 = np.zeros((0, 0))


@njit(cache=True, nogil=True)
def layer_backward(s, rho, c, alpha, beta, g, syn_old, W_in, W_rec, z, S, ext_S, ext_V, need_zbar):
    """Reverse time loop of one layer (``K = 1``, ``B`` trajectories).

    ``ext_S, ext_V (T+1, B, N)``: adjoints arriving at ``S_t`` and ``V_t`` from
    outside the layer (readout, layer above). Returns ``V̄_0, Ī_0 (B, N)``,
    ``∂L/∂W_in, ∂L/∂W_rec, ∂L/∂b`` and ``z̄ (T, B, n_in)`` (if ``need_zbar``).

    Each step is :func:`cell.vjp_step` (``K = 1``) followed by
    :func:`cell.spike_to_membrane`, written out here so that the weight
    gradients ``Σ_t J_t z_tᵀ`` and ``Σ_t J_t S_tᵀ`` skip the zeros of spike
    inputs (:func:`refimpl.linalg.sparse.outer_acc_t`) and the products with ``W_rec`` and
    ``W_in`` go to BLAS on preallocated buffers.
    """
    T1, B, N = S.shape
    T = T1 - 1
    n_in = W_in.shape[1]
    gW_inT = np.zeros((n_in, N))
    gW_recT = np.zeros((N, N))
    gb = np.zeros(N)
    zbar = np.zeros((T, B, n_in)) if need_zbar else np.zeros((0, B, n_in))
    Vbar_next = ext_V[T].copy()
    Sbar = ext_S[T].copy()
    cell.spike_to_membrane(1, s[T], Sbar, Vbar_next)
    Ibar_next = np.zeros((B, N))
    Vbar = np.empty((B, N))
    Ibar = np.empty((B, N))
    J = np.empty((B, N))  # adjoint of I_{t+1}
    for t in range(T - 1, -1, -1):
        for bb in range(B):
            for i in range(N):
                vb, Ibar[bb, i], Jb = cell.adjoint_element(Vbar_next[bb, i], Ibar_next[bb, i], 0.0, rho[t, bb, i],
                    c[t, bb, i], alpha[i], beta[i], g[i], syn_old)  # fmt: skip
                Vbar[bb, i] = ext_V[t, bb, i] + vb
                J[bb, i] = Jb
                gb[i] += Jb
        Sbar[:, :] = ext_S[t]
        cell.gemm(False, False, 1.0, J, W_rec, 1.0, Sbar)
        if need_zbar:
            cell.gemm(False, False, 1.0, J, W_in, 1.0, zbar[t])
        outer_acc_t(J, z[t], gW_inT)
        outer_acc_t(J, S[t], gW_recT)
        for bb in range(B):
            for i in range(N):
                Vbar[bb, i] += s[t, bb, i] * Sbar[bb, i]
        Vbar_next, Vbar = Vbar, Vbar_next
        Ibar_next, Ibar = Ibar, Ibar_next
    return Vbar_next, Ibar_next, np.ascontiguousarray(gW_inT.T), np.ascontiguousarray(gW_recT.T), gb, zbar


def backward(cfg: NetworkConfig, params: dict, traj, ybar: np.ndarray) -> dict:
    """Gradient of ``Σ_t ȳ_t · y_t`` with respect to every parameter (a dict like ``params``)."""
    Ls = layers_of(cfg)
    grads = {}
    k = readout.kappa(cfg)
    sbar, grads["readout/W_out"], grads["readout/b_out"] = readout.vjp(traj.readout_s, ybar, params["readout/W_out"], k)
    top = len(Ls) - 1
    zero = np.zeros_like(sbar)
    if cfg.readout.source in ("spikes", "activation"):
        ext_S, ext_V = sbar, zero
    else:
        ext_S, ext_V = zero, sbar
    for l in range(top, -1, -1):
        L = Ls[l]
        s, _, _, rho, c = traj.lin[l]
        W_in, W_rec, _, _, _ = layer_params(cfg, params, l)
        Vb0, Ib0, gW_in, gW_rec, gb, zbar = layer_backward(s, rho, c, L.alpha, L.beta, L.g, L.syn_old, W_in,
            W_rec, traj.layer_input(l), traj.S[l], ext_S, ext_V, l > 0)  # fmt: skip
        p = f"layer{l + 1}/"
        grads[p + "W_in"], grads[p + "W_rec"], grads[p + "b"] = gW_in, gW_rec, gb
        names = initial_state_names(cfg)
        # a shared initial state (N,) collects the adjoint of every trajectory; one per
        # trajectory (B, N) gets its own row
        per_slot = np.ndim(params[p + names[0]]) == 2
        grads[p + names[0]] = Vb0.copy() if per_slot else Vb0.sum(axis=0)
        if len(names) == 2:
            grads[p + names[1]] = Ib0.copy() if per_slot else Ib0.sum(axis=0)
        if l > 0:
            ext_S = np.zeros(traj.S[l - 1].shape)
            ext_S[:-1] = zbar
            ext_V = np.zeros_like(ext_S)
    return grads


def value_and_grad(cfg: NetworkConfig, params: dict, inputs, targets, loss: LossConfig):
    """``(L, ∂L/∂params, trajectory)`` by exact surrogate BPTT."""
    params = check_params(cfg, params)
    inputs = check_inputs(cfg, inputs)
    targets = check_targets(loss, targets, inputs.shape[0], inputs.shape[1], cfg.n_out)
    traj = simulate(cfg, params, inputs, check=False)
    value, ybar = loss_and_grad(loss, traj.y, targets)
    return value, backward(cfg, params, traj, ybar), traj


def value_and_grad_split(cfg: NetworkConfig, params: dict, inputs, targets, loss: LossConfig, workers: int = 2):
    """``(L, ∂L/∂params)`` of :func:`value_and_grad`, with the batch split into ``workers`` contiguous parts
    that run on as many threads (docs/performance.md, "Threads").

    Every loss of docs/model.md §5 is a mean over the trajectories of the batch, so ``L = Σ_j (B_j/B) L_j``
    and its gradient likewise; an initial state given per trajectory (``(B, N)``) gets its rows from its own
    part. The simulation and the reverse pass release the GIL and each BLAS call stays on one thread (the
    default of :mod:`refimpl.threads`), so the parts use separate cores. Equal to :func:`value_and_grad` to
    rounding (the sums over the batch are taken in another order).
    """
    check_workers(workers)
    params = check_params(cfg, params)
    inputs = check_inputs(cfg, inputs)
    B = inputs.shape[1]
    targets = check_targets(loss, targets, inputs.shape[0], B, cfg.n_out)
    bounds = np.linspace(0, B, min(workers, B) + 1).round().astype(int)
    per_slot = {k for k in initial_state_keys(cfg) if np.ndim(params[k]) == 2}
    t_axis = 1 if np.ndim(targets) >= 2 else 0

    def part(j):
        lo, hi = bounds[j], bounds[j + 1]
        p = {k: (v[lo:hi] if k in per_slot else v) for k, v in params.items()}
        tg = targets[:, lo:hi] if t_axis == 1 else targets[lo:hi]
        value, grads, _ = value_and_grad(cfg, p, inputs[:, lo:hi], tg, loss)
        return value, grads

    parts = map_threads(part, len(bounds) - 1, len(bounds) - 1)
    w = np.diff(bounds) / B
    value = float(sum(wj * v for wj, (v, _) in zip(w, parts)))
    grads = {}
    for key in parts[0][1]:
        if key in per_slot:
            grads[key] = np.concatenate([wj * g[key] for wj, (_, g) in zip(w, parts)])
        else:
            grads[key] = sum(wj * g[key] for wj, (_, g) in zip(w, parts))
    return value, grads
