"""The batched forward pass of one layer with its linearization, and sparse products with spike rasters."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..cell import ACT_TANH, activation, activation_derivative, membrane, reset_element, tanh_derivatives
from ..lapack import gemm


# ---------------------------------------------------------------------------
# batched forward and BPTT of one layer: spike inputs are mostly zeros, so the
# products with them are formed from the nonzero entries where that pays
# ---------------------------------------------------------------------------

#: a row block with at most this fraction of nonzeros is multiplied sparsely
SPARSE_DENSITY = 0.125


@njit(cache=True)
def _nonzeros(X):
    n = 0
    for r in range(X.shape[0]):
        for j in range(X.shape[1]):
            if X[r, j] != 0.0:
                n += 1
    return n


@njit(cache=True, inline="always")
def _axpy(x, src, dst):
    """``dst += x src`` for one row: the product with one nonzero entry of a spike matrix."""
    for i in range(dst.shape[0]):
        dst[i] += x * src[i]


@njit(cache=True)
def matmul_wt(X, W, WT, beta, out):
    """``out = X Wᵀ + beta·out`` (``X (B, n)``, ``W (N, n)``, ``WT = Wᵀ`` contiguous).

    Sparse ``X`` (at most :data:`SPARSE_DENSITY` nonzeros, e.g. spikes) is
    multiplied as a sum of the rows of ``WT`` that its nonzeros select; the
    result is the same up to the order of the additions.
    """
    B, n = X.shape
    if _nonzeros(X) > SPARSE_DENSITY * B * n:
        gemm(False, True, 1.0, X, W, beta, out)
        return
    N = out.shape[1]
    for r in range(B):
        if beta == 0.0:
            for i in range(N):
                out[r, i] = 0.0
        elif beta != 1.0:
            for i in range(N):
                out[r, i] *= beta
        for j in range(n):
            x = X[r, j]
            if x != 0.0:
                _axpy(x, WT[j], out[r])


@njit(cache=True)
def outer_acc_t(J, X, GT):
    """``GT += Xᵀ J`` i.e. ``G += Jᵀ X`` stored transposed (``GT (n, N)``), skipping zeros of ``X``."""
    B, n = X.shape
    if _nonzeros(X) > SPARSE_DENSITY * B * n:
        gemm(True, False, 1.0, X, J, 1.0, GT)
        return
    for r in range(B):
        for j in range(n):
            x = X[r, j]
            if x != 0.0:
                _axpy(x, J[r], GT[j])


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


@njit(cache=True)
def forward_linearized(z, V0, I0, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset, reset_grad, act, sur, gamma, smooth):
    """:func:`refimpl.cell.forward` and its linearization in one pass: ``V, I, S, s, s2, m, ρ̂, c``.

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
        _step_linearized(
            V[t],
            I[t],
            S[t],
            s[t],
            I_new,
            b,
            alpha,
            beta,
            g,
            theta,
            syn_old,
            reset,
            reset_grad,
            V[t + 1],
            I[t + 1],
            m[t],
            rho[t],
            c[t],
        )
    return V, I, S, s, s2, m, rho, c
