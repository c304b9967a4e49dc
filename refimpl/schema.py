"""The configuration schema: every setting of a run declared once — name, kind, default, range or
choices, and help text (docs/training.md, "Configuration").

Everything else is derived from this table:

* the frozen section dataclasses of :mod:`refimpl.training.runconfig` (``[network]``, ``[training]``,
  ``[flossing]``, ``[lyapunov]``, ``[output]``) get their fields, defaults and value checks from
  :func:`section`; they add only the checks that involve several keys;
* the TOML files (:mod:`refimpl.training.configfile`) accept exactly these keys;
* the command-line flags of ``gradcheck``/``lyapunov``/``floss`` (:mod:`refimpl.cli.flags`) take their
  type, default and help from here (:func:`flag`), and ``refimpl train --keys`` prints this table;
* the model's own config objects (:mod:`refimpl.model.config`) check their values with the same choices,
  which live here; ``tests/test_schema.py`` checks the rest (the golden config keys, the key table
  of docs/training.md) against this table.

The ``[task]`` section is not here: its keys are the parameters of the task generators
(:mod:`refimpl.tasks`), which declare them.

Like :mod:`refimpl.checks`, this module imports nothing numerical, so that ``--help`` is immediate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

from refimpl.checks import check_bool, check_choice, check_float, check_int, check_names, coerce_floats

# ---------------------------------------------------------------------------
# the named choices (docs/model.md §1–§7); the model's config objects use these same tuples
# ---------------------------------------------------------------------------

CELLS = ("clif", "binary", "rate")
SYN_INPUTS = ("new", "old")
INPUT_GAINS = ("one_minus_beta", "unit")
RESETS = ("zero", "subtract", "none")
RESET_GRADS = ("detached", "attached", "ignored")
SURROGATES = ("fast_sigmoid", "sigmoid", "arctan", "gaussian", "triangle")
READOUT_SOURCES = {"clif": ("spikes", "membrane"), "binary": ("state", "activation"), "rate": ("state", "activation")}
LOSSES = ("bce_per_step", "mse_per_step", "ce_max", "ce_mean", "ce_last")
#: Named dialects of docs/model.md §1.1: (syn_input, input_gain, reset).
DIALECTS = {"engelken": ("new", "one_minus_beta", "zero"), "spytorch": ("old", "unit", "zero"),
    "stork": ("old", "one_minus_beta", "zero")}  # fmt: skip
INITS = ("default", "fluctuation")
X0_INITS = ("zero", "relaxed")
DATA_MODES = ("auto", "fresh", "fixed")
CLIPS = ("global", "per_array")
TRAINABLE = ("W_in", "W_rec", "b", "V0", "I0", "x0", "W_out", "b_out")
FLOSS_PARAMS = ("W_in", "W_rec", "b", "V0", "I0", "x0")
SCHEDULES = ("none", "pre", "periodic", "adaptive")
#: parameters whose per-step gradient terms the gradient dimensionality uses (refimpl.dynamics.dimensionality)
SAMPLE_PARAMS = ("W_rec", "W_in", "b")
#: the exact event-based network (docs/exact.md): its resets and its crossing methods
EXACT_RESETS = ("zero", "subtract")
ROOT_METHODS = ("auto", "bracket")


class Setting(NamedTuple):
    """One setting: ``kind`` is int, float, bool, str, choice, names or layers; ``lo``/``hi`` bound
    numbers (``open`` = "lo", "hi" or "both" for strict bounds); ``choices`` lists the allowed names
    (choice, names); a ``None`` default means "derived from other keys" (the dialect, the cell)."""

    key: str
    kind: str
    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None
    open: str = ""
    choices: tuple = ()
    allow_inf: bool = False

    def check(self, where: str, value):
        """``value`` checked and normalized (lists become tuples), or ``ValueError`` naming ``where``."""
        if value is None and self.default is None:
            return None
        k = self.kind
        if k == "int":
            return check_int(where, value, -math.inf if self.lo is None else int(self.lo),
                None if self.hi is None else int(self.hi))  # fmt: skip
        if k == "float":
            return check_float(where, value, self.lo, self.hi, lo_open=self.open in ("lo", "both"),
                hi_open=self.open in ("hi", "both"), allow_inf=self.allow_inf)  # fmt: skip
        if k == "bool":
            return check_bool(where, value)
        if k == "choice":
            return check_choice(where, value, self.choices)
        if k == "names":
            return check_names(where, value, self.choices)
        if k == "layers":
            layers = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
            if not isinstance(layers, (list, tuple)) or not layers:
                raise ValueError(f"{where} must be a list of positive layer sizes, got {value!r}")
            return tuple(check_int(f"{where}[{i}]", n, 1) for i, n in enumerate(layers))
        if k == "str":
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where} must be a non-empty string, got {value!r}")
            return value
        raise AssertionError(f"unknown kind {k!r}")

    def describe(self) -> str:
        """The allowed values in words, for help and docs."""
        if self.choices:
            return ", ".join(self.choices) if self.kind == "choice" else "names from " + ", ".join(self.choices)
        if self.kind in ("int", "float") and (self.lo is not None or self.hi is not None):
            lo = "" if self.lo is None else ("(" if self.open in ("lo", "both") else "[") + f"{self.lo:g}"
            hi = "" if self.hi is None else f"{self.hi:g}" + (")" if self.open in ("hi", "both") else "]")
            if self.lo is not None and self.hi is not None:
                return f"{lo}, {hi}"
            return (
                f"{'>' if self.open in ('lo', 'both') else '>='} {self.lo:g}"
                if self.lo is not None
                else f"{'<' if self.open else '<='} {self.hi:g}"
            )
        return {"layers": "list of integers >= 1", "float": "number", "int": "integer", "bool": "true, false",
            "str": "text"}[self.kind]  # fmt: skip


def S(key, kind, default, help, **kw) -> Setting:  # noqa: N802 - reads as a table row
    return Setting(key, kind, default, help, **kw)


_POS = dict(lo=0.0, open="lo")
_UNIT = dict(lo=0.0, hi=1.0, open="hi")

#: section name -> its settings, in the order the TOML files list them
SCHEMA: dict[str, tuple[Setting, ...]] = {
    "network": (
        S("cell", "choice", "clif", "neuron model (docs/model.md §1)", choices=CELLS),
        S(
            "dialect",
            "choice",
            "engelken",
            "clif: named combination of syn_input, input_gain, reset (§1.1)",
            choices=tuple(DIALECTS),
        ),
        S("layers", "layers", (64,), "layer sizes (one layer for binary and rate)"),
        S("dt", "float", 1.0, "time step, ms", **_POS),
        S("tau_mem", "float", 10.0, "membrane time constant, ms", **_POS),
        S("tau_syn", "float", 5.0, "synaptic time constant, ms", **_POS),
        S("theta", "float", 1.0, "spike threshold (clif: > 0)"),
        S("syn_input", "choice", None, "override the dialect's synaptic input (default: the dialect's)", choices=SYN_INPUTS),
        S("input_gain", "choice", None, "override the dialect's input gain (default: the dialect's)", choices=INPUT_GAINS),
        S("reset", "choice", None, "override the dialect's reset (default: the dialect's)", choices=RESETS),
        S("reset_grad", "choice", "detached", "what the surrogate sees of the reset (§3)", choices=RESET_GRADS),
        S("surrogate", "choice", "fast_sigmoid", "surrogate derivative σ' (§2)", choices=SURROGATES),
        S("slope", "float", 10.0, "surrogate slope γ", **_POS),
        S("smooth", "bool", False, "smooth mode: σ instead of the spike (§2)"),
        S("tau_out", "float", 5.0, "readout time constant, ms (0: instantaneous)", lo=0.0),
        S(
            "readout",
            "choice",
            None,
            "readout source (default: spikes for clif, state for binary/rate)",
            choices=("spikes", "membrane", "state", "activation"),
        ),
        S("seed", "int", 0, "seed of the weights", lo=0),
        S("w_in", "float", 1.0, "input weights W_in ~ N(0, w_in²/n_in)", lo=0.0),
        S("g_rec", "float", 1.0, "recurrent weights W_rec ~ N(0, g_rec²/N)", lo=0.0),
        S("w_out", "float", 1.0, "readout weights W_out ~ N(0, w_out²/N)", lo=0.0),
        S("bias", "float", 0.0, "bias b of every neuron"),
        S("init", "choice", "default", "default (init_params) or fluctuation (refimpl.model.init)", choices=INITS),
        S("init_mu_U", "float", 0.0, "fluctuation: target mean of the free membrane (units of θ)"),
        S("init_sigma_U", "float", 1.0, "fluctuation: target SD of the free membrane (units of θ)", **_POS),
        S("init_nu_in", "float", 0.0, "fluctuation: input rate, Hz (0: measured from the data)", lo=0.0),
        S("init_nu_rec", "float", 0.0, "fluctuation: the layers' target rate, Hz (0: none)", lo=0.0),
        S("init_rec_share", "float", 0.0, "fluctuation: share of σ_U² from the recurrent input", **_UNIT),
        S("bias_spread", "float", 0.0, "default init: b = bias + bias_spread·U[0, 1)", lo=0.0),
        S("keep_diagonal", "bool", False, "default init: keep the diagonal of W_rec (autapses)"),
        S("bias_out", "float", 0.0, "initial readout bias b_out"),
        S("x0_init", "choice", "zero", "initial state: zero, or relaxed (free-running from a random state)", choices=X0_INITS),
        S("x0_relax_steps", "int", 100, "relaxed: steps of free running", lo=0),
        S("x0_scale", "float", 1.0, "relaxed: SD of the random starting state", lo=0.0),
        S("x0_per_slot", "bool", False, "one initial state per batch slot (needs x0_init = relaxed)"),
    ),
    "training": (
        S("epochs", "int", 20, "total epochs", lo=0),
        S("batch_size", "int", 32, "sequences a training step", lo=1),
        S("steps_per_epoch", "int", 10, "training steps an epoch (fresh data)", lo=1),
        S("data", "choice", "auto", "auto (fresh; randman and shd: fixed), fresh or fixed", choices=DATA_MODES),
        S("train_size", "int", 0, "fixed bit-task data: training sequences (>= batch_size)", lo=0),
        S("test_size", "int", 256, "bit tasks: test sequences", lo=1),
        S("lr", "float", 1e-3, "Adam learning rate", **_POS),
        S("beta1", "float", 0.9, "Adam β₁", **_UNIT),
        S("beta2", "float", 0.999, "Adam β₂", **_UNIT),
        S("eps", "float", 1e-8, "Adam ε", **_POS),
        S("clip_norm", "float", 1.0, "gradient-norm clipping (0: none)", lo=0.0),
        S("clip", "choice", "global", "global: the norm of all gradients; per_array: each array's own norm", choices=CLIPS),
        S("params", "names", ("W_in", "W_rec", "b", "W_out", "b_out"), "trained parameters", choices=TRAINABLE),
        S("eval_every", "int", 1, "a test evaluation and log row every n epochs, and after the last", lo=1),
    ),
    "flossing": (
        # the schedule (refimpl.training.schedules.ScheduleConfig)
        S("schedule", "choice", "none", "when to floss (refimpl.training.schedules)", choices=SCHEDULES),
        S("pre_steps", "int", 0, "E_p: flossing steps before training", lo=0),
        S("every", "int", 0, "E_f: periodic sessions every E_f epochs", lo=0),
        S("steps", "int", 0, "E_i (periodic) / E_a (adaptive): flossing steps a session", lo=0),
        S("max_sessions", "int", 0, "N_i (periodic); adaptive: 0 = unlimited", lo=0),
        S("check_every", "int", 1, "adaptive: check when e % check_every == 0", lo=0),
        S("lo", "float", -math.inf, "adaptive: floss when λ₁ < lo (1/step)", allow_inf=True),
        S("hi", "float", math.inf, "adaptive: floss when λ₁ > hi (1/step)", allow_inf=True),
        S("grad_threshold", "float", 0.0, "adaptive: floss when ‖∂L/∂x₀‖ is below this (0: off)", lo=0.0),
        S("phase", "int", 0, "periodic: sessions where (e + phase) % every == 0", lo=0),
        # the flossing loss (docs/model.md §7) and its optimizer
        S("k", "int", 16, "exponents flossed", lo=1),
        S("target", "float", 0.0, "λ* (1/step)"),
        S("params", "names", ("W_in", "W_rec", "b"), "flossed parameters", choices=FLOSS_PARAMS),
        S("lr", "float", 1e-2, "flossing Adam learning rate (own state)", **_POS),
        S("beta1", "float", 0.9, "flossing Adam β₁", **_UNIT),
        S("beta2", "float", 0.999, "flossing Adam β₂", **_UNIT),
        S("eps", "float", 1e-8, "flossing Adam ε", **_POS),
        S("clip_norm", "float", 0.0, "flossing gradient-norm clipping (0: none)", lo=0.0),
        S("T", "int", 0, "length of flossing inputs (0: the task's T; bit tasks only)", lo=0),
        S("warmup", "int", -1, "QR warmup of the flossing spectrum (-1: lyapunov.warmup)", lo=-1),
        S("transient", "int", -1, "QR transient of the flossing spectrum (-1: lyapunov.transient)", lo=-1),
        # flossing as a term of the training loss (the variant of other implementations), with any schedule
        S(
            "weight",
            "float",
            0.0,
            "added loss term: each training step adds weight·∇L_floss (one fresh flossing input) to the task "
            "gradient of the flossed parameters (0: off)",
            lo=0.0,
        ),
    ),
    "lyapunov": (
        S("k", "int", 16, "exponents in the logged spectra", lo=1),
        S("ons", "int", 1, "steps between QR re-orthonormalizations (§6)", lo=1),
        S("warmup", "int", 0, "steps run before the tangent vectors start", lo=0),
        S("transient", "int", 0, "QR steps whose growth is not counted", lo=0),
        S("seed", "int", 0, "seed of the initial orthonormal Q_0", lo=0),
        S("every", "int", 5, "log the spectrum at rows with e % every == 0 (0: never)", lo=0),
        S("T", "int", 0, "length of the spectrum input (0: as the flossing inputs)", lo=0),
        S("dimensionality", "bool", True, "with each logged spectrum, log the gradient dimensionality"),
        S("dimensionality_batch", "int", 8, "test samples whose per-step gradient terms are the samples", lo=1),
        S("dimensionality_params", "names", ("W_rec",), "parameters whose gradient terms are used", choices=SAMPLE_PARAMS),
        S("dimensionality_threshold", "float", -0.05, "n_slow counts exponents above this (1/step)"),
    ),
    "output": (
        S("dir", "str", "out", "output directory"),
        S("checkpoint_every", "int", 5, "epochs between checkpoints (0: only at the end and on Ctrl-C)", lo=0),
        S("progress", "bool", True, "progress bar"),
    ),
    # not a section of a training run: the continuous-time network of refimpl.exact (docs/exact.md §1)
    "exact": (
        S("layers", "layers", (10,), "layer sizes"),
        S("n_in", "int", 1, "input channels", lo=1),
        S("tau_mem", "float", 10.0, "membrane time constant τ_m, ms", **_POS),
        S("tau_syn", "float", 5.0, "synaptic time constant τ_s, ms", **_POS),
        S("theta", "float", 1.0, "spike threshold θ", **_POS),
        S("reset", "choice", "zero", "V → 0 or V → V - θ (the same in continuous time, §1)", choices=EXACT_RESETS),
        S("t_ref", "float", 0.0, "refractory period, ms (membrane held at reset; 0: none)", lo=0.0),
        S("root", "choice", "auto", "crossings: closed forms where they exist, or always bracketing (§3)", choices=ROOT_METHODS),
    ),
}

#: the sections of a training run's TOML file (refimpl train --keys, docs/training.md)
RUN_SECTIONS = ("network", "training", "flossing", "lyapunov", "output")

#: the schedule keys of [flossing] (the fields of ScheduleConfig)
SCHEDULE_KEYS = ("schedule", "pre_steps", "every", "steps", "max_sessions", "check_every", "lo", "hi", "grad_threshold", "phase")


def setting(section_name: str, key: str) -> Setting:
    for s in SCHEMA[section_name]:
        if s.key == key:
            return s
    raise KeyError(f"{section_name}.{key}")


def section(name: str, keys=None, exclude=()):
    """Class decorator: a frozen dataclass whose fields are the settings of ``[name]`` (or ``keys`` of
    them, minus ``exclude``), each checked when the object is built under the name ``name.key``.

    The class may define ``validate(self)`` for checks that involve several keys; it runs after the
    per-key checks. A subclass adds the fields of its own decorator after its base's."""
    chosen = [s for s in SCHEMA[name] if (keys is None or s.key in keys) and s.key not in exclude]

    def wrap(cls):
        ann = dict(cls.__dict__.get("__annotations__", {}))
        for s in chosen:
            ann[s.key] = {"int": "int", "float": "float", "bool": "bool", "str": "str"}.get(s.kind, "Any")
            setattr(cls, s.key, s.default)
        cls.__annotations__ = ann
        base_post = getattr(cls, "__post_init__", None)

        def __post_init__(self):
            if base_post is not None:
                base_post(self)  # the base's keys and its validate()
            for s in chosen:
                object.__setattr__(self, s.key, s.check(f"{name}.{s.key}", getattr(self, s.key)))
            coerce_floats(self)
            v = cls.__dict__.get("validate")
            if v is not None:
                v(self)

        cls.__post_init__ = __post_init__
        return dataclasses.dataclass(frozen=True)(cls)

    return wrap


def table_markdown(names=None) -> str:
    """The settings as the Markdown table of docs/training.md (key, default, allowed values, meaning)."""
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for name in names or RUN_SECTIONS:
        rows.append(f"| **[{name}]** | | | |")
        for s in SCHEMA[name]:
            rows.append(f"| `{s.key}` | {format_default(s.default)} | {s.describe()} | {s.help} |")
    return "\n".join(rows)


def format_default(v) -> str:
    if v is None:
        return "derived"
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if isinstance(v, str):
        return f'`"{v}"`'
    if isinstance(v, tuple):
        return "`[" + ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in v) + "]`"
    if isinstance(v, float) and math.isinf(v):
        return "`inf`" if v > 0 else "`-inf`"
    return f"`{v!r}`"
