"""Benchmark tasks: input spike trains (or analog sequences) with their targets.

Every generator returns a :class:`TaskBatch` holding network inputs ``u`` of
shape ``(T, B, n_in)`` (float64), the targets, the name of the loss that scores
them, and ``t0``, the first scored step.  The readout convention of the model
(``y_t = U_{t+1}``, the readout *after* step ``t`` has seen ``u_t``) means a
target at step ``t`` may depend on ``u_0 … u_t``.

Tasks
-----
``delayed_xor``
    Temporal parity of a random bit stream (memory *and* nonlinear mixing over
    a known horizon; the task used to show how gradient flossing helps to learn
    long temporal dependencies).
``delayed_copy``
    Reproduce the bit seen ``delay`` steps ago (memory only, no mixing).
``randman``
    Spike-timing classification on smooth random manifolds (Zenke & Vogels
    2021), a task whose difficulty is set by a handful of geometric knobs.

Bit tasks can be presented to a spiking network as a one-hot population code
(:func:`encode_bits`, ``"pulse"`` or ``"poisson"``) or to a binary / rate
network as a signed scalar (``"analog"``).

Everything is a pure function of its arguments: one ``seed`` gives
bit-identical arrays, and all parameters are checked (``ValueError`` naming the
parameter and the expected form) before a single random number is drawn.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from refimpl.checks import check_choice, check_float, check_int, is_int

__all__ = ["PER_STEP_LOSSES", "CLASS_LOSSES", "ENCODINGS", "TaskBatch", "encode_bits", "delayed_xor",
    "delayed_copy", "randman", "TASKS", "make_task"]  # fmt: skip

PER_STEP_LOSSES = ("bce_per_step", "mse_per_step")
CLASS_LOSSES = ("ce_max", "ce_mean", "ce_last")
ENCODINGS = ("analog", "bits", "pulse", "poisson")


# ---------------------------------------------------------------------------
# Container
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskBatch:
    """One batch of a task: what the network sees and what it should produce.

    Attributes
    ----------
    inputs : ndarray, float64, shape (T, B, n_in)
        External input ``u_t`` of layer 1.  Spike trains hold only 0.0 / 1.0.
    targets : ndarray
        For per-step losses (``bce_per_step``, ``mse_per_step``): float64 of
        shape (T, B, n_out); entries for ``t < t0`` are 0.0 and never scored.
        For class losses (``ce_max``, ``ce_mean``, ``ce_last``): int64 labels
        of shape (B,) in ``[0, n_classes)``.
    loss : str
        Name of the loss that scores this task.
    t0 : int
        First scored step, ``0 <= t0 < T``.
    bits : ndarray of int64, shape (T, B), or None
        The bit stream underlying a bit task (before encoding), else None.
    n_classes : int or None
        Number of classes; required for class losses (labels alone cannot tell
        it, since a small batch may miss a class), None otherwise.

    The dataclass is frozen (fields cannot be rebound); the arrays themselves
    are ordinary writable NumPy arrays so that compiled kernels accept them.
    """

    inputs: np.ndarray
    targets: np.ndarray
    loss: str
    t0: int
    bits: np.ndarray | None = None
    n_classes: int | None = None

    def __post_init__(self) -> None:
        # Catch hand-built batches that the losses would silently misread.
        u = self.inputs
        if not isinstance(u, np.ndarray) or u.ndim != 3 or u.dtype != np.float64:
            raise ValueError("TaskBatch: 'inputs' must be a float64 ndarray of shape (T, B, n_in)")
        T, B, _ = u.shape
        if self.loss in PER_STEP_LOSSES:
            y = self.targets
            if not isinstance(y, np.ndarray) or y.dtype != np.float64 or y.ndim != 3 or y.shape[:2] != (T, B):
                raise ValueError(
                    f"TaskBatch: 'targets' for loss {self.loss!r} must be a float64 "
                    f"ndarray of shape (T, B, n_out) = ({T}, {B}, n_out)"
                )
            if self.n_classes is not None:
                raise ValueError("TaskBatch: 'n_classes' must be None for per-step losses")
        elif self.loss in CLASS_LOSSES:
            y = self.targets
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != (B,):
                raise ValueError(
                    f"TaskBatch: 'targets' for loss {self.loss!r} must be an int64 ndarray of class labels of shape (B,) = ({B},)"
                )
            if not is_int(self.n_classes) or self.n_classes < 1:
                raise ValueError("TaskBatch: 'n_classes' must be a positive int for class losses")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"TaskBatch: 'targets' labels must lie in [0, {self.n_classes})")
        else:
            raise ValueError(f"TaskBatch: 'loss' must be one of {PER_STEP_LOSSES + CLASS_LOSSES}, got {self.loss!r}")
        if not is_int(self.t0) or not 0 <= self.t0 < T:
            raise ValueError(f"TaskBatch: 't0' must be an int in [0, T) = [0, {T}), got {self.t0!r}")
        if self.bits is not None and (not isinstance(self.bits, np.ndarray) or self.bits.shape != (T, B)):
            raise ValueError(f"TaskBatch: 'bits' must be None or an ndarray of shape (T, B) = ({T}, {B})")

    @property
    def T(self) -> int:
        """Number of time steps."""
        return self.inputs.shape[0]

    @property
    def batch(self) -> int:
        """Batch size B."""
        return self.inputs.shape[1]

    @property
    def n_in(self) -> int:
        """Number of input channels (size of ``u_t``)."""
        return self.inputs.shape[2]

    @property
    def n_out(self) -> int:
        """Number of readout units the task needs (outputs or classes)."""
        if self.loss in CLASS_LOSSES:
            return int(self.n_classes)
        return self.targets.shape[2]


# ---------------------------------------------------------------------------
# Argument checking (all of it runs before any random number is drawn)
# ---------------------------------------------------------------------------


def _check_encoding_args(where: str, encoding: Any, channels: Any, rate_hz: Any, background_hz: Any,
        dt: Any) -> tuple[str, int, float, float, float]:  # fmt: skip
    encoding = check_choice(f"{where}: parameter 'encoding'", encoding, ENCODINGS)
    channels = check_int(f"{where}: parameter 'channels'", channels, 1)
    dt = check_float(f"{where}: parameter 'dt'", dt, lo=0.0, lo_open=True)
    rate_hz = check_float(f"{where}: parameter 'rate_hz'", rate_hz, lo=0.0)
    background_hz = check_float(f"{where}: parameter 'background_hz'", background_hz, lo=0.0)
    if encoding == "poisson":
        # A per-step probability above 1 means the step is too coarse for the
        # rate; clipping it would silently change the statistics.
        for name, rate in (("rate_hz", rate_hz), ("background_hz", background_hz)):
            if rate * dt / 1000.0 > 1.0:
                raise ValueError(
                    f"{where}: parameter {name!r} must satisfy {name} * dt / 1000 <= 1 "
                    f"(a spike probability per step), got {name}={rate:g} Hz with dt={dt:g} ms "
                    f"(probability {rate * dt / 1000.0:g})"
                )
    return encoding, channels, rate_hz, background_hz, dt


def _check_bit_task_args(where, T, batch, seed, encoding, channels, rate_hz, background_hz, dt, loss):
    """The arguments every bit task shares, checked in the order of its signature."""
    T = check_int(f"{where}: parameter 'T'", T, 1)
    batch = check_int(f"{where}: parameter 'batch'", batch, 1)
    seed = check_int(f"{where}: parameter 'seed'", seed, 0)
    encoding, channels, rate_hz, background_hz, dt = _check_encoding_args(where, encoding, channels, rate_hz, background_hz, dt)
    loss = check_choice(f"{where}: parameter 'loss'", loss, PER_STEP_LOSSES)
    return T, batch, seed, encoding, channels, rate_hz, background_hz, dt, loss


# ---------------------------------------------------------------------------
# Bit encodings
# ---------------------------------------------------------------------------


def encode_bits(bits: np.ndarray, *, encoding: str = "pulse", channels: int = 1, rate_hz: float = 100.0,
        background_hz: float = 0.0, dt: float = 1.0, rng: np.random.Generator | None = None) -> np.ndarray:  # fmt: skip
    """Turn a bit stream into network input.

    Parameters
    ----------
    bits : array_like, shape (T, B), values in {0, 1}
        One bit per time step and batch element.
    encoding : {"analog", "bits", "pulse", "poisson"}
        ``"analog"``: ``n_in = 1``, ``u_t = 2 * bit_t - 1`` (i.e. -1.0 / +1.0),
        for binary and rate networks, which have no notion of spikes.
        ``"bits"``: ``n_in = 1``, ``u_t = bit_t`` (0.0 / 1.0): the input of the
        gradient-flossing reference code (``s = bitrand(…)``, docs/training.md,
        "The published protocol").
        ``"pulse"``: a deterministic one-hot population code with
        ``n_in = 2 * channels``.  Bit 1 makes channels ``[0, channels)`` spike
        (1.0) on that step, bit 0 makes channels ``[channels, 2*channels)``
        spike; the other population is silent.
        ``"poisson"``: the same two populations, but each channel of the
        active population spikes independently with probability
        ``rate_hz * dt / 1000`` per step, and each channel of the inactive
        population with probability ``background_hz * dt / 1000``
        (Bernoulli approximation of a Poisson process).
    channels : int >= 1
        Channels per population (ignored by ``"analog"`` and ``"bits"``).
    rate_hz, background_hz : float >= 0
        Firing rates in Hz (used only by ``"poisson"``); each must give a
        per-step probability ``<= 1``.
    dt : float > 0
        Step in ms.
    rng : numpy.random.Generator
        Source of randomness; required for ``"poisson"``, unused otherwise.
        For ``"poisson"`` it draws exactly one uniform number per
        (t, b, channel), independent of the bit values.

    Returns
    -------
    ndarray, float64, shape (T, B, n_in)
    """
    where = "encode_bits"
    encoding, channels, rate_hz, background_hz, dt = _check_encoding_args(where, encoding, channels, rate_hz, background_hz, dt)
    b = np.asarray(bits)
    if b.ndim != 2:
        raise ValueError(f"{where}: parameter 'bits' must have shape (T, B), got shape {b.shape}")
    if b.dtype.kind not in "biuf" or not np.all((b == 0) | (b == 1)):
        raise ValueError(f"{where}: parameter 'bits' must contain only 0 and 1")
    if encoding == "poisson" and not isinstance(rng, np.random.Generator):
        raise ValueError(f"{where}: parameter 'rng' must be a numpy.random.Generator for encoding 'poisson', got {rng!r}")
    on = b.astype(bool)

    if encoding == "analog":
        return (2.0 * on - 1.0)[:, :, None].astype(np.float64)
    if encoding == "bits":
        return on[:, :, None].astype(np.float64)

    # Per-step spike probability of every channel: population 0 codes bit 1,
    # population 1 codes bit 0 (one-hot, so the code is balanced in spike count).
    if encoding == "pulse":
        p_active, p_inactive = 1.0, 0.0
    else:
        p_active, p_inactive = rate_hz * dt / 1000.0, background_hz * dt / 1000.0
    p_first = np.where(on, p_active, p_inactive)
    p_second = np.where(on, p_inactive, p_active)
    prob = np.concatenate(
        [np.repeat(p_first[:, :, None], channels, axis=2), np.repeat(p_second[:, :, None], channels, axis=2)], axis=2
    )

    if encoding == "pulse":
        return prob.astype(np.float64)
    # Strict "<" so that probability 0 never spikes and probability 1 always does.
    return (rng.random(prob.shape) < prob).astype(np.float64)


# ---------------------------------------------------------------------------
# Bit tasks
# ---------------------------------------------------------------------------


def delayed_xor(*, T: int, batch: int, delta: int, h: int = 1, seed: int, encoding: str = "pulse",
        channels: int = 1, rate_hz: float = 100.0, background_hz: float = 0.0, dt: float = 1.0,
        loss: str = "bce_per_step", t0_shift: int = 0) -> TaskBatch:  # fmt: skip
    """Delayed XOR / delayed parity of a random bit stream.

    A bit ``x_t ∈ {0, 1}`` is drawn i.i.d. with probability 1/2 on every step
    and presented to the network (see :func:`encode_bits`).  The network must
    output, on every step, the parity (XOR) of the ``h + 1`` bits it saw at the
    lags ``δ·2^0, δ·2^1, …, δ·2^h``::

        y_t = x_{t-δ} ⊕ x_{t-2δ} ⊕ … ⊕ x_{t-2^h δ}

    ``h = 1`` is the classic delayed XOR ``y_t = x_{t-δ} ⊕ x_{t-2δ}``; ``h = 0``
    is a delayed copy with delay δ.  The task needs memory over the whole
    delay ``d = 2^h δ`` (the largest lag) and a nonlinear combination of the
    remembered bits: parity is invisible to every linear readout of fewer than
    all ``h + 1`` bits, so it cannot be solved by remembering only some of them.

    Scoring starts at ``t0 = d``, the first step whose target is defined by
    bits the network has already seen; targets for ``t < d`` are 0.0 and
    unscored.  Targets are float64 of shape ``(T, batch, 1)``.

    ``t0_shift <= 0`` moves the first scored step to ``t0 = d + t0_shift``.
    Then the stream has a hidden past: ``d`` more bits are drawn before step
    0 that the network never sees, and targets at ``t0 ≤ t < d`` combine
    visible and hidden bits (unpredictable, at chance on average). This is
    how the gradient-flossing reference code generates the task: it draws
    ``T + delay`` bits, shows the last ``T`` and scores from its (1-based)
    step ``2·delay``, i.e. ``t0 = 2δ - 1``, ``t0_shift = -1`` here
    (docs/training.md, "The published protocol").

    Parameters
    ----------
    T : int, number of steps; must exceed ``d = 2**h * delta``.
    batch : int >= 1.
    delta : int >= 1, the basic lag in steps.
    h : int >= 0, highest lag exponent (``h + 1`` bits are combined).
    seed : int >= 0.  The bits are the first draw of
        ``np.random.default_rng(seed)``, so one seed gives the same bit stream
        whatever the encoding; Poisson spikes are drawn after them.
    encoding, channels, rate_hz, background_hz, dt : see :func:`encode_bits`.
    loss : {"bce_per_step", "mse_per_step"}; targets are 0/1 either way.
    t0_shift : int <= 0, first scored step ``t0 = d + t0_shift >= 0`` (default 0: ``t0 = d``).
    """
    where = "delayed_xor"
    T, batch, seed, encoding, channels, rate_hz, background_hz, dt, loss = _check_bit_task_args(where, T, batch,
        seed, encoding, channels, rate_hz, background_hz, dt, loss)  # fmt: skip
    delta = check_int(f"{where}: parameter 'delta'", delta, 1)
    h = check_int(f"{where}: parameter 'h'", h, 0)
    lags = [delta * 2**k for k in range(h + 1)]
    d = lags[-1]
    if T <= d:
        raise ValueError(f"{where}: parameter 'T' must be an int > d = 2**h * delta = {d} (at least one scored step), got T={T}")

    if not is_int(t0_shift) or not -d <= t0_shift <= 0:
        raise ValueError(
            f"{where}: parameter 't0_shift' must be an int in [-d, 0] = [{-d}, 0] "
            f"(first scored step d + t0_shift), got {t0_shift!r}"
        )
    t0 = d + int(t0_shift)

    rng = np.random.default_rng(seed)
    if t0 == d:
        bits = rng.integers(0, 2, size=(T, batch), dtype=np.int64)
        parity = np.zeros((T - d, batch), dtype=np.int64)
        for lag in lags:
            parity ^= bits[d - lag : T - lag]
        targets = np.zeros((T, batch, 1), dtype=np.float64)
        targets[d:, :, 0] = parity
    else:
        # a hidden past of d bits: stream[d + t] is the bit shown at step t
        stream = rng.integers(0, 2, size=(T + d, batch), dtype=np.int64)
        bits = stream[d:]
        parity = np.zeros((T - t0, batch), dtype=np.int64)
        for lag in lags:
            parity ^= stream[d + t0 - lag : d + T - lag]
        targets = np.zeros((T, batch, 1), dtype=np.float64)
        targets[t0:, :, 0] = parity
    inputs = encode_bits(bits, encoding=encoding, channels=channels, rate_hz=rate_hz, background_hz=background_hz, dt=dt, rng=rng)
    return TaskBatch(inputs=inputs, targets=targets, loss=loss, t0=t0, bits=bits)


def delayed_copy(*, T: int, batch: int, delay: int, seed: int, encoding: str = "pulse", channels: int = 1,
        rate_hz: float = 100.0, background_hz: float = 0.0, dt: float = 1.0,
        loss: str = "bce_per_step") -> TaskBatch:  # fmt: skip
    """Delayed copy of a random bit stream: ``y_t = x_{t-delay}``.

    The pure-memory counterpart of :func:`delayed_xor` (same bit stream for
    the same seed, same encodings): the network has to hold each bit for
    ``delay`` steps but never combine bits.  ``delay = 0`` (echo the current
    bit, which the readout convention ``y_t = U_{t+1}`` makes solvable) is
    allowed as a smoke test.

    Scored from ``t0 = delay``; targets for ``t < delay`` are 0.0 and
    unscored.  Targets are float64 of shape ``(T, batch, 1)``.

    Parameters
    ----------
    T : int > delay.
    batch : int >= 1.
    delay : int >= 0, in steps.
    seed : int >= 0 (bits are the first draw of ``default_rng(seed)``).
    encoding, channels, rate_hz, background_hz, dt : see :func:`encode_bits`.
    loss : {"bce_per_step", "mse_per_step"}.
    """
    where = "delayed_copy"
    T, batch, seed, encoding, channels, rate_hz, background_hz, dt, loss = _check_bit_task_args(where, T, batch,
        seed, encoding, channels, rate_hz, background_hz, dt, loss)  # fmt: skip
    delay = check_int(f"{where}: parameter 'delay'", delay, 0)
    if T <= delay:
        raise ValueError(f"{where}: parameter 'T' must be an int > delay = {delay} (at least one scored step), got T={T}")

    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(T, batch), dtype=np.int64)
    targets = np.zeros((T, batch, 1), dtype=np.float64)
    targets[delay:, :, 0] = bits[: T - delay]
    inputs = encode_bits(bits, encoding=encoding, channels=channels, rate_hz=rate_hz, background_hz=background_hz, dt=dt, rng=rng)
    return TaskBatch(inputs=inputs, targets=targets, loss=loss, t0=delay, bits=bits)


# ---------------------------------------------------------------------------
# Random manifolds
# ---------------------------------------------------------------------------


def _fourier_features(x: np.ndarray, n_components: int) -> np.ndarray:
    """``[sin(2πk x), cos(2πk x)]`` for k = 1..K, last axis of length 2K."""
    arg = 2.0 * np.pi * x[..., None] * np.arange(1, n_components + 1, dtype=np.float64)
    return np.concatenate([np.sin(arg), np.cos(arg)], axis=-1)


def randman(*, n_classes: int, n_units: int, n_steps: int, dim_manifold: int, alpha: float,
        samples_per_class: int, seed: int, dt: float = 1.0, n_components: int = 16, jitter_ms: float = 0.0,
        loss: str = "ce_max") -> TaskBatch:  # fmt: skip
    """Random-manifold spike-timing classification (after Zenke & Vogels 2021).

    Each class is a smooth, random ``dim_manifold``-dimensional manifold in the
    space of spike times of ``n_units`` input neurons.  A sample picks a random
    point on its class's manifold, and every input neuron fires exactly one
    spike, at the time given by that point.  The network has to tell which
    manifold a spike pattern came from, i.e. classify by precise spike timing
    (firing rates carry no information: every neuron fires once in every
    sample).

    Construction (this implementation).  For class ``c``, unit ``i`` and
    intrinsic coordinate ``j``, a random periodic function on [0, 1] ::

        g_cij(ξ) = Σ_{k=1..K} a_cijk · k^(-alpha) · sin(2π (k ξ + φ_cijk)),
        a_cijk ~ U(0, 1),  φ_cijk ~ U(0, 1),  K = n_components,

    so ``alpha`` sets the smoothness (the Fourier spectrum decays as
    ``k^-alpha``: large alpha ≈ a single sinusoid, alpha = 0 a rough
    curve).  The unit's coordinate is ``f_ci(ξ) = Σ_j g_cij(ξ_j)`` for an
    intrinsic point ``ξ ∈ [0, 1]^dim_manifold`` drawn uniformly per sample.
    Because ``f_ci`` is a sum of one-dimensional functions, its minimum and
    maximum over the cube are the sums of the 1-D extremes; these are found
    on a fine grid and used to rescale ``f_ci`` to [0, 1] independently of
    the samples (so the manifold, and not the sample set, fixes the map).
    With ``dim_manifold > 1`` the spike times of a unit therefore cluster
    toward the middle of the window (a sum of independent terms), while
    the extremes stay reachable.
    The spike time is ``f_ci(ξ) · n_steps · dt`` ms, plus optional Gaussian
    jitter of s.d. ``jitter_ms`` (trial-to-trial noise that makes nearby
    manifolds overlap), and lands on step ``floor(time / dt)`` clipped to
    ``[0, n_steps - 1]``.

    Difficulty grows with ``n_classes`` and ``dim_manifold`` and falls with
    ``alpha`` (smoother manifolds), with ``n_units`` (more views of each
    point) and with ``n_steps`` (finer timing); ``jitter_ms`` adds noise.

    The manifolds are drawn first from ``np.random.default_rng(seed)`` and do
    not depend on ``samples_per_class``, ``n_steps``, ``dt`` or the jitter;
    then the intrinsic points (class by class), then a permutation that
    shuffles the ``n_classes * samples_per_class`` samples (classes are
    exactly balanced), and last the jitter, so that turning jitter on changes
    nothing but the spike times.

    Returns
    -------
    TaskBatch
        ``inputs`` float64 (n_steps, B, n_units) spike rasters with exactly one
        1.0 per (sample, unit); ``targets`` int64 labels (B,);
        ``loss`` as given (default ``"ce_max"``); ``t0 = 0``;
        ``n_classes`` set; ``bits`` None.
    """
    where = "randman"
    n_classes = check_int(f"{where}: parameter 'n_classes'", n_classes, 2)
    n_units = check_int(f"{where}: parameter 'n_units'", n_units, 1)
    n_steps = check_int(f"{where}: parameter 'n_steps'", n_steps, 1)
    dim_manifold = check_int(f"{where}: parameter 'dim_manifold'", dim_manifold, 1)
    alpha = check_float(f"{where}: parameter 'alpha'", alpha, lo=0.0)
    samples_per_class = check_int(f"{where}: parameter 'samples_per_class'", samples_per_class, 1)
    seed = check_int(f"{where}: parameter 'seed'", seed, 0)
    dt = check_float(f"{where}: parameter 'dt'", dt, lo=0.0, lo_open=True)
    n_components = check_int(f"{where}: parameter 'n_components'", n_components, 1)
    jitter_ms = check_float(f"{where}: parameter 'jitter_ms'", jitter_ms, lo=0.0)
    loss = check_choice(f"{where}: parameter 'loss'", loss, CLASS_LOSSES)

    rng = np.random.default_rng(seed)
    K = n_components
    shape = (n_classes, dim_manifold, K, n_units)
    amp = rng.random(shape) * np.arange(1, K + 1, dtype=np.float64)[None, None, :, None] ** -alpha
    phase = 2.0 * np.pi * rng.random(shape)
    # sin(2πkξ + φ) = sin(2πkξ)cos φ + cos(2πkξ)sin φ turns evaluation into a
    # matrix product with Fourier features, with no (samples × units × K) temporary.
    weights = np.concatenate([amp * np.cos(phase), amp * np.sin(phase)], axis=2)  # (C, D, 2K, N)

    # 1-D extremes on a grid ~16 points per period of the fastest component;
    # the residual error (< 2% of that component's small amplitude) is clipped.
    grid = np.linspace(0.0, 1.0, 16 * K + 1)
    grid_vals = np.einsum("gf,cdfn->cdgn", _fourier_features(grid, K), weights)
    lo = grid_vals.min(axis=2).sum(axis=1)  # (C, N)
    hi = grid_vals.max(axis=2).sum(axis=1)
    span = np.where(hi > lo, hi - lo, 1.0)

    S = samples_per_class
    xi = rng.random((n_classes, S, dim_manifold))
    vals = np.einsum("csdf,cdfn->csn", _fourier_features(xi, K), weights)
    unit = np.clip((vals - lo[:, None, :]) / span[:, None, :], 0.0, 1.0)

    B = n_classes * S
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), S)
    # Shuffle before drawing the jitter, so that switching jitter on or off
    # keeps the sample order and the intrinsic points: only the noise differs.
    order = rng.permutation(B)
    unit, labels = unit.reshape(B, n_units)[order], labels[order]

    times_ms = unit * (n_steps * dt)
    if jitter_ms > 0.0:
        times_ms = times_ms + jitter_ms * rng.standard_normal(times_ms.shape)
    steps = np.clip(np.floor(times_ms / dt), 0, n_steps - 1).astype(np.int64)

    inputs = np.zeros((n_steps, B, n_units), dtype=np.float64)
    b_idx, n_idx = np.meshgrid(np.arange(B), np.arange(n_units), indexing="ij")
    inputs[steps, b_idx, n_idx] = 1.0
    return TaskBatch(inputs=inputs, targets=labels, loss=loss, t0=0, n_classes=n_classes)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

TASKS: dict[str, Callable[..., TaskBatch]] = {"delayed_xor": delayed_xor, "delayed_copy": delayed_copy,
    "randman": randman}  # fmt: skip


def make_task(name: str, **kwargs: Any) -> TaskBatch:
    """Build the task registered under ``name`` with keyword arguments ``kwargs``.

    Unknown task names, unknown or missing keyword arguments and bad values
    all raise ``ValueError`` naming the offending parameter (with the closest
    valid spelling where one exists), before anything is generated.
    """
    if not isinstance(name, str) or name not in TASKS:
        hint = ""
        if isinstance(name, str):
            close = difflib.get_close_matches(name, list(TASKS), n=1, cutoff=0.4)
            if close:
                hint = f"; did you mean {close[0]!r}?"
        raise ValueError(f"make_task: parameter 'name' must be one of {sorted(TASKS)}, got {name!r}{hint}")
    fn = TASKS[name]
    params = inspect.signature(fn).parameters
    for key in kwargs:
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"make_task({name!r}): unknown parameter {key!r}; valid parameters are {list(params)}{hint}")
    missing = [p for p, spec in params.items() if spec.default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        raise ValueError(f"make_task({name!r}): missing required parameter(s) {missing}")
    return fn(**kwargs)


def poisson_inputs(*, T: int, batch: int, n_in: int, rate_hz: float, seed: int, dt: float = 1.0) -> np.ndarray:
    """Independent Poisson spike trains: ``(T, batch, n_in)`` of 0/1, each channel at ``rate_hz``.

    The background drive used to measure spectra of networks at rest on noise
    (e.g. 100 inputs at 10 Hz). Bernoulli per step with ``p = rate_hz·dt/1000``.
    """
    where = "poisson_inputs"
    T = check_int(f"{where}: parameter 'T'", T, 1)
    batch = check_int(f"{where}: parameter 'batch'", batch, 1)
    n_in = check_int(f"{where}: parameter 'n_in'", n_in, 1)
    dt = check_float(f"{where}: parameter 'dt'", dt, lo=0.0, lo_open=True)
    rate_hz = check_float(f"{where}: parameter 'rate_hz'", rate_hz, lo=0.0)
    p = rate_hz * dt / 1000.0
    if p > 1.0:
        raise ValueError(f"{where}: parameter 'rate_hz' must satisfy rate_hz*dt/1000 <= 1, got {p}")
    seed = check_int(f"{where}: parameter 'seed'", seed, 0)
    rng = np.random.default_rng(seed)
    return (rng.random((T, batch, n_in)) < p).astype(np.float64)
