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
only five arrays, computed once per trajectory with the forward pass
(:func:`refimpl.model.forward.forward_linearized`, :class:`refimpl.model.network.Linearization`):

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

from refimpl.model.surrogate import heaviside, primitive, sigma_prime, sigma_second
from refimpl.linalg.lapack import gemm, qr_rows, qr_work  # noqa: F401  (gemm is used by adjoint too)

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


@njit(cache=True, inline="always")
def activation(v, theta, act, sur, gamma, smooth):
    """φ(v - θ): the spike H, its smooth-mode primitive Φ, or tanh."""
    x = v - theta
    if act == ACT_TANH:
        return math.tanh(x)
    if smooth:
        return primitive(x, sur, gamma)
    return heaviside(x)


@njit(cache=True, inline="always")
def activation_derivative(v, theta, act, sur, gamma, order):
    """φ'(v - θ) (``order`` 1; σ' for spikes: the surrogate rule of docs/model.md §2) or φ''(v - θ)
    (``order`` 2; σ'' for spikes, which enters only the flossing gradient)."""
    x = v - theta
    if act == ACT_TANH:
        return tanh_derivatives(x)[order]
    return sigma_prime(x, sur, gamma) if order == 1 else sigma_second(x, sur, gamma)


# ---------------------------------------------------------------------------
# the per-neuron formulas, written once: every kernel (the step kernels below, the batched forward
# pass of refimpl.model.forward, the BPTT kernel of refimpl.grad.adjoint and the fused kernels of
# refimpl.dynamics.fused) computes a neuron's update, its D_t and its D_tᵀ with these
# ---------------------------------------------------------------------------


@njit(cache=True, inline="always")
def membrane(V, I, I_new, b, alpha, beta, g, syn_old):
    """``I_{t+1} = α I_t + I_new + b`` and ``m_t = β V_t + g Ĩ_t`` of one neuron (the module docstring).

    Linear in ``(V, I, I_new, b)``, so the tangent is the same formula on tangents (``b`` → the
    parameter tangent ``P``): :func:`tangent_element` calls it that way."""
    I_next = alpha * I + I_new + b
    I_tilde = I if syn_old else I_next
    return I_next, beta * V + g * I_tilde


@njit(cache=True, inline="always")
def reset_rho(S, reset, reset_grad):
    """``ρ̂_t`` of one neuron (docs/model.md §3): ``1 - S_t`` for the zero reset, else 1 (and 1 when the
    reset's gradient is ignored). A function of ``S_t`` alone, so BPTT need not store it."""
    if reset == RESET_ZERO and reset_grad != GRAD_IGNORED:
        return 1.0 - S
    return 1.0


@njit(cache=True, inline="always")
def reset_element(m, S, s, theta, reset, reset_grad):
    """``V_{t+1}`` from ``m_t`` and ``S_t``, with the linearization coefficients ``ρ̂_t`` and ``c_t``
    (docs/model.md §3): ``(v, rho, c)``. ``s = σ'(V_t - θ)`` enters only ``c`` (attached resets)."""
    r = reset_rho(S, reset, reset_grad)
    cc = 0.0
    if reset == RESET_ZERO:
        v = (1.0 - S) * m
        if reset_grad == GRAD_ATTACHED:
            cc = -m * s
    elif reset == RESET_SUBTRACT:
        v = m - theta * S
        if reset_grad == GRAD_ATTACHED:
            cc = -theta * s
    else:
        v = m
    return v, r, cc


@njit(cache=True, inline="always")
def tangent_element(dV, dI, dI_new, p, rho, c, alpha, beta, g, syn_old):
    """``D_t`` of one neuron (docs/model.md §4): ``(dV', dI', dm)`` from the tangent ``(dV, dI)``, the
    tangent ``dI_new = (W_in dz + W_rec dS)_i`` of the synaptic input and a parameter tangent ``p``."""
    dIn, dm = membrane(dV, dI, dI_new, p, alpha, beta, g, syn_old)
    return rho * dm + c * dV, dIn, dm


@njit(cache=True, inline="always")
def adjoint_element(Vbar_next, Ibar_next, mbar_extra, rho, c, alpha, beta, g, syn_old):
    """``D_tᵀ`` of one neuron, the transpose of :func:`tangent_element`: ``(V̄_t, Ī_t, J)`` from
    ``(V̄_{t+1}, Ī_{t+1})`` and an adjoint ``mbar_extra`` arriving directly at ``m_t``; ``J`` is the
    adjoint of ``I_{t+1}``, which the caller sends on through ``W_rec`` and ``W_in`` (and
    ``s_t ⊙ (W_recᵀ J)`` is added to ``V̄_t`` once every consumer of ``S_t`` has contributed)."""
    mbar = rho * Vbar_next + mbar_extra
    vb = c * Vbar_next + beta * mbar
    if syn_old:
        J = Ibar_next
        ib = g * mbar
    else:
        J = Ibar_next + g * mbar
        ib = 0.0
    return vb, ib + alpha * J, J


# ---------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------


@njit(cache=True)
def forward_step(V, I, S, z, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset, act, sur, gamma, smooth, V_out, I_out, S_out):
    """One step ``(V_t, I_t, S_t, z_t) -> (V_{t+1}, I_{t+1}, S_{t+1})`` for ``B`` trajectories."""
    B, N = V.shape
    I_new = np.dot(z, W_in.T) + np.dot(S, W_rec.T)
    for bb in range(B):
        for i in range(N):
            I_out[bb, i], m = membrane(V[bb, i], I[bb, i], I_new[bb, i], b[i], alpha[i], beta[i], g[i], syn_old)
            v = reset_element(m, S[bb, i], 0.0, theta, reset, GRAD_DETACHED)[0]
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
def forward(z, V0, I0, W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset, act, sur, gamma, smooth):
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
        forward_step(V[t], I[t], S[t], z[t], W_in, W_rec, b, alpha, beta, g, theta, syn_old, reset, act, sur,
            gamma, smooth, V[t + 1], I[t + 1], S[t + 1])  # fmt: skip
    return V, I, S


# ---------------------------------------------------------------------------
# tangent (forward mode): D_t applied to a block of R = B*K rows
# ---------------------------------------------------------------------------


@njit(cache=True)
def jvp_step(K, s, rho, c, alpha, beta, g, syn_old, W_in, W_rec, dV, dI, dz, dV_out, dI_out, dm_out, P):
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
            p = P[bb, i] if has_p else 0.0
            dV_out[r, i], dI_out[r, i], dm_out[r, i] = tangent_element(dV[r, i], dI[r, i], dI_new[r, i], p,
                rho[bb, i], c[bb, i], alpha[i], beta[i], g[i], syn_old)  # fmt: skip


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
def vjp_step(K, rho, c, alpha, beta, g, syn_old, W_in, W_rec, Vbar_next, Ibar_next, mbar_extra, Vbar, Ibar, Sbar,
        zbar, z, S, gW_in, gW_rec, gb):  # fmt: skip
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
            extra = mbar_extra[r, i] if has_extra else 0.0
            vb, ib, J[r, i] = adjoint_element(Vbar_next[r, i], Ibar_next[r, i], extra, rho[bb, i], c[bb, i],
                alpha[i], beta[i], g[i], syn_old)  # fmt: skip
            Vbar[r, i] += vb
            Ibar[r, i] += ib
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
def jvp2_step(s, s2, rho, m, theta, beta, g, syn_old, reset, reset_grad, W_in, W_rec, dW_in, dW_rec, qV, qm,
        qVpre, spre, s2pre, Vdot, Vdot_pre, mdot, AVdot, AIdot):  # fmt: skip
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
def vjp2_step(s, s2, rho, m, theta, beta, g, syn_old, reset, reset_grad, W_in, W_rec, qV, qm, qVpre, spre, s2pre,
        AVbar, AIbar, Vbar, Vbar_pre, mbar_extra, gW_in, gW_rec):  # fmt: skip
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
