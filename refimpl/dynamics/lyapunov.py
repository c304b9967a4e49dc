"""Surrogate Lyapunov spectrum by Benettin's QR method (docs/model.md §6).

Along one trajectory, an orthonormal system ``Q_t`` (``M×k``) is carried by
the surrogate tangent map, ``A = D_t Q_t``, and re-orthonormalized every
``ons`` steps, ``A = Q_{t+1} R_{t+1}`` (``diag R > 0``). The average growth
``log R_ii`` per step is the ``i``-th exponent. Because ``D_t`` is exactly the
linearization through which BPTT sends its error signals (docs/model.md §3), the
exponents measure how fast those signals grow or decay with the lag.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from refimpl.dynamics import fused
from refimpl.model.config import LyapunovConfig, NetworkConfig
from refimpl.model.network import apply_D, check_inputs, check_params, layers_of, pack, simulate, step, unpack
from refimpl.grad.qr import qr_positive


class DegenerateSpectrumWarning(UserWarning):
    """A diagonal entry of ``R`` vanished: the exponent is ``-inf``."""


class PrecisionWarning(UserWarning):
    """A product between QR steps left float64's normal range (choose a smaller ``ons``)."""


class ConditioningWarning(UserWarning):
    """A QR step so ill-conditioned that the smallest exponents, and their derivatives, are set by rounding."""


#: QR condition number above which :class:`ConditioningWarning` is raised (docs/testing.md): Householder
#: QR resolves ``R_ii`` only to about ``eps · max_j R_jj``, so exponent ``i`` carries a relative error
#: of about ``κ_i · eps`` per QR step (2e-8 at κ = 1e8), and so do its derivatives, which pass through R⁻¹
CONDITION_LIMIT = 1e8


def exponent_conditions(diag: np.ndarray) -> np.ndarray:
    """``κ_i = max_t max_j |R_jj(t)| / |R_ii(t)|`` over the QR steps (rows of ``diag``); ``inf`` where R_ii = 0."""
    d = np.abs(np.asarray(diag, dtype=float))
    if d.size == 0:
        return np.ones(d.shape[-1] if d.ndim == 2 else 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d > 0, d.max(axis=1, keepdims=True) / np.where(d > 0, d, 1.0), np.inf)
    return np.maximum(ratio.max(axis=0), 1.0)


def warn_ill_conditioned(kappa: np.ndarray, lcfg: LyapunovConfig, what: str = "exponents", stacklevel: int = 3, skip=()) -> None:
    """:class:`ConditioningWarning` naming the exponents (1-based) whose ``κ_i`` exceed :data:`CONDITION_LIMIT`.

    Exponents whose ``R_ii`` vanished (``κ_i = inf``, or the indices in ``skip``) are reported by
    :class:`DegenerateSpectrumWarning` instead."""
    bad = [i for i in np.nonzero((kappa > CONDITION_LIMIT) & np.isfinite(kappa))[0] if i not in set(skip)]
    if not bad:
        return
    warnings.warn(
        f"ill-conditioned QR steps: condition number up to {kappa[bad].max():.1e} (> {CONDITION_LIMIT:.0e}) for "
        f"{what} {[int(i) + 1 for i in bad]}, so they are set by rounding (relative error up to "
        f"{kappa[bad].max() * np.finfo(float).eps:.0e} per QR step); use "
        + (f"lyapunov.ons = 1 (now {lcfg.ons}) or " if lcfg.ons > 1 else "")
        + f"a smaller k (now {lcfg.k})",
        ConditioningWarning,
        stacklevel=stacklevel,
    )


#: below this, float64 numbers are subnormal and lose relative precision
_SUBNORMAL = np.finfo(float).tiny


@dataclass
class LyapunovResult:
    """The spectrum and its companions (all exponents in 1/step unless ``_per_ms``)."""

    exponents: np.ndarray  # (k,) λ_1 ≥ … (Benettin order, not re-sorted)
    local: np.ndarray  # (n_counted, k) log R_ii / ons at each counted QR step
    error: np.ndarray  # (k,) standard error of the mean by batch means
    n_steps: int  # time steps covered by the counted QR steps
    dt: float
    Q0: np.ndarray  # (M, k)
    Q_final: np.ndarray  # (M, k)
    participation_ratio: float  # time average of PR(Q[:, 0]) over counted steps
    qr_condition: float = 1.0  # max over QR steps of max_i R_ii / min_i R_ii (= max of kappa)
    degenerate: list = field(default_factory=list)  # (step, index) where R_ii = 0
    kappa: np.ndarray | None = None  # (k,) per exponent: max over QR steps of max_j R_jj / R_ii

    @property
    def exponents_per_ms(self) -> np.ndarray:
        return self.exponents / self.dt

    @property
    def kaplan_yorke(self) -> float:
        return kaplan_yorke(self.exponents)

    @property
    def entropy_rate(self) -> float:
        """Sum of the positive exponents (1/step)."""
        lam = self.exponents[np.isfinite(self.exponents)]
        return float(np.sum(lam[lam > 0]))


def kaplan_yorke(lam) -> float:
    """Kaplan–Yorke dimension ``j + Σ_{i≤j} λ_i / |λ_{j+1}|`` of the sorted exponents.

    With only ``k`` exponents known and a non-negative cumulative sum over all
    of them, the value ``k`` is a lower bound.
    """
    lam = np.sort(np.asarray(lam, float))[::-1]
    csum = np.cumsum(lam)
    if lam.size == 0 or csum[0] < 0:
        return 0.0
    j = int(np.max(np.nonzero(csum >= 0)[0])) + 1
    if j == lam.size or not np.isfinite(lam[j]):
        return float(j)
    return float(j + csum[j - 1] / abs(lam[j]))


def participation_ratio(v) -> float:
    """``(Σ v_i²)² / Σ v_i⁴``: how many state components a vector spreads over."""
    v2 = np.asarray(v, float) ** 2
    return float(v2.sum() ** 2 / np.sum(v2**2))


def batch_means_error(local: np.ndarray) -> np.ndarray:
    """Standard error of the time average of correlated local exponents.

    The counted local exponents are cut into ``n_b = clip(n // 10, 2, 20)``
    contiguous blocks; the error is the standard deviation of the block means
    over ``sqrt(n_b)``. Fewer than 4 counted steps give ``inf`` (no estimate).
    """
    n = local.shape[0]
    if n < 4:
        return np.full(local.shape[1], np.inf)
    nb = int(np.clip(n // 10, 2, 20))
    size = n // nb
    means = local[: nb * size].reshape(nb, size, -1).mean(axis=1)
    with np.errstate(invalid="ignore"):
        return means.std(axis=0, ddof=1) / np.sqrt(nb)


def initial_Q(M: int, k: int, seed: int = 0) -> np.ndarray:
    """``Q_0``: thin QR (positive diagonal) of a seeded standard normal ``M×k`` matrix."""
    return qr_positive(np.random.default_rng(seed).standard_normal((M, k)))[0]


def qr_steps(T: int, lcfg: LyapunovConfig):
    """For each step ``t ≥ warmup``: ``(t, is_qr, counted)`` of the schedule of docs/model.md §6."""
    out = []
    for t in range(lcfg.warmup, T):
        n = t + 1 - lcfg.warmup
        is_qr = n % lcfg.ons == 0
        counted = is_qr and (n // lcfg.ons - 1) >= lcfg.transient
        out.append((t, is_qr, counted))
    return out


def check_lyapunov(cfg: NetworkConfig, lcfg: LyapunovConfig, T: int, B: int, Q0=None) -> np.ndarray:
    """Validate the spectrum settings against the network and input; return ``Q0``."""
    M = cfg.state_size
    if lcfg.k > M:
        raise ValueError(f"lyapunov.k must be <= M = {M} (the state size), got {lcfg.k}")
    if lcfg.batch_index >= B:
        raise ValueError(f"lyapunov.batch_index must be < B = {B}, got {lcfg.batch_index}")
    n_qr = (T - lcfg.warmup) // lcfg.ons if T > lcfg.warmup else 0
    if n_qr <= lcfg.transient:
        raise ValueError(
            f"no counted QR step: T = {T}, warmup = {lcfg.warmup}, ons = {lcfg.ons} give "
            f"{n_qr} QR steps, of which lyapunov.transient = {lcfg.transient} are discarded"
        )
    if Q0 is None:
        return initial_Q(M, lcfg.k, lcfg.seed)
    Q0 = np.asarray(Q0, dtype=float)
    if Q0.shape != (M, lcfg.k) or not np.all(np.isfinite(Q0)):
        raise ValueError(f"Q0 must be a finite (M={M}, k={lcfg.k}) array, got shape {Q0.shape}")
    if not np.allclose(Q0.T @ Q0, np.eye(lcfg.k), atol=1e-10):
        raise ValueError("Q0 must have orthonormal columns (Q0ᵀ Q0 = I)")
    return Q0


def zero_diagonal(R: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Indices ``i`` with ``R_ii`` at rounding level: the direction was annihilated."""
    scale = max(np.max(np.abs(A)), np.finfo(float).tiny)
    tol = max(A.shape) * np.finfo(float).eps * scale
    return np.nonzero(np.abs(np.diag(R)) <= tol)[0]


def benettin(cfg: NetworkConfig, params: dict, traj, lcfg: LyapunovConfig, Q0: np.ndarray, on_step=None):
    """Run the QR iteration on a one-element trajectory.

    Returns ``(logs (n_counted, k), Q_final (M, k), pr_mean, kappa (k,), degenerate)``;
    ``logs`` holds ``log R_ii`` (``-inf`` where ``R_ii`` vanished). ``kappa[i]``
    is the largest ratio ``max_j R_jj / R_ii`` of any QR step
    (:func:`exponent_conditions`): exponent ``i`` and its derivatives, which
    pass through ``R⁻¹``, lose about ``log10`` of it in digits.
    ``on_step(t, Q_blocks)`` is called before each product (for checkpoints).
    """
    if on_step is None and fused_ok(cfg):
        return _benettin_fused(cfg, params, traj, lcfg, Q0)
    Ls = layers_of(cfg)
    blocks = unpack(cfg, Q0.T)
    logs, prs, degenerate, diags = [], [], [], []
    subnormal = None
    for t, is_qr, counted in qr_steps(traj.T, lcfg):
        if on_step is not None:
            on_step(t, blocks)
        blocks = apply_D(cfg, Ls, params, traj, t, blocks)
        if not is_qr:
            continue
        A = pack(cfg, blocks).T
        Q, R = qr_positive(A)
        d = np.abs(np.diag(R))
        diags.append(d)
        zero = zero_diagonal(R, A)
        with np.errstate(divide="ignore"):
            logd = np.log(d)
        if subnormal is None and np.any((d > 0) & (d < _SUBNORMAL)):
            subnormal = t
        if zero.size:
            logd[zero] = -np.inf
            if counted:
                degenerate.extend((t, int(i)) for i in zero)
        if counted:
            logs.append(logd)
            prs.append(participation_ratio(Q[:, 0]))
        blocks = unpack(cfg, Q.T)
    if subnormal is not None:
        warnings.warn(
            f"R_ii fell into the subnormal range at t = {subnormal}: the {lcfg.ons}-step "
            f"product lost relative precision; use a smaller lyapunov.ons",
            PrecisionWarning,
            stacklevel=3,
        )
    kappa = exponent_conditions(np.array(diags).reshape(len(diags), lcfg.k))
    return np.array(logs), pack(cfg, blocks).T, float(np.mean(prs)), kappa, degenerate


def fused_ok(cfg: NetworkConfig) -> bool:
    """Whether the fused one-layer kernels (:func:`refimpl.dynamics.fused.benettin_rows` etc.) apply.

    They compute the same formulas as the step-by-step path (results agree to
    rounding) for every one-layer network; multi-layer networks take the
    step-by-step path. Every deliberate fault of :mod:`refimpl.check.gradcheck` reaches
    both paths.
    """
    return cfg.n_layers == 1


def layer_arrays(cfg: NetworkConfig, params: dict, traj):
    """Contiguous per-step arrays of the one trajectory of a one-layer network, for the fused kernels.

    Returns ``(L, W_in, W_rec, s, s2, m, rho, c, z, S)``: trajectory arrays are
    ``(T+1, N)`` (``s, s2, S``) or ``(T, N)``; ``z (T, n_in)`` is the input.
    """
    L = layers_of(cfg)[0]
    s, s2, m, rho, c = (np.ascontiguousarray(a[:, 0]) for a in traj.lin[0])
    return (L, params["layer1/W_in"], params["layer1/W_rec"], s, s2, m, rho, c,
        np.ascontiguousarray(traj.Z[0][:, 0]), np.ascontiguousarray(traj.S[0][:, 0]))  # fmt: skip


def qr_diagnostics(diagR: np.ndarray, amax: np.ndarray, M: int):
    """Per QR step: ``log R_ii`` (``-inf`` where ``R_ii`` vanished, see :func:`zero_diagonal`) and the zero mask."""
    tol = M * np.finfo(float).eps * np.maximum(amax, np.finfo(float).tiny)
    zero = np.abs(diagR) <= tol[:, None]
    with np.errstate(divide="ignore"):
        logd = np.log(np.abs(diagR))
    logd[zero] = -np.inf
    return logd, zero


def _benettin_fused(cfg, params, traj, lcfg, Q0):
    """:func:`benettin` in one compiled call (one-layer networks)."""
    L, _, W_rec, s, _, _, rho, c, _, _ = layer_arrays(cfg, params, traj)
    has_I = cfg.cell == "clif"
    diagR, amax, pr, Xf = fused.benettin_rows(s, rho, c, L.alpha, L.beta, L.g, L.syn_old, has_I, W_rec,
        np.ascontiguousarray(Q0.T), lcfg.warmup, lcfg.ons)  # fmt: skip
    M = Q0.shape[0]
    logd, zero = qr_diagnostics(diagR, amax, max(M, Q0.shape[1]))
    d = np.abs(diagR)
    kappa = exponent_conditions(d)
    sub = np.nonzero(np.any((d > 0) & (d < _SUBNORMAL), axis=1))[0]
    counted = np.arange(d.shape[0]) >= lcfg.transient
    degenerate = [(lcfg.warmup + (q + 1) * lcfg.ons - 1, int(i)) for q, i in zip(*np.nonzero(zero)) if counted[q]]
    if sub.size:
        t = lcfg.warmup + (sub[0] + 1) * lcfg.ons - 1
        warnings.warn(
            f"R_ii fell into the subnormal range at t = {t}: the {lcfg.ons}-step "
            f"product lost relative precision; use a smaller lyapunov.ons",
            PrecisionWarning,
            stacklevel=4,
        )
    return logd[counted], Xf.T.copy(), float(np.mean(pr[counted])), kappa, degenerate


def spectrum(cfg: NetworkConfig, params: dict, inputs, lcfg: LyapunovConfig, Q0=None) -> LyapunovResult:
    """The surrogate Lyapunov spectrum of docs/model.md §6 (``k`` exponents, 1/step)."""
    params = check_params(cfg, params)
    inputs = check_inputs(cfg, inputs)
    Q0 = check_lyapunov(cfg, lcfg, inputs.shape[0], inputs.shape[1], Q0)
    b = lcfg.batch_index
    traj = simulate(cfg, params, inputs[:, b : b + 1], check=False)
    logs, Qf, pr, kappa, degenerate = benettin(cfg, params, traj, lcfg, Q0)
    n_steps = logs.shape[0] * lcfg.ons
    lam = logs.sum(axis=0) / n_steps
    if degenerate:
        idx = sorted({i for _, i in degenerate})
        warnings.warn(
            f"R_ii = 0 at {len(degenerate)} counted QR step(s) (first at t = {degenerate[0][0]}) for "
            f"exponent(s) {[i + 1 for i in idx]}: the tangent map annihilated those directions "
            f"(a zero-reset row of D_t when reset='zero' and reset_grad!='ignored', or k = {lcfg.k} "
            f"above the rank of D_t); they are reported as -inf",
            DegenerateSpectrumWarning,
            stacklevel=2,
        )
    warn_ill_conditioned(kappa, lcfg, skip={i for _, i in degenerate})
    local = logs / lcfg.ons
    return LyapunovResult(lam, local, batch_means_error(local), n_steps, cfg.dt, Q0, Qf, pr,
        float(kappa.max()) if kappa.size else 1.0, degenerate, kappa)  # fmt: skip


def direct_lambda1(cfg: NetworkConfig, params: dict, inputs, lcfg: LyapunovConfig, eps: float = 1e-7, v0=None) -> float:
    """λ₁ from two nearby trajectories simulated directly (no Jacobian).

    The perturbed copy starts at ``x + ε v0`` (``v0`` defaults to the first
    column of the seeded ``Q_0``) and is renormalized to distance ``ε`` every
    step. In smooth mode with ``reset_grad = attached`` the Jacobian-based λ₁
    must agree with this within the convergence error (docs/model.md §8).
    """
    params = check_params(cfg, params)
    inputs = check_inputs(cfg, inputs)
    b = lcfg.batch_index
    traj = simulate(cfg, params, inputs[:, b : b + 1], check=False)
    from refimpl.model.network import state_at

    v = initial_Q(cfg.state_size, lcfg.k, lcfg.seed)[:, 0] if v0 is None else np.asarray(v0, float)
    v = v / np.linalg.norm(v)
    total, count = 0.0, 0
    x_pert = None
    for t, is_qr, counted in qr_steps(traj.T, lcfg):
        if x_pert is None:
            x_pert = state_at(cfg, traj, t) + eps * v
        x_next = state_at(cfg, traj, t + 1)
        x_pert = step(cfg, params, x_pert, inputs[t, b])
        if is_qr:
            d = x_pert - x_next
            nd = np.linalg.norm(d)
            if counted:
                total += np.log(nd / eps)
                count += 1
            x_pert = x_next + eps * d / nd
    return total / (count * lcfg.ons)
