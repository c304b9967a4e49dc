"""Fused one-layer kernels: the QR iteration of the spectrum and the reverse pass of the flossing loss."""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.model.cell import GRAD_ATTACHED, RESET_NONE, RESET_ZERO, adjoint_element, tangent_element
from refimpl.linalg.lapack import GEMM_SMALL_MNK, QR_RETRY, gemm, qr_rows, qr_rows_householder, qr_work
from refimpl.linalg.sparse import outer_acc_t
from refimpl.grad.qr import qr_reverse_rows


# ---------------------------------------------------------------------------
# fused single-layer kernels: the whole QR iteration (spectrum) and the whole
# reverse pass of the flossing loss in one compiled call each
# ---------------------------------------------------------------------------
#
# A block of k tangent vectors of a one-layer network is stored as rows
# ``X (k, M)``: ``X[:, :N]`` the V-part, ``X[:, N:]`` the I-part (clif,
# ``has_I``); map cells have ``M = N`` and no I-part. These kernels compute
# exactly what ``network.apply_D`` / ``apply_DT``, :func:`vjp2_step` and
# ``refimpl.grad.qr`` compute step by step (the formulas are the same, line for
# line; only the order of some sums differs, so results agree to rounding),
# without Python between the steps. Trajectory arrays are those of the one
# trajectory: ``(T+1, N)`` or ``(T, N)``.


@njit(cache=True)
def tangent_rows(s, rho, c, alpha, beta, g, syn_old, has_I, W_recT, X, Y, a, H):
    """``Y = D_t X`` for the rows ``X (k, M)`` (as :func:`jvp_step` without input or parameter tangent).

    ``W_recT`` is ``W_recᵀ``, stored contiguous: the product ``a W_recᵀ`` then needs no transposed
    operand, which OpenBLAS runs 1.15–1.5× faster at ``k = 16`` (docs/performance.md). ``a, H (k, N)``
    are workspace; on return ``a = s ⊙ qV`` and ``H = a W_recᵀ``.
    """
    k = X.shape[0]
    N = W_recT.shape[0]
    for r in range(k):
        for i in range(N):
            a[r, i] = s[i] * X[r, i]
    gemm(False, False, 1.0, a, W_recT, 0.0, H)
    for r in range(k):
        for i in range(N):
            qI = X[r, N + i] if has_I else 0.0
            Y[r, i], dIn, _ = tangent_element(X[r, i], qI, H[r, i], 0.0, rho[i], c[i], alpha[i], beta[i], g[i], syn_old)
            if has_I:
                Y[r, N + i] = dIn


@njit(cache=True)
def _abs_max(X):
    """``max |X|`` of a C-contiguous block, ignoring signs bitwise: for IEEE doubles with the sign bit cleared,
    the order of the bit patterns as integers is the order of the values, and an integer maximum vectorizes
    where a floating-point one does not without fast-math (``64×512``: 2.7 against 18.4 µs, measured). A nan
    in ``X`` gives nan."""
    bits = X.reshape(X.size).view(np.int64)
    m = 0
    for j in range(bits.size):
        v = bits[j] & 0x7FFFFFFFFFFFFFFF
        m = v if v > m else m
    return np.array([m]).view(np.float64)[0]


@njit(cache=True)
def _row_buffers(k, M, N):
    """Workspace of one product ``D_t Q`` and one QR on ``k`` rows: ``Y, a, H, R, tau, work``."""
    return (np.empty((k, M)), np.empty((k, N)), np.empty((k, N)), np.empty((k, k)), np.empty(k), qr_work(k, M))


@njit(cache=True)
def _step_qr(s_t, rho_t, c_t, alpha, beta, g, syn_old, has_I, W_recT, Xprev, X, a, H, R, tau, work, full_R):
    """QR in place of the rows ``X = D_t Xprev`` (``R`` receives the whole factor only if ``full_R``), without
    the copy of ``X`` that a fallback needs: when CholeskyQR2 is rejected after its first pass, ``X`` is formed
    again from ``Xprev`` (still there) and factorized by Householder."""
    if qr_rows(X, R, tau, work, not full_R, False) == QR_RETRY:
        tangent_rows(s_t, rho_t, c_t, alpha, beta, g, syn_old, has_I, W_recT, Xprev, X, a, H)
        qr_rows_householder(X, R, tau, work)


@njit(cache=True)
def _qr_record(s_t, rho_t, c_t, alpha, beta, g, syn_old, has_I, W_recT, Xprev, X, a, H, R, tau, work, diagR, amax, q,
        full_R):  # fmt: skip
    """Re-orthonormalize the rows ``X = D_t Xprev`` in place (:func:`_step_qr`); record ``max|A|`` and
    ``diag R`` as QR step ``q``."""
    amax[q] = _abs_max(X)
    _step_qr(s_t, rho_t, c_t, alpha, beta, g, syn_old, has_I, W_recT, Xprev, X, a, H, R, tau, work, full_R)
    for i in range(R.shape[0]):
        diagR[q, i] = R[i, i]


@njit(cache=True, nogil=True)
def benettin_rows(s, rho, c, alpha, beta, g, syn_old, has_I, W_rec, Q0rows, warmup, ons):
    """The QR iteration of docs/model.md §6 for one layer, all steps in one call.

    Returns ``diagR (n_qr, k)`` (``diag R ≥ 0`` of every QR step), ``amax (n_qr,)``
    (``max |A|`` of each factorized ``A``, for the rank test), ``pr (n_qr,)`` (the
    participation ratio of the first column of ``Q``) and the final rows of ``Q``.
    """
    T = rho.shape[0]
    k, M = Q0rows.shape
    N = W_rec.shape[0]
    W_recT = np.ascontiguousarray(W_rec.T)  # for tangent_rows
    n_qr = (T - warmup) // ons if T > warmup else 0
    diagR = np.empty((n_qr, k))
    amax = np.empty(n_qr)
    pr = np.empty(n_qr)
    X = Q0rows.copy()
    Y, a, H, R, tau, work = _row_buffers(k, M, N)
    q = 0
    for t in range(warmup, T):
        tangent_rows(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_recT, X, Y, a, H)
        X, Y = Y, X
        if (t + 1 - warmup) % ons == 0:
            _qr_record(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_recT, Y, X, a, H, R, tau, work, diagR, amax,
                q, False)  # fmt: skip
            s2sum = 0.0
            s4sum = 0.0
            for i in range(M):
                v2 = X[0, i] * X[0, i]
                s2sum += v2
                s4sum += v2 * v2
            pr[q] = s2sum * s2sum / s4sum
            q += 1
    return diagR, amax, pr, X


@njit(cache=True, nogil=True)
def floss_forward_rows(s, rho, c, alpha, beta, g, syn_old, has_I, W_rec, Q0rows, warmup, ons, every):
    """Forward pass of the flossing loss for one layer.

    Keeps the rows of ``Q_t`` at every ``every``-th step of the schedule
    (``Qck[j // every]`` holds the input of step ``warmup + j``; the last slot
    holds the final ``Q``) and, for ``every == 1``, every ``R`` (``Rs``; with
    checkpointing the backward pass recomputes them segment by segment).
    Returns ``Qck, Rs, diagR, amax``.
    """
    T = rho.shape[0]
    k, M = Q0rows.shape
    N = W_rec.shape[0]
    W_recT = np.ascontiguousarray(W_rec.T)  # for tangent_rows
    n = T - warmup
    n_qr = n // ons
    n_ck = (n + every - 1) // every
    Qck = np.empty((n_ck + 1, k, M))
    Rs = np.empty((n_qr if every == 1 else 0, k, k))
    diagR = np.empty((n_qr, k))
    amax = np.empty(n_qr)
    X = Q0rows.copy()
    Y, a, H, R, tau, work = _row_buffers(k, M, N)
    if every == 1:
        Qck[0] = X
    q = 0
    for j in range(n):
        t = warmup + j
        if every == 1:  # every Q_t is kept: each step writes its image into the next slot, without a copy
            X, Y = Qck[j], Qck[j + 1]
        elif j % every == 0:
            Qck[j // every] = X
        tangent_rows(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_recT, X, Y, a, H)
        X, Y = Y, X
        if (j + 1) % ons == 0:
            # every R kept: the QR writes it into its slot (no copy)
            Rq = Rs[q] if every == 1 else R
            _qr_record(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_recT, Y, X, a, H, Rq, tau, work, diagR,
                amax, q, every == 1)  # fmt: skip
            q += 1
    if every > 1:  # with every Q_t kept, the last step wrote the final Q into its slot already
        Qck[n_ck] = X
    return Qck, Rs, diagR, amax


@njit(cache=True, inline="always")
def _state_adjoint_elements(t, rho, c, alpha, beta, g, syn_old, xV, xI, mbar_extra, J1, gb):
    """The neuron-wise part of :func:`_state_adjoint_step`: ``(V̄, Ī)`` in place, ``J`` into ``J1 (1, N)``, ``gb += J``."""
    for i in range(xV.shape[0]):
        xV[i], xI[i], J = adjoint_element(xV[i], xI[i], mbar_extra[i], rho[t, i], c[t, i], alpha[i], beta[i], g[i], syn_old)
        J1[0, i] = J
        gb[i] += J


@njit(cache=True)
def _state_adjoint_step(t, s, rho, c, alpha, beta, g, syn_old, W_rec, xV, xI, mbar_extra, J1, Sb, z, S, gW_inT, gW_recT, gb):
    """``(V̄_t, Ī_t) = D_tᵀ (V̄_{t+1}, Ī_{t+1})`` (+ an adjoint ``m̄`` injected at ``m_t``), in place.

    Accumulates the parameter gradients ``J zᵀ, J Sᵀ, J`` (``J``: the adjoint
    of ``I_{t+1}``, in ``J1 (1, N)``; the weight gradients transposed, skipping
    the zeros of spikes and inputs). ``Sb (1, N)`` is workspace.
    """
    N = xV.shape[0]
    _state_adjoint_elements(t, rho, c, alpha, beta, g, syn_old, xV, xI, mbar_extra, J1, gb)
    gemm(False, False, 1.0, J1, W_rec, 0.0, Sb)
    for i in range(N):
        xV[i] += s[t, i] * Sb[0, i]
    outer_acc_t(J1, z[t : t + 1], gW_inT)
    outer_acc_t(J1, S[t : t + 1], gW_recT)


@njit(cache=True, nogil=True)
def floss_backward_rows(s, s2, m, rho, c, alpha, beta, g, theta, syn_old, has_I, reset, reset_grad, W_rec, z, S,
        Qck, Rs, rbar, warmup, ons, transient, every):  # fmt: skip
    """Reverse pass of the flossing loss for one layer (docs/derivations.md §4), all steps in one call.

    ``rbar (k,)``: ``∂L/∂ log R_ii`` of each counted QR step (``λ̄ / n_steps``).
    Returns ``gW_in, gW_rec, gb`` and the adjoint ``(V̄_0, Ī_0)`` of the initial state.
    """
    T = rho.shape[0]
    N = W_rec.shape[0]
    W_recT = np.ascontiguousarray(W_rec.T)  # for tangent_rows
    n_in = z.shape[1]
    k, M = Qck.shape[1], Qck.shape[2]
    n = T - warmup
    n_ck = Qck.shape[0] - 1
    attached = reset_grad == GRAD_ATTACHED
    zero_att = attached and reset == RESET_ZERO
    gW_rec = np.zeros((N, N))
    gW_recT = np.zeros((N, N))
    gW_inT = np.zeros((n_in, N))
    gb = np.zeros(N)
    xV = np.zeros(N)
    xI = np.zeros(N)
    J1 = np.empty((1, N))
    Sb = np.empty((1, N))
    Qb = np.zeros((k, M))  # adjoint of Q_{t+1}
    Ab = np.empty((k, M))  # adjoint of A_t
    JW = np.empty((k + 1, N))
    H = np.empty((k, N))
    aw = np.empty((k, N))  # workspace of the recomputation
    Mx = np.empty((k, k))
    Cs = np.empty((k, k))
    vdir = np.empty(N)
    qJW = np.empty(N)
    mex = np.zeros(N)
    # the W_rec gradient of the second-order term, Σ_t Jₜᵀ (s ⊙ qV), in chunks of steps
    chunk = max(1, 256 // k)
    if N * N * k * chunk > GEMM_SMALL_MNK and N * N * k <= GEMM_SMALL_MNK:
        # as many steps as keep the product within OpenBLAS's small-matrix kernel (lapack.GEMM_SMALL_MNK):
        # N = k = 64, 3 steps a chunk: 9.4 µs a step, 4 steps: 11.9 (measured)
        chunk = GEMM_SMALL_MNK // (N * N * k)
    Jc = np.empty((chunk * k + 1, N))  # + the state adjoint's row (below)
    ac = np.empty((chunk * k, N))
    nc = 0
    # segment workspace (checkpointing: recompute Q_t, R_t inside each segment)
    L = every if every > 1 else 0
    Qseg = np.empty((L + 1 if L > 0 else 0, k, M))
    Rseg = np.empty((L, k, k))
    tau = np.empty(k)
    work = qr_work(k, M)
    for sidx in range(n_ck - 1, -1, -1):
        j0 = sidx * every
        j1 = min(j0 + every, n)
        if every > 1:
            Qseg[0] = Qck[sidx]
            for i in range(j1 - j0):
                j = j0 + i
                t = warmup + j
                tangent_rows(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_recT, Qseg[i], Qseg[i + 1], aw, H)
                if (j + 1) % ons == 0:
                    _step_qr(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_recT, Qseg[i], Qseg[i + 1], aw, H,
                        Rseg[i], tau, work, True)  # fmt: skip
        for i in range(j1 - j0 - 1, -1, -1):
            j = j0 + i
            t = warmup + j
            if every > 1:
                Qt = Qseg[i]
                Qn = Qseg[i + 1]
            else:
                Qt = Qck[j]
                Qn = Qck[j + 1]
            # ---- Ā_t from Q̄_{t+1} (and R̄_{t+1} at counted QR steps): the QR reverse rule
            if (j + 1) % ons == 0:
                q = (j + 1) // ons - 1
                Rq = Rseg[i] if every > 1 else Rs[q]
                counted = q >= transient
                qr_reverse_rows(Qn, Rq, Qb, rbar, counted, Mx, Cs, Ab)  # Ā_t (docs/model.md §7)
            else:
                Ab[:, :] = Qb
            # ---- Q̄_t = D_tᵀ Ā (first order) and the second-order terms of ⟨Ā, D_t Q_t⟩; Jk (the adjoint of the
            # I-part of A_t's image, Ī' + g m̄ per row) and a = s ⊙ qV go straight into the chunk of the W_rec gradient
            Jk = Jc[nc * k : (nc + 1) * k]
            a = ac[nc * k : (nc + 1) * k]
            for r in range(k):
                for i2 in range(N):
                    aI = Ab[r, N + i2] if has_I else 0.0
                    Qb[r, i2], ib, J = adjoint_element(Ab[r, i2], aI, 0.0, rho[t, i2], c[t, i2], alpha[i2],
                        beta[i2], g[i2], syn_old)  # fmt: skip
                    if has_I:
                        Qb[r, N + i2] = ib
                    Jk[r, i2] = J
                    a[r, i2] = s[t, i2] * Qt[r, i2]
            # σ'' through s ⊙ qV (below, with JW), and the reset derivative (attached)
            for i2 in range(N):
                vdir[i2] = 0.0
                mex[i2] = 0.0
            if attached and reset != RESET_NONE:
                if zero_att:
                    # q_m = β qV + g q̃I, the tangent of m_t along each row of Q_t
                    gemm(False, False, 1.0, a, W_recT, 0.0, H)
                for i2 in range(N):
                    w = 0.0
                    for r in range(k):
                        w += Ab[r, i2] * Qt[r, i2]
                    if zero_att:
                        wm = 0.0
                        for r in range(k):
                            qI = Qt[r, N + i2] if has_I else 0.0
                            dIn = alpha[i2] * qI + H[r, i2]
                            dIt = qI if syn_old else dIn
                            wm += Ab[r, i2] * (beta[i2] * Qt[r, i2] + g[i2] * dIt)
                        vdir[i2] += -s[t, i2] * wm - m[t, i2] * s2[t, i2] * w
                        mex[i2] = -s[t, i2] * w
                    else:
                        vdir[i2] += -theta * s2[t, i2] * w
            # ---- the state adjoint x̄_t = D_tᵀ x̄_{t+1} (+ m̄ injection): its J (the adjoint of I_{t+1}) goes in the
            # row after Jk (the next step's first row of the chunk, still free; Jc has one row to spare), so
            # that one product [Jk; J] W_rec reads W_rec once for both (a 1×N product of its own streamed
            # W_rec from memory every step: 12 of 139 µs of the N = 256, k = 16 step, measured)
            Jx = Jc[(nc + 1) * k : (nc + 1) * k + 1]
            _state_adjoint_elements(t, rho, c, alpha, beta, g, syn_old, xV, xI, mex, Jx, gb)
            gemm(False, False, 1.0, Jc[nc * k : (nc + 1) * k + 1], W_rec, 0.0, JW)
            for r in range(k):
                for i2 in range(N):
                    Qb[r, i2] += s[t, i2] * JW[r, i2]
            for i2 in range(N):
                qJW[i2] = 0.0
            for r in range(k):
                for i2 in range(N):
                    qJW[i2] += Qt[r, i2] * JW[r, i2]
            for i2 in range(N):
                # x̄_t: + s ⊙ (W_recᵀ J) of the state adjoint, + the direct terms (σ'' through s ⊙ qV, reset)
                xV[i2] += s[t, i2] * JW[k, i2] + vdir[i2] + s2[t, i2] * qJW[i2]
            outer_acc_t(Jx, z[t : t + 1], gW_inT)
            outer_acc_t(Jx, S[t : t + 1], gW_recT)
            # ∂/∂W_rec of ⟨J, W_rec (s ⊙ qV)⟩, batched over a chunk of steps
            nc += 1
            if nc == chunk:
                gemm(True, False, 1.0, Jc[: chunk * k], ac, 1.0, gW_rec)
                nc = 0
    if nc > 0:
        gemm(True, False, 1.0, Jc[: nc * k], ac[: nc * k], 1.0, gW_rec)
    for i2 in range(N):
        mex[i2] = 0.0
    for t in range(warmup - 1, -1, -1):
        _state_adjoint_step(t, s, rho, c, alpha, beta, g, syn_old, W_rec, xV, xI, mex, J1, Sb, z, S, gW_inT, gW_recT, gb)
    gW_in = np.ascontiguousarray(gW_inT.T)
    for i2 in range(N):
        for j in range(N):
            gW_rec[i2, j] += gW_recT[j, i2]
    return gW_in, gW_rec, gb, xV, xI
