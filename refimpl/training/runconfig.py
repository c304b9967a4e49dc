"""The run configuration: one frozen dataclass per TOML section, and :class:`RunConfig` (docs/training.md).

The sections' keys, defaults and per-key checks come from the schema (:mod:`refimpl.schema`); the
classes here add the checks that involve several keys. :mod:`refimpl.training.configfile` reads and
writes them as TOML."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields


from refimpl.dynamics import flossing, lyapunov
from refimpl.model.config import FlossConfig, LossConfig, LyapunovConfig, network_config
from refimpl.training.optim import AdamConfig
from refimpl.training.schedules import ScheduleConfig
from refimpl.schema import SCHEDULE_KEYS, section
from refimpl.tasks.generators import make_task
from refimpl.checks import check_choice, check_int


BIT_TASKS = ("delayed_xor", "delayed_copy")
#: tasks with one fixed data set (no fresh batches): generated once, or read from files
FIXED_TASKS = ("randman", "shd")


# ---------------------------------------------------------------------------
# the sections of a run configuration
# ---------------------------------------------------------------------------


@section("network")
class NetworkSection:
    """``[network]``: the network map (docs/model.md §1) and its random initialization; the keys are
    declared in :data:`refimpl.schema.SCHEMA`.

    ``n_in`` and ``n_out`` are not keys: the task sets them. ``syn_input``,
    ``input_gain`` and ``reset`` default to the dialect's; ``readout`` (the
    readout source) to ``spikes`` for clif and ``state`` for binary/rate.
    """

    def validate(self):
        if self.init == "fluctuation" and (self.bias_spread or self.keep_diagonal):
            raise ValueError("network.bias_spread and network.keep_diagonal apply to network.init = 'default'")
        self.build(1, 1)  # the checks that involve several keys (the cell's readout sources, the dialect)
        if self.init == "fluctuation":
            if self.bias != 0:
                raise ValueError(
                    "network.bias must be 0 with network.init = 'fluctuation' (a bias would shift "
                    "the membrane mean away from init_mu_U)"
                )
            if self.cell == "rate" and self.init_nu_rec:
                raise ValueError(
                    "network.init_nu_rec must be 0 for cell = 'rate' (its recurrent input tanh(x) "
                    "has the statistics that init_mu_U and init_sigma_U imply)"
                )
            if self.cell == "clif" and not self.init_nu_rec and (self.init_rec_share > 0 or len(self.layers) > 1):
                why = "init_rec_share > 0" if self.init_rec_share > 0 else "there is more than one layer"
                raise ValueError(f"network.init_nu_rec must be > 0 (Hz, the layers' target rate) when {why}")

    def init_kwargs(self) -> dict:
        """Keyword arguments of :func:`refimpl.model.init.fluctuation_init` (without the input statistics)."""
        return dict(mu_U=self.init_mu_U, sigma_U=self.init_sigma_U, nu_rec=self.init_nu_rec or None,
            rec_share=self.init_rec_share, seed=self.seed, w_out=self.w_out)  # fmt: skip

    def build(self, n_in: int, n_out: int):
        kw = dict(cell=self.cell, layers=self.layers, n_in=n_in, n_out=n_out, dt=self.dt, tau_mem=self.tau_mem,
            tau_syn=self.tau_syn, theta=self.theta, reset_grad=self.reset_grad, smooth=self.smooth,
            surrogate={"name": self.surrogate, "slope": self.slope})  # fmt: skip
        for key in ("syn_input", "input_gain", "reset"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        ro = {"tau_out": self.tau_out}
        if self.readout is not None:
            ro["source"] = self.readout
        elif self.cell != "clif":
            ro["source"] = "state"
        kw["readout"] = ro
        try:
            if self.cell == "clif":
                return network_config(dialect=self.dialect, **kw)
            return network_config(**kw)
        except ValueError as exc:
            raise ValueError(f"network: {exc}") from None


def task_names() -> list:
    """Every ``task.name``: the generators of :mod:`refimpl.tasks` and the file-backed ``shd``."""
    from refimpl.tasks.generators import TASKS

    return [*TASKS, "shd"]


def task_keys(name: str) -> tuple:
    """Valid ``[task]`` keys (besides ``name``) of the task ``name``."""
    import inspect
    from refimpl.tasks.generators import TASKS

    if name == "shd":
        from refimpl.tasks.datasets import SHD_DEFAULTS

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
    options: tuple = ()  # sorted (key, value) pairs; seed included

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
        object.__setattr__(self, "options",
            tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in dict(self.options).items())))  # fmt: skip
        valid = task_keys(self.name)
        for key, _ in self.options:
            if key not in valid:
                import difflib

                hint = difflib.get_close_matches(key, valid, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                why = {"batch": " (set training.batch_size)", "dt": " (set network.dt)"}.get(key, "")
                raise ValueError(
                    f"unknown key {key!r} in [task] for task {self.name!r}{why}{extra} "
                    f"(valid keys: {', '.join(['name', *valid])})"
                )
        check_int("task.seed", self.seed, 0)
        if self.name == "randman":
            o = self.opts
            check_int("task.samples_per_class", o.get("samples_per_class", 0), 1)
            check_int("task.test_samples_per_class", o.get("test_samples_per_class", 0), 1)
        if self.name == "shd":
            from refimpl.tasks.datasets import check_shd_options

            check_shd_options(self.opts)

    @property
    def is_bit_task(self) -> bool:
        return self.name in BIT_TASKS

    def probe(self, dt: float):
        """A one-element batch that fixes ``n_in``, ``n_out`` and the loss (``shd``: no file is opened)."""
        if self.name == "shd":
            from refimpl.tasks.datasets import shd_probe

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
                msg = msg[len(prefix) :]
            if not msg.startswith(self.name):
                msg = f"{self.name}: {msg}"
            raise ValueError(f"[task] {msg}") from None


@section("training")
class TrainingSection:
    """``[training]``: the task-loss optimizer and the data regime (keys: :data:`refimpl.schema.SCHEMA`)."""

    def adam(self) -> AdamConfig:
        return AdamConfig(self.lr, self.beta1, self.beta2, self.eps, self.clip_norm or None, per_array=self.clip == "per_array")


@section("flossing", exclude=SCHEDULE_KEYS)
class FlossingSection(ScheduleConfig):
    """``[flossing]``: the schedule (:class:`ScheduleConfig`) plus the flossing loss and its optimizer.

    ``k`` exponents are flossed toward ``target`` (1/step) by Adam with its
    own state; ``T`` (0: the task's ``T``) is the length of each flossing
    input (bit tasks only). ``warmup`` and ``transient`` of -1 take ``[lyapunov]``'s. ``weight > 0``
    adds ``weight·L_floss`` to the training loss (every training step), whatever the schedule.
    """

    @property
    def floss_ever(self) -> bool:
        return self.schedule != "none" or self.weight > 0

    def adam(self) -> AdamConfig:
        return AdamConfig(self.lr, self.beta1, self.beta2, self.eps, self.clip_norm or None)

    def floss_config(self) -> FlossConfig:
        return FlossConfig(self.target, self.params)


@section("lyapunov")
class LyapunovSection:
    """``[lyapunov]``: the spectrum logged during training, and the QR settings flossing shares."""

    def validate(self):
        self.config()  # LyapunovConfig checks the settings the two share

    def config(self, k: int | None = None, flossing: "FlossingSection | None" = None) -> LyapunovConfig:
        """The QR settings of logged spectra, or (``flossing`` given) of the flossing spectrum, whose
        ``warmup`` and ``transient`` are ``flossing``'s unless those are -1."""
        warmup, transient = self.warmup, self.transient
        if flossing is not None:
            warmup = warmup if flossing.warmup < 0 else flossing.warmup
            transient = transient if flossing.transient < 0 else flossing.transient
        return LyapunovConfig(k=self.k if k is None else k, ons=self.ons, warmup=warmup, transient=transient,
            batch_index=0, seed=self.seed)  # fmt: skip


@section("output")
class OutputSection:
    """``[output]``: where files go and how often checkpoints are written."""


SECTIONS = {"network": NetworkSection, "task": TaskSection, "training": TrainingSection,
    "flossing": FlossingSection, "lyapunov": LyapunovSection, "output": OutputSection}  # fmt: skip

#: keys whose value may differ between a checkpoint and the run that resumes it
RESUME_FREE = {("training", "epochs"), ("output", "dir"), ("output", "checkpoint_every"), ("output", "progress")}


@dataclass(frozen=True)
class RunConfig:
    """A whole training run; validated as a whole when built."""

    network: NetworkSection = field(default_factory=NetworkSection)
    task: TaskSection = field(default_factory=lambda: TaskSection.make("delayed_xor", T=100, delta=5, seed=0))
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
                raise ValueError(
                    f"training.data = 'fresh' is impossible for {task.name} (one fixed data set); use 'fixed' or 'auto'"
                )
        elif self.data_mode == "fixed" and tr.train_size < tr.batch_size:
            raise ValueError(
                f"training.train_size must be >= training.batch_size = {tr.batch_size} "
                f"with training.data = 'fixed', got {tr.train_size}"
            )
        if task.name in FIXED_TASKS and self.flossing.T:
            raise ValueError(f"flossing.T must be 0 for {task.name} (its inputs have a fixed length)")
        if task.name in FIXED_TASKS and self.lyapunov.T:
            raise ValueError(f"lyapunov.T must be 0 for {task.name} (its inputs have a fixed length)")
        if self.network.x0_per_slot and set(self.flossing.params) & {"x0", "V0", "I0"}:
            raise ValueError(
                "flossing.params cannot include the initial state with network.x0_per_slot (flossing sees slot 0 only)"
            )
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
                raise ValueError(
                    f"[flossing] warmup/transient do not fit the flossing input (T = {self.floss_T}): {exc}"
                ) from None
            if self.flossing.k > M:
                raise ValueError(f"flossing.k must be <= M = {M} (the state size), got {self.flossing.k}")
            try:
                flossing.flossed_keys(net, self.flossing.floss_config())
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        if self.flossing.weight > 0 and not set(self.flossing.params) <= set(tr.params):
            raise ValueError(
                f"flossing.weight > 0 adds the flossing gradient to the training step: flossing.params "
                f"{list(self.flossing.params)} must be among training.params {list(tr.params)}"
            )
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
                d = {"name": sec.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in sec.options}}
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
    """The fluctuation-driven initial parameters of ``run`` (:func:`refimpl.model.init.fluctuation_init`).

    ``nu_in`` (Hz) or ``input_moments`` (mean, variance of the inputs per
    step) describe the input; ``dry_run`` only checks that the targets can be
    met. Errors name the ``network.init_*`` keys.
    """
    import re
    from refimpl.model import init as init_mod

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
