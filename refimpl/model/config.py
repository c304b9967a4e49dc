"""Configuration: small frozen dataclasses that validate themselves.

Every field follows the names of docs/model.md and of the golden-vector config
(docs/golden-format.md). A bad value raises ``ValueError`` naming the parameter and the
expected form as soon as the object is built, i.e. before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

import numpy as np

from refimpl.checks import check_choice, check_int, check_numbers, check_positive_values
from refimpl.schema import setting

# the named choices are declared with the settings (refimpl/schema.py); re-exported here, where the model's
# config objects that use them live
from refimpl.schema import CELLS, DIALECTS, FLOSS_PARAMS, INPUT_GAINS, LOSSES, READOUT_SOURCES  # noqa: F401
from refimpl.schema import RESET_GRADS, RESETS, SURROGATES, SYN_INPUTS  # noqa: F401


@dataclass(frozen=True)
class Surrogate:
    """The surrogate rule of docs/model.md §2: ``H'(x) := σ'(x; γ)`` (the settings ``network.surrogate``
    and ``network.slope`` of :mod:`refimpl.schema`)."""

    name: str = setting("network", "surrogate").default
    slope: float = setting("network", "slope").default

    def __post_init__(self):
        setting("network", "surrogate").check("surrogate.name", self.name)
        setting("network", "slope").check("surrogate.slope", self.slope)


@dataclass(frozen=True)
class Readout:
    """Leaky readout of docs/model.md §1.2; ``tau_out = 0`` is instantaneous."""

    tau_out: float = 5.0
    source: str = "spikes"

    def __post_init__(self):
        check_positive_values("readout.tau_out", self.tau_out, allow_zero=True)


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that defines the network map ``x_{t+1} = F(x_t, u_t)`` (docs/model.md §1).

    ``tau_mem`` and ``tau_syn`` are in ms and may be scalars or per-neuron
    sequences (the same sequence for every layer, so then all layers must
    have that many neurons). ``dialect``, when given, sets ``syn_input``,
    ``input_gain`` and ``reset`` together (see :func:`network_config`).
    """

    cell: str = "clif"
    layers: tuple = (64,)
    n_in: int = 1
    n_out: int = 1
    dt: float = 1.0
    tau_mem: Any = 10.0
    tau_syn: Any = 5.0
    theta: float = 1.0
    syn_input: str = "new"
    input_gain: str = "one_minus_beta"
    reset: str = "zero"
    reset_grad: str = "detached"
    surrogate: Surrogate = field(default_factory=Surrogate)
    smooth: bool = False
    readout: Readout = field(default_factory=Readout)

    def __post_init__(self):
        check_choice("cell", self.cell, CELLS)
        if isinstance(self.layers, (int, np.integer)):
            object.__setattr__(self, "layers", (int(self.layers),))
        object.__setattr__(self, "layers", tuple(self.layers))
        if len(self.layers) == 0:
            raise ValueError("layers must be a non-empty sequence of positive layer sizes, got ()")
        for i, n in enumerate(self.layers):
            check_int(f"layers[{i}]", n, 1)
        if self.cell != "clif" and len(self.layers) != 1:
            raise ValueError(f"layers must have exactly one entry for cell={self.cell!r}, got {self.layers}")
        check_int("n_in", self.n_in, 1)
        check_int("n_out", self.n_out, 1)
        check_positive_values("dt", self.dt)
        for name in ("tau_mem", "tau_syn"):
            value = getattr(self, name)
            check_positive_values(name, value)
            if np.ndim(value) > 1:
                raise ValueError(f"{name} must be a number or a 1-d sequence, got shape {np.shape(value)}")
            if np.ndim(value) == 1:
                object.__setattr__(self, name, tuple(float(v) for v in value))
                if any(n != len(value) for n in self.layers):
                    raise ValueError(
                        f"{name} has {len(value)} values but layers are {self.layers}: "
                        "a per-neuron sequence must match every layer size"
                    )
        check_numbers("theta", self.theta)
        if not math.isfinite(self.theta):
            raise ValueError(f"theta must be finite, got {self.theta!r}")
        if self.cell == "clif" and not self.theta > 0:
            # a threshold at or below rest makes every neuron fire on every step
            raise ValueError(f"theta must be > 0 for cell = 'clif' (the firing threshold), got {self.theta!r}")
        check_choice("syn_input", self.syn_input, SYN_INPUTS)
        check_choice("input_gain", self.input_gain, INPUT_GAINS)
        check_choice("reset", self.reset, RESETS)
        check_choice("reset_grad", self.reset_grad, RESET_GRADS)
        if not isinstance(self.surrogate, Surrogate):
            raise ValueError(f"surrogate must be a Surrogate, got {self.surrogate!r}")
        if not isinstance(self.readout, Readout):
            raise ValueError(f"readout must be a Readout, got {self.readout!r}")
        check_choice(f"readout.source (cell={self.cell})", self.readout.source, READOUT_SOURCES[self.cell])
        if not isinstance(self.smooth, (bool, np.bool_)):
            raise ValueError(f"smooth must be True or False, got {self.smooth!r}")

    # -- derived quantities -------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_components(self) -> int:
        """State components per neuron: (V, I) for clif, x for binary/rate."""
        return 2 if self.cell == "clif" else 1

    @property
    def state_size(self) -> int:
        """``M`` of docs/model.md §1.2."""
        return self.n_components * sum(self.layers)

    def layer_inputs(self, l: int) -> int:
        """Input size of layer ``l`` (0-based)."""
        return self.n_in if l == 0 else self.layers[l - 1]

    def to_dict(self) -> dict:
        """The golden-vector config keys (docs/golden-format.md) of the network part."""

        def num(v):
            return list(v) if isinstance(v, tuple) else float(v)

        return {"cell": self.cell, "layers": list(self.layers), "n_in": self.n_in, "n_out": self.n_out,
            "dt": float(self.dt), "tau_mem": num(self.tau_mem), "tau_syn": num(self.tau_syn),
            "theta": float(self.theta), "syn_input": self.syn_input, "input_gain": self.input_gain,
            "reset": self.reset, "reset_grad": self.reset_grad,
            "surrogate": {"name": self.surrogate.name, "slope": float(self.surrogate.slope)},
            "smooth": bool(self.smooth),
            "readout": {"tau_out": float(self.readout.tau_out), "source": self.readout.source}}  # fmt: skip


@dataclass(frozen=True)
class LossConfig:
    """Loss of docs/model.md §5; steps ``t >= t0`` are scored."""

    name: str = "bce_per_step"
    t0: int = 0

    def __post_init__(self):
        check_choice("loss.name", self.name, LOSSES)
        check_int("loss.t0", self.t0, 0)


@dataclass(frozen=True)
class LyapunovConfig:
    """Settings of the surrogate Lyapunov spectrum (docs/model.md §6), checked by the ``[lyapunov]``
    settings of :mod:`refimpl.schema`; the API default ``k = 1`` measures λ₁ (a training run logs 16)."""

    k: int = 1  # the API's own default (λ₁); the rest are the schema's
    ons: int = setting("lyapunov", "ons").default
    warmup: int = setting("lyapunov", "warmup").default
    transient: int = setting("lyapunov", "transient").default
    batch_index: int = 0  # which trajectory of a batch (not a run setting)
    seed: int = setting("lyapunov", "seed").default

    def __post_init__(self):
        for key in ("k", "ons", "warmup", "transient", "seed"):  # the [lyapunov] settings of refimpl.schema
            setting("lyapunov", key).check(f"lyapunov.{key}", getattr(self, key))
        check_int("lyapunov.batch_index", self.batch_index, 0)


@dataclass(frozen=True)
class FlossConfig:
    """Flossing loss of docs/model.md §7: ``(1/k) Σ (λ_i - target)²``."""

    target: float = 0.0
    params: tuple = ("W_in", "W_rec", "b")

    def __post_init__(self):
        if not math.isfinite(self.target):
            raise ValueError(f"flossing.target must be finite, got {self.target!r}")
        object.__setattr__(self, "params", tuple(self.params))
        for p in self.params:
            check_choice("flossing.params entry", p, FLOSS_PARAMS)


def network_config(dialect: str | None = None, **kwargs) -> NetworkConfig:
    """Build a :class:`NetworkConfig`, expanding a named dialect (docs/model.md §1.1).

    Nested settings may be given as dicts: ``surrogate={"name": ..., "slope": ...}``.
    Explicit switches override the dialect's.
    """
    if dialect is not None:
        check_choice("dialect", dialect, list(DIALECTS))
        syn, gain, reset = DIALECTS[dialect]
        kwargs = {"syn_input": syn, "input_gain": gain, "reset": reset, **kwargs}
    known = {f.name for f in fields(NetworkConfig)}
    for key in kwargs:
        check_choice("network config key", key, sorted(known))
    if isinstance(kwargs.get("surrogate"), Mapping):
        kwargs["surrogate"] = Surrogate(**kwargs["surrogate"])
    if isinstance(kwargs.get("readout"), Mapping):
        kwargs["readout"] = Readout(**kwargs["readout"])
    if "readout" not in kwargs and kwargs.get("cell", "clif") != "clif":
        kwargs["readout"] = Readout(source="state")
    return NetworkConfig(**kwargs)


def with_changes(cfg, **changes):
    """``dataclasses.replace`` that re-validates."""
    return replace(cfg, **changes)
