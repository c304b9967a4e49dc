"""One layer of the network: forward step, tangent (JVP) and adjoint (VJP).

This module is the single kernel behind every cell of docs/model.md §1. A layer is

    S_t     = φ(V_t - θ)
    I_{t+1} = α ⊙ I_t + W_in z_t + W_rec S_t + b
    m_t     = β ⊙ V_t + g ⊙ Ĩ_t,     Ĩ_t = I_{t+1} (syn_input new) or I_t (old)
    V_{t+1} = ρ_t ⊙ m_t - θ r_t

with ``φ = H`` (or ``Φ`` in smooth mode, docs/model.md §2) for spiking cells. The
``binary`` and ``rate`` cells of docs/model.md §1.3 are the same update with
``α = β = 0``, ``g = 1``, ``θ = 0``, no reset and ``φ = H`` or ``tanh``: then
``V_{t+1} = I_{t+1} = W_rec φ(V_t) + b + W_in z_t`` and ``V`` is their state
``x`` (the ``I`` slot is a copy that feeds nothing back and is not part of
their state). One kernel, parameterized by these switches, serves all cells.

Linearization (docs/model.md §3, §4). Every derivative of a layer at step ``t`` needs
only five arrays, computed once per trajectory by :func:`linearize`:

    s_t  = φ'(V_t - θ)      (σ' for spikes: the surrogate rule)
    s2_t = φ''(V_t - θ)     (σ''; enters only the flossing gradient)
    m_t                     (membrane before reset)
    ρ̂_t                    (ρ_t, or 1 when reset_grad = ignored)
    c_t                     (the diagonal of E_t: -m_t s_t for attached zero
                             reset, -θ s_t for attached subtract reset, else 0)

so that the tangent map of docs/model.md §4 reads, for a tangent ``(dV, dI)`` and the
tangent ``dz`` of the layer's input,

    dS      = s_t ⊙ dV
    dI'     = α ⊙ dI + W_in dz + W_rec dS           (+ dW_in z + dW_rec S + db)
    dm      = β ⊙ dV + g ⊙ dĨ,   dĨ = dI' (new) or dI (old)
    dV'     = ρ̂_t ⊙ dm + c_t ⊙ dV.

Array layout. Trajectory arrays are ``(B, N)`` per step (``B`` trajectories).
Tangent and adjoint blocks are ``(R, N)`` with ``R = B·K`` rows: row ``r``
belongs to trajectory ``r // K``. BPTT uses ``K = 1``; the Lyapunov spectrum
uses one trajectory and ``K = k`` tangent vectors. No kernel ever forms a
dense Jacobian: the products with ``W_in`` and ``W_rec`` are matrix products
over all rows at once.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .surrogate import heaviside, primitive, sigma_prime, sigma_second
from .lapack import gemm, qr_rows, qr_work, solve_rt_rows  # noqa: F401  (gemm is used by adjoint too)

# Switch codes used inside the kernels.
RESET_ZERO, RESET_SUBTRACT, RESET_NONE = 0, 1, 2
GRAD_DETACHED, GRAD_ATTACHED, GRAD_IGNORED = 0, 1, 2
ACT_SPIKE, ACT_TANH = 0, 1


# ---------------------------------------------------------------------------
# activation and its derivatives
# ---------------------------------------------------------------------------

@njit(cache=True, inline="always")
def tanh_derivatives(x):
    """``tanh x``, ``tanh' x = sech² x`` and ``tanh'' x = -2 tanh x sech² x``, from one tanh and one cosh.

    sech², not 1 - tanh²: the latter cancels in saturation.
    """
    t = math.tanh(x)
    ch = math.cosh(x)
    d1 = 1.0 / (ch * ch)
    return t, d1, -2.0 * t / (ch * ch)


@njit(cache=True)
def activation(v, theta, act, sur, gamma, smooth):
    """φ(v - θ): the spike H, its smooth-mode primitive Φ, or tanh."""
    x = v - theta
    if act == ACT_TANH:
        return math.tanh(x)
    if smooth:
        return primitive(x, sur, gamma)
    return heaviside(x)


@njit(cache=True)
def activation_d1(v, theta, act, sur, gamma):
    """φ'(v - θ) under the surrogate rule (docs/model.md §2)."""
    x = v - theta
    if act == ACT_TANH:
        return tanh_derivatives(x)[1]
    return sigma_prime(x, sur, gamma)


@njit(cache=True)
def activation_d2(v, theta, act, sur, gamma):
    """φ''(v - θ): σ'' for spikes."""
    x = v - theta
    if act == ACT_TANH:
        return tanh_derivatives(x)[2]
    return sigma_second(x, sur, gamma)


# ---------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------

@njit(cache=True)
def forward_step(V, I, S, z, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset,
                 act, sur, gamma, smooth, V_out, I_out, S_out):
    """One step ``(V_t, I_t, S_t, z_t) -> (V_{t+1}, I_{t+1}, S_{t+1})`` for ``B`` trajectories."""
    B, N = V.shape
    I_new = np.dot(z, W_in.T) + np.dot(S, W_rec.T)
    for bb in range(B):
        for i in range(N):
            I_next = alpha[i] * I[bb, i] + I_new[bb, i] + b[i]
            I_out[bb, i] = I_next
            I_tilde = I[bb, i] if syn_old else I_next
            m = beta[i] * V[bb, i] + g[i] * I_tilde
            if reset == RESET_ZERO:
                v = (1.0 - S[bb, i]) * m
            elif reset == RESET_SUBTRACT:
                v = m - theta * S[bb, i]
            else:
                v = m
            V_out[bb, i] = v
            S_out[bb, i] = activation(v, theta, act, sur, gamma, smooth)


def initial_states(X0, B: int) -> np.ndarray:
    """An initial state ``(N,)`` shared by all ``B`` trajectories, or one per trajectory ``(B, N)``,
    as the C-contiguous ``(B, N)`` array the layer kernels read."""
    X0 = np.asarray(X0, dtype=np.float64)
    if X0.ndim == 2 and X0.shape[0] != B:
        raise ValueError(f"a per-trajectory initial state must have {B} rows (the batch), got {X0.shape[0]}")
    return np.ascontiguousarray(np.broadcast_to(X0, (B, X0.shape[-1])))


@njit(cache=True)
def forward(z, V0, I0, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset,
            act, sur, gamma, smooth):
    """Simulate the layer for ``T = len(z)`` steps from ``(V0, I0)``, each ``(B, N)``: one
    initial state per trajectory (:func:`initial_states` broadcasts a shared one).

    Returns ``V, I, S`` of shape ``(T+1, B, N)``, steps ``0 … T``.
    """
    T, B, _ = z.shape
    N = V0.shape[1]
    V = np.empty((T + 1, B, N))
    I = np.empty((T + 1, B, N))
    S = np.empty((T + 1, B, N))
    for bb in range(B):
        for i in range(N):
            V[0, bb, i] = V0[bb, i]
            I[0, bb, i] = I0[bb, i]
            S[0, bb, i] = activation(V0[bb, i], theta, act, sur, gamma, smooth)
    for t in range(T):
        forward_step(V[t], I[t], S[t], z[t], W_in, W_rec, b, alpha, beta, g, theta,
                     syn_old, reset, act, sur, gamma, smooth, V[t + 1], I[t + 1], S[t + 1])
    return V, I, S


@njit(cache=True)
def linearize(V, I, S, alpha, beta, g, theta, syn_old, reset, reset_grad, act, sur, gamma):
    """The coefficients ``s, s2, m, ρ̂, c`` of the tangent map at every step (docs/model.md §3, §4).

    ``s, s2`` have shape ``(T+1, B, N)`` (the readout and the layer above need
    them at step ``T`` too); ``m, ρ̂, c`` have shape ``(T, B, N)``.
    """
    T1, B, N = V.shape
    T = T1 - 1
    s = np.empty((T1, B, N))
    s2 = np.empty((T1, B, N))
    m = np.empty((T, B, N))
    rho = np.ones((T, B, N))
    c = np.zeros((T, B, N))
    for t in range(T1):
        for bb in range(B):
            for i in range(N):
                s[t, bb, i] = activation_d1(V[t, bb, i], theta, act, sur, gamma)
                s2[t, bb, i] = activation_d2(V[t, bb, i], theta, act, sur, gamma)
    attached = reset_grad == GRAD_ATTACHED
    for t in range(T):
        for bb in range(B):
            for i in range(N):
                I_tilde = I[t, bb, i] if syn_old else I[t + 1, bb, i]
                mm = beta[i] * V[t, bb, i] + g[i] * I_tilde
                m[t, bb, i] = mm
                if reset == RESET_ZERO:
                    if reset_grad != GRAD_IGNORED:
                        rho[t, bb, i] = 1.0 - S[t, bb, i]
                    if attached:
                        c[t, bb, i] = -mm * s[t, bb, i]
                elif reset == RESET_SUBTRACT and attached:
                    c[t, bb, i] = -theta * s[t, bb, i]
    return s, s2, m, rho, c


# ---------------------------------------------------------------------------
# tangent (forward mode): D_t applied to a block of R = B*K rows
# ---------------------------------------------------------------------------

@njit(cache=True)
def jvp_step(K, s, rho, c, alpha, beta, g, syn_old, W_in, W_rec,
             dV, dI, dz, dV_out, dI_out, dm_out, P):
    """``(dV', dI') = D_t (dV, dI)`` for one layer at one step.

    ``s, rho, c`` are the step's coefficients ``(B, N)``; ``dz`` is the input
    tangent ``(R, n_in)`` (empty ``(0, 0)`` for an external input, which has
    none); ``P`` is ``∂F/∂θ · dθ`` per trajectory ``(B, N)`` (empty ``(0, 0)``
    for no parameter tangent). ``dm_out`` receives the tangent of ``m_t``,
    which the flossing tangent needs.
    """
    R, N = dV.shape
    dS = np.empty((R, N))
    for r in range(R):
        bb = r // K
        for i in range(N):
            dS[r, i] = s[bb, i] * dV[r, i]
    dI_new = np.dot(dS, W_rec.T)
    if dz.shape[0] > 0:
        dI_new += np.dot(dz, W_in.T)
    has_p = P.shape[0] > 0
    for r in range(R):
        bb = r // K
        for i in range(N):
            dIn = alpha[i] * dI[r, i] + dI_new[r, i]
            if has_p:
                dIn += P[bb, i]
            dI_out[r, i] = dIn
            dIt = dI[r, i] if syn_old else dIn
            dm = beta[i] * dV[r, i] + g[i] * dIt
            dm_out[r, i] = dm
            dV_out[r, i] = rho[bb, i] * dm + c[bb, i] * dV[r, i]


@njit(cache=True)
def param_tangent(z, S, dW_in, dW_rec, db):
    """``P = dW_in z + dW_rec S + db``: how a parameter tangent moves ``I_{t+1}``."""
    P = np.dot(z, dW_in.T) + np.dot(S, dW_rec.T)
    for bb in range(P.shape[0]):
        for i in range(P.shape[1]):
            P[bb, i] += db[i]
    return P


# ---------------------------------------------------------------------------
# adjoint (reverse mode): D_tᵀ applied to a block of rows
# ---------------------------------------------------------------------------

@njit(cache=True)
def vjp_step(K, rho, c, alpha, beta, g, syn_old, W_in, W_rec,
             Vbar_next, Ibar_next, mbar_extra, Vbar, Ibar, Sbar, zbar,
             z, S, gW_in, gW_rec, gb):
    """Pull ``(V̄_{t+1}, Ī_{t+1})`` back through one step of one layer.

    Accumulates into ``V̄_t, Ī_t`` (rows ``(R, N)``), into the spike adjoint
    ``S̄_t`` (the caller adds ``s_t ⊙ S̄_t`` to ``V̄_t`` once every consumer of
    ``S_t`` has contributed) and into the input adjoint ``z̄_t`` (skipped when
    ``zbar`` is empty). ``mbar_extra`` (empty to skip) is an adjoint arriving
    directly at ``m_t``; the flossing gradient injects one there.
    Parameter gradients (``gW_in, gW_rec, gb``, skipped when ``gb`` is empty)
    use the forward values ``z_t, S_t`` and are only meaningful for ``K = 1``.
    """
    R, N = Vbar_next.shape
    J = np.empty((R, N))  # adjoint of I_{t+1}
    has_extra = mbar_extra.shape[0] > 0
    for r in range(R):
        bb = r // K
        for i in range(N):
            mbar = rho[bb, i] * Vbar_next[r, i]
            if has_extra:
                mbar += mbar_extra[r, i]
            Vbar[r, i] += c[bb, i] * Vbar_next[r, i] + beta[i] * mbar
            if syn_old:
                J[r, i] = Ibar_next[r, i]
                Ibar[r, i] += g[i] * mbar
            else:
                J[r, i] = Ibar_next[r, i] + g[i] * mbar
            Ibar[r, i] += alpha[i] * J[r, i]
    Sbar += np.dot(J, W_rec)
    if zbar.shape[0] > 0:
        zbar += np.dot(J, W_in)
    if gb.shape[0] > 0:
        gW_in += np.dot(J.T, z)
        gW_rec += np.dot(J.T, S)
        for r in range(R):
            for i in range(N):
                gb[i] += J[r, i]


@njit(cache=True)
def spike_to_membrane(K, s, Sbar, Vbar):
    """``V̄_t += s_t ⊙ S̄_t``: the surrogate rule in reverse."""
    R, N = Sbar.shape
    for r in range(R):
        bb = r // K
        for i in range(N):
            Vbar[r, i] += s[bb, i] * Sbar[r, i]


# ---------------------------------------------------------------------------
# second order: the derivative of D_t Q with respect to the state and θ
# (needed by flossing, docs/model.md §7; one trajectory, K = k columns of Q as rows)
# ---------------------------------------------------------------------------

@njit(cache=True)
def _weighted_spike_tangent(W, dW, s, s2, Vdot, q):
    """Tangent of ``W (s ⊙ q)`` (rows ``q``) for ``Ẇ = dW`` and ``ṡ = s2 ⊙ V̇``.

    Both weight matrices of a layer, ``W_rec`` on its own spikes and ``W_in`` on
    the spikes of the layer below, enter ``D_t`` in this form.
    """
    K, n = q.shape
    a = np.empty((K, n))
    bq = np.empty((K, n))
    for k in range(K):
        for j in range(n):
            a[k, j] = s[j] * q[k, j]
            bq[k, j] = s2[j] * Vdot[j] * q[k, j]
    return np.dot(a, dW.T) + np.dot(bq, W.T)


@njit(cache=True)
def _weighted_spike_adjoint(J, W, s, s2, q, gW, Vbar):
    """Transpose of :func:`_weighted_spike_tangent` for the adjoint rows ``J``:
    ``gW += Jᵀ (s ⊙ q)`` and ``V̄ += s2 ⊙ Σ_k q_k ⊙ (Wᵀ J_k)``."""
    K, n = q.shape
    a = np.empty((K, n))
    for k in range(K):
        for j in range(n):
            a[k, j] = s[j] * q[k, j]
    gW += np.dot(J.T, a)
    JW = np.dot(J, W)
    for j in range(n):
        acc = 0.0
        for k in range(K):
            acc += q[k, j] * JW[k, j]
        Vbar[j] += s2[j] * acc


# ---------------------------------------------------------------------------
# the second-order kernels
# ---------------------------------------------------------------------------

@njit(cache=True)
def jvp2_step(s, s2, rho, m, theta, beta, g, syn_old, reset, reset_grad,
              W_in, W_rec, dW_in, dW_rec, qV, qm, qVpre, spre, s2pre,
              Vdot, Vdot_pre, mdot, AVdot, AIdot):
    """Accumulate ``(Ḋ_t Q)`` into ``(ȦV, ȦI)``.

    ``Ḋ_t = ∂D_t/∂x · ẋ + ∂D_t/∂θ · θ̇`` for a state tangent ``ẋ`` (``Vdot``
    of this layer, ``Vdot_pre`` of the layer below, ``mdot`` the tangent of
    ``m_t``) and a parameter tangent ``θ̇`` (``dW_in, dW_rec``). ``Q`` is given
    by its rows ``qV`` and ``qVpre`` (the rows of the layer below; empty for
    layer 1, whose input is external) and by ``qm``, the ``dm`` that
    :func:`jvp_step` wrote while forming ``A = D_t Q``. Trajectory arrays are
    ``(N,)`` vectors of the one trajectory.
    """
    K, N = qV.shape
    attached = reset_grad == GRAD_ATTACHED
    # ȧI = Ẇ_rec (s ⊙ q) + W_rec (ṡ ⊙ q) + Ẇ_in (s_pre ⊙ q_pre) + W_in (ṡ_pre ⊙ q_pre)
    AIdot_new = _weighted_spike_tangent(W_rec, dW_rec, s, s2, Vdot, qV)
    if qVpre.shape[0] > 0:
        AIdot_new += _weighted_spike_tangent(W_in, dW_in, spre, s2pre, Vdot_pre, qVpre)
    for k in range(K):
        for i in range(N):
            AIdot[k, i] += AIdot_new[k, i]
            dq_tilde = 0.0 if syn_old else AIdot_new[k, i]
            val = rho[i] * g[i] * dq_tilde
            if attached and reset == RESET_ZERO:
                rho_dot = -s[i] * Vdot[i]
                c_dot = -(mdot[i] * s[i] + m[i] * s2[i] * Vdot[i])
                val += rho_dot * qm[k, i] + c_dot * qV[k, i]
            elif attached and reset == RESET_SUBTRACT:
                val += -theta * s2[i] * Vdot[i] * qV[k, i]
            AVdot[k, i] += val


@njit(cache=True)
def vjp2_step(s, s2, rho, m, theta, beta, g, syn_old, reset, reset_grad,
              W_in, W_rec, qV, qm, qVpre, spre, s2pre, AVbar, AIbar,
              Vbar, Vbar_pre, mbar_extra, gW_in, gW_rec):
    """The transpose of :func:`jvp2_step`: pull ``Ā = (ĀV, ĀI)`` back onto the state and θ.

    Accumulates ``∂⟨Ā, D_t(x, θ) Q⟩/∂x`` into ``V̄`` (this layer) and
    ``V̄_pre`` (the layer below), ``∂/∂W`` into ``gW_in, gW_rec``, and writes
    the adjoint that reaches ``m_t`` into ``mbar_extra`` (``(N,)``), which the
    caller passes through :func:`vjp_step` together with the state adjoint, so
    that it reaches ``V_t, I_t``, the layer below and ``W_in, W_rec, b``.
    """
    K, N = qV.shape
    has_pre = qVpre.shape[0] > 0
    attached = reset_grad == GRAD_ATTACHED
    J = np.empty((K, N))  # adjoint of ȧI
    for k in range(K):
        for i in range(N):
            J[k, i] = AIbar[k, i] if syn_old else AIbar[k, i] + g[i] * rho[i] * AVbar[k, i]
    _weighted_spike_adjoint(J, W_rec, s, s2, qV, gW_rec, Vbar)
    if has_pre:
        _weighted_spike_adjoint(J, W_in, spre, s2pre, qVpre, gW_in, Vbar_pre)
    for i in range(N):
        mbar_extra[i] = 0.0
    if attached and reset != RESET_NONE:
        for i in range(N):
            w = 0.0
            for k in range(K):
                w += AVbar[k, i] * qV[k, i]
            if reset == RESET_ZERO:
                wm = 0.0
                for k in range(K):
                    wm += AVbar[k, i] * qm[k, i]
                Vbar[i] += -s[i] * wm - m[i] * s2[i] * w
                mbar_extra[i] = -s[i] * w
            else:
                Vbar[i] += -theta * s2[i] * w


# ---------------------------------------------------------------------------
# fused single-layer kernels: the whole QR iteration (spectrum) and the whole
# reverse pass of the flossing loss in one compiled call each
# ---------------------------------------------------------------------------
#
# A block of k tangent vectors of a one-layer network is stored as rows
# ``X (k, M)``: ``X[:, :N]`` the V-part, ``X[:, N:]`` the I-part (clif,
# ``has_I``); map cells have ``M = N`` and no I-part. These kernels compute
# exactly what ``network.apply_D`` / ``apply_DT``, :func:`vjp2_step` and
# ``refimpl.qr`` compute step by step (the formulas are the same, line for
# line; only the order of some sums differs, so results agree to rounding),
# without Python between the steps. Trajectory arrays are those of the one
# trajectory: ``(T+1, N)`` or ``(T, N)``.

@njit(cache=True)
def tangent_rows(s, rho, c, alpha, beta, g, syn_old, has_I, W_rec, X, Y, a, H):
    """``Y = D_t X`` for the rows ``X (k, M)`` (as :func:`jvp_step` without input or parameter tangent).

    ``a, H (k, N)`` are workspace; on return ``a = s ⊙ qV`` and ``H = a W_recᵀ``.
    """
    k = X.shape[0]
    N = W_rec.shape[0]
    for r in range(k):
        for i in range(N):
            a[r, i] = s[i] * X[r, i]
    gemm(False, True, 1.0, a, W_rec, 0.0, H)
    for r in range(k):
        for i in range(N):
            qV = X[r, i]
            qI = X[r, N + i] if has_I else 0.0
            dIn = alpha[i] * qI + H[r, i]
            dIt = qI if syn_old else dIn
            dm = beta[i] * qV + g[i] * dIt
            Y[r, i] = rho[i] * dm + c[i] * qV
            if has_I:
                Y[r, N + i] = dIn


@njit(cache=True)
def _abs_max(X):
    mx = 0.0
    for r in range(X.shape[0]):
        for i in range(X.shape[1]):
            v = abs(X[r, i])
            if v > mx:
                mx = v
    return mx


@njit(cache=True)
def _row_buffers(k, M, N):
    """Workspace of one product ``D_t Q`` and one QR on ``k`` rows: ``Y, a, H, R, tau, work``."""
    return (np.empty((k, M)), np.empty((k, N)), np.empty((k, N)), np.empty((k, k)), np.empty(k),
            qr_work(k, M))


@njit(cache=True)
def _qr_record(X, R, tau, work, diagR, amax, q):
    """Re-orthonormalize the rows ``X`` in place; record ``max|A|`` and ``diag R`` as QR step ``q``."""
    amax[q] = _abs_max(X)
    qr_rows(X, R, tau, work)
    for i in range(R.shape[0]):
        diagR[q, i] = R[i, i]


@njit(cache=True)
def benettin_rows(s, rho, c, alpha, beta, g, syn_old, has_I, W_rec, Q0rows, warmup, ons):
    """The QR iteration of docs/model.md §6 for one layer, all steps in one call.

    Returns ``diagR (n_qr, k)`` (``diag R ≥ 0`` of every QR step), ``amax (n_qr,)``
    (``max |A|`` of each factorized ``A``, for the rank test), ``pr (n_qr,)`` (the
    participation ratio of the first column of ``Q``) and the final rows of ``Q``.
    """
    T = rho.shape[0]
    k, M = Q0rows.shape
    N = W_rec.shape[0]
    n_qr = (T - warmup) // ons if T > warmup else 0
    diagR = np.empty((n_qr, k))
    amax = np.empty(n_qr)
    pr = np.empty(n_qr)
    X = Q0rows.copy()
    Y, a, H, R, tau, work = _row_buffers(k, M, N)
    q = 0
    for t in range(warmup, T):
        tangent_rows(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_rec, X, Y, a, H)
        X, Y = Y, X
        if (t + 1 - warmup) % ons == 0:
            _qr_record(X, R, tau, work, diagR, amax, q)
            s2sum = 0.0
            s4sum = 0.0
            for i in range(M):
                v2 = X[0, i] * X[0, i]
                s2sum += v2
                s4sum += v2 * v2
            pr[q] = s2sum * s2sum / s4sum
            q += 1
    return diagR, amax, pr, X


@njit(cache=True)
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
    n = T - warmup
    n_qr = n // ons
    n_ck = (n + every - 1) // every
    Qck = np.empty((n_ck + 1, k, M))
    Rs = np.empty((n_qr if every == 1 else 0, k, k))
    diagR = np.empty((n_qr, k))
    amax = np.empty(n_qr)
    X = Q0rows.copy()
    Y, a, H, R, tau, work = _row_buffers(k, M, N)
    q = 0
    for j in range(n):
        t = warmup + j
        if j % every == 0:
            Qck[j // every] = X
        tangent_rows(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_rec, X, Y, a, H)
        X, Y = Y, X
        if (j + 1) % ons == 0:
            _qr_record(X, R, tau, work, diagR, amax, q)
            if every == 1:
                Rs[q] = R
            q += 1
    Qck[n_ck] = X
    return Qck, Rs, diagR, amax


@njit(cache=True)
def _state_adjoint_step(t, s, rho, c, alpha, beta, g, syn_old, W_rec, xV, xI, mbar_extra, J1, Sb,
                        z, S, gW_inT, gW_recT, gb):
    """``(V̄_t, Ī_t) = D_tᵀ (V̄_{t+1}, Ī_{t+1})`` (+ an adjoint ``m̄`` injected at ``m_t``), in place.

    Accumulates the parameter gradients ``J zᵀ, J Sᵀ, J`` (``J``: the adjoint
    of ``I_{t+1}``, in ``J1 (1, N)``; the weight gradients transposed, skipping
    the zeros of spikes and inputs). ``Sb (1, N)`` is workspace.
    """
    N = xV.shape[0]
    for i in range(N):
        mbar = rho[t, i] * xV[i] + mbar_extra[i]
        vb = c[t, i] * xV[i] + beta[i] * mbar
        if syn_old:
            J = xI[i]
            ib = g[i] * mbar
        else:
            J = xI[i] + g[i] * mbar
            ib = 0.0
        xI[i] = ib + alpha[i] * J
        xV[i] = vb
        J1[0, i] = J
        gb[i] += J
    gemm(False, False, 1.0, J1, W_rec, 0.0, Sb)
    for i in range(N):
        xV[i] += s[t, i] * Sb[0, i]
    outer_acc_t(J1, z[t:t + 1], gW_inT)
    outer_acc_t(J1, S[t:t + 1], gW_recT)


@njit(cache=True)
def floss_backward_rows(s, s2, m, rho, c, alpha, beta, g, theta, syn_old, has_I, reset, reset_grad,
                        W_rec, z, S, Qck, Rs, rbar, warmup, ons, transient, every):
    """Reverse pass of the flossing loss for one layer (docs/derivations.md §4), all steps in one call.

    ``rbar (k,)``: ``∂L/∂ log R_ii`` of each counted QR step (``λ̄ / n_steps``).
    Returns ``gW_in, gW_rec, gb`` and the adjoint ``(V̄_0, Ī_0)`` of the initial state.
    """
    T = rho.shape[0]
    N = W_rec.shape[0]
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
    Qb = np.zeros((k, M))        # adjoint of Q_{t+1}
    Ab = np.empty((k, M))        # adjoint of A_t
    Jk = np.empty((k, N))        # adjoint of the I-part of A_t's image: Ī' + g m̄ per row
    JW = np.empty((k, N))
    a = np.empty((k, N))
    H = np.empty((k, N))
    Mx = np.empty((k, k))
    Cs = np.empty((k, k))
    vdir = np.empty(N)
    mex = np.zeros(N)
    # the W_rec gradient of the second-order term, Σ_t Jₜᵀ (s ⊙ qV), in chunks of steps
    chunk = max(1, 256 // k)
    Jc = np.empty((chunk * k, N))
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
                tangent_rows(s[t], rho[t], c[t], alpha, beta, g, syn_old, has_I, W_rec,
                             Qseg[i], Qseg[i + 1], a, H)
                if (j + 1) % ons == 0:
                    qr_rows(Qseg[i + 1], Rseg[i], tau, work)
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
                # Mx = R R̄ᵀ - Q̄ᵀ Q with R̄ = diag(rbar / diag R)
                gemm(False, True, -1.0, Qb, Qn, 0.0, Mx)
                if counted:
                    for r in range(k):
                        for cc in range(r, k):
                            Mx[r, cc] += Rq[r, cc] * (rbar[cc] / Rq[cc, cc])
                for r in range(k):
                    for cc in range(k):
                        Cs[r, cc] = Mx[r, cc] if r >= cc else Mx[cc, r]
                # Ā = (Q̄ + Q copyltu(M)) R⁻ᵀ
                Ab[:, :] = Qb
                gemm(False, False, 1.0, Cs, Qn, 1.0, Ab)
                solve_rt_rows(Rq, Ab)
            else:
                Ab[:, :] = Qb
            # ---- Q̄_t = D_tᵀ Ā (first order) and the second-order terms of ⟨Ā, D_t Q_t⟩
            for r in range(k):
                for i2 in range(N):
                    aV = Ab[r, i2]
                    aI = Ab[r, N + i2] if has_I else 0.0
                    mb = rho[t, i2] * aV
                    Qb[r, i2] = c[t, i2] * aV + beta[i2] * mb
                    if syn_old:
                        J = aI
                        ib = g[i2] * mb
                    else:
                        J = aI + g[i2] * mb
                        ib = 0.0
                    if has_I:
                        Qb[r, N + i2] = ib + alpha[i2] * J
                    Jk[r, i2] = J
                    a[r, i2] = s[t, i2] * Qt[r, i2]
            gemm(False, False, 1.0, Jk, W_rec, 0.0, JW)
            for r in range(k):
                for i2 in range(N):
                    Qb[r, i2] += s[t, i2] * JW[r, i2]
            # ∂/∂W_rec of ⟨J, W_rec (s ⊙ qV)⟩, batched over a chunk of steps
            Jc[nc * k:(nc + 1) * k] = Jk
            ac[nc * k:(nc + 1) * k] = a
            nc += 1
            if nc == chunk:
                gemm(True, False, 1.0, Jc, ac, 1.0, gW_rec)
                nc = 0
            # σ'' through s ⊙ qV, and the reset derivative (attached)
            for i2 in range(N):
                vdir[i2] = 0.0
                mex[i2] = 0.0
            for r in range(k):
                for i2 in range(N):
                    vdir[i2] += Qt[r, i2] * JW[r, i2]
            for i2 in range(N):
                vdir[i2] *= s2[t, i2]
            if attached and reset != RESET_NONE:
                if zero_att:
                    # q_m = β qV + g q̃I, the tangent of m_t along each row of Q_t
                    gemm(False, True, 1.0, a, W_rec, 0.0, H)
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
            # ---- the state adjoint x̄_t = D_tᵀ x̄_{t+1} (+ m̄ injection) + the direct terms
            _state_adjoint_step(t, s, rho, c, alpha, beta, g, syn_old, W_rec, xV, xI, mex, J1, Sb,
                                z, S, gW_inT, gW_recT, gb)
            for i2 in range(N):
                xV[i2] += vdir[i2]
    if nc > 0:
        gemm(True, False, 1.0, Jc[:nc * k], ac[:nc * k], 1.0, gW_rec)
    for i2 in range(N):
        mex[i2] = 0.0
    for t in range(warmup - 1, -1, -1):
        _state_adjoint_step(t, s, rho, c, alpha, beta, g, syn_old, W_rec, xV, xI, mex, J1, Sb,
                            z, S, gW_inT, gW_recT, gb)
    gW_in = np.ascontiguousarray(gW_inT.T)
    for i2 in range(N):
        for j in range(N):
            gW_rec[i2, j] += gW_recT[j, i2]
    return gW_in, gW_rec, gb, xV, xI


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
                for i in range(N):
                    out[r, i] += x * WT[j, i]


@njit(cache=True)
def outer_acc_t(J, X, GT):
    """``GT += Xᵀ J`` i.e. ``G += Jᵀ X`` stored transposed (``GT (n, N)``), skipping zeros of ``X``."""
    B, n = X.shape
    N = J.shape[1]
    if _nonzeros(X) > SPARSE_DENSITY * B * n:
        gemm(True, False, 1.0, X, J, 1.0, GT)
        return
    for r in range(B):
        for j in range(n):
            x = X[r, j]
            if x != 0.0:
                for i in range(N):
                    GT[j, i] += x * J[r, i]


@njit(cache=True)
def _step_linearized(V, I, S, s, I_new, b, alpha, beta, g, theta, syn_old, reset, reset_grad,
                     V_out, I_out, m, rho, c):
    """One step of :func:`forward_step` on ``(B, N)`` views, with ``m, ρ̂, c`` of :func:`linearize`."""
    B, N = V.shape
    attached = reset_grad == GRAD_ATTACHED
    for bb in range(B):
        for i in range(N):
            I_next = alpha[i] * I[bb, i] + I_new[bb, i] + b[i]
            I_out[bb, i] = I_next
            I_tilde = I[bb, i] if syn_old else I_next
            mm = beta[i] * V[bb, i] + g[i] * I_tilde
            St = S[bb, i]
            r = 1.0
            cc = 0.0
            if reset == RESET_ZERO:
                v = (1.0 - St) * mm
                if reset_grad != GRAD_IGNORED:
                    r = 1.0 - St
                if attached:
                    cc = -mm * s[bb, i]
            elif reset == RESET_SUBTRACT:
                v = mm - theta * St
                if attached:
                    cc = -theta * s[bb, i]
            else:
                v = mm
            V_out[bb, i] = v
            m[bb, i] = mm
            rho[bb, i] = r
            c[bb, i] = cc


@njit(cache=True)
def _activations(V, theta, act, sur, gamma, smooth, S, s, s2):
    B, N = V.shape
    for bb in range(B):
        for i in range(N):
            v = V[bb, i]
            if act == ACT_TANH:
                # the same values as activation, activation_d1, activation_d2, from one tanh and one cosh
                S[bb, i], s[bb, i], s2[bb, i] = tanh_derivatives(v - theta)
            else:
                S[bb, i] = activation(v, theta, act, sur, gamma, smooth)
                s[bb, i] = activation_d1(v, theta, act, sur, gamma)
                s2[bb, i] = activation_d2(v, theta, act, sur, gamma)


@njit(cache=True)
def forward_linearized(z, V0, I0, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset, reset_grad,
                       act, sur, gamma, smooth):
    """:func:`forward` and :func:`linearize` in one pass: ``V, I, S, s, s2, m, ρ̂, c``.

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
                         V[t + 1], I[t + 1], m[t], rho[t], c[t])
    return V, I, S, s, s2, m, rho, c
