"""The batched forward pass of one layer with its linearization ``s, s2, m, ρ̂, c`` (the five arrays of
:mod:`refimpl.model.cell`'s docstring), in one compiled call per layer."""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.model.cell import (ACT_SPIKE, ACT_TANH, GRAD_ATTACHED, activation, activation_derivative, membrane, reset_element,
    tanh_derivatives)  # fmt: skip
from refimpl.linalg.sparse import matmul_wt
from refimpl.model.surrogate import ARCTAN, FAST_SIGMOID, GAUSSIAN, SIGMOID, TRIANGLE


@njit(cache=True, inline="always")
def _activate(v, theta, act, sur, gamma, smooth, second):
    """``(S, s, s2)`` of one neuron: ``φ(v - θ)``, ``φ'`` and (if ``second``, else 0) ``φ''``."""
    if act == ACT_TANH:
        # the same values as activation, activation_derivative, from one tanh and one cosh
        return tanh_derivatives(v - theta)
    s2 = activation_derivative(v, theta, act, sur, gamma, 2) if second else 0.0
    return activation(v, theta, act, sur, gamma, smooth), activation_derivative(v, theta, act, sur, gamma, 1), s2


@njit(cache=True, inline="always")
def _update_row(V_t, I_t, I_new, S_t, s_t, b, alpha, beta, g, theta, syn_old, reset, reset_grad, act, sur, gamma, smooth,
                second, I_n, V_n, S_n, s_n, s2_n, m_t, rho_t, c_t):  # fmt: skip
    """One trajectory's neurons from step ``t`` to ``t+1``: the rows ``I_n, V_n, S_n, s_n`` and the
    linearization's ``s2_n, m_t, rho_t, c_t`` (rows of the arrays kept, or scratch rows: every store is
    unconditional, so that the loop vectorizes)."""
    for i in range(V_t.shape[0]):
        I_n[i], mm = membrane(V_t[i], I_t[i], I_new[i], b[i], alpha[i], beta[i], g[i], syn_old)
        v, r, cc = reset_element(mm, S_t[i], s_t[i], theta, reset, reset_grad)
        V_n[i] = v
        S_n[i], s_n[i], s2_n[i] = _activate(v, theta, act, sur, gamma, smooth, second)
        m_t[i] = mm
        rho_t[i] = r
        c_t[i] = cc


@njit(cache=True, nogil=True, error_model="numpy")
def forward_linearized(z, z_ptr, z_idx, V0, I0, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset, reset_grad, act,
                       sur, gamma, smooth, keep_all):  # fmt: skip
    """:func:`refimpl.model.cell.forward` and its linearization in one pass: ``V, I, S, s, s2, m, ρ̂, c``
    and the nonzeros of ``S`` step by step, ``S_ptr, S_idx``.

    Same formulas, same shapes; ``z_ptr, z_idx`` list the nonzeros of the input ``z``
    (:func:`refimpl.linalg.sparse.nonzeros_by_step`), so that the products ``W_in z_t`` and
    ``W_rec S_t`` skip the zeros of sparse inputs and spikes without scanning them (:func:`matmul_wt`).
    Without ``keep_all`` only what BPTT reads is kept over time: ``V, S, s``, and ``c`` if the reset's
    gradient is attached (else it is 0); ``I`` holds the last two steps, ``ρ̂`` (a function of ``S``,
    :func:`refimpl.model.cell.reset_rho`) has no steps, ``s2, m`` are not stored (docs/performance.md).

    Why the branches on the surrogate below: the neuron loop vectorizes only when the compiler sees the
    activation and surrogate as constants (each branch passes them as literals to the same
    :func:`_update_row`; the formulas stay those of :mod:`refimpl.model.cell`), and only with NumPy's error
    model, under which a division (the surrogates') is not guarded by a Python ``ZeroDivisionError`` check
    (its IEEE result is the same; no surrogate divides by zero). ``N = 256, B = 32, T = 500`` (the bench's
    BPTT case): 24.6–25.0 → 16.6 ms a call (N = 64: 6.2–6.4 → 4.6), the same numbers bit for bit.
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
    scratch = np.empty((3, N))  # the rows of what is not kept
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
    spike = act != ACT_TANH and not smooth
    for t in range(T):
        matmul_wt(z[t], z_ptr[t], z_ptr[t + 1], z_idx, W_in, W_inT, 0.0, I_new)
        matmul_wt(S[t], S_ptr[t], S_ptr[t + 1], S_idx, W_rec, W_recT, 1.0, I_new)
        i0, i1 = (t, t + 1) if keep_all else (t % 2, (t + 1) % 2)  # I's rows: the steps', or two scratch rows
        for bb in range(B):
            Vt, It, In, St, st = V[t, bb], I[i0, bb], I_new[bb], S[t, bb], s[t, bb]  # step t, and W_in z_t + W_rec S_t
            In1, Vn, Sn, sn = I[i1, bb], V[t + 1, bb], S[t + 1, bb], s[t + 1, bb]  # step t + 1
            s2n = s2[t + 1 if keep_all else 0, bb]
            mt = m[t, bb] if keep_all else scratch[0]
            rt = rho[t, bb] if keep_all else scratch[1]
            ct = c[t, bb] if keep_c else scratch[2]
            if spike and not keep_all and sur == FAST_SIGMOID:
                _update_row(Vt, It, In, St, st, b, alpha, beta, g, theta, syn_old, reset, reset_grad, ACT_SPIKE,
                    FAST_SIGMOID, gamma, False, False, In1, Vn, Sn, sn, s2n, mt, rt, ct)  # fmt: skip
            elif spike and not keep_all and sur == SIGMOID:
                _update_row(Vt, It, In, St, st, b, alpha, beta, g, theta, syn_old, reset, reset_grad, ACT_SPIKE,
                    SIGMOID, gamma, False, False, In1, Vn, Sn, sn, s2n, mt, rt, ct)  # fmt: skip
            elif spike and not keep_all and sur == ARCTAN:
                _update_row(Vt, It, In, St, st, b, alpha, beta, g, theta, syn_old, reset, reset_grad, ACT_SPIKE,
                    ARCTAN, gamma, False, False, In1, Vn, Sn, sn, s2n, mt, rt, ct)  # fmt: skip
            elif spike and not keep_all and sur == GAUSSIAN:
                _update_row(Vt, It, In, St, st, b, alpha, beta, g, theta, syn_old, reset, reset_grad, ACT_SPIKE,
                    GAUSSIAN, gamma, False, False, In1, Vn, Sn, sn, s2n, mt, rt, ct)  # fmt: skip
            elif spike and not keep_all and sur == TRIANGLE:
                _update_row(Vt, It, In, St, st, b, alpha, beta, g, theta, syn_old, reset, reset_grad, ACT_SPIKE,
                    TRIANGLE, gamma, False, False, In1, Vn, Sn, sn, s2n, mt, rt, ct)  # fmt: skip
            else:
                _update_row(Vt, It, In, St, st, b, alpha, beta, g, theta, syn_old, reset, reset_grad, act, sur, gamma,
                    smooth, keep_all, In1, Vn, Sn, sn, s2n, mt, rt, ct)  # fmt: skip
            # the spikes listed in a pass of their own (a running count would keep the loop above scalar)
            for i in range(N):
                if Sn[i] != 0.0:
                    S_idx[k] = bb * N + i
                    k += 1
        S_ptr[t + 2] = k
    return V, I, S, s, s2, m, rho, c, S_ptr, S_idx[:k].copy()
