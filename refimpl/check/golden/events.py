"""Event-based golden cases (format version 2, docs/golden-format.md "Event-based cases"): exact
simulations of continuous-time cLIF networks (docs/exact.md) with their spike times, sampled membranes,
a loss, its exact gradient and the exact spectrum, for validating EventProp-style implementations.

A version-2 file holds case groups of either kind; an event-based case has ``config["kind"] ==
"exact"``. Version-1 files (time-stepped cases only) are still read. refimpl ships its event-based cases
in their own file, ``refimpl/data/golden_events.h5``, so that the time-stepped file is unchanged.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from refimpl.check.golden.schema import FORMAT, GENERATOR
from refimpl.checks import is_int, is_num

#: the format version that added event-based cases
EVENTS_FORMAT_VERSION = 2
#: every key of an event-based case's config, with the kind of value it takes
EXACT_KEYS = {"kind": "str", "layers": "int_list", "n_in": "int", "tau_mem": "number", "tau_syn": "number",
    "theta": "number", "reset": "str", "t_end": "number", "loss": {"name": "str", "tau_out": "number"},
    "spectrum": {"k": "int", "qr_every": "number", "transient": "number", "seed": "int"}}  # fmt: skip
#: the quantities an implementation computes, per case (besides the copied inputs)
COPIED = ("events/times", "events/units", "samples/times", "readout/W_out", "targets")


def is_exact(config) -> bool:
    return isinstance(config, Mapping) and config.get("kind") == "exact"


def default_events_reference() -> Path:
    """The event-based golden file shipped with the package (``refimpl/data/golden_events.h5``)."""
    return Path(__file__).resolve().parents[2] / "data" / "golden_events.h5"


def exact_config_from_dict(d: Mapping):
    """``(ExactConfig, t_end, loss dict, spectrum dict)`` of an event-based case's config; ``ValueError``
    naming the key for anything missing or of the wrong kind."""
    from refimpl.exact.events import ExactConfig

    kinds = {"str": lambda v: isinstance(v, str), "int": is_int, "number": is_num,
        "int_list": lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_int(x) for x in v)}  # fmt: skip
    for key, kind in EXACT_KEYS.items():
        if key not in d:
            raise ValueError(f"config key {key!r} is missing")
        for k2, kind2 in kind.items() if isinstance(kind, dict) else [(None, kind)]:
            v = d[key] if k2 is None else (d[key].get(k2, None) if isinstance(d[key], Mapping) else None)
            name = key if k2 is None else f"{key}.{k2}"
            if v is None or not kinds[kind2](v):
                raise ValueError(f"config key {name!r} must be a {kind2.replace('_', ' ')}, got {v!r}")
    if d["kind"] != "exact":
        raise ValueError(f"config key 'kind' must be 'exact', got {d['kind']!r}")
    if d["loss"]["name"] != "spike_readout":
        raise ValueError(f"config key 'loss.name' must be 'spike_readout', got {d['loss']['name']!r}")
    cfg = ExactConfig(layers=tuple(int(n) for n in d["layers"]), n_in=int(d["n_in"]), tau_mem=float(d["tau_mem"]),
        tau_syn=float(d["tau_syn"]), theta=float(d["theta"]), reset=d["reset"])  # fmt: skip
    return cfg, float(d["t_end"]), dict(d["loss"]), dict(d["spectrum"])


def expected_exact_paths(config) -> list:
    """Every dataset an event-based case holds (the damaged-reference check)."""
    cfg, *_ = exact_config_from_dict(config)
    params = [f"layer{l + 1}/{k}" for l in range(len(cfg.layers)) for k in ("W_in", "W_rec", "b")]
    out = [f"params/{k}" for k in params] + list(COPIED)
    out += ["exact/spikes/times", "exact/spikes/units", "exact/samples/V", "exact/loss"]
    return out + [f"exact/grad/{k}" for k in params] + ["exact/grad/readout/W_out", "exact/spectrum"]


@dataclass(frozen=True)
class EventCase:
    """One event-based case: its config, and the seed and size of its random data."""

    name: str
    covers: str
    config: dict
    seed: int
    n_events: int = 30
    n_samples: int = 20
    w_in: float = 2.0
    g_rec: float = 0.3
    bias: float = 0.3


def _config(layers, tau_mem, tau_syn, t_end=40.0, n_in=3, reset="zero", tau_out=5.0, k=4) -> dict:
    return {"kind": "exact", "layers": list(layers), "n_in": n_in, "tau_mem": tau_mem, "tau_syn": tau_syn, "theta": 1.0,
        "reset": reset, "t_end": t_end, "loss": {"name": "spike_readout", "tau_out": tau_out},
        "spectrum": {"k": k, "qr_every": 1.0, "transient": 10.0, "seed": 0}}  # fmt: skip


#: The shipped event-based cases: small, with every crossing's slope (I - θ)/θ above 1e-2 and no spike
#: within 1e-6 ms of a sample time (tests/test_golden_events.py checks both).
EVENT_CASES: list[EventCase] = [
    EventCase("exact_recurrent_quadratic", "1 recurrent layer of 6, τ_m = 2τ_s (closed-form crossings), spike readout",
        _config((6,), 10.0, 5.0), seed=1),
    EventCase("exact_recurrent_bracket", "1 recurrent layer of 6, τ_m/τ_s = 10/3 (bracketed crossings), spike readout",
        _config((6,), 10.0, 3.0), seed=2),
    EventCase("exact_two_layer_lambert", "2 recurrent layers of 5 and 4, τ_m = τ_s (Lambert W crossings), spike readout",
        _config((5, 4), 10.0, 10.0), seed=3, w_in=1.5, bias=0.2),
]  # fmt: skip
EVENT_CASE_NAMES = [c.name for c in EVENT_CASES]


def make_event_problem(case: EventCase):
    """``(params, events (times, units), sample_times, W_out, targets)`` from the case's seed alone."""
    cfg, t_end, _, _ = exact_config_from_dict(case.config)
    rng = np.random.default_rng([case.seed, 20261202])
    params, below = {}, cfg.n_in
    for l, n in enumerate(cfg.layers):
        p = f"layer{l + 1}/"
        params[p + "W_in"] = rng.uniform(0.0, case.w_in, (n, below)) * (1.0 if l == 0 else 0.3)
        params[p + "W_rec"] = case.g_rec * rng.standard_normal((n, n))
        params[p + "b"] = np.full(n, case.bias)
        below = n
    times = np.sort(rng.uniform(0.0, t_end, case.n_events))
    units = rng.integers(0, cfg.n_in, case.n_events).astype(np.int64)
    samples = np.linspace(t_end / case.n_samples, t_end, case.n_samples)
    W_out = rng.standard_normal((2, cfg.layers[-1])) / math.sqrt(cfg.layers[-1])
    targets = rng.standard_normal((case.n_samples, 2))
    return params, (times, units), samples, W_out, targets


def compute_event_case(case: EventCase) -> dict:
    """Every quantity of an event-based case: path → array (file order)."""
    from refimpl.exact.gradients import spike_readout_loss, value_and_grad
    from refimpl.exact.lyapunov import spectrum

    cfg, t_end, loss_cfg, spec = exact_config_from_dict(case.config)
    params, (times, units), samples, W_out, targets = make_event_problem(case)
    loss = spike_readout_loss(W_out, np.zeros(2), loss_cfg["tau_out"], targets)
    L, g, res = value_and_grad(cfg, params, times, units, t_end, loss, sample_times=samples)
    sp = spectrum(cfg, params, times, units, t_end, k=spec["k"], qr_every=spec["qr_every"], transient=spec["transient"],
        seed=spec["seed"])  # fmt: skip
    out = {f"params/{k}": v for k, v in params.items()}
    out.update({"events/times": times, "events/units": units, "samples/times": samples, "readout/W_out": W_out,
        "targets": targets, "exact/spikes/times": res.spike_times, "exact/spikes/units": res.spike_units,
        "exact/samples/V": res.sample_V, "exact/loss": np.float64(L)})  # fmt: skip
    for k in params:
        out[f"exact/grad/{k}"] = g[k]
    out["exact/grad/readout/W_out"] = g["readout/W_out"]
    out["exact/spectrum"] = sp.exponents
    return {k: np.asarray(v).astype(np.int64 if k.endswith("/units") else np.float64) for k, v in out.items()}


def export_events(path, names: Sequence[str] | None = None) -> list:
    """Write the event-based golden file (format version 2) of ``names`` (default all), atomically."""
    from refimpl.interrupt import poll
    from refimpl.io import atomic_h5

    by = {c.name: c for c in EVENT_CASES}
    for n in names or ():
        if n not in by:
            raise ValueError(f"unknown event-based case {n!r}; the cases are {EVENT_CASE_NAMES}")
    cases = EVENT_CASES if not names else [by[n] for n in names]
    with atomic_h5(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(EVENTS_FORMAT_VERSION)
        f.attrs["generator"] = GENERATOR
        for case in cases:
            poll()
            g = f.create_group(case.name, track_order=True)
            g.attrs["config"] = json.dumps(case.config)
            g.attrs["description"] = case.covers
            for key, value in compute_event_case(case).items():
                g.create_dataset(key, data=value, track_times=False)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
    return [c.name for c in cases]
