"""Surrogate gradient flossing: the loss ``(1/k) Σ (λ_i - λ*)²`` and its exact gradient (docs/model.md §7).

The exponents come out of the QR iteration of :mod:`refimpl.dynamics.lyapunov`, so
their gradient runs backward through every QR step (the analytic reverse
rule of :mod:`refimpl.grad.qr`), through every product ``A_t = D_t Q_t`` (with
respect to ``Q_t``: ``D_tᵀ Ā``; with respect to the state and the weights
inside ``D_t``: :func:`cell.vjp2_step`, where ``σ''`` enters) and through the
states themselves (BPTT of the state trajectory, which carries the
dependence of every ``D_t`` on earlier parameters back to ``x_0``).

Memory. Reverse mode needs ``Q_t`` at every step ``t ≥ warmup``. Stored
outright that is ``(T - warmup)·M·k`` doubles, plus ``n_QR·k²`` for the ``R``
factors. With ``checkpoint_every = c`` only every ``c``-th ``Q_t`` is kept and
each segment is recomputed during the backward pass: ``(⌈(T - warmup)/c⌉ + c)·M·k``
doubles for one extra forward product (and QR) per step; the one-layer
kernels recompute the segment's ``R`` factors too (``c·k²``). Both add the
trajectory and its linearization, about ``(3 + 5)·(T+1)·Σ N_l`` doubles.
One-layer networks run the whole forward and reverse pass in two compiled
calls (:func:`refimpl.dynamics.fused.floss_forward_rows`, :func:`~refimpl.dynamics.fused.floss_backward_rows`;
docs/performance.md); the step-by-step code below serves deeper networks, and
the two are compared on one-layer networks (tests/test_bench.py).

The forward-mode :func:`directional_derivative` differentiates the same
computation with the QR tangent rule and :func:`cell.jvp2_step`; it shares
no reverse-mode code and is the independent check of docs/model.md §8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.model import cell
from refimpl.dynamics import fused
from refimpl.model.config import FlossConfig, LyapunovConfig, NetworkConfig
from refimpl.dynamics.lyapunov import (zero_diagonal, check_lyapunov, exponent_conditions, fused_ok, layer_arrays,
    qr_diagnostics, qr_steps, warn_ill_conditioned)  # fmt: skip
from refimpl.model.network import (EMPTY2, apply_D, apply_DT, check_inputs, check_params, initial_state_names,
    layers_of, pack, param_shapes, simulate, unpack)  # fmt: skip
from refimpl.grad.qr import qr_jvp, qr_positive, qr_reverse_rows


class FlossingError(ValueError):
    """The flossing loss is not differentiable here (a vanished ``R_ii``)."""


@dataclass
class FlossResult:
    loss: float
    exponents: np.ndarray  # (k,) 1/step
    grads: dict  # flossed parameter name -> gradient
    n_steps: int


def flossed_keys(cfg: NetworkConfig, fcfg: FlossConfig) -> list:
    allowed = set(initial_state_names(cfg)) | {"W_in", "W_rec", "b"}
    bad = [p for p in fcfg.params if p not in allowed]
    if bad:
        raise ValueError(f"flossing.params {bad} do not exist for cell={cfg.cell!r}; choose from {sorted(allowed)}")
    return [k for k in param_shapes(cfg) if k.split("/")[1] in fcfg.params and k.startswith("layer")]


def _degenerate_error(t, idx, lcfg):
    return FlossingError(
        f"R_ii = 0 at step t = {t} for exponent(s) {[int(i) + 1 for i in idx]}: λ is -inf and the "
        f"flossing loss has no gradient. Use a smaller lyapunov.k (now {lcfg.k}), or reset_grad = "
        f"'ignored' so that zero-reset rows do not annihilate tangent directions."
    )


def _qr_or_refuse(A, t, lcfg):
    """QR of ``A`` with positive diagonal; a vanished ``R_ii`` makes flossing refuse."""
    Q, R = qr_positive(A)
    zero = zero_diagonal(R, A)
    if zero.size:
        raise _degenerate_error(t, zero, lcfg)
    return Q, R


def _prepare(cfg, params, inputs, lcfg, Q0):
    params = check_params(cfg, params)
    inputs = check_inputs(cfg, inputs)
    Q0 = check_lyapunov(cfg, lcfg, inputs.shape[0], inputs.shape[1], Q0)
    b = lcfg.batch_index
    traj = simulate(cfg, params, inputs[:, b : b + 1], check=False)
    return params, traj, Q0


def value_and_grad(cfg: NetworkConfig, params: dict, inputs, lcfg: LyapunovConfig,
        fcfg: FlossConfig = FlossConfig(), Q0=None, checkpoint_every: int | None = None) -> FlossResult:  # fmt: skip
    """Flossing loss and its exact reverse-mode gradient for the flossed parameters."""
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be None or an integer >= 1, got {checkpoint_every!r}")
    keys = flossed_keys(cfg, fcfg)
    params, traj, Q0 = _prepare(cfg, params, inputs, lcfg, Q0)
    if fused_ok(cfg):
        return _value_and_grad_fused(cfg, params, traj, lcfg, fcfg, Q0, checkpoint_every or 1, keys)
    Ls = layers_of(cfg)
    sched = qr_steps(traj.T, lcfg)
    c = checkpoint_every or 1

    # ---- forward: the QR iteration, keeping Q_t at the checkpoints and every R
    checkpoints = {}
    Rs, logs = {}, []
    blocks = unpack(cfg, Q0.T)
    for j, (t, is_qr, counted) in enumerate(sched):
        if j % c == 0:
            checkpoints[t] = blocks
        blocks = apply_D(cfg, Ls, params, traj, t, blocks)
        if is_qr:
            Q, R = _qr_or_refuse(pack(cfg, blocks).T, t, lcfg)
            Rs[t] = R
            if counted:
                logs.append(np.log(np.diag(R)))
            blocks = unpack(cfg, Q.T)
    n_steps = len(logs) * lcfg.ons
    lam = np.sum(logs, axis=0) / n_steps
    diag = np.array([np.diag(R) for R in Rs.values()]).reshape(len(Rs), lcfg.k)
    warn_ill_conditioned(exponent_conditions(diag), lcfg, "exponents (and their flossing gradient)")
    k = lcfg.k
    loss = float(np.mean((lam - fcfg.target) ** 2))
    lam_bar = 2.0 * (lam - fcfg.target) / k

    # ---- backward
    grads = {key: np.zeros(shape) for key, shape in param_shapes(cfg).items()}
    xbar = [(np.zeros((1, L.N)), np.zeros((1, L.N))) for L in Ls]  # adjoint of x_{t+1}
    Qbar = [(np.zeros((k, L.N)), np.zeros((k, L.N))) for L in Ls]  # adjoint of Q_{t+1}
    counted_steps = {t for t, _, counted in sched if counted}
    starts = sorted(checkpoints)
    seg_end = traj.T
    for t0 in reversed(starts):
        # recompute Q_t (inputs of each product) inside the segment [t0, seg_end)
        seg = [row for row in sched if t0 <= row[0] < seg_end]
        Qin = {}
        blocks = checkpoints[t0]
        for t, is_qr, _ in seg:
            Qin[t] = blocks
            blocks = apply_D(cfg, Ls, params, traj, t, blocks)
            if is_qr:
                blocks = unpack(cfg, qr_positive(pack(cfg, blocks).T)[0].T)
        for t, is_qr, _ in reversed(seg):
            _flossing_step_backward(cfg, Ls, params, traj, t, is_qr, t in counted_steps, Qin[t], Rs.get(t),
                lam_bar / n_steps, Qbar, xbar, grads)  # fmt: skip
        seg_end = t0
    # states before warmup: plain BPTT of the state adjoint
    for t in range(lcfg.warmup - 1, -1, -1):
        xbar = apply_DT(cfg, Ls, params, traj, t, xbar, grads=grads)
    names = initial_state_names(cfg)
    for l in range(len(Ls)):
        grads[f"layer{l + 1}/{names[0]}"] += xbar[l][0][0]
        if len(names) == 2:
            grads[f"layer{l + 1}/{names[1]}"] += xbar[l][1][0]
    return FlossResult(loss, lam, {key: grads[key] for key in keys}, n_steps)


def _value_and_grad_fused(cfg, params, traj, lcfg, fcfg, Q0, every, keys):
    """:func:`value_and_grad` for one-layer networks: one compiled call forward, one backward.

    Same schedule, same formulas and same memory plan as the step-by-step
    path (docs/derivations.md §4); with ``every > 1`` the ``R`` factors are
    recomputed inside each segment too, so only the checkpoints are stored.
    """
    L, W_in, W_rec, s, s2, m, rho, c, z, S = layer_arrays(cfg, params, traj)
    traj.V = traj.I = traj.lin = None  # the kernels need only the arrays above: free the rest
    if not (L.reset_grad == cell.GRAD_ATTACHED and L.reset == cell.RESET_ZERO):
        m = np.zeros((0, m.shape[1]))  # m_t enters only for attached zero reset
    has_I = cfg.cell == "clif"
    Qck, Rs, diagR, amax = fused.floss_forward_rows(s, rho, c, L.alpha, L.beta, L.g, L.syn_old, has_I, W_rec,
        np.ascontiguousarray(Q0.T), lcfg.warmup, lcfg.ons, every)  # fmt: skip
    logd, zero = qr_diagnostics(diagR, amax, max(Q0.shape))
    bad = np.nonzero(zero.any(axis=1))[0]
    if bad.size:
        q = bad[0]
        raise _degenerate_error(lcfg.warmup + (q + 1) * lcfg.ons - 1, np.nonzero(zero[q])[0], lcfg)
    warn_ill_conditioned(exponent_conditions(diagR), lcfg, "exponents (and their flossing gradient)", stacklevel=4)
    logs = logd[lcfg.transient :]
    n_steps = logs.shape[0] * lcfg.ons
    lam = np.sum(logs, axis=0) / n_steps
    k = lcfg.k
    loss = float(np.mean((lam - fcfg.target) ** 2))
    rbar = 2.0 * (lam - fcfg.target) / k / n_steps
    gW_in, gW_rec, gb, V0bar, I0bar = fused.floss_backward_rows(s, s2, m, rho, c, L.alpha, L.beta, L.g, L.theta,
        L.syn_old, has_I, L.reset, L.reset_grad, W_rec, z, S, Qck, Rs, rbar, lcfg.warmup, lcfg.ons,
        lcfg.transient, every)  # fmt: skip
    del Qck, Rs
    names = initial_state_names(cfg)
    grads = {"layer1/W_in": gW_in, "layer1/W_rec": gW_rec, "layer1/b": gb, f"layer1/{names[0]}": V0bar}
    if len(names) == 2:
        grads[f"layer1/{names[1]}"] = I0bar
    return FlossResult(loss, lam, {key: grads[key] for key in keys}, n_steps)


def _flossing_step_backward(cfg, Ls, params, traj, t, is_qr, counted, Qt, R, lam_bar_per_step, Qbar, xbar, grads):
    """One step of the reverse pass; updates ``Qbar`` and ``xbar`` in place (to step ``t``)."""
    A_blocks, dms = apply_D(cfg, Ls, params, traj, t, Qt, want_dm=True)
    Qbar_mat = pack(cfg, Qbar).T
    if is_qr:
        Q_next = qr_positive(pack(cfg, A_blocks).T)[0]
        # the reverse rule for R̄ = diag(λ̄ / diag R) (counted steps) or 0, in rows (refimpl.grad.qr)
        k = R.shape[0]
        Abar_rows = np.empty((k, Q_next.shape[0]))
        qr_reverse_rows(np.ascontiguousarray(Q_next.T), np.ascontiguousarray(R), np.ascontiguousarray(Qbar_mat.T),
            np.ascontiguousarray(lam_bar_per_step, dtype=np.float64), counted, np.empty((k, k)), np.empty((k, k)),
            Abar_rows)  # fmt: skip
        Abar = Abar_rows.T
    else:
        Abar = Qbar_mat
    Abar_blocks = unpack(cfg, Abar.T)
    # Q̄_t = D_tᵀ Ā
    Qbar[:] = apply_DT(cfg, Ls, params, traj, t, Abar_blocks)
    # ∂⟨Ā, D_t(x_t, θ) Q_t⟩ / ∂(x_t, θ): the second-order terms (σ'', reset derivative)
    Vbar_direct = [np.zeros(L.N) for L in Ls]
    mbar_extra = []
    for l, L in enumerate(Ls):
        s, s2, m, rho, _ = traj.lin[l]
        p = f"layer{l + 1}/"
        if l > 0:
            qVpre, spre, s2pre = Qt[l - 1][0], traj.lin[l - 1].s[t, 0], traj.lin[l - 1].s2[t, 0]
            Vbar_pre = Vbar_direct[l - 1]
        else:
            qVpre, spre, s2pre, Vbar_pre = EMPTY2, np.zeros(0), np.zeros(0), np.zeros(0)
        mb = np.zeros(L.N)
        cell.vjp2_step(s[t, 0], s2[t, 0], rho[t, 0], m[t, 0], L.theta, L.beta, L.g, L.syn_old, L.reset,
            L.reset_grad, params[p + "W_in"], params[p + "W_rec"], Qt[l][0], dms[l], qVpre, spre, s2pre,
            Abar_blocks[l][0], Abar_blocks[l][1], Vbar_direct[l], Vbar_pre, mb, grads[p + "W_in"],
            grads[p + "W_rec"])  # fmt: skip
        mbar_extra.append(mb[None])
    # state adjoint: x̄_t = D_tᵀ x̄_{t+1} (+ the m̄ injection), plus the direct terms
    xbar[:] = apply_DT(cfg, Ls, params, traj, t, xbar, mbar_extra=mbar_extra, grads=grads)
    for l in range(len(Ls)):
        xbar[l][0][0] += Vbar_direct[l]


def directional_derivative(cfg: NetworkConfig, params: dict, inputs, lcfg: LyapunovConfig, fcfg: FlossConfig,
        dparams: dict, Q0=None) -> float:  # fmt: skip
    """``d L_floss`` along the parameter tangent ``dparams``, in forward mode.

    ``dparams`` is a dict like ``params``; only the layer parameters enter
    (the readout does not affect the exponents).
    """
    params, traj, Q0 = _prepare(cfg, params, inputs, lcfg, Q0)
    dparams = check_params(cfg, dparams, name="dparams")
    Ls = layers_of(cfg)
    k = lcfg.k
    names = initial_state_names(cfg)
    # ẋ_0 from the tangent of the initial state
    xdot = [
        (
            dparams[f"layer{l + 1}/{names[0]}"][None].copy(),
            dparams[f"layer{l + 1}/{names[1]}"][None].copy() if len(names) == 2 else np.zeros((1, L.N)),
        )
        for l, L in enumerate(Ls)
    ]
    blocks = unpack(cfg, Q0.T)
    Qdot = [(np.zeros((k, L.N)), np.zeros((k, L.N))) for L in Ls]
    sched = {t: (is_qr, counted) for t, is_qr, counted in qr_steps(traj.T, lcfg)}
    logs, dlogs = [], []
    for t in range(traj.T):
        xdot_next, mdot = apply_D(cfg, Ls, params, traj, t, xdot, want_dm=True, dparams=dparams)
        if t in sched:
            is_qr, counted = sched[t]
            A, qms = apply_D(cfg, Ls, params, traj, t, blocks, want_dm=True)
            Adot = apply_D(cfg, Ls, params, traj, t, Qdot)
            for l, L in enumerate(Ls):
                s, s2, m, rho, _ = traj.lin[l]
                p = f"layer{l + 1}/"
                if l > 0:
                    qVpre, spre, s2pre = blocks[l - 1][0], traj.lin[l - 1].s[t, 0], traj.lin[l - 1].s2[t, 0]
                    Vdot_pre = xdot[l - 1][0][0]
                else:
                    qVpre, spre, s2pre, Vdot_pre = EMPTY2, np.zeros(0), np.zeros(0), np.zeros(0)
                cell.jvp2_step(s[t, 0], s2[t, 0], rho[t, 0], m[t, 0], L.theta, L.beta, L.g, L.syn_old, L.reset,
                    L.reset_grad, params[p + "W_in"], params[p + "W_rec"], dparams[p + "W_in"],
                    dparams[p + "W_rec"], blocks[l][0], qms[l], qVpre, spre, s2pre, xdot[l][0][0], Vdot_pre,
                    mdot[l][0], Adot[l][0], Adot[l][1])  # fmt: skip
            if is_qr:
                Q, R = _qr_or_refuse(pack(cfg, A).T, t, lcfg)
                dQ, dR = qr_jvp(Q, R, pack(cfg, Adot).T)
                if counted:
                    logs.append(np.log(np.diag(R)))
                    dlogs.append(np.diag(dR) / np.diag(R))
                blocks, Qdot = unpack(cfg, Q.T), unpack(cfg, dQ.T)
            else:
                blocks, Qdot = A, Adot
        xdot = xdot_next
    n_steps = len(logs) * lcfg.ons
    lam = np.sum(logs, axis=0) / n_steps
    lam_dot = np.sum(dlogs, axis=0) / n_steps
    return float(np.sum(2.0 * (lam - fcfg.target) * lam_dot) / k)


def loss(cfg: NetworkConfig, params: dict, inputs, lcfg: LyapunovConfig, fcfg: FlossConfig = FlossConfig(), Q0=None) -> float:
    """The flossing loss alone (for finite differences and monitoring)."""
    from refimpl.dynamics.lyapunov import spectrum

    lam = spectrum(cfg, params, inputs, lcfg, Q0).exponents
    return float(np.mean((lam - fcfg.target) ** 2))
