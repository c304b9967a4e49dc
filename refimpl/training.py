"""Training: surrogate-gradient BPTT with Adam, optional gradient flossing, logs and checkpoints.

The run is described by a :class:`RunConfig` (one dataclass per section of
the TOML file, see :mod:`refimpl.configfile` and docs/training.md) and
executed by a :class:`Trainer`:

* **Data.** Every random draw is a pure function of ``task.seed`` and
  counters (:meth:`TaskData.derive`): a stream id and the epoch, step or
  flossing-step index are the ``spawn_key`` of a ``numpy.random.SeedSequence``.
  Bit tasks default to *fresh* batches (``steps_per_epoch`` new batches per
  epoch); ``data = "fixed"`` draws one training set of ``train_size``
  sequences and reshuffles it every epoch. ``randman`` is always fixed (one
  set of manifolds; ``samples_per_class`` training and
  ``test_samples_per_class`` test samples per class), and so is ``shd``
  (Spiking Heidelberg Digits read from files, :mod:`refimpl.datasets`). The
  test set is drawn once, separately from training data, and scores every
  epoch.
* **Epoch boundary** ``e`` (epochs completed): pre-flossing and the flossing
  schedule (:mod:`refimpl.schedules`), then one training epoch, then the
  evaluation on the test set (loss, accuracy, ``‖∂L/∂x₀‖``, firing rates)
  that becomes log row ``e + 1``. Row 0 evaluates the initial network.
  With every logged spectrum the gradient dimensionality is logged too
  (:mod:`refimpl.dimensionality`).
* **Initialization.** ``network.init = "default"`` draws
  :func:`refimpl.network.init_params`; ``"fluctuation"`` draws
  :func:`refimpl.init.fluctuation_init` (targets ``init_mu_U``,
  ``init_sigma_U``; input statistics ``init_nu_in`` or measured from the
  training inputs).
* **Resume.** Counters, parameters, both Adam states and the history of all
  logs are checkpointed atomically; since all randomness is derived from
  counters, a resumed run continues bit for bit like an uninterrupted one
  (only wall-clock times differ).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from . import __version__, flossing, lyapunov, readout, schedules
from . import dimensionality as dimensionality_mod
from .adjoint import value_and_grad
from .config import FLOSS_PARAMS, FlossConfig, LossConfig, LyapunovConfig, network_config
from .io import atomic_h5, read_dict, to_json, write_dict
from .network import (apply_DT, initial_state_keys, init_params, layers_of, pack,
                      relaxed_initial_state, simulate)
from .optim import AdamConfig, AdamState, adam_step, global_norm
from .schedules import ScheduleConfig, ScheduleState
from .tasks import CLASS_LOSSES, make_task

CHECKPOINT_FORMAT = "refimpl-training-checkpoint"
CHECKPOINT_VERSION = 1
BIT_TASKS = ("delayed_xor", "delayed_copy")
#: tasks with one fixed data set (no fresh batches): generated once, or read from files
FIXED_TASKS = ("randman", "shd")
INITS = ("default", "fluctuation")
X0_INITS = ("zero", "relaxed")
CLIPS = ("global", "per_array")
#: test sets of file-backed tasks are evaluated in chunks of this many samples (memory)
EVAL_CHUNK = 256
TRAINABLE = ("W_in", "W_rec", "b", "V0", "I0", "x0", "W_out", "b_out")

# seed streams (first entry of the SeedSequence spawn_key)
STREAM_TRAIN, STREAM_TEST, STREAM_FLOSS, STREAM_SPECTRUM, STREAM_SHUFFLE, STREAM_TRAINSET = range(1, 7)


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite."""


# ---------------------------------------------------------------------------
# validation helpers (messages name the TOML key: "section.key")
# ---------------------------------------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _int(key, v, lo=0, hi=None):
    if not _is_int(v) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{key} must be an integer {rng}, got {v!r}")


def _float(key, v, lo=None, hi=None, lo_open=False, hi_open=False, allow_inf=False):
    if not _is_num(v) or math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{key} must be a finite number, got {v!r}")
    bad = ((lo is not None and (v < lo or (lo_open and v == lo)))
           or (hi is not None and (v > hi or (hi_open and v == hi))))
    if bad:
        lb = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        hb = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        if lo is not None and hi is not None:
            rng = f"in {lb}, {hb}"
        elif lo is not None:
            rng = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            rng = f"{'<' if hi_open else '<='} {hi:g}"
        raise ValueError(f"{key} must be {rng}, got {v!r}")


def _coerce_floats(obj) -> None:
    """Store numbers of float-valued fields as float (so that 10 and 10.0 compare equal)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(f.default, float) and _is_num(v):
            object.__setattr__(obj, f.name, float(v))


def _choice(key, v, allowed):
    if v not in allowed:
        import difflib
        hint = difflib.get_close_matches(str(v), [str(a) for a in allowed], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"{key} must be one of {list(allowed)}, got {v!r}{extra}")


def _bool(key, v):
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{key} must be true or false, got {v!r}")


def _names(key, v, allowed):
    if isinstance(v, str) or not isinstance(v, (list, tuple)) or not v:
        raise ValueError(f"{key} must be a non-empty list of names from {list(allowed)}, got {v!r}")
    for p in v:
        _choice(f"{key} entry", p, allowed)
    if len(set(v)) != len(v):
        raise ValueError(f"{key} lists a name twice: {list(v)}")


# ---------------------------------------------------------------------------
# the sections of a run configuration
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class NetworkSection:
    """``[network]``: the network map (docs/model.md §1) and its random initialization.

    ``n_in`` and ``n_out`` are not keys: the task sets them. ``syn_input``,
    ``input_gain`` and ``reset`` default to the dialect's; ``readout`` (the
    readout source) to ``spikes`` for clif and ``state`` for binary/rate.
    """

    cell: str = "clif"
    dialect: str = "engelken"
    layers: tuple = (64,)
    dt: float = 1.0
    tau_mem: float = 10.0
    tau_syn: float = 5.0
    theta: float = 1.0
    syn_input: str | None = None
    input_gain: str | None = None
    reset: str | None = None
    reset_grad: str = "detached"
    surrogate: str = "fast_sigmoid"
    slope: float = 10.0
    smooth: bool = False
    tau_out: float = 5.0
    readout: str | None = None
    seed: int = 0
    w_in: float = 1.0
    g_rec: float = 1.0
    w_out: float = 1.0
    bias: float = 0.0
    init: str = "default"         # default | fluctuation (refimpl.init)
    init_mu_U: float = 0.0        # fluctuation: target mean of the free membrane (units of theta)
    init_sigma_U: float = 1.0     # fluctuation: target SD of the free membrane (units of theta)
    init_nu_in: float = 0.0       # fluctuation: input rate, Hz (0: mean and variance measured from the data)
    init_nu_rec: float = 0.0      # fluctuation: the layers' target rate, Hz (0: none; binary: mean field)
    init_rec_share: float = 0.0   # fluctuation: fraction of sigma_U^2 from the recurrent input, [0, 1)
    bias_spread: float = 0.0      # b = bias + bias_spread * U[0, 1) (the reference code: 0.1)
    keep_diagonal: bool = False   # keep the W_rec diagonal (autapses; the reference code keeps it)
    bias_out: float = 0.0         # initial readout bias b_out (the reference code: 0.001)
    x0_init: str = "zero"         # zero | relaxed (free-running from a random state)
    x0_relax_steps: int = 100     # relaxed: steps of free running
    x0_scale: float = 1.0         # relaxed: SD of the random starting state
    x0_per_slot: bool = False     # one initial state per batch slot (training.batch_size of them)

    def __post_init__(self):
        layers = self.layers
        if _is_int(layers):
            layers = (layers,)
        if not isinstance(layers, (list, tuple)):
            raise ValueError(f"network.layers must be a list of positive layer sizes, got {layers!r}")
        object.__setattr__(self, "layers", tuple(layers))
        for i, n in enumerate(self.layers):
            _int(f"network.layers[{i}]", n, 1)
        _int("network.seed", self.seed, 0)
        for key in ("w_in", "g_rec", "w_out"):
            _float(f"network.{key}", getattr(self, key), lo=0.0)
        _float("network.bias", self.bias)
        _bool("network.smooth", self.smooth)
        _choice("network.init", self.init, INITS)
        _float("network.init_mu_U", self.init_mu_U)
        _float("network.init_sigma_U", self.init_sigma_U, lo=0.0, lo_open=True)
        _float("network.init_nu_in", self.init_nu_in, lo=0.0)
        _float("network.init_nu_rec", self.init_nu_rec, lo=0.0)
        _float("network.init_rec_share", self.init_rec_share, lo=0.0, hi=1.0, hi_open=True)
        _float("network.bias_spread", self.bias_spread, lo=0.0)
        _bool("network.keep_diagonal", self.keep_diagonal)
        _float("network.bias_out", self.bias_out)
        _choice("network.x0_init", self.x0_init, X0_INITS)
        _int("network.x0_relax_steps", self.x0_relax_steps, 0)
        _float("network.x0_scale", self.x0_scale, lo=0.0)
        _bool("network.x0_per_slot", self.x0_per_slot)
        if self.init == "fluctuation" and (self.bias_spread or self.keep_diagonal):
            raise ValueError("network.bias_spread and network.keep_diagonal apply to network.init = 'default'")
        self.build(1, 1)  # validates every other key
        if self.init == "fluctuation":
            if self.bias != 0:
                raise ValueError("network.bias must be 0 with network.init = 'fluctuation' (a bias would shift "
                                 "the membrane mean away from init_mu_U)")
            if self.cell == "rate" and self.init_nu_rec:
                raise ValueError("network.init_nu_rec must be 0 for cell = 'rate' (its recurrent input tanh(x) "
                                 "has the statistics that init_mu_U and init_sigma_U imply)")
            if self.cell == "clif" and not self.init_nu_rec and (self.init_rec_share > 0 or len(self.layers) > 1):
                why = "init_rec_share > 0" if self.init_rec_share > 0 else "there is more than one layer"
                raise ValueError(f"network.init_nu_rec must be > 0 (Hz, the layers' target rate) when {why}")
        _coerce_floats(self)

    def init_kwargs(self) -> dict:
        """Keyword arguments of :func:`refimpl.init.fluctuation_init` (without the input statistics)."""
        return dict(mu_U=self.init_mu_U, sigma_U=self.init_sigma_U, nu_rec=self.init_nu_rec or None,
                    rec_share=self.init_rec_share, seed=self.seed, w_out=self.w_out)

    def build(self, n_in: int, n_out: int):
        kw = dict(cell=self.cell, layers=self.layers, n_in=n_in, n_out=n_out, dt=self.dt,
                  tau_mem=self.tau_mem, tau_syn=self.tau_syn, theta=self.theta,
                  reset_grad=self.reset_grad, smooth=self.smooth,
                  surrogate={"name": self.surrogate, "slope": self.slope})
        for key in ("syn_input", "input_gain", "reset"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        ro = {"tau_out": self.tau_out}
        if self.readout is not None:
            ro["source"] = self.readout
        elif self.cell != "clif":
            ro["source"] = "state"
        kw["readout"] = ro
        for key in ("dt", "tau_mem", "tau_syn", "theta", "slope", "tau_out"):
            v = getattr(self, key)
            if not _is_num(v):
                raise ValueError(f"network.{key} must be a number, got {v!r}")
        try:
            if self.cell == "clif":
                return network_config(dialect=self.dialect, **kw)
            return network_config(**kw)
        except ValueError as exc:
            raise ValueError(f"network: {exc}") from None


def task_names() -> list:
    """Every ``task.name``: the generators of :mod:`refimpl.tasks` and the file-backed ``shd``."""
    from .tasks import TASKS
    return [*TASKS, "shd"]


def _task_keys(name: str) -> tuple:
    """Valid ``[task]`` keys (besides ``name``) of the task ``name``."""
    import inspect
    from .tasks import TASKS
    if name == "shd":
        from .datasets import SHD_DEFAULTS
        return (*SHD_DEFAULTS, "seed")
    params = list(inspect.signature(TASKS[name]).parameters)
    drop = {"batch", "dt"}
    keys = [p for p in params if p not in drop]
    if name == "randman":
        keys.append("test_samples_per_class")
    return tuple(keys)


@dataclass(frozen=True)
class TaskSection:
    """``[task]``: which task and its parameters (those of :func:`refimpl.tasks.make_task`).

    ``seed`` seeds every draw of data (training, test, flossing and
    spectrum inputs). ``batch`` is ``training.batch_size``; ``dt`` is
    ``network.dt``.
    """

    name: str = "delayed_xor"
    options: tuple = ()   # sorted (key, value) pairs; seed included

    @classmethod
    def make(cls, name="delayed_xor", **options):
        return cls(name, tuple(sorted(options.items())))

    @property
    def opts(self) -> dict:
        return dict(self.options)

    @property
    def seed(self) -> int:
        return self.opts.get("seed", 0)

    def __post_init__(self):
        _choice("task.name", self.name, task_names())
        object.__setattr__(self, "options", tuple(sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in dict(self.options).items())))
        valid = _task_keys(self.name)
        for key, _ in self.options:
            if key not in valid:
                import difflib
                hint = difflib.get_close_matches(key, valid, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                why = {"batch": " (set training.batch_size)", "dt": " (set network.dt)"}.get(key, "")
                raise ValueError(f"unknown key {key!r} in [task] for task {self.name!r}{why}{extra} "
                                 f"(valid keys: {', '.join(['name', *valid])})")
        _int("task.seed", self.seed, 0)
        if self.name == "randman":
            o = self.opts
            _int("task.samples_per_class", o.get("samples_per_class", 0), 1)
            _int("task.test_samples_per_class", o.get("test_samples_per_class", 0), 1)
        if self.name == "shd":
            from .datasets import check_shd_options
            check_shd_options(self.opts)

    @property
    def is_bit_task(self) -> bool:
        return self.name in BIT_TASKS

    def probe(self, dt: float):
        """A one-element batch that fixes ``n_in``, ``n_out`` and the loss (``shd``: no file is opened)."""
        if self.name == "shd":
            from .datasets import shd_probe
            return shd_probe(self.opts)
        return self.generate(1, 0, dt)

    def generate(self, batch: int, seed: int, dt: float, T: int | None = None):
        """One :class:`TaskBatch` (bit tasks) of ``batch`` sequences, or the randman set."""
        kw = {k: v for k, v in self.opts.items() if k not in ("seed", "test_samples_per_class")}
        kw["dt"] = dt
        if self.name == "randman":
            kw["samples_per_class"] = batch
        else:
            kw["batch"] = batch
            if T is not None:
                kw["T"] = T
        kw["seed"] = seed
        try:
            return make_task(self.name, **kw)
        except ValueError as exc:
            msg = str(exc)
            prefix = f"make_task({self.name!r}): "
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
            if not msg.startswith(self.name):
                msg = f"{self.name}: {msg}"
            raise ValueError(f"[task] {msg}") from None


@dataclass(frozen=True)
class TrainingSection:
    """``[training]``: the task-loss optimizer and the data regime."""

    epochs: int = 20
    batch_size: int = 32
    steps_per_epoch: int = 10
    data: str = "auto"            # auto | fresh | fixed (randman: fixed)
    train_size: int = 0           # fixed bit-task data: number of training sequences
    test_size: int = 256          # bit tasks: sequences in the test set
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip_norm: float = 1.0        # 0 = no clipping
    clip: str = "global"          # global: the norm of all gradients; per_array: each array's own norm
    params: tuple = ("W_in", "W_rec", "b", "W_out", "b_out")
    eval_every: int = 1           # evaluate on the test set (a log row) every n epochs, and at the end

    def __post_init__(self):
        object.__setattr__(self, "params", tuple(self.params) if isinstance(self.params, (list, tuple))
                           else self.params)
        _int("training.epochs", self.epochs, 0)
        _int("training.batch_size", self.batch_size, 1)
        _int("training.steps_per_epoch", self.steps_per_epoch, 1)
        _choice("training.data", self.data, ["auto", "fresh", "fixed"])
        _int("training.train_size", self.train_size, 0)
        _int("training.test_size", self.test_size, 1)
        _float("training.lr", self.lr, lo=0.0, lo_open=True)
        _float("training.beta1", self.beta1, lo=0.0, hi=1.0, hi_open=True)
        _float("training.beta2", self.beta2, lo=0.0, hi=1.0, hi_open=True)
        _float("training.eps", self.eps, lo=0.0, lo_open=True)
        _float("training.clip_norm", self.clip_norm, lo=0.0)
        _choice("training.clip", self.clip, CLIPS)
        _names("training.params", self.params, TRAINABLE)
        _int("training.eval_every", self.eval_every, 1)
        _coerce_floats(self)

    def adam(self) -> AdamConfig:
        return AdamConfig(self.lr, self.beta1, self.beta2, self.eps, self.clip_norm or None,
                          per_array=self.clip == "per_array")


@dataclass(frozen=True)
class FlossingSection(ScheduleConfig):
    """``[flossing]``: the schedule (:class:`ScheduleConfig`) plus the flossing loss and its optimizer.

    ``k`` exponents are flossed toward ``target`` (1/step) by Adam with its
    own state; ``T`` (0: the task's ``T``) is the length of each flossing
    input (bit tasks only).
    """

    k: int = 16
    target: float = 0.0
    params: tuple = ("W_in", "W_rec", "b")
    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip_norm: float = 0.0
    T: int = 0
    warmup: int = -1      # QR settings of the flossing spectrum; -1: lyapunov.warmup
    transient: int = -1   # -1: lyapunov.transient

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "params", tuple(self.params) if isinstance(self.params, (list, tuple))
                           else self.params)
        _int("flossing.k", self.k, 1)
        _float("flossing.target", self.target)
        _names("flossing.params", self.params, FLOSS_PARAMS)
        _float("flossing.lr", self.lr, lo=0.0, lo_open=True)
        _float("flossing.beta1", self.beta1, lo=0.0, hi=1.0, hi_open=True)
        _float("flossing.beta2", self.beta2, lo=0.0, hi=1.0, hi_open=True)
        _float("flossing.eps", self.eps, lo=0.0, lo_open=True)
        _float("flossing.clip_norm", self.clip_norm, lo=0.0)
        _int("flossing.T", self.T, 0)
        _int("flossing.warmup", self.warmup, -1)
        _int("flossing.transient", self.transient, -1)
        _coerce_floats(self)

    def adam(self) -> AdamConfig:
        return AdamConfig(self.lr, self.beta1, self.beta2, self.eps, self.clip_norm or None)

    def floss_config(self) -> FlossConfig:
        return FlossConfig(self.target, self.params)


@dataclass(frozen=True)
class LyapunovSection:
    """``[lyapunov]``: the spectrum logged during training, and the QR settings flossing shares."""

    k: int = 16
    ons: int = 1
    warmup: int = 0
    transient: int = 0
    seed: int = 0
    every: int = 5    # log the spectrum at epochs e with e % every == 0 (0: never)
    T: int = 0        # length of the spectrum input (0: as the flossing inputs, flossing.T or the task's T)
    dimensionality: bool = True           # with each logged spectrum, log the gradient dimensionality
    dimensionality_batch: int = 8         # test samples whose per-step gradient terms are the samples
    dimensionality_params: tuple = ("W_rec",)
    dimensionality_threshold: float = -0.05   # n_slow counts exponents above this (1/step)

    def __post_init__(self):
        self.config()          # LyapunovConfig checks the settings the two share (same keys, same messages)
        _int("lyapunov.every", self.every, 0)
        _int("lyapunov.T", self.T, 0)
        _bool("lyapunov.dimensionality", self.dimensionality)
        _int("lyapunov.dimensionality_batch", self.dimensionality_batch, 1)
        object.__setattr__(self, "dimensionality_params", tuple(self.dimensionality_params)
                           if isinstance(self.dimensionality_params, (list, tuple)) else self.dimensionality_params)
        _names("lyapunov.dimensionality_params", self.dimensionality_params, dimensionality_mod.SAMPLE_PARAMS)
        _float("lyapunov.dimensionality_threshold", self.dimensionality_threshold)
        _coerce_floats(self)

    def config(self, k: int | None = None, flossing: "FlossingSection | None" = None) -> LyapunovConfig:
        """The QR settings of logged spectra, or (``flossing`` given) of the flossing spectrum, whose
        ``warmup`` and ``transient`` are ``flossing``'s unless those are -1."""
        warmup, transient = self.warmup, self.transient
        if flossing is not None:
            warmup = warmup if flossing.warmup < 0 else flossing.warmup
            transient = transient if flossing.transient < 0 else flossing.transient
        return LyapunovConfig(k=self.k if k is None else k, ons=self.ons, warmup=warmup,
                              transient=transient, batch_index=0, seed=self.seed)


@dataclass(frozen=True)
class OutputSection:
    """``[output]``: where files go and how often checkpoints are written."""

    dir: str = "out"
    checkpoint_every: int = 5   # epochs; 0: only at the end (and on Ctrl-C)
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.dir, str) or not self.dir:
            raise ValueError(f"output.dir must be a non-empty string, got {self.dir!r}")
        _int("output.checkpoint_every", self.checkpoint_every, 0)
        _bool("output.progress", self.progress)


SECTIONS = {"network": NetworkSection, "task": TaskSection, "training": TrainingSection,
            "flossing": FlossingSection, "lyapunov": LyapunovSection, "output": OutputSection}

#: keys whose value may differ between a checkpoint and the run that resumes it
RESUME_FREE = {("training", "epochs"), ("output", "dir"), ("output", "checkpoint_every"),
               ("output", "progress")}


@dataclass(frozen=True)
class RunConfig:
    """A whole training run; validated as a whole when built."""

    network: NetworkSection = field(default_factory=NetworkSection)
    task: TaskSection = field(default_factory=lambda: TaskSection.make(
        "delayed_xor", T=100, delta=5, seed=0))
    training: TrainingSection = field(default_factory=TrainingSection)
    flossing: FlossingSection = field(default_factory=FlossingSection)
    lyapunov: LyapunovSection = field(default_factory=LyapunovSection)
    output: OutputSection = field(default_factory=OutputSection)

    def __post_init__(self):
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"RunConfig.{name} must be a {cls.__name__}")
        tr, task = self.training, self.task
        if task.name in FIXED_TASKS:
            if tr.data == "fresh":
                raise ValueError(f"training.data = 'fresh' is impossible for {task.name} (one fixed data set); "
                                 "use 'fixed' or 'auto'")
        elif self.data_mode == "fixed" and tr.train_size < tr.batch_size:
            raise ValueError(f"training.train_size must be >= training.batch_size = {tr.batch_size} "
                             f"with training.data = 'fixed', got {tr.train_size}")
        if task.name in FIXED_TASKS and self.flossing.T:
            raise ValueError(f"flossing.T must be 0 for {task.name} (its inputs have a fixed length)")
        if task.name in FIXED_TASKS and self.lyapunov.T:
            raise ValueError(f"lyapunov.T must be 0 for {task.name} (its inputs have a fixed length)")
        if self.network.x0_per_slot and set(self.flossing.params) & {"x0", "V0", "I0"}:
            raise ValueError("flossing.params cannot include the initial state with network.x0_per_slot "
                             "(flossing sees slot 0 only)")
        if self.network.x0_per_slot and self.network.x0_init != "relaxed":
            raise ValueError("network.x0_per_slot needs network.x0_init = 'relaxed' (zero states are all equal)")
        # probe the task with a one-element batch: validates every task key and gives n_in/n_out
        probe = task.probe(float(self.network.dt))
        object.__setattr__(self, "_probe", probe)
        net = self.network_config()
        if self.network.init == "fluctuation" and self.network.init_nu_in > 0:
            # with a given input rate everything is known now (else: at the start, from the data)
            fluctuation_params(self, net, nu_in=self.network.init_nu_in, dry_run=True)
        M = net.state_size
        T_spec = self.spectrum_T
        try:
            lyapunov.check_lyapunov(net, self.lyapunov.config(), T_spec, 1)
        except ValueError as exc:
            raise ValueError(f"[lyapunov] does not fit the network/input (T = {T_spec}): {exc}") from None
        if self.flossing.floss_ever:
            try:
                lyapunov.check_lyapunov(net, self.lyapunov.config(flossing=self.flossing), self.floss_T, 1)
            except ValueError as exc:
                raise ValueError(f"[flossing] warmup/transient do not fit the flossing input "
                                 f"(T = {self.floss_T}): {exc}") from None
            if self.flossing.k > M:
                raise ValueError(f"flossing.k must be <= M = {M} (the state size), got {self.flossing.k}")
            try:
                flossing.flossed_keys(net, self.flossing.floss_config())
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        for p in tr.params:
            if p in ("V0", "I0") and net.cell != "clif" or p == "x0" and net.cell == "clif":
                raise ValueError(f"training.params entry {p!r} does not exist for cell = {net.cell!r}")

    # -- derived ------------------------------------------------------------
    @property
    def data_mode(self) -> str:
        if self.task.name in FIXED_TASKS:
            return "fixed"
        return "fresh" if self.training.data == "auto" else self.training.data

    @property
    def n_in(self) -> int:
        return self._probe.n_in

    @property
    def n_out(self) -> int:
        return self._probe.n_out

    @property
    def task_T(self) -> int:
        return self._probe.T

    @property
    def floss_T(self) -> int:
        """Length of flossing inputs (``flossing.T`` or the task's ``T``)."""
        return self.flossing.T or self._probe.T

    @property
    def spectrum_T(self) -> int:
        """Length of the spectrum input (``lyapunov.T``, else as the flossing inputs)."""
        return self.lyapunov.T or self.floss_T

    def network_config(self):
        return self.network.build(self.n_in, self.n_out)

    def loss_config(self) -> LossConfig:
        return LossConfig(self._probe.loss, self._probe.t0)

    def to_dict(self) -> dict:
        """Canonical nested dict (JSON/TOML-able; ``None`` values left out)."""
        out = {}
        for name in SECTIONS:
            sec = getattr(self, name)
            if name == "task":
                d = {"name": sec.name, **{k: list(v) if isinstance(v, tuple) else v
                                          for k, v in sec.options}}
            else:
                d = {}
                for f in fields(sec):
                    v = getattr(sec, f.name)
                    if v is None:
                        continue
                    d[f.name] = list(v) if isinstance(v, tuple) else v
            out[name] = d
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """Inverse of :meth:`to_dict`; sections and keys must be valid (see :mod:`refimpl.configfile`)."""
        kw = {}
        for name, sec_cls in SECTIONS.items():
            sd = dict(d.get(name, {}))
            if name == "task":
                task_name = sd.pop("name", "delayed_xor")
                kw[name] = TaskSection.make(task_name, **sd)
            else:
                kw[name] = sec_cls(**sd)
        return cls(**kw)

    def replace(self, section: str, **changes) -> "RunConfig":
        if section == "task":
            sec = self.task
            name = changes.pop("name", sec.name)
            new = TaskSection.make(name, **{**sec.opts, **changes})
        else:
            new = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **{section: new})


def _field_default(sec: str, key: str):
    """The default of ``[sec] key`` (a dataclass field), or ``"<unset>"``."""
    cls = SECTIONS.get(sec)
    if cls is None or sec == "task":
        return "<unset>"
    for f in fields(cls):
        if f.name == key:
            if f.default is not dataclasses.MISSING and f.default is not None:
                return list(f.default) if isinstance(f.default, tuple) else f.default
            return "<unset>"
    return "<unset>"


def config_diff(a: dict, b: dict, ignore=RESUME_FREE) -> list:
    """``[(section.key, value_a, value_b)]`` for every key that differs.

    A key missing on one side counts as its default, so that checkpoints
    written before a key existed (e.g. ``network.init``) still resume when
    the run uses that key's default.
    """
    out = []
    for sec in sorted(set(a) | set(b)):
        sa, sb = a.get(sec, {}), b.get(sec, {})
        for key in sorted(set(sa) | set(sb)):
            if (sec, key) in ignore:
                continue
            va, vb = sa.get(key, _field_default(sec, key)), sb.get(key, _field_default(sec, key))
            if json.dumps(va) != json.dumps(vb):
                out.append((f"{sec}.{key}", va, vb))
    return out


_INIT_ARGS = ("mu_U", "sigma_U", "nu_in", "nu_rec", "rec_share")


def fluctuation_params(run: "RunConfig", net, *, nu_in=None, input_moments=None, dry_run: bool = False):
    """The fluctuation-driven initial parameters of ``run`` (:func:`refimpl.init.fluctuation_init`).

    ``nu_in`` (Hz) or ``input_moments`` (mean, variance of the inputs per
    step) describe the input; ``dry_run`` only checks that the targets can be
    met. Errors name the ``network.init_*`` keys.
    """
    import re
    from . import init as init_mod
    kw = run.network.init_kwargs()
    try:
        if dry_run:
            kw.pop("seed"), kw.pop("w_out")
            init_mod.plan(net, nu_in=nu_in, input_moments=input_moments, **kw)
            return None
        return init_mod.fluctuation_init(net, nu_in=nu_in, input_moments=input_moments, **kw)
    except ValueError as exc:
        msg = str(exc)
        for a in _INIT_ARGS:
            msg = re.sub(rf"\b{a}\b", f"network.init_{a}", msg)
        raise ValueError(f"network.init = 'fluctuation': {msg}") from None


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

class TaskData:
    """All inputs of a run, each a pure function of ``task.seed`` and counters."""

    def __init__(self, run: RunConfig):
        self.run = run
        self.task = run.task
        self.dt = float(run.network.dt)
        self.B = run.training.batch_size
        self.seed = self.task.seed
        if self.task.name == "shd":
            from .datasets import shd_sets
            # kept as uint8/uint16 (a full SHD set is ~0.5 GB as float64); batches are converted
            (self.train_inputs, self.train_targets), (self.test_inputs, self.test_targets) = shd_sets(
                self.task.opts, self.dt, self.seed)
        elif self.task.name == "randman":
            o = self.task.opts
            n_tr, n_te = o["samples_per_class"], o["test_samples_per_class"]
            full = self.task.generate(n_tr + n_te, self.seed, self.dt)
            # stratified split: the first n_tr samples of each class train, the rest test
            rank = np.zeros(full.targets.shape, dtype=np.int64)
            for c in range(full.n_classes):
                idx = np.nonzero(full.targets == c)[0]
                rank[idx] = np.arange(idx.size)
            tr, te = np.nonzero(rank < n_tr)[0], np.nonzero(rank >= n_tr)[0]
            self.train_inputs = np.ascontiguousarray(full.inputs[:, tr])
            self.train_targets = full.targets[tr]
            self.test_inputs = np.ascontiguousarray(full.inputs[:, te])
            self.test_targets = full.targets[te]
        else:
            if run.data_mode == "fixed":
                s = self.task.generate(run.training.train_size, self.derive(STREAM_TRAINSET), self.dt)
                self.train_inputs, self.train_targets = s.inputs, s.targets
            test = self.task.generate(run.training.test_size, self.derive(STREAM_TEST), self.dt)
            self.test_inputs, self.test_targets = test.inputs, test.targets
        if run.data_mode == "fixed" and self.train_inputs.shape[1] < self.B:
            raise ValueError(f"training.batch_size = {self.B} exceeds the {self.train_inputs.shape[1]} "
                             "training samples")

    def derive(self, stream: int, *counters: int) -> int:
        """A 32-bit seed from ``task.seed``, the stream id and counters."""
        ss = np.random.SeedSequence(self.seed, spawn_key=(stream, *counters))
        return int(ss.generate_state(1, np.uint32)[0])

    def steps_per_epoch(self) -> int:
        if self.run.data_mode == "fresh":
            return self.run.training.steps_per_epoch
        return self.train_inputs.shape[1] // self.B   # the incomplete last batch is dropped

    def train_batch(self, epoch: int, step: int):
        """Inputs and targets of training step ``step`` of epoch ``epoch`` (0-based)."""
        if self.run.data_mode == "fresh":
            b = self.task.generate(self.B, self.derive(STREAM_TRAIN, epoch, step), self.dt)
            return b.inputs, b.targets
        perm = np.random.default_rng(self.derive(STREAM_SHUFFLE, epoch)).permutation(
            self.train_inputs.shape[1])
        idx = np.sort(perm[step * self.B:(step + 1) * self.B])
        targets = self.train_targets[idx] if self.train_targets.ndim == 1 else self.train_targets[:, idx]
        return _f64(self.train_inputs[:, idx]), targets

    def floss_input(self, i: int) -> np.ndarray:
        """Input ``(T, 1, n_in)`` of flossing step ``i`` (batch element 0 of a fresh flossing batch)."""
        if self.task.name in FIXED_TASKS:
            j = int(np.random.default_rng(self.derive(STREAM_FLOSS, i)).integers(self.train_inputs.shape[1]))
            return _f64(self.train_inputs[:, j:j + 1])
        return self._inputs(self.derive(STREAM_FLOSS, i), self.run.floss_T)

    def spectrum_input(self) -> np.ndarray:
        """The fixed input ``(T, 1, n_in)`` on which spectra and λ₁ checks are measured."""
        if self.task.name in FIXED_TASKS:
            return _f64(self.test_inputs[:, :1])
        return self._inputs(self.derive(STREAM_SPECTRUM), self.run.spectrum_T)

    def _inputs(self, seed: int, T: int) -> np.ndarray:
        """The first ``T`` steps of one sequence of the task. A task whose targets need more than
        ``T`` steps (a delayed XOR with ``d >= T``) draws a sequence of its own length and cuts it,
        as the reference code cuts its 300-step flossing sequences to 55 steps; otherwise the
        sequence is drawn at length ``T`` (the inputs of every earlier configuration)."""
        try:
            return self.task.generate(1, seed, self.dt, T=T).inputs
        except ValueError:
            full = self.task.generate(1, seed, self.dt, T=max(T, self.run.task_T))
            return np.ascontiguousarray(full.inputs[:T])

    def test_chunks(self, size: int | None = None):
        """``(inputs, targets)`` of the test set in chunks of ``size`` samples (None: one chunk), float64."""
        n = self.test_inputs.shape[1]
        size = n if size is None else size
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            tg = self.test_targets[lo:hi] if self.test_targets.ndim == 1 else self.test_targets[:, lo:hi]
            yield _f64(self.test_inputs[:, lo:hi]), tg

    def input_moments(self):
        """Mean and variance per step and channel of the training inputs (the fixed training set, or
        the first fresh training batch): the input statistics of a fluctuation-driven initialization."""
        u = self.train_inputs if self.run.data_mode == "fixed" else self.train_batch(0, 0)[0]
        s1 = s2 = 0.0
        for lo in range(0, u.shape[1], 256):   # chunks: no float64 copy of a whole uint8 data set
            x = np.asarray(u[:, lo:lo + 256], dtype=np.float64)
            s1 += float(x.sum())
            s2 += float(np.sum(x * x))
        n = u.size
        mean = s1 / n
        return mean, max(s2 / n - mean * mean, 0.0)


def _f64(x) -> np.ndarray:
    """A C-contiguous float64 array (no copy if it already is one)."""
    return np.ascontiguousarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------

def accuracy(loss: LossConfig, y: np.ndarray, targets: np.ndarray) -> float:
    """Fraction correct: per-step bits (``y > 0`` for bce, ``y > 0.5`` for mse) at ``t ≥ t0``, or argmax class.

    For class losses the per-class score is the loss's own reduction over
    ``t0 ≤ t < T`` (max, mean or last step).
    """
    t0 = loss.t0
    if loss.name in CLASS_LOSSES:
        scored = y[t0:]
        z = {"ce_max": lambda: scored.max(axis=0), "ce_mean": lambda: scored.mean(axis=0),
             "ce_last": lambda: y[-1]}[loss.name]()
        return float(np.mean(np.argmax(z, axis=1) == targets))
    thr = 0.0 if loss.name == "bce_per_step" else 0.5
    return float(np.mean((y[t0:] > thr) == (targets[t0:] > 0.5)))


def firing_rates(cfg, traj) -> np.ndarray:
    """Mean firing rate per layer in Hz (spikes/activations ``S_t``, ``t = 1 … T``)."""
    return np.array([float(S[1:].mean()) * 1000.0 / cfg.dt for S in traj.S])


def initial_state_grad_norm(cfg, grads: dict) -> float:
    """``‖∂L/∂x₀‖`` over all layers (the gradient of the shared initial state)."""
    return float(np.sqrt(sum(np.sum(grads[k] ** 2) for k in initial_state_keys(cfg))))


def state_adjoints(cfg, params: dict, traj, ybar: np.ndarray, b: int = 0) -> np.ndarray:
    """``x̄_t = ∂(Σ_s ȳ_s·y_s)/∂x_t`` for ``t = 0 … T`` along trajectory ``b``: shape ``(T+1, M)``.

    ``x̄_t`` is the full adjoint of the state ``x_t`` (all layers, docs/model.md §1.2
    ordering) of batch element ``b``: ``x̄_T`` receives the readout's adjoint
    of ``s_T``, then ``x̄_t = D_tᵀ x̄_{t+1} + (readout adjoint at s_t)``.
    ``x̄_0`` equals the batch-``b`` part of ``∂/∂x_0`` of
    :func:`refimpl.adjoint.backward`.
    """
    Ls = layers_of(cfg)
    sl = slice(b, b + 1)
    k = readout.kappa(cfg)
    sbar, _, _ = readout.vjp(traj.readout_s[:, sl], ybar[:, sl], params["readout/W_out"], k)
    top = len(Ls) - 1
    via_s = cfg.readout.source in ("spikes", "activation")
    T = traj.T

    def inject(blocks, t):
        g = sbar[t]  # (1, N_L)
        if via_s:
            g = g * traj.lin[top][0][t, sl]
        blocks[top][0][:] += g

    blocks = [(np.zeros((1, L.N)), np.zeros((1, L.N))) for L in Ls]
    inject(blocks, T)
    out = np.zeros((T + 1, cfg.state_size))
    out[T] = pack(cfg, blocks)[0]
    for t in range(T - 1, -1, -1):
        blocks = apply_DT(cfg, Ls, params, traj, t, blocks, b)
        inject(blocks, t)
        out[t] = pack(cfg, blocks)[0]
    return out


def error_norms(cfg, params: dict, traj, ybar: np.ndarray, b: int = 0) -> np.ndarray:
    """``‖x̄_t‖`` for ``t = 0 … T`` (see :func:`state_adjoints`)."""
    return np.linalg.norm(state_adjoints(cfg, params, traj, ybar, b), axis=1)


def error_norm_vs_lag(cfg, params: dict, inputs, targets, loss: LossConfig, t_err: int | None = None,
                      batch: int | None = None):
    """Backpropagated error norm against lag, for the loss of a single step.

    The loss is scored at the single step ``t_err`` (default ``T - 1``), so
    that every state adjoint comes from one error signal; for each batch
    element ``b``, ``‖∂L/∂x_t‖`` is computed for ``t = 0 … t_err + 1`` and
    indexed by ``lag = t_err + 1 - t`` (lag 0: the state the output ``y_{t_err}``
    reads). Returns ``(lags, norms)`` with ``norms`` of shape ``(B, t_err + 2)``;
    averaging ``log norms`` over ``b`` gives the curve to compare with
    ``exp(λ₁·lag)``.
    """
    from .losses import loss_and_grad
    inputs = np.ascontiguousarray(inputs, dtype=float)
    T = inputs.shape[0]
    t_err = T - 1 if t_err is None else int(t_err)
    if not 0 <= t_err < T:
        raise ValueError(f"t_err must be in [0, T = {T}), got {t_err}")
    B = inputs.shape[1] if batch is None else min(batch, inputs.shape[1])
    traj = simulate(cfg, params, inputs[:, :B])
    if loss.name in CLASS_LOSSES:
        lcfg = LossConfig("ce_last", 0)
        _, ybar = loss_and_grad(lcfg, traj.y[:t_err + 1], np.asarray(targets)[:B])
        ybar = np.concatenate([ybar, np.zeros((T - t_err - 1,) + ybar.shape[1:])])
    else:
        lcfg = LossConfig(loss.name, t_err)
        _, ybar = loss_and_grad(lcfg, traj.y, np.asarray(targets)[:, :B])
        ybar[t_err + 1:] = 0.0
    norms = np.array([error_norms(cfg, params, traj, ybar, b)[:t_err + 2][::-1]
                      for b in range(B)])
    return np.arange(t_err + 2), norms


# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------

EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "grad_norm", "test_loss", "test_acc", "grad_x0",
                "floss_steps", "epoch_time", "wall_time")
#: the gradient-dimensionality log, one row per logged spectrum of stage 0 (refimpl.dimensionality)
DIM_FIELDS = ("epoch", "grad_pr", "grad_pr_time", "grad_pr_batch", "ky_dim", "n_slow")


class History:
    """Everything logged so far; written to ``log.h5`` and into every checkpoint."""

    def __init__(self):
        self.rows = {k: [] for k in EPOCH_FIELDS}
        self.rates = []
        self.spectrum = {"epoch": [], "stage": [], "exponents": [], "error": []}
        self.floss = {"epoch": [], "loss": [], "exponents": [], "grad_norm": [], "skipped": []}
        self.checks = {"epoch": [], "lambda1": [], "grad_x0": []}
        self.dimensionality = {k: [] for k in DIM_FIELDS}

    @property
    def n_rows(self) -> int:
        return len(self.rows["epoch"])

    def last(self, key):
        return self.rows[key][-1]

    def write(self, group, n_layers: int, k_spec: int, k_floss: int) -> None:
        g = group.create_group("epochs")
        for key in EPOCH_FIELDS:
            g.create_dataset(key, data=np.asarray(self.rows[key], dtype=np.int64 if key in (
                "epoch", "floss_steps") else float))
        g.create_dataset("rates", data=np.asarray(self.rates, float).reshape(-1, n_layers))
        s = group.create_group("spectrum")
        s.create_dataset("epoch", data=np.asarray(self.spectrum["epoch"], np.int64))
        s.create_dataset("stage", data=np.asarray(self.spectrum["stage"], np.int64))
        s.create_dataset("exponents", data=np.asarray(self.spectrum["exponents"], float).reshape(-1, k_spec))
        s.create_dataset("error", data=np.asarray(self.spectrum["error"], float).reshape(-1, k_spec))
        f = group.create_group("flossing")
        f.create_dataset("epoch", data=np.asarray(self.floss["epoch"], np.int64))
        f.create_dataset("loss", data=np.asarray(self.floss["loss"], float))
        f.create_dataset("exponents", data=np.asarray(self.floss["exponents"], float).reshape(-1, k_floss))
        f.create_dataset("grad_norm", data=np.asarray(self.floss["grad_norm"], float))
        f.create_dataset("skipped", data=np.asarray(self.floss["skipped"], bool))
        c = group.create_group("checks")
        c.create_dataset("epoch", data=np.asarray(self.checks["epoch"], np.int64))
        c.create_dataset("lambda1", data=np.asarray(self.checks["lambda1"], float))
        c.create_dataset("grad_x0", data=np.asarray(self.checks["grad_x0"], float))
        d = group.create_group("dimensionality")
        for key in DIM_FIELDS:
            d.create_dataset(key, data=np.asarray(self.dimensionality[key],
                                                  np.int64 if key in ("epoch", "n_slow") else float))

    @classmethod
    def read(cls, group) -> "History":
        h = cls()
        for key in EPOCH_FIELDS:
            h.rows[key] = [x.item() for x in group["epochs"][key][()]]
        h.rates = [r for r in group["epochs/rates"][()]]
        for key in h.spectrum:
            h.spectrum[key] = [x.item() if np.ndim(x) == 0 else x for x in group["spectrum"][key][()]]
        for key in h.floss:
            h.floss[key] = [x.item() if np.ndim(x) == 0 else x for x in group["flossing"][key][()]]
        for key in h.checks:
            h.checks[key] = [x.item() for x in group["checks"][key][()]]
        if "dimensionality" in group:     # logs written before it existed have no such group
            for key in DIM_FIELDS:
                h.dimensionality[key] = [x.item() for x in group["dimensionality"][key][()]]
        return h

    def copy(self) -> "History":
        h = History()
        h.rows = {k: list(v) for k, v in self.rows.items()}
        h.rates = list(self.rates)
        h.spectrum = {k: list(v) for k, v in self.spectrum.items()}
        h.floss = {k: list(v) for k, v in self.floss.items()}
        h.checks = {k: list(v) for k, v in self.checks.items()}
        h.dimensionality = {k: list(v) for k, v in self.dimensionality.items()}
        return h


def read_log(path) -> dict:
    """A ``log.h5`` (or the ``log`` group of a checkpoint) as a flat dict of arrays."""
    import h5py
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"read_log: {path} is not a file (a log.h5 or checkpoint.h5 of refimpl train)")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise ValueError(f"read_log: {path} is not an HDF5 file (a log.h5 or checkpoint.h5 of refimpl train)") \
            from None
    with f:
        g = f["log"] if "log" in f and "epochs" not in f else f
        if "epochs" not in g:
            raise ValueError(f"read_log: {path} holds no training log (no 'epochs' group)")
        return read_dict(g)


# ---------------------------------------------------------------------------
# the trainer
# ---------------------------------------------------------------------------

def _copy_adam(s: AdamState) -> AdamState:
    return AdamState(dict(s.m), dict(s.v), s.t)


@dataclass
class _Snapshot:
    params: dict
    adam: AdamState
    floss_adam: AdamState
    epoch: int
    floss_counter: int
    sched: dict
    history: History
    wall: float


class Trainer:
    """Runs (or resumes) a :class:`RunConfig`; see the module docstring for the loop.

    ``out_dir`` receives ``log.h5`` (after every epoch), ``checkpoint.h5``
    (every ``output.checkpoint_every`` epochs, at the end and on Ctrl-C) and
    ``config.toml``; ``None`` keeps everything in memory. ``progress`` is
    called with event dicts: ``{"kind": "floss"}`` after each flossing step,
    ``"boundary"`` when the flossing at a boundary is done (before the
    epoch's first training step), ``"step"`` after each training step and
    ``"epoch"`` after each log row.
    """

    def __init__(self, run: RunConfig, out_dir=None, *, progress=None):
        self.run = run
        self.cfg = run.network_config()
        self.loss_cfg = run.loss_config()
        self.data = TaskData(run)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress = progress
        net = run.network
        if net.init == "fluctuation":
            if net.init_nu_in > 0:
                self.params = fluctuation_params(run, self.cfg, nu_in=net.init_nu_in)
            else:
                self.params = fluctuation_params(run, self.cfg, input_moments=self.data.input_moments())
        else:
            self.params = init_params(self.cfg, net.seed, w_in=net.w_in, g_rec=net.g_rec, w_out=net.w_out,
                                      bias=net.bias, bias_spread=net.bias_spread,
                                      keep_diagonal=net.keep_diagonal, bias_out=net.bias_out)
        if net.x0_init == "relaxed":
            slots = run.training.batch_size if net.x0_per_slot else 1
            x0 = relaxed_initial_state(self.cfg, self.params, slots=slots, steps=net.x0_relax_steps,
                                       scale=net.x0_scale, seed=net.seed)
            self.params.update(x0 if net.x0_per_slot else {k: v[0] for k, v in x0.items()})
        self.adam = AdamState()
        self.floss_adam = AdamState()
        self.epoch = 0
        self.floss_counter = 0
        self.sched = ScheduleState()
        self.history = History()
        self._wall0 = 0.0            # wall time of earlier processes (resume)
        self._t_start = time.perf_counter()
        self._spec_input = None
        self.trained_keys = [k for k in self.params if k.split("/")[1] in run.training.params]
        self.task_name = run.task.name

    # -- state ----------------------------------------------------------------
    @property
    def wall(self) -> float:
        return self._wall0 + time.perf_counter() - self._t_start

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(dict(self.params), _copy_adam(self.adam), _copy_adam(self.floss_adam), self.epoch,
                         self.floss_counter, self.sched.to_dict(), self.history.copy(), self.wall)

    def _restore(self, s: _Snapshot) -> None:
        self.params, self.adam, self.floss_adam = s.params, s.adam, s.floss_adam
        self.epoch, self.floss_counter = s.epoch, s.floss_counter
        self.sched = ScheduleState.from_dict(s.sched)
        self.history = s.history
        self._wall0, self._t_start = s.wall, time.perf_counter()

    def _emit(self, **event) -> None:
        if self.progress is not None:
            self.progress(event)

    # -- initial states per batch slot ------------------------------------------
    def params_for(self, B: int) -> dict:
        """The parameters for a batch of ``B`` trajectories: with one initial state per batch slot
        (``network.x0_per_slot``), trajectory ``i`` starts from slot ``i % slots``."""
        if not self.run.network.x0_per_slot:
            return self.params
        p = dict(self.params)
        for k in initial_state_keys(self.cfg):
            X = self.params[k]
            p[k] = np.ascontiguousarray(X[np.arange(B) % X.shape[0]])
        return p

    def single_params(self) -> dict:
        """The parameters of one trajectory (spectra, flossing): per-slot initial states give slot 0,
        as the reference code's ``xInit[:, 1]``."""
        if not self.run.network.x0_per_slot:
            return self.params
        p = dict(self.params)
        for k in initial_state_keys(self.cfg):
            p[k] = np.ascontiguousarray(self.params[k][0])
        return p

    def _fold_state_grads(self, grads: dict) -> dict:
        """Sum the gradients of tiled per-trajectory initial states back onto their slots."""
        if not self.run.network.x0_per_slot:
            return grads
        g = dict(grads)
        for k in initial_state_keys(self.cfg):
            slots = self.params[k].shape[0]
            G = grads[k]
            out = np.zeros((slots, G.shape[1]))
            np.add.at(out, np.arange(G.shape[0]) % slots, G)
            g[k] = out
        return g

    # -- measurements -----------------------------------------------------------
    def spectrum_input(self) -> np.ndarray:
        if self._spec_input is None:
            self._spec_input = self.data.spectrum_input()
        return self._spec_input

    def spectrum(self, k: int | None = None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lyapunov.DegenerateSpectrumWarning)
            return lyapunov.spectrum(self.cfg, self.single_params(), self.spectrum_input(),
                                     self.run.lyapunov.config(k))

    def _log_spectrum(self, epoch: int, stage: int):
        res = self.spectrum()
        h = self.history.spectrum
        h["epoch"].append(epoch), h["stage"].append(stage)
        h["exponents"].append(res.exponents), h["error"].append(res.error)
        return res

    def gradient_dimensionality(self, exponents=None) -> dict:
        """Participation ratios of the per-step gradient terms (:mod:`refimpl.dimensionality`) of the
        test loss on the first ``lyapunov.dimensionality_batch`` test samples, and, from the
        ``exponents`` of a spectrum, the Kaplan–Yorke dimension and the number of exponents above
        ``lyapunov.dimensionality_threshold``."""
        from .losses import loss_and_grad
        ly = self.run.lyapunov
        u, targets = next(self.data.test_chunks(ly.dimensionality_batch))
        params = self.params_for(u.shape[1])
        traj = simulate(self.cfg, params, u)
        _, ybar = loss_and_grad(self.loss_cfg, traj.y, targets)
        gs = dimensionality_mod.gradient_samples(self.cfg, params, traj, ybar,
                                                 names=ly.dimensionality_params)
        pr = gs.participation_ratios()
        out = {"grad_pr": pr["all"], "grad_pr_time": pr["time"], "grad_pr_batch": pr["batch"]}
        if exponents is not None:
            out["ky_dim"] = lyapunov.kaplan_yorke(exponents)
            out["n_slow"] = int(np.sum(np.asarray(exponents) > ly.dimensionality_threshold))
        return out

    def _log_dimensionality(self, epoch: int, exponents) -> None:
        d = self.gradient_dimensionality(exponents)
        h = self.history.dimensionality
        h["epoch"].append(epoch)
        for key in DIM_FIELDS[1:]:
            h[key].append(d[key])

    def evaluate(self):
        """Test loss, accuracy, ``‖∂L/∂x₀‖`` and per-layer rates of the current parameters.

        File-backed tasks (``shd``) are evaluated in chunks of ``EVAL_CHUNK``
        samples (memory); the chunk results are combined with weights
        ``B_chunk/B`` (every quantity is a mean over the batch).
        """
        if self.task_name != "shd":
            loss, grads, traj = value_and_grad(self.cfg, self.params_for(self.data.test_inputs.shape[1]),
                                               self.data.test_inputs, self.data.test_targets, self.loss_cfg)
            return {"test_loss": loss, "test_acc": accuracy(self.loss_cfg, traj.y, self.data.test_targets),
                    "grad_x0": initial_state_grad_norm(self.cfg, self._fold_state_grads(grads)),
                    "rates": firing_rates(self.cfg, traj)}
        n = self.data.test_inputs.shape[1]
        loss = acc = 0.0
        rates = 0.0
        gx0 = None
        names = initial_state_keys(self.cfg)
        for u, tg in self.data.test_chunks(EVAL_CHUNK):
            w = u.shape[1] / n
            l_c, g_c, traj = value_and_grad(self.cfg, self.params_for(u.shape[1]), u, tg, self.loss_cfg)
            loss += w * l_c
            acc += w * accuracy(self.loss_cfg, traj.y, tg)
            rates = rates + w * firing_rates(self.cfg, traj)
            g_c = self._fold_state_grads(g_c)   # per-slot states: back onto the slots, chunk by chunk
            part = {k: w * g_c[k] for k in names}
            gx0 = part if gx0 is None else {k: gx0[k] + part[k] for k in names}
        return {"test_loss": float(loss), "test_acc": float(acc), "grad_x0": initial_state_grad_norm(self.cfg, gx0),
                "rates": rates}

    def _add_row(self, epoch: int, stats: dict, t_epoch: float, floss_steps: int) -> None:
        ev = self.evaluate()
        r = self.history.rows
        r["epoch"].append(epoch)
        r["train_loss"].append(stats.get("train_loss", math.nan))
        r["train_acc"].append(stats.get("train_acc", math.nan))
        r["grad_norm"].append(stats.get("grad_norm", math.nan))
        r["test_loss"].append(ev["test_loss"])
        r["test_acc"].append(ev["test_acc"])
        r["grad_x0"].append(ev["grad_x0"])
        r["floss_steps"].append(floss_steps)
        self.history.rates.append(ev["rates"])
        ly = self.run.lyapunov
        if ly.every and epoch % ly.every == 0:
            res = self._log_spectrum(epoch, 0)
            if ly.dimensionality:
                self._log_dimensionality(epoch, res.exponents)
        r["epoch_time"].append(time.perf_counter() - t_epoch)
        r["wall_time"].append(self.wall)

    # -- flossing -----------------------------------------------------------------
    def floss(self, n: int, epoch: int) -> None:
        """``n`` flossing steps (Adam on the flossing loss, own optimizer state)."""
        fl = self.run.flossing
        lcfg, fcfg, opt = self.run.lyapunov.config(fl.k, flossing=fl), fl.floss_config(), fl.adam()
        h = self.history.floss
        flossed = set(flossing.flossed_keys(self.cfg, fcfg))
        for i in range(n):
            u = self.data.floss_input(self.floss_counter)
            self.floss_counter += 1
            try:
                res = flossing.value_and_grad(self.cfg, self.single_params(), u, lcfg, fcfg)
            except flossing.FlossingError as exc:
                warnings.warn(f"flossing step skipped: {exc}")
                h["epoch"].append(epoch), h["loss"].append(math.nan)
                h["exponents"].append(np.full(fl.k, math.nan)), h["grad_norm"].append(math.nan)
                h["skipped"].append(True)
                continue
            grads = {k: g for k, g in res.grads.items() if k in flossed}
            norm = global_norm(grads)
            self.params = adam_step(self.params, grads, self.floss_adam, opt)
            h["epoch"].append(epoch), h["loss"].append(res.loss), h["exponents"].append(res.exponents)
            h["grad_norm"].append(norm), h["skipped"].append(False)
            self._poll()
            self._emit(kind="floss", epoch=epoch, step=i, n_steps=n, loss=res.loss,
                       lambda1=float(res.exponents[0]))

    def boundary(self, e: int) -> int:
        """Pre-flossing and the schedule's session at boundary ``e``; returns the steps run."""
        fl = self.run.flossing
        done = 0
        n = schedules.pre_steps(fl, self.sched, e)
        if n:
            self.floss(n, e)
            done += n
            if self.run.lyapunov.every:
                self._log_spectrum(e, 1)
        lam1 = gx0 = None
        if schedules.needs_measurement(fl, self.sched, e):
            lam1 = float(self.spectrum(k=1).exponents[0])
            gx0 = self.history.last("grad_x0")
            c = self.history.checks
            c["epoch"].append(e), c["lambda1"].append(lam1), c["grad_x0"].append(gx0)
        n, _ = schedules.decide(fl, self.sched, e, lam1, gx0)
        if n:
            self.floss(n, e)
            done += n
            if self.run.lyapunov.every:
                self._log_spectrum(e, 1)
        return done

    # -- training -----------------------------------------------------------------
    def train_epoch(self, e: int) -> dict:
        opt = self.run.training.adam()
        n = self.data.steps_per_epoch()
        losses, accs, norms = [], [], []
        for s in range(n):
            u, y = self.data.train_batch(e, s)
            loss, grads, traj = value_and_grad(self.cfg, self.params, u, y, self.loss_cfg)
            if not math.isfinite(loss):
                raise TrainingDiverged(f"the training loss is {loss} at epoch {e + 1}, step {s + 1}; "
                                       "lower training.lr or set training.clip_norm")
            g = {k: grads[k] for k in self.trained_keys}
            norms.append(global_norm(g))
            losses.append(loss)
            accs.append(accuracy(self.loss_cfg, traj.y, y))
            self.params = adam_step(self.params, g, self.adam, opt)
            self._poll()
            self._emit(kind="step", epoch=e, step=s, n_steps=n, loss=loss)
        return {"train_loss": float(np.mean(losses)), "train_acc": float(np.mean(accs)),
                "grad_norm": float(np.mean(norms))}

    # -- Ctrl-C ---------------------------------------------------------------------
    def _poll(self) -> None:
        """Raise ``KeyboardInterrupt`` at a safe point if Ctrl-C was pressed (:mod:`refimpl.interrupt`)."""
        sigint = getattr(self, "_sigint", None)
        if sigint is not None:
            sigint.poll()

    def fit(self, epochs: int | None = None) -> "Trainer":
        """Train until ``epochs`` (default ``training.epochs``) epochs are complete.

        On ``KeyboardInterrupt`` (Ctrl-C) the state of the last completed epoch
        is checkpointed (if there is an ``out_dir``) and ``KeyboardInterrupt``
        re-raised.
        """
        import contextlib
        from .interrupt import DeferredInterrupt
        from .io import directory_lock
        # one process at a time owns the output directory (taken before anything is written)
        lock = contextlib.nullcontext() if self.out_dir is None else directory_lock(self.out_dir)
        with lock, DeferredInterrupt() as self._sigint:
            return self._fit(epochs)

    def _fit(self, epochs: int | None = None) -> "Trainer":
        E = self.run.training.epochs if epochs is None else epochs
        if self.epoch > E:
            raise ValueError(f"the run is already at epoch {self.epoch} > the requested {E} epochs")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            from .configfile import to_toml
            from .io import atomic_text
            atomic_text(self.out_dir / "config.toml", to_toml(self.run))
        self._t_start = time.perf_counter()
        snap = self._snapshot()
        self.target_epochs = E
        try:
            if self.history.n_rows == 0:
                t = time.perf_counter()
                self._add_row(0, {}, t, 0)
                self._write_log()
                self._emit(kind="epoch", epoch=0, epochs=E, row=self.row(-1))
                snap = self._snapshot()
            ck = self.run.output.checkpoint_every
            every = self.run.training.eval_every
            pending, nf_row, t_row = [], 0, time.perf_counter()   # epochs since the last row
            while self.epoch < E:
                e = self.epoch
                nf = self.boundary(e)
                nf_row += nf
                self._emit(kind="boundary", epoch=e, floss_steps=nf)
                pending.append(self.train_epoch(e))
                self.epoch = e + 1
                if self.epoch % every and self.epoch < E:
                    continue
                # a row: evaluation, log, checkpoint and the state a Ctrl-C returns to
                stats = {k: float(np.mean([p[k] for p in pending])) for k in pending[0]}
                self._add_row(self.epoch, stats, t_row, nf_row)
                self._write_log()
                if ck and self.epoch % ck == 0 and self.epoch < E and self.out_dir is not None:
                    self.save_checkpoint()
                self._emit(kind="epoch", epoch=self.epoch, epochs=E, row=self.row(-1))
                snap = self._snapshot()
                pending, nf_row, t_row = [], 0, time.perf_counter()
        except BaseException as exc:
            # Ctrl-C inside a compiled kernel surfaces as a SystemError whose context is it
            from .interrupt import is_interrupt
            if not is_interrupt(exc):
                raise
            self._restore(snap)
            if self.out_dir is not None:
                self.save_checkpoint()
            raise KeyboardInterrupt from None
        if self.out_dir is not None:
            self.save_checkpoint()
        return self

    def row(self, i: int) -> dict:
        r = {k: v[i] for k, v in self.history.rows.items()}
        r["rates"] = self.history.rates[i]
        return r

    # -- files ----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.h5"

    def _write_log(self) -> None:
        if self.out_dir is None:
            return
        with atomic_h5(self.out_dir / "log.h5") as f:
            self._write_log_group(f)
            f.attrs["config"] = to_json(self.run.to_dict())

    def _write_log_group(self, g) -> None:
        self.history.write(g, self.cfg.n_layers, self.run.lyapunov.k, self.run.flossing.k)
        g.attrs["epochs_completed"] = self.epoch
        g.attrs["reasons"] = to_json(schedules.REASONS)
        g.attrs["units"] = to_json({"loss": "task loss", "rates": "Hz", "exponents": "1/step",
                                    "wall_time": "s", "epoch_time": "s"})
        g.create_dataset("flossing/events", data=np.asarray(self.sched.events, np.int64).reshape(-1, 3))

    def save_checkpoint(self, path=None) -> Path:
        """Write the whole state atomically (default ``out_dir/checkpoint.h5``)."""
        path = self.checkpoint_path if path is None else Path(path)
        with atomic_h5(path) as f:
            f.attrs["format"] = CHECKPOINT_FORMAT
            f.attrs["version"] = CHECKPOINT_VERSION
            f.attrs["refimpl_version"] = __version__
            f.attrs["config"] = to_json(self.run.to_dict())
            f.attrs["epoch"] = self.epoch
            f.attrs["floss_counter"] = self.floss_counter
            f.attrs["schedule_state"] = to_json(self.sched.to_dict())
            f.attrs["wall_time"] = self.wall
            f.attrs["rng"] = ("all randomness is derived from task.seed, network.seed, lyapunov.seed and "
                              "the counters 'epoch' and 'floss_counter' (refimpl.training.TaskData.derive)")
            write_dict(f.create_group("params"), self.params)
            for name, st in (("train", self.adam), ("floss", self.floss_adam)):
                g = f.create_group(f"adam/{name}")
                g.attrs["t"] = st.t
                write_dict(g.create_group("m"), st.m)
                write_dict(g.create_group("v"), st.v)
            self._write_log_group(f.create_group("log"))
        return path

    @classmethod
    def resume(cls, checkpoint, run: RunConfig | None = None, out_dir=None, *, progress=None) -> "Trainer":
        """A trainer in the state stored in ``checkpoint``.

        ``run`` (default: the checkpoint's own configuration) must equal the
        checkpoint's except for ``training.epochs`` and ``[output]``; otherwise
        ``ValueError`` lists the differences (and nothing is written).
        """
        import h5py
        path = Path(checkpoint)
        if path.is_dir():
            hint = f"; did you mean {str(path / 'checkpoint.h5')!r}?" if (path / "checkpoint.h5").is_file() else ""
            raise ValueError(f"checkpoint {str(path)!r} is a directory, not a checkpoint file{hint}")
        if not path.is_file():
            raise ValueError(f"checkpoint {str(path)!r} does not exist")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ValueError(f"cannot read checkpoint {str(path)!r}: {exc}") from None
        with f:
            if f.attrs.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"{str(path)!r} is not a refimpl training checkpoint")
            if int(f.attrs["version"]) != CHECKPOINT_VERSION:
                raise ValueError(f"checkpoint {str(path)!r} has format version {f.attrs['version']}, "
                                 f"this refimpl reads version {CHECKPOINT_VERSION}")
            saved = json.loads(f.attrs["config"])
            if run is None:
                run = RunConfig.from_dict(saved)
            else:
                diff = config_diff(saved, run.to_dict())
                if diff:
                    shown = "; ".join(f"{k}: {json.dumps(a)} in the checkpoint, {json.dumps(b)} here"
                                      for k, a, b in diff[:6])
                    more = f" (and {len(diff) - 6} more)" if len(diff) > 6 else ""
                    raise ValueError(f"checkpoint {str(path)!r} belongs to a different configuration: "
                                     f"{shown}{more}. Nothing was written.")
            tr = cls(run, out_dir, progress=progress)
            tr.params = {k: np.ascontiguousarray(v, dtype=float) for k, v in read_dict(f["params"]).items()}
            for name in ("train", "floss"):
                g = f[f"adam/{name}"]
                st = AdamState(read_dict(g["m"]), read_dict(g["v"]), int(g.attrs["t"]))
                setattr(tr, "adam" if name == "train" else "floss_adam", st)
            tr.epoch = int(f.attrs["epoch"])
            tr.floss_counter = int(f.attrs["floss_counter"])
            tr.sched = ScheduleState.from_dict(json.loads(f.attrs["schedule_state"]))
            tr.history = History.read(f["log"])
            tr._wall0 = float(f.attrs["wall_time"])
        return tr


def train(run: RunConfig, out_dir=None, *, resume=None, epochs=None, progress=None) -> Trainer:
    """Build (or resume) a :class:`Trainer` and fit it; returns the trainer."""
    if resume is not None:
        tr = Trainer.resume(resume, run, out_dir, progress=progress)
    else:
        tr = Trainer(run, out_dir, progress=progress)
    return tr.fit(epochs)
