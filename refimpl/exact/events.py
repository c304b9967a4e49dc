"""Exact event-driven simulation of recurrent, multi-layer current-based LIF networks (docs/exact.md §3).

The state of every neuron flows in closed form (:mod:`refimpl.exact.flow`) from one event to the next.
Events are input spikes (``I += W_in[:, j]``), network spikes at the exact threshold crossings (the
spiking neuron is reset, every target gets ``I += W[:, i]``) and the sample times asked for. A stack of
layers is simulated as one network whose weight matrix is block lower-triangular: layer ``l`` receives
its own recurrent weights and the feed-forward weights from layer ``l - 1``, with no delay, as in the
time-stepped model (docs/model.md §1.2).

Determinism (docs/exact.md §3.3): events at the same time are taken in a fixed order — network spikes
before input spikes, neurons in index order, all crossings at exactly the same time emitted together
(their jumps applied after every one of them is reset). Because ``V`` is continuous (the synapses are
current-based), a jump never puts a membrane above threshold: a spike cannot cause another at the same
instant.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
from numba import njit

from refimpl.checks import check_float
from refimpl.exact.flow import AUTO, BRACKET, INF, current, flow, flow_coefficients, flow_with, next_crossing
from refimpl.schema import section

#: a crossing is *grazing* when V'(t*)·τ_m = I(t*) - θ is below this fraction of |θ|: there the spike
#: time is ill-conditioned and the exact gradient jumps (spike creation/deletion)
GRAZING = 1e-6


class GrazingCrossingWarning(UserWarning):
    """A threshold crossing with a nearly vanishing slope: the spike time is ill-conditioned."""


@section("exact")
class ExactConfig:
    """A network of current-based LIF layers in continuous time (docs/exact.md §1); the keys, their
    defaults and ranges are the ``[exact]`` settings of :data:`refimpl.schema.SCHEMA`.

    ``tau_mem``, ``tau_syn`` and ``t_ref`` are in ms; ``reset`` is ``zero`` (``V → 0``) or ``subtract``
    (``V → V - θ``, the same up to rounding here, since ``V = θ`` at a crossing); ``t_ref`` holds the
    membrane at its reset value for that long after a spike (0: no refractoriness). ``root`` chooses the
    closed-form crossings for ``τ_m = 2τ_s`` and ``τ_m = τ_s`` (``auto``) or bracketing always."""

    @property
    def n_neurons(self) -> int:
        return sum(self.layers)

    @property
    def offsets(self) -> np.ndarray:
        """Where each layer's units start in the stacked network, and the total: ``(0, N₁, N₁+N₂, …)``."""
        return np.concatenate([[0], np.cumsum(self.layers)]).astype(int)

    @property
    def method(self) -> int:
        """The crossing method's code for the compiled kernels (:mod:`refimpl.exact.flow`)."""
        return AUTO if self.root == "auto" else BRACKET


class ExactResult(NamedTuple):
    """Spike times (ms, ascending) and the units that fired them (0-based over all layers, layer by
    layer); the state at ``t_end``; the state at each sample time (``(n_samples, N)``); the number of
    grazing crossings and the smallest ``(I - θ)/|θ|`` at any crossing."""

    spike_times: np.ndarray
    spike_units: np.ndarray
    V: np.ndarray
    I: np.ndarray
    sample_V: np.ndarray
    sample_I: np.ndarray
    n_grazing: int
    min_slope: float


def stack_weights(cfg: ExactConfig, params: dict):
    """``(W_in, W, b)`` of the whole stack as one network: ``W_in (N, n_in)`` drives layer 1 only, ``W (N, N)``
    holds each layer's ``W_rec`` on the diagonal and ``layer<l>/W_in`` below it."""
    off = cfg.offsets
    N = cfg.n_neurons
    W_in = np.zeros((N, cfg.n_in))
    W = np.zeros((N, N))
    b = np.zeros(N)
    for l, n in enumerate(cfg.layers):
        p = f"layer{l + 1}/"
        n_below = cfg.n_in if l == 0 else cfg.layers[l - 1]
        for key, shape in (("W_in", (n, n_below)), ("W_rec", (n, n)), ("b", (n,))):
            if p + key not in params:
                raise ValueError(f"params is missing {p + key!r}")
            a = np.asarray(params[p + key], dtype=float)
            if a.shape != shape:
                raise ValueError(f"params[{p + key!r}] must have shape {shape}, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"params[{p + key!r}] must be finite")
        rows = slice(off[l], off[l + 1])
        if l == 0:
            W_in[rows] = params[p + "W_in"]
        else:
            W[rows, off[l - 1] : off[l]] = params[p + "W_in"]
        W[rows, rows] = params[p + "W_rec"]
        b[rows] = params[p + "b"]
    return W_in, W, b


@njit(cache=True)
def _crossing_abs(t, V, I, b, ref_until, theta, V_reset, tau_m, tau_s, method):
    """The absolute time of a neuron's next crossing from its state at ``t`` (refractory: from the end of
    its refractory period, with the membrane at its reset value)."""
    if ref_until > t:
        I_r = current(I, b, ref_until - t, tau_s)
        return ref_until + next_crossing(V_reset, I_r, b, theta, tau_m, tau_s, method)
    return t + next_crossing(V, I, b, theta, tau_m, tau_s, method)


@njit(cache=True)
def _advance(V, I, b, ref_until, t0, t1, tau_m, tau_s, V_reset, SV, SI, o_b, forced):
    """Flow every neuron from ``t0`` to ``t1`` (a refractory neuron's membrane stays at its reset value
    until its refractory period ends), and with it the sensitivities ``SV, SI`` (``(N, P)``; ``P = 0``
    without): the flow is linear in ``(V, I, b)``, so a sensitivity moves with the same coefficients and
    the forcing ``∂b_i/∂p`` (1 for ``p = o_b + i``; none for tangent vectors, ``forced = False``).
    Sensitivities assume no refractoriness."""
    dt = t1 - t0
    if dt <= 0.0:
        return
    c_V, c_I, c_s = flow_coefficients(dt, tau_m, tau_s)
    P = SV.shape[1]
    for i in range(V.shape[0]):
        if ref_until[i] > t0:
            held = min(ref_until[i], t1) - t0
            I[i] = current(I[i], b[i], held, tau_s)
            V[i] = V_reset
            rest = t1 - t0 - held
            if rest > 0.0:
                V[i], I[i] = flow(V[i], I[i], b[i], rest, tau_m, tau_s)
        else:
            V[i], I[i] = flow_with(c_V, c_I, c_s, V[i], I[i], b[i])
        for p in range(P):
            SV[i, p], SI[i, p] = flow_with(c_V, c_I, c_s, SV[i, p], SI[i, p], 1.0 if forced and p == o_b + i else 0.0)


@njit(cache=True)
def _log_event(ev_kind, ev_idx, ev_t, n_ev, kind, idx, t):
    """Append one event to the log (grown by doubling); returns the arrays and the new count."""
    if n_ev == ev_t.shape[0]:
        ev_kind, ev_idx, ev_t = _grow(ev_kind, n_ev), _grow(ev_idx, n_ev), _grow(ev_t, n_ev)
    ev_kind[n_ev], ev_idx[n_ev], ev_t[n_ev] = kind, idx, t
    return ev_kind, ev_idx, ev_t, n_ev + 1


@njit(cache=True)
def _grow(a, n):
    out = np.empty((2 * max(n, 1),) + a.shape[1:], a.dtype)
    out[:n] = a[:n]
    return out


@njit(cache=True)
def _run(W_in, W, b, V, I, in_t, in_u, sample_t, t_end, tau_m, tau_s, theta, subtract, t_ref, method, cap, SV, SI,
        tangent, fault, record):  # fmt: skip
    """The event loop (module docstring). With ``P > 0`` columns in ``SV, SI`` (``(N, P)``, moved in place)
    it also carries the forward sensitivities of the state to every entry of ``(W_in, W, b)`` (docs/exact.md
    §6; flat index: ``W_in`` row-major, then ``W``, then ``b``) and returns the sensitivity of each spike
    time, ``dt_k/dp``, and of each sampled membrane; with ``tangent`` the columns are tangent vectors
    instead (no parameter enters: the tangent map of docs/exact.md §8).
    ``fault`` (tests only) drops one term of the saltation: 1 the targets' time-shift terms, 2 the reset's.
    With ``record`` it also logs every event in order (kind 0 spike, 1 input, 2 sample; its index; its
    time) and, per spike, ``V'`` just before and just after it: what the adjoint pass needs."""
    N, n_chan = W_in.shape
    o_W, o_b = N * n_chan, N * n_chan + N * N
    P = SV.shape[1]
    forced = not tangent
    V_reset = 0.0
    ref_until = np.full(N, -INF)
    tc = np.empty(N)
    t = 0.0
    for i in range(N):
        tc[i] = _crossing_abs(t, V[i], I[i], b[i], ref_until[i], theta, V_reset, tau_m, tau_s, method)
    sp_t = np.empty(cap)
    sp_u = np.empty(cap, np.int64)
    dtdp = np.empty((cap if P else 0, P))
    n_sp = 0
    nS = sample_t.shape[0]
    sV = np.empty((nS, N))
    sI = np.empty((nS, N))
    sSV = np.empty((nS if P else 0, N, P))
    n_graze = 0
    min_slope = INF
    p_in, p_s = 0, 0
    n_in = in_t.shape[0]
    fired = np.empty(N, np.int64)
    ev_kind = np.empty(cap if record else 0, np.int64)
    ev_idx = np.empty(cap if record else 0, np.int64)
    ev_t = np.empty(cap if record else 0)
    n_ev = 0
    v_minus = np.empty(cap if record else 0)
    v_plus = np.empty(cap if record else 0)
    while True:
        t_in = in_t[p_in] if p_in < n_in else INF
        t_s = sample_t[p_s] if p_s < nS else INF
        i_min = 0
        for i in range(1, N):
            if tc[i] < tc[i_min]:
                i_min = i
        t_sp = tc[i_min]
        t_next = min(t_in, t_s, t_sp)
        if t_next > t_end:
            _advance(V, I, b, ref_until, t, t_end, tau_m, tau_s, V_reset, SV, SI, o_b, forced)
            break
        _advance(V, I, b, ref_until, t, t_next, tau_m, tau_s, V_reset, SV, SI, o_b, forced)
        t = t_next
        if t_sp == t:  # every crossing at exactly this time, in index order
            n_f = 0
            for i in range(N):
                if tc[i] == t:
                    fired[n_f] = i
                    n_f += 1
            first = n_sp
            for j in range(n_f):
                i = fired[j]
                if n_sp == sp_t.shape[0]:  # grow the record
                    sp_t, sp_u = _grow(sp_t, n_sp), _grow(sp_u, n_sp)
                    if P:
                        dtdp = _grow(dtdp, n_sp)
                sp_t[n_sp] = t
                sp_u[n_sp] = i
                if record:
                    if n_sp == v_minus.shape[0]:
                        v_minus, v_plus = _grow(v_minus, n_sp), _grow(v_plus, n_sp)
                    ev_kind, ev_idx, ev_t, n_ev = _log_event(ev_kind, ev_idx, ev_t, n_ev, 0, n_sp, t)
                    v_minus[n_sp] = (I[i] - theta) / tau_m
                slope = (I[i] - theta) / theta  # τ_m V'(t*) / θ with V(t*) = θ
                if slope < min_slope:
                    min_slope = slope
                if slope < GRAZING:
                    n_graze += 1
                vdot = (I[i] - theta) / tau_m
                for p in range(P):  # V_i(t_k; p) = θ: dt_k/dp = -(∂V_i/∂p)/V'
                    dtdp[n_sp, p] = -SV[i, p] / vdot
                n_sp += 1
                V[i] = V[i] - theta if subtract else V_reset
                ref_until[i] = t + t_ref
            for j in range(n_f):
                i = fired[j]
                for k in range(N):
                    I[k] += W[k, i]
            for j in range(n_f):  # the saltation of the sensitivities (docs/exact.md §6)
                i = fired[j]
                row = first + j
                for k in range(N):
                    w = W[k, i]
                    if w != 0.0 and fault != 1:
                        for p in range(P):
                            SI[k, p] += w / tau_s * dtdp[row, p]
                            SV[k, p] -= w / tau_m * dtdp[row, p]
                    if forced and P:
                        SI[k, o_W + k * N + i] += 1.0
            for j in range(n_f):  # a reset membrane: V⁺ = 0 at t_k(p), so ∂V⁺/∂p = -V'(t_k⁺) dt_k/dp
                i = fired[j]
                for p in range(P):
                    SV[i, p] = -(I[i] - V[i]) / tau_m * dtdp[first + j, p] if fault != 2 else 0.0
            if record:
                for j in range(n_f):
                    i = fired[j]
                    v_plus[first + j] = (I[i] - V[i]) / tau_m
            for i in range(N):  # the targets' currents jumped: every crossing is recomputed
                tc[i] = _crossing_abs(t, V[i], I[i], b[i], ref_until[i], theta, V_reset, tau_m, tau_s, method)
        elif t_in == t:
            while p_in < n_in and in_t[p_in] == t:
                u = in_u[p_in]
                if record:
                    ev_kind, ev_idx, ev_t, n_ev = _log_event(ev_kind, ev_idx, ev_t, n_ev, 1, u, t)
                for k in range(N):
                    I[k] += W_in[k, u]
                    if forced and P:
                        SI[k, k * n_chan + u] += 1.0
                p_in += 1
            for i in range(N):
                tc[i] = _crossing_abs(t, V[i], I[i], b[i], ref_until[i], theta, V_reset, tau_m, tau_s, method)
        else:  # a sample: the state is recorded, nothing changes
            while p_s < nS and sample_t[p_s] == t:
                if record:
                    ev_kind, ev_idx, ev_t, n_ev = _log_event(ev_kind, ev_idx, ev_t, n_ev, 2, p_s, t)
                sV[p_s] = V
                sI[p_s] = I
                if P:
                    sSV[p_s] = SV
                p_s += 1
    log = (ev_kind[:n_ev].copy(), ev_idx[:n_ev].copy(), ev_t[:n_ev].copy(), v_minus[: n_sp if record else 0].copy(),
        v_plus[: n_sp if record else 0].copy())  # fmt: skip
    return sp_t[:n_sp].copy(), sp_u[:n_sp].copy(), sV, sI, n_graze, min_slope, dtdp[:n_sp].copy(), sSV, log


def check_events(times, units, n_units: int, name: str = "input"):
    """Event times (ms, finite, >= 0, ascending) and units (integers in ``[0, n_units)``) as arrays."""
    t = np.asarray(times, dtype=float).ravel()
    u = np.asarray(units).ravel()
    if t.shape != u.shape:
        raise ValueError(f"{name}_times and {name}_units must have the same length, got {t.size} and {u.size}")
    if t.size:
        if not np.all(np.isfinite(t)) or t.min() < 0:
            raise ValueError(f"{name}_times must be finite and >= 0")
        if np.any(np.diff(t) < 0):
            raise ValueError(f"{name}_times must be in ascending order")
        if not np.issubdtype(u.dtype, np.integer) or u.min() < 0 or u.max() >= n_units:
            raise ValueError(f"{name}_units must be integers in [0, {n_units}), got {u.min()} … {u.max()}")
    return t, u.astype(np.int64)


def simulate(cfg: ExactConfig, params: dict, input_times, input_units, t_end: float, *, V0=None, I0=None,
        sample_times=(), warn: bool = True) -> ExactResult:  # fmt: skip
    """Simulate the network exactly from ``t = 0`` to ``t_end`` (ms) under the given input spikes.

    ``params`` uses the time-stepped model's names (``layer<l>/W_in``, ``layer<l>/W_rec``, ``layer<l>/b``,
    docs/model.md §1); ``V0``, ``I0`` (length ``N`` over all layers) default to zero. A crossing whose slope
    ``I(t*) - θ`` is below ``GRAZING·θ`` is counted and, with ``warn``, reported with a
    :class:`GrazingCrossingWarning`."""
    return _simulate(cfg, params, input_times, input_units, t_end, V0, I0, sample_times, warn, False, 0, False)[0]


def simulate_with_sensitivities(cfg: ExactConfig, params: dict, input_times, input_units, t_end: float, *, V0=None,
        I0=None, sample_times=(), warn: bool = True, fault: int = 0):  # fmt: skip
    """:func:`simulate` carrying the forward sensitivities of the state to every entry of the stacked
    ``(W_in, W, b)`` (:func:`stack_weights`; flat index: ``W_in`` row-major, then ``W``, then ``b``;
    docs/exact.md §6). Returns ``(result, dt_dp (n_spikes, P), dV_dp (n_samples, N, P))``. No
    refractoriness (``t_ref = 0``). ``fault`` (tests only) drops a term of the saltation."""
    if cfg.t_ref != 0.0:
        raise ValueError(f"exact gradients need t_ref = 0 (refractoriness is not differentiated yet), got {cfg.t_ref}")
    return _simulate(cfg, params, input_times, input_units, t_end, V0, I0, sample_times, warn, True, fault, False)[:3]


class EventLog(NamedTuple):
    """Every event of a simulation in the order it was applied: ``kind`` (0 network spike, 1 input
    spike, 2 sample), ``idx`` (the spike's row in the result, the input channel, the sample), ``t``; per
    network spike, ``V'`` just before (``v_minus``, at ``V = θ``) and just after it (``v_plus``)."""

    kind: np.ndarray
    idx: np.ndarray
    t: np.ndarray
    v_minus: np.ndarray
    v_plus: np.ndarray


def simulate_recorded(cfg: ExactConfig, params: dict, input_times, input_units, t_end: float, *, V0=None, I0=None,
        sample_times=(), warn: bool = True):  # fmt: skip
    """:func:`simulate` that also returns its :class:`EventLog` and the stacked weights ``(W_in, W, b)``
    (:func:`stack_weights`): what the adjoint pass (:mod:`refimpl.exact.adjoint`) runs backwards over."""
    if cfg.t_ref != 0.0:
        raise ValueError(f"exact gradients need t_ref = 0 (refractoriness is not differentiated yet), got {cfg.t_ref}")
    res, _, _, log, weights = _simulate(cfg, params, input_times, input_units, t_end, V0, I0, sample_times, warn, False,
        0, True)  # fmt: skip
    return res, EventLog(*log), weights


def _simulate(cfg, params, input_times, input_units, t_end, V0, I0, sample_times, warn, sens, fault, record):
    if not isinstance(cfg, ExactConfig):
        raise ValueError(f"cfg must be an ExactConfig, got {type(cfg).__name__}")
    t_end = check_float("t_end", t_end, lo=0.0)
    W_in, W, b = stack_weights(cfg, params)
    N = cfg.n_neurons
    in_t, in_u = check_events(input_times, input_units, cfg.n_in)
    st = np.asarray(sample_times, dtype=float).ravel()
    if st.size and (not np.all(np.isfinite(st)) or st.min() < 0 or st.max() > t_end or np.any(np.diff(st) < 0)):
        raise ValueError(f"sample_times must be ascending and in [0, t_end = {t_end}]")
    states = []
    for name, x in (("V0", V0), ("I0", I0)):
        a = np.zeros(N) if x is None else np.array(x, dtype=float).ravel()
        if a.shape != (N,) or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be {N} finite numbers (all layers), got shape {np.shape(x)}")
        states.append(a)
    V, I = states
    method = cfg.method
    P = W_in.size + W.size + b.size if sens else 0
    SV, SI = np.zeros((N, P)), np.zeros((N, P))
    sp_t, sp_u, sV, sI, n_graze, min_slope, dtdp, sSV, log = _run(W_in, W, b, V, I, in_t, in_u, st, t_end,
        float(cfg.tau_mem), float(cfg.tau_syn), float(cfg.theta), cfg.reset == "subtract", float(cfg.t_ref), method,
        1024, SV, SI, False, int(fault), bool(record))  # fmt: skip
    if warn and n_graze:
        warnings.warn(f"{n_graze} grazing threshold crossing(s) (slope (I - θ)/θ down to {min_slope:.1e} < {GRAZING:g}): "
            "those spike times are ill-conditioned and gradients jump there", GrazingCrossingWarning, stacklevel=3)  # fmt: skip
    res = ExactResult(sp_t, sp_u, V, I, sV, sI, int(n_graze), float(min_slope) if math.isfinite(min_slope) else math.inf)
    return res, dtdp, sSV, log, (W_in, W, b)


def run_tangent_segment(cfg: ExactConfig, weights, V, I, input_times, input_units, t_len: float, QV, QI, fault: int = 0):
    """Move the state ``(V, I)`` and the tangent vectors ``(QV, QI)`` (``(N, k)``, all in place) through a
    stretch of length ``t_len`` whose input spikes are given relative to its start (checked by the caller):
    the tangent map of the flow and of every event's saltation (docs/exact.md §8). Returns the spike
    times (relative), units, ``V'`` before and after each spike, and the number of grazing crossings.
    ``fault`` (tests only) drops a term of the saltation, as in :func:`simulate_with_sensitivities`."""
    W_in, W, b = weights
    method = cfg.method
    no_samples = np.zeros(0)
    sp_t, sp_u, _, _, n_graze, _, _, _, log = _run(W_in, W, b, V, I, input_times, input_units, no_samples,
        float(t_len), float(cfg.tau_mem), float(cfg.tau_syn), float(cfg.theta), cfg.reset == "subtract", 0.0, method,
        256, QV, QI, True, int(fault), True)  # fmt: skip
    return sp_t, sp_u, log[3], log[4], int(n_graze)
