"""The batched forward pass of one layer with its linearization ``s, s2, m, ρ̂, c`` (the five arrays of
:mod:`refimpl.model.cell`'s docstring), in one compiled call per layer."""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.model.cell import (ACT_TANH, GRAD_ATTACHED, activation, activation_derivative, membrane, reset_element,
    tanh_derivatives)  # fmt: skip
from refimpl.linalg.sparse import matmul_wt


@njit(cache=True, inline="always")
def _activate(v, theta, act, sur, gamma, smooth, second):
    """``(S, s, s2)`` of one neuron: ``φ(v - θ)``, ``φ'`` and (if ``second``, else 0) ``φ''``."""
    if act == ACT_TANH:
        # the same values as activation, activation_derivative, from one tanh and one cosh
        return tanh_derivatives(v - theta)
    s2 = activation_derivative(v, theta, act, sur, gamma, 2) if second else 0.0
    return activation(v, theta, act, sur, gamma, smooth), activation_derivative(v, theta, act, sur, gamma, 1), s2


@njit(cache=True, nogil=True)
def forward_linearized(z, z_ptr, z_idx, V0, I0, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset, reset_grad, act,
                       sur, gamma, smooth, keep_all):  # fmt: skip
    """:func:`refimpl.model.cell.forward` and its linearization in one pass: ``V, I, S, s, s2, m, ρ̂, c``
    and the nonzeros of ``S`` step by step, ``S_ptr, S_idx``.

    Same formulas, same shapes; ``z_ptr, z_idx`` list the nonzeros of the input ``z``
    (:func:`refimpl.linalg.sparse.nonzeros_by_step`), so that the products ``W_in z_t`` and
    ``W_rec S_t`` skip the zeros of sparse inputs and spikes without scanning them (:func:`matmul_wt`).
    Without ``keep_all`` only what BPTT reads is kept over time: ``V, S, s``, and ``c`` if the reset's
    gradient is attached (else it is 0); ``I`` holds the last two steps, ``ρ̂`` (a function of ``S``,
    :func:`refimpl.model.cell.reset_rho`) has no steps, ``s2, m`` are neither computed nor stored. That
    saves half of the stores of this store-bound loop (docs/performance.md).
    """
    T, B, n_in = z.shape
    N = V0.shape[1]
    V = np.empty((T + 1, B, N))
    S = np.empty((T + 1, B, N))
    s = np.empty((T + 1, B, N))
    # ρ̂ is a function of S (cell.reset_rho), and c = 0 unless the reset's gradient is attached
    # (cell.reset_element): BPTT needs no array of either then
    keep_c = keep_all or reset_grad == GRAD_ATTACHED
    rho = np.empty((T if keep_all else 0, B, N))
    c = np.empty((T if keep_c else 0, B, N))
    I = np.empty((T + 1 if keep_all else 2, B, N))
    s2 = np.empty((T + 1 if keep_all else 1, B, N))
    m = np.empty((T if keep_all else 0, B, N))
    W_inT = np.ascontiguousarray(W_in.T)
    W_recT = np.ascontiguousarray(W_rec.T)
    I_new = np.empty((B, N))
    S_ptr = np.empty(T + 2, np.int64)
    S_idx = np.empty((T + 1) * B * N, np.int64)
    k = 0
    S_ptr[0] = 0
    for bb in range(B):
        for i in range(N):
            v = V0[bb, i]
            V[0, bb, i] = v
            I[0, bb, i] = I0[bb, i]
            S[0, bb, i], s[0, bb, i], s2[0, bb, i] = _activate(v, theta, act, sur, gamma, smooth, keep_all)
            if S[0, bb, i] != 0.0:
                S_idx[k] = bb * N + i
                k += 1
    S_ptr[1] = k
    for t in range(T):
        matmul_wt(z[t], z_ptr[t], z_ptr[t + 1], z_idx, W_in, W_inT, 0.0, I_new)
        matmul_wt(S[t], S_ptr[t], S_ptr[t + 1], S_idx, W_rec, W_recT, 1.0, I_new)
        i0, i1 = (t, t + 1) if keep_all else (t % 2, (t + 1) % 2)  # I's rows: the steps', or two scratch rows
        for bb in range(B):
            for i in range(N):
                I[i1, bb, i], mm = membrane(V[t, bb, i], I[i0, bb, i], I_new[bb, i], b[i], alpha[i], beta[i], g[i],
                    syn_old)  # fmt: skip
                v, r, cc = reset_element(mm, S[t, bb, i], s[t, bb, i], theta, reset, reset_grad)
                V[t + 1, bb, i] = v
                Sv, s[t + 1, bb, i], s2v = _activate(v, theta, act, sur, gamma, smooth, keep_all)
                S[t + 1, bb, i] = Sv
                # a store skipped is worth its time here: the loop is bound by its stores
                if keep_c:
                    c[t, bb, i] = cc
                if keep_all:
                    rho[t, bb, i] = r
                    m[t, bb, i] = mm
                    s2[t + 1, bb, i] = s2v
                if Sv != 0.0:
                    S_idx[k] = bb * N + i
                    k += 1
        S_ptr[t + 2] = k
    return V, I, S, s, s2, m, rho, c, S_ptr, S_idx[:k].copy()
