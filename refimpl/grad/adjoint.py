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
from refimpl.linalg.sparse import outer_acc_listed
from refimpl.model.config import LossConfig, NetworkConfig
from refimpl.model.losses import check_targets, loss_and_grad
from refimpl.model.network import (STORE, check_inputs, check_params, initial_state_keys, initial_state_names, layer_params,
    layers_of, simulate)  # fmt: skip
from refimpl.threads import check_workers, map_threads

#: an array without steps: a coefficient that ``simulate(store="bptt")`` did not store
NOT_STORED = np.zeros((0, 1, 1))


@njit(cache=True, nogil=True)
def layer_backward(s, rho, c, alpha, beta, g, syn_old, W_in, W_rec, z, S, A, W_ext, ext_at_V, keep_J, z_ptr, z_idx,
                   S_ptr, S_idx, reset, reset_grad):  # fmt: skip
    """Reverse time loop of one layer (``K = 1``, ``B`` trajectories).

    The adjoint arriving from outside the layer at step ``t = 0 … T`` is ``A_t W_ext`` (``A (T+1, B, n)``),
    at ``S_t``, or at ``V_t`` if ``ext_at_V``: from the readout (``W_ext = W_out``, ``A_t`` the adjoint of
    its drive, :func:`refimpl.model.readout.drive_adjoint`) or from the layer above (``W_ext`` its
    ``W_in``, ``A_t`` its ``J_t``). It is formed one step at a time, so that no ``(T+1, B, N)`` array
    of it is ever stored. Returns ``V̄_0, Ī_0 (B, N)``, ``∂L/∂W_in, ∂L/∂W_rec, ∂L/∂b`` and, if
    ``keep_J``, ``J (T+1, B, N)`` (``J_T = 0``), the ``A`` of the layer below.

    Each step is :func:`cell.vjp_step` (``K = 1``) followed by :func:`cell.spike_to_membrane`, written
    out here so that the weight gradients ``Σ_t J_t z_tᵀ`` and ``Σ_t J_t S_tᵀ`` skip the zeros of spike
    inputs (listed by ``z_ptr, z_idx, S_ptr, S_idx``: :func:`refimpl.linalg.sparse.outer_acc_listed`)
    and the products with ``W_rec`` and ``W_ext`` go to BLAS on preallocated buffers.
    """
    T1, B, N = S.shape
    T = T1 - 1
    n_in = W_in.shape[1]
    gW_inT = np.zeros((n_in, N))
    gW_recT = np.zeros((N, N))
    gb = np.zeros(N)
    Jall = np.empty((T + 1, B, N)) if keep_J else np.empty((1, B, N))
    ext = np.empty((B, N))  # A_t W_ext
    # arrays without steps were not stored (refimpl.model.forward): ρ̂ then follows from S, and c = 0
    has_rho, has_c = rho.shape[0] > 0, c.shape[0] > 0
    # V̄_{t+1} is kept without its spike term s_{t+1} ⊙ S̄_{t+1}, which the next step adds as it reads it
    # (one pass over the neurons a step, not two)
    Vbar_next = np.zeros((B, N))
    Sbar = np.zeros((B, N))
    cell.gemm(False, False, 1.0, A[T], W_ext, 0.0, Vbar_next if ext_at_V else Sbar)
    Ibar_next = np.zeros((B, N))
    Vbar = np.empty((B, N))
    Ibar = np.empty((B, N))
    if keep_J:
        Jall[T, :, :] = 0.0  # nothing follows I_{T+1}
    for t in range(T - 1, -1, -1):
        J = Jall[t] if keep_J else Jall[0]  # the adjoint of I_{t+1}
        if ext_at_V:
            cell.gemm(False, False, 1.0, A[t], W_ext, 0.0, ext)
        for bb in range(B):
            for i in range(N):
                vn = Vbar_next[bb, i] + s[t + 1, bb, i] * Sbar[bb, i]  # cell.spike_to_membrane, step t+1
                ct = c[t, bb, i] if has_c else 0.0
                rt = rho[t, bb, i] if has_rho else cell.reset_rho(S[t, bb, i], reset, reset_grad)
                vb, Ibar[bb, i], Jb = cell.adjoint_element(vn, Ibar_next[bb, i], 0.0, rt, ct, alpha[i], beta[i], g[i],
                    syn_old)  # fmt: skip
                Vbar[bb, i] = ext[bb, i] + vb if ext_at_V else vb
                J[bb, i] = Jb
                gb[i] += Jb
        if ext_at_V:
            cell.gemm(False, False, 1.0, J, W_rec, 0.0, Sbar)
        else:
            cell.gemm(False, False, 1.0, A[t], W_ext, 0.0, Sbar)
            cell.gemm(False, False, 1.0, J, W_rec, 1.0, Sbar)
        outer_acc_listed(J, z[t], z_ptr[t], z_ptr[t + 1], z_idx, gW_inT)
        outer_acc_listed(J, S[t], S_ptr[t], S_ptr[t + 1], S_idx, gW_recT)
        Vbar_next, Vbar = Vbar, Vbar_next
        Ibar_next, Ibar = Ibar, Ibar_next
    cell.spike_to_membrane(1, s[0], Sbar, Vbar_next)  # V̄_0 complete
    if not keep_J:
        Jall = np.empty((0, B, N))
    return Vbar_next, Ibar_next, np.ascontiguousarray(gW_inT.T), np.ascontiguousarray(gW_recT.T), gb, Jall


def backward(cfg: NetworkConfig, params: dict, traj, ybar: np.ndarray) -> dict:
    """Gradient of ``Σ_t ȳ_t · y_t`` with respect to every parameter (a dict like ``params``)."""
    Ls = layers_of(cfg)
    grads = {}
    k = readout.kappa(cfg)
    W_out = params["readout/W_out"]
    dbar = readout.drive_adjoint(ybar, k)
    grads["readout/W_out"], grads["readout/b_out"] = readout.param_grads(traj.readout_s, dbar)
    # the readout's adjoint reaches s_t, t = 1 … T, as (its drive's adjoint at t-1) W_out
    A = np.zeros((traj.T + 1,) + dbar.shape[1:])
    A[1:] = dbar
    W_ext, ext_at_V = W_out, cfg.readout.source not in ("spikes", "activation")
    for l in range(len(Ls) - 1, -1, -1):
        L = Ls[l]
        s, _, _, rho, c = traj.lin[l]
        rho, c = (NOT_STORED if a is None else a for a in (rho, c))
        W_in, W_rec, _, _, _ = layer_params(cfg, params, l)
        z_nz, S_nz = traj.nonzeros(l)
        Vb0, Ib0, gW_in, gW_rec, gb, A = layer_backward(s, rho, c, L.alpha, L.beta, L.g, L.syn_old, W_in, W_rec,
            traj.layer_input(l), traj.S[l], np.ascontiguousarray(A), W_ext, ext_at_V, l > 0, *z_nz, *S_nz, L.reset,
            L.reset_grad)  # fmt: skip
        W_ext, ext_at_V = W_in, False  # the layer below: its spikes are this layer's input
        p = f"layer{l + 1}/"
        grads[p + "W_in"], grads[p + "W_rec"], grads[p + "b"] = gW_in, gW_rec, gb
        names = initial_state_names(cfg)
        # a shared initial state (N,) collects the adjoint of every trajectory; one per
        # trajectory (B, N) gets its own row
        per_slot = np.ndim(params[p + names[0]]) == 2
        grads[p + names[0]] = Vb0.copy() if per_slot else Vb0.sum(axis=0)
        if len(names) == 2:
            grads[p + names[1]] = Ib0.copy() if per_slot else Ib0.sum(axis=0)
    return grads


def value_and_grad(cfg: NetworkConfig, params: dict, inputs, targets, loss: LossConfig, *, store: str = "bptt"):
    """``(L, ∂L/∂params, trajectory)`` by exact surrogate BPTT.

    The trajectory keeps what the reverse pass reads (``store="bptt"``: its ``I`` and the linearization's
    ``s2, m`` are ``None``); ``store="all"`` keeps everything (:func:`refimpl.model.network.simulate`).
    """
    if store not in STORE:
        raise ValueError(f"store must be one of {list(STORE)}, got {store!r}")
    params = check_params(cfg, params)
    inputs = check_inputs(cfg, inputs)
    targets = check_targets(loss, targets, inputs.shape[0], inputs.shape[1], cfg.n_out)
    traj = simulate(cfg, params, inputs, check=False, store=store)
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
