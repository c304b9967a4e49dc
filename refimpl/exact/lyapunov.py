"""The exact Lyapunov spectrum of an event-driven network (docs/exact.md §8), in 1/s.

The tangent map of the exact dynamics is the flow's linear map between events and, at each spike, the
saltation matrix of the jump at a state-dependent time (the same rule that carries the parameter
sensitivities, without the parameter terms). Tangent vectors are carried through stretches of
``qr_every`` ms and re-orthonormalized by QR (Benettin's method); the exponents are the time averages
of ``log R_ii`` after a transient.

Checks that hold exactly for this map: the determinant of the flow over ``Δ`` is
``e^{-N Δ (1/τ_m + 1/τ_s)}`` and that of a spike's saltation is ``v⁺/v⁻`` (``V'`` after over before), so
the sum of all ``2N`` exponents equals ``-N (1/τ_m + 1/τ_s) + (1/T) Σ_k log|v⁺_k / v⁻_k|``
(``log_det_rate``); an uncoupled silent network has exponents ``-1/τ_m`` and ``-1/τ_s``; an autonomous
network that fires has a zero exponent along its flow.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from refimpl.checks import check_float, check_int
from refimpl.exact.events import ExactConfig, GrazingCrossingWarning, check_events, run_tangent_segment, stack_weights
from refimpl.grad.qr import qr_positive


class ExactSpectrum(NamedTuple):
    """``exponents`` (1/s, descending), their batch-means standard errors (1/s), the counted time (ms),
    the number of spikes in it, the time average of ``log|det|`` of the tangent map (1/s; equals the sum
    of all ``2N`` exponents when ``k = 2N``) and the number of grazing crossings."""

    exponents: np.ndarray
    error: np.ndarray
    T_counted: float
    n_spikes: int
    log_det_rate: float
    n_grazing: int


def spectrum(cfg: ExactConfig, params: dict, input_times, input_units, t_end: float, *, k: int | None = None,
        qr_every: float = 1.0, transient: float = 0.0, V0=None, I0=None, seed: int = 0,
        fault: int = 0) -> ExactSpectrum:  # fmt: skip
    """The ``k`` largest exponents (default all ``2N``) of the exact network under the given input spikes,
    QR every ``qr_every`` ms, counting from ``transient`` ms to ``t_end``. ``fault`` (tests only) drops a
    term of the saltation."""
    if not isinstance(cfg, ExactConfig):
        raise ValueError(f"cfg must be an ExactConfig, got {type(cfg).__name__}")
    if cfg.t_ref != 0.0:
        raise ValueError(f"the exact spectrum needs t_ref = 0 (refractoriness has no tangent map here yet), got {cfg.t_ref}")
    N = cfg.n_neurons
    k = 2 * N if k is None else check_int("k", k, lo=1, hi=2 * N)
    t_end = check_float("t_end", t_end, lo=0.0, lo_open=True)
    qr_every = check_float("qr_every", qr_every, lo=0.0, lo_open=True)
    transient = check_float("transient", transient, lo=0.0)
    if transient >= t_end:
        raise ValueError(f"transient must be shorter than t_end = {t_end}, got {transient}")
    weights = stack_weights(cfg, params)
    in_t, in_u = check_events(input_times, input_units, cfg.n_in)
    V = np.zeros(N) if V0 is None else np.array(V0, dtype=float).ravel()
    I = np.zeros(N) if I0 is None else np.array(I0, dtype=float).ravel()
    if V.shape != (N,) or I.shape != (N,):
        raise ValueError(f"V0 and I0 must have {N} entries (all layers)")
    Q = qr_positive(np.random.default_rng(seed).standard_normal((2 * N, k)))[0]
    edges = np.unique(np.concatenate([np.arange(0.0, t_end, qr_every), [transient, t_end]]))
    logs, lengths = [], []
    n_spikes, n_graze, salt = 0, 0, 0.0
    for t0, t1 in zip(edges[:-1], edges[1:]):
        sel = (in_t >= t0) & (in_t < t1)
        QV, QI = np.ascontiguousarray(Q[:N]), np.ascontiguousarray(Q[N:])
        _, _, vm, vp, ng = run_tangent_segment(cfg, weights, V, I, in_t[sel] - t0, in_u[sel], t1 - t0, QV, QI, fault)
        Q, R = qr_positive(np.vstack([QV, QI]))
        if t0 >= transient:
            with np.errstate(divide="ignore"):
                logs.append(np.log(np.abs(np.diag(R))))
            lengths.append(t1 - t0)
            n_spikes += vm.size
            n_graze += ng
            salt += float(np.sum(np.log(np.abs(vp / vm))))
    logs, lengths = np.array(logs), np.array(lengths)
    T = float(lengths.sum())
    lam = logs.sum(axis=0) / T * 1000.0
    nb = min(10, len(logs))  # batch means over about ten stretches of the counted time
    batches = np.array_split(np.arange(len(logs)), nb)
    rates = np.array([logs[ix].sum(axis=0) / lengths[ix].sum() for ix in batches]) * 1000.0
    with np.errstate(invalid="ignore"):  # -inf exponents (a vanished R_ii) have no error bar
        err = rates.std(axis=0, ddof=1) / math.sqrt(nb) if nb > 1 else np.full(k, np.nan)
    if not np.all(np.isfinite(lam)):
        from refimpl.dynamics.lyapunov import DegenerateSpectrumWarning

        idx = [int(i) + 1 for i in np.nonzero(~np.isfinite(lam))[0]]
        warnings.warn(f"exponents {idx} are -inf: an R_ii of the QR vanished (a tangent direction was annihilated)",
            DegenerateSpectrumWarning, stacklevel=2)  # fmt: skip
    log_det = (-N * (1.0 / cfg.tau_mem + 1.0 / cfg.tau_syn) + salt / T) * 1000.0
    order = np.argsort(-lam, kind="stable")  # QR leaves exactly degenerate exponents in any order
    lam, err = lam[order], err[order]
    if n_graze:
        warnings.warn(f"{n_graze} grazing threshold crossing(s): their saltation factors v⁺/v⁻ are ill-conditioned",
            GrazingCrossingWarning, stacklevel=2)  # fmt: skip
    return ExactSpectrum(lam, err, T, int(n_spikes), float(log_det), int(n_graze))
