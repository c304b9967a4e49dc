"""The batched forward pass of one layer with its linearization ``s, s2, m, ρ̂, c`` (the five arrays of
:mod:`refimpl.model.cell`'s docstring), in one compiled call per layer."""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.model.cell import ACT_TANH, activation, activation_derivative, membrane, reset_element, tanh_derivatives
from refimpl.linalg.sparse import matmul_wt


@njit(cache=True)
def _step_linearized(V, I, S, s, I_new, b, alpha, beta, g, theta, syn_old, reset, reset_grad, V_out, I_out, m, rho, c):
    """One step of :func:`forward_step` on ``(B, N)`` views, with the linearization ``m, ρ̂, c`` (``cell``'s docstring)."""
    B, N = V.shape
    for bb in range(B):
        for i in range(N):
            I_out[bb, i], mm = membrane(V[bb, i], I[bb, i], I_new[bb, i], b[i], alpha[i], beta[i], g[i], syn_old)
            V_out[bb, i], rho[bb, i], c[bb, i] = reset_element(mm, S[bb, i], s[bb, i], theta, reset, reset_grad)
            m[bb, i] = mm


@njit(cache=True)
def _activations(V, theta, act, sur, gamma, smooth, S, s, s2):
    B, N = V.shape
    for bb in range(B):
        for i in range(N):
            v = V[bb, i]
            if act == ACT_TANH:
                # the same values as activation, activation_derivative, from one tanh and one cosh
                S[bb, i], s[bb, i], s2[bb, i] = tanh_derivatives(v - theta)
            else:
                S[bb, i] = activation(v, theta, act, sur, gamma, smooth)
                s[bb, i] = activation_derivative(v, theta, act, sur, gamma, 1)
                s2[bb, i] = activation_derivative(v, theta, act, sur, gamma, 2)


@njit(cache=True, nogil=True)
def forward_linearized(z, V0, I0, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset, reset_grad, act, sur, gamma, smooth):
    """:func:`refimpl.model.cell.forward` and its linearization in one pass: ``V, I, S, s, s2, m, ρ̂, c``.

    Same formulas, same shapes; the products ``W_in z_t`` and ``W_rec S_t``
    skip the zeros of sparse inputs and spikes (:func:`matmul_wt`).
    """
    T, B, n_in = z.shape
    N = V0.shape[1]
    V = np.empty((T + 1, B, N))
    I = np.empty((T + 1, B, N))
    S = np.empty((T + 1, B, N))
    s = np.empty((T + 1, B, N))
    s2 = np.empty((T + 1, B, N))
    m = np.empty((T, B, N))
    rho = np.empty((T, B, N))
    c = np.empty((T, B, N))
    W_inT = np.ascontiguousarray(W_in.T)
    W_recT = np.ascontiguousarray(W_rec.T)
    I_new = np.empty((B, N))
    for bb in range(B):
        for i in range(N):
            V[0, bb, i] = V0[bb, i]
            I[0, bb, i] = I0[bb, i]
    for t in range(T + 1):
        _activations(V[t], theta, act, sur, gamma, smooth, S[t], s[t], s2[t])
        if t == T:
            break
        matmul_wt(z[t], W_in, W_inT, 0.0, I_new)
        matmul_wt(S[t], W_rec, W_recT, 1.0, I_new)
        _step_linearized(V[t], I[t], S[t], s[t], I_new, b, alpha, beta, g, theta, syn_old, reset, reset_grad,
            V[t + 1], I[t + 1], m[t], rho[t], c[t])  # fmt: skip
    return V, I, S, s, s2, m, rho, c
