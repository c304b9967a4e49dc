"""Exact BPTT under the surrogate rule: the reverse-mode gradient of the loss (MODEL §5).

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

from . import cell, readout
from .config import LossConfig, NetworkConfig
from .losses import check_targets, loss_and_grad
from .network import (EMPTY2, check_inputs, check_params, initial_state_names, layer_params,
                      layers_of, simulate)

_E2 = np.zeros((0, 0))


@njit(cache=True)
def layer_backward(s, rho, c, alpha, beta, g, syn_old, W_in, W_rec, z, S,
                   ext_S, ext_V, need_zbar):
    """Reverse time loop of one layer (``K = 1``, ``B`` trajectories).

    ``ext_S, ext_V (T+1, B, N)``: adjoints arriving at ``S_t`` and ``V_t`` from
    outside the layer (readout, layer above). Returns ``V̄_0, Ī_0 (B, N)``,
    ``∂L/∂W_in, ∂L/∂W_rec, ∂L/∂b`` and ``z̄ (T, B, n_in)`` (if ``need_zbar``).
    """
    T1, B, N = S.shape
    T = T1 - 1
    n_in = W_in.shape[1]
    gW_in = np.zeros(W_in.shape)
    gW_rec = np.zeros(W_rec.shape)
    gb = np.zeros(N)
    zbar = np.zeros((T, B, n_in)) if need_zbar else np.zeros((0, B, n_in))
    empty = np.zeros((0, 0))
    Vbar_next = ext_V[T].copy()
    Sbar = ext_S[T].copy()
    cell.spike_to_membrane(1, s[T], Sbar, Vbar_next)
    Ibar_next = np.zeros((B, N))
    for t in range(T - 1, -1, -1):
        Vbar = ext_V[t].copy()
        Ibar = np.zeros((B, N))
        Sbar = ext_S[t].copy()
        zb = zbar[t] if need_zbar else empty
        cell.vjp_step(1, rho[t], c[t], alpha, beta, g, syn_old, W_in, W_rec,
                      Vbar_next, Ibar_next, empty, Vbar, Ibar, Sbar, zb, z[t], S[t], gW_in, gW_rec, gb)
        cell.spike_to_membrane(1, s[t], Sbar, Vbar)
        Vbar_next = Vbar
        Ibar_next = Ibar
    return Vbar_next, Ibar_next, gW_in, gW_rec, gb, zbar


def backward(cfg: NetworkConfig, params: dict, traj, ybar: np.ndarray) -> dict:
    """Gradient of ``Σ_t ȳ_t · y_t`` with respect to every parameter (a dict like ``params``)."""
    Ls = layers_of(cfg)
    grads = {}
    k = readout.kappa(cfg)
    sbar, grads["readout/W_out"], grads["readout/b_out"] = readout.vjp(
        traj.readout_s, ybar, params["readout/W_out"], k)
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
        Vb0, Ib0, gW_in, gW_rec, gb, zbar = layer_backward(
            s, rho, c, L.alpha, L.beta, L.g, L.syn_old, W_in, W_rec, traj.layer_input(l), traj.S[l],
            ext_S, ext_V, l > 0)
        p = f"layer{l + 1}/"
        grads[p + "W_in"], grads[p + "W_rec"], grads[p + "b"] = gW_in, gW_rec, gb
        names = initial_state_names(cfg)
        grads[p + names[0]] = Vb0.sum(axis=0)
        if len(names) == 2:
            grads[p + names[1]] = Ib0.sum(axis=0)
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
