"""The run configuration: one frozen dataclass per TOML section, and :class:`RunConfig` (docs/training.md).

Each section checks its values when built (:mod:`refimpl.checks`); :mod:`refimpl.training.configfile`
reads and writes them as TOML."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields


from .. import flossing, lyapunov
from .. import dimensionality as dimensionality_mod
from ..config import FLOSS_PARAMS, FlossConfig, LossConfig, LyapunovConfig, network_config
from ..optim import AdamConfig
from ..schedules import ScheduleConfig
from ..tasks import make_task
from ..checks import check_bool, check_choice, coerce_floats, check_float, check_int, is_int, is_num, check_names


BIT_TASKS = ("delayed_xor", "delayed_copy")
#: tasks with one fixed data set (no fresh batches): generated once, or read from files
FIXED_TASKS = ("randman", "shd")
INITS = ("default", "fluctuation")
X0_INITS = ("zero", "relaxed")
CLIPS = ("global", "per_array")
TRAINABLE = ("W_in", "W_rec", "b", "V0", "I0", "x0", "W_out", "b_out")



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
        if is_int(layers):
            layers = (layers,)
        if not isinstance(layers, (list, tuple)):
            raise ValueError(f"network.layers must be a list of positive layer sizes, got {layers!r}")
        object.__setattr__(self, "layers", tuple(layers))
        for i, n in enumerate(self.layers):
            check_int(f"network.layers[{i}]", n, 1)
        check_int("network.seed", self.seed, 0)
        for key in ("w_in", "g_rec", "w_out"):
            check_float(f"network.{key}", getattr(self, key), lo=0.0)
        check_float("network.bias", self.bias)
        check_bool("network.smooth", self.smooth)
        check_choice("network.init", self.init, INITS)
        check_float("network.init_mu_U", self.init_mu_U)
        check_float("network.init_sigma_U", self.init_sigma_U, lo=0.0, lo_open=True)
        check_float("network.init_nu_in", self.init_nu_in, lo=0.0)
        check_float("network.init_nu_rec", self.init_nu_rec, lo=0.0)
        check_float("network.init_rec_share", self.init_rec_share, lo=0.0, hi=1.0, hi_open=True)
        check_float("network.bias_spread", self.bias_spread, lo=0.0)
        check_bool("network.keep_diagonal", self.keep_diagonal)
        check_float("network.bias_out", self.bias_out)
        check_choice("network.x0_init", self.x0_init, X0_INITS)
        check_int("network.x0_relax_steps", self.x0_relax_steps, 0)
        check_float("network.x0_scale", self.x0_scale, lo=0.0)
        check_bool("network.x0_per_slot", self.x0_per_slot)
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
        coerce_floats(self)

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
            if not is_num(v):
                raise ValueError(f"network.{key} must be a number, got {v!r}")
        try:
            if self.cell == "clif":
                return network_config(dialect=self.dialect, **kw)
            return network_config(**kw)
        except ValueError as exc:
            raise ValueError(f"network: {exc}") from None


def task_names() -> list:
    """Every ``task.name``: the generators of :mod:`refimpl.tasks` and the file-backed ``shd``."""
    from ..tasks import TASKS
    return [*TASKS, "shd"]


def task_keys(name: str) -> tuple:
    """Valid ``[task]`` keys (besides ``name``) of the task ``name``."""
    import inspect
    from ..tasks import TASKS
    if name == "shd":
        from ..datasets import SHD_DEFAULTS
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
        check_choice("task.name", self.name, task_names())
        object.__setattr__(self, "options", tuple(sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in dict(self.options).items())))
        valid = task_keys(self.name)
        for key, _ in self.options:
            if key not in valid:
                import difflib
                hint = difflib.get_close_matches(key, valid, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                why = {"batch": " (set training.batch_size)", "dt": " (set network.dt)"}.get(key, "")
                raise ValueError(f"unknown key {key!r} in [task] for task {self.name!r}{why}{extra} "
                                 f"(valid keys: {', '.join(['name', *valid])})")
        check_int("task.seed", self.seed, 0)
        if self.name == "randman":
            o = self.opts
            check_int("task.samples_per_class", o.get("samples_per_class", 0), 1)
            check_int("task.test_samples_per_class", o.get("test_samples_per_class", 0), 1)
        if self.name == "shd":
            from ..datasets import check_shd_options
            check_shd_options(self.opts)

    @property
    def is_bit_task(self) -> bool:
        return self.name in BIT_TASKS

    def probe(self, dt: float):
        """A one-element batch that fixes ``n_in``, ``n_out`` and the loss (``shd``: no file is opened)."""
        if self.name == "shd":
            from ..datasets import shd_probe
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
        check_int("training.epochs", self.epochs, 0)
        check_int("training.batch_size", self.batch_size, 1)
        check_int("training.steps_per_epoch", self.steps_per_epoch, 1)
        check_choice("training.data", self.data, ["auto", "fresh", "fixed"])
        check_int("training.train_size", self.train_size, 0)
        check_int("training.test_size", self.test_size, 1)
        check_float("training.lr", self.lr, lo=0.0, lo_open=True)
        check_float("training.beta1", self.beta1, lo=0.0, hi=1.0, hi_open=True)
        check_float("training.beta2", self.beta2, lo=0.0, hi=1.0, hi_open=True)
        check_float("training.eps", self.eps, lo=0.0, lo_open=True)
        check_float("training.clip_norm", self.clip_norm, lo=0.0)
        check_choice("training.clip", self.clip, CLIPS)
        check_names("training.params", self.params, TRAINABLE)
        check_int("training.eval_every", self.eval_every, 1)
        coerce_floats(self)

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
        check_int("flossing.k", self.k, 1)
        check_float("flossing.target", self.target)
        check_names("flossing.params", self.params, FLOSS_PARAMS)
        check_float("flossing.lr", self.lr, lo=0.0, lo_open=True)
        check_float("flossing.beta1", self.beta1, lo=0.0, hi=1.0, hi_open=True)
        check_float("flossing.beta2", self.beta2, lo=0.0, hi=1.0, hi_open=True)
        check_float("flossing.eps", self.eps, lo=0.0, lo_open=True)
        check_float("flossing.clip_norm", self.clip_norm, lo=0.0)
        check_int("flossing.T", self.T, 0)
        check_int("flossing.warmup", self.warmup, -1)
        check_int("flossing.transient", self.transient, -1)
        coerce_floats(self)

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
        check_int("lyapunov.every", self.every, 0)
        check_int("lyapunov.T", self.T, 0)
        check_bool("lyapunov.dimensionality", self.dimensionality)
        check_int("lyapunov.dimensionality_batch", self.dimensionality_batch, 1)
        object.__setattr__(self, "dimensionality_params", tuple(self.dimensionality_params)
                           if isinstance(self.dimensionality_params, (list, tuple)) else self.dimensionality_params)
        check_names("lyapunov.dimensionality_params", self.dimensionality_params, dimensionality_mod.SAMPLE_PARAMS)
        check_float("lyapunov.dimensionality_threshold", self.dimensionality_threshold)
        coerce_floats(self)

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
        check_int("output.checkpoint_every", self.checkpoint_every, 0)
        check_bool("output.progress", self.progress)


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
        """Inverse of :meth:`to_dict`; sections and keys must be valid (see :mod:`refimpl.training.configfile`)."""
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
    from .. import init as init_mod
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


