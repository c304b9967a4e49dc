"""The golden format's constants, its errors, and the case ``config`` (docs/golden-format.md) ↔ refimpl's config objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from refimpl import __version__
from refimpl.checks import is_int, is_num
from refimpl.model.config import FLOSS_PARAMS, FlossConfig, LossConfig, LyapunovConfig, NetworkConfig, network_config

FORMAT = "refimpl-golden"
FORMAT_VERSION = 1
GENERATOR = f"refimpl {__version__}"


class FormatError(ValueError):
    """A file cannot be read or is not in the golden format (exit code 2)."""


def default_reference() -> Path:
    """The golden file shipped with the package (``refimpl/data/golden.h5``)."""
    try:
        from importlib.resources import files

        return Path(str(files("refimpl") / "data" / "golden.h5"))
    except Exception:  # pragma: no cover - importlib.resources without a package
        return Path(__file__).resolve().parents[2] / "data" / "golden.h5"


# ---------------------------------------------------------------------------
# the config (docs/golden-format.md keys) <-> refimpl's config objects
# ---------------------------------------------------------------------------

#: every key docs/golden-format.md lists, with the kind of value it takes; nested groups as dicts
SCHEMA = {"cell": "str", "layers": "int_list", "n_in": "int", "n_out": "int", "dt": "number",
    "tau_mem": "number_or_list", "tau_syn": "number_or_list", "theta": "number", "syn_input": "str",
    "input_gain": "str", "reset": "str", "reset_grad": "str", "surrogate": {"name": "str", "slope": "number"},
    "smooth": "bool", "readout": {"tau_out": "number", "source": "str"}, "loss": {"name": "str", "t0": "int"},
    "lyapunov": {"k": "int", "ons": "int", "warmup": "int", "transient": "int", "batch_index": "int"},
    "flossing": {"target": "number", "params": "str_list"}}  # fmt: skip
#: keys refimpl adds (allowed by docs/golden-format.md), with their default
OPTIONAL = {("lyapunov", "seed"): 0}


def _check_kind(key: str, value, kind: str) -> None:
    ok = {
        "str": lambda v: isinstance(v, str),
        "int": is_int,
        "number": is_num,
        "bool": lambda v: isinstance(v, (bool, np.bool_)),
        "int_list": lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_int(x) for x in v),
        "str_list": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
        "number_or_list": lambda v: is_num(v) or (isinstance(v, (list, tuple)) and len(v) > 0 and all(is_num(x) for x in v)),
    }[kind]
    if not ok(value):
        what = {"str": "a string", "int": "an integer", "number": "a number", "bool": "true or false",
            "int_list": "a non-empty list of integers", "str_list": "a list of strings",
            "number_or_list": "a number or a non-empty list of numbers"}[kind]  # fmt: skip
        raise ValueError(f"config key {key!r} must be {what}, got {value!r}")


def config_from_dict(d: Mapping) -> tuple[NetworkConfig, LossConfig, LyapunovConfig, FlossConfig]:
    """A docs/golden-format.md config (dict, or its JSON string) → ``(network, loss, lyapunov, flossing)`` configs.

    Strict: every key of docs/golden-format.md must be present with a value of the right
    kind, and every value must be one refimpl knows; otherwise ``ValueError``
    names the key (``surrogate.name``, ``lyapunov.k``, …). Keys that an
    implementation added (docs/golden-format.md allows it) are ignored, except
    ``lyapunov.seed`` (the seed of ``Q_0``, default 0), which refimpl adds.
    """
    if isinstance(d, (str, bytes)):
        try:
            d = json.loads(d)
        except json.JSONDecodeError as exc:
            raise ValueError(f"config is not valid JSON: {exc}") from None
    if not isinstance(d, Mapping):
        raise ValueError(f"config must be a JSON object, got {type(d).__name__}")
    for key, kind in SCHEMA.items():
        if key not in d:
            raise ValueError(f"config key {key!r} is missing")
        if isinstance(kind, dict):
            sub = d[key]
            if not isinstance(sub, Mapping):
                raise ValueError(f"config key {key!r} must be an object with keys {sorted(kind)}, got {sub!r}")
            for k2, kind2 in kind.items():
                if k2 not in sub:
                    raise ValueError(f"config key '{key}.{k2}' is missing")
                _check_kind(f"{key}.{k2}", sub[k2], kind2)
        else:
            _check_kind(key, d[key], kind)
    seed = d["lyapunov"].get("seed", OPTIONAL[("lyapunov", "seed")])
    _check_kind("lyapunov.seed", seed, "int")
    cfg = network_config(cell=d["cell"], layers=tuple(int(n) for n in d["layers"]), n_in=int(d["n_in"]),
        n_out=int(d["n_out"]), dt=float(d["dt"]),
        tau_mem=d["tau_mem"] if isinstance(d["tau_mem"], (list, tuple)) else float(d["tau_mem"]),
        tau_syn=d["tau_syn"] if isinstance(d["tau_syn"], (list, tuple)) else float(d["tau_syn"]),
        theta=float(d["theta"]), syn_input=d["syn_input"], input_gain=d["input_gain"], reset=d["reset"],
        reset_grad=d["reset_grad"],
        surrogate={"name": d["surrogate"]["name"], "slope": float(d["surrogate"]["slope"])},
        smooth=bool(d["smooth"]),
        readout={"tau_out": float(d["readout"]["tau_out"]), "source": d["readout"]["source"]})  # fmt: skip
    lo = d["loss"]
    loss = LossConfig(name=lo["name"], t0=int(lo["t0"]))
    ly = d["lyapunov"]
    lcfg = LyapunovConfig(k=int(ly["k"]), ons=int(ly["ons"]), warmup=int(ly["warmup"]),
        transient=int(ly["transient"]), batch_index=int(ly["batch_index"]), seed=int(seed))  # fmt: skip
    if lcfg.k > cfg.state_size:
        raise ValueError(f"config key 'lyapunov.k' must be <= M = {cfg.state_size}, got {lcfg.k}")
    fl = d["flossing"]
    for p in fl["params"]:
        if p not in FLOSS_PARAMS:
            raise ValueError(f"config key 'flossing.params' has unknown entry {p!r}; choose from {list(FLOSS_PARAMS)}")
    state_names = ("V0", "I0") if cfg.cell == "clif" else ("x0",)
    bad = [p for p in fl["params"] if p in ("V0", "I0", "x0") and p not in state_names]
    if bad:
        raise ValueError(f"config key 'flossing.params' names {bad}, which cell={cfg.cell!r} does not have")
    fcfg = FlossConfig(target=float(fl["target"]), params=tuple(fl["params"]))
    return cfg, loss, lcfg, fcfg


def config_to_dict(cfg: NetworkConfig, loss: LossConfig, lcfg: LyapunovConfig, fcfg: FlossConfig) -> dict:
    """The docs/golden-format.md config of a case (plus refimpl's ``lyapunov.seed``)."""
    d = cfg.to_dict()
    d["loss"] = {"name": loss.name, "t0": int(loss.t0)}
    d["lyapunov"] = {"k": lcfg.k, "ons": lcfg.ons, "warmup": lcfg.warmup, "transient": lcfg.transient,
        "batch_index": lcfg.batch_index, "seed": lcfg.seed}  # fmt: skip
    d["flossing"] = {"target": float(fcfg.target), "params": list(fcfg.params)}
    return d
