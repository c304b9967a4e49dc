"""Golden vectors: the file that validates other implementations (docs/golden-format.md).

"Validating other implementations is the first use of this project." This
module

* reads a golden ``config`` (:func:`config_from_dict`) strictly: every key of
  docs/golden-format.md is required, every value is checked, a bad one raises
  ``ValueError`` naming the key; keys an implementation added are ignored;
* holds the curated list :data:`CASES` of small networks that together cover
  every switch of docs/model.md (see docs/golden.md for the table);
* computes every quantity of a case with refimpl (:func:`compute_case`) and
  writes the golden file deterministically (:func:`export`): no time stamps,
  fixed order, fixed seeds, so that a re-export gives identical datasets;
* compares a candidate file with a reference quantity by quantity
  (:func:`compare`), under per-quantity tolerances (:data:`TOLERANCES`),
  with the rule ``|candidate - reference| <= atol + rtol·|reference|``;
* provides the command-line entries ``refimpl validate`` and
  ``refimpl golden export|list`` (a plugin of :mod:`refimpl.cli`).

Exit codes of ``refimpl validate``: 0 every quantity present in the candidate
agrees, 1 at least one mismatch, 2 the candidate (or reference) cannot be
read or is not in the golden format (a one-line reason, never a traceback).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import __version__
from .config import (DIALECTS, FLOSS_PARAMS, FlossConfig, LossConfig, LyapunovConfig, NetworkConfig,
                     network_config)

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
        return Path(__file__).parent / "data" / "golden.h5"


# ---------------------------------------------------------------------------
# the config (docs/golden-format.md keys) <-> refimpl's config objects
# ---------------------------------------------------------------------------

#: every key docs/golden-format.md lists, with the kind of value it takes; nested groups as dicts
SCHEMA = {
    "cell": "str", "layers": "int_list", "n_in": "int", "n_out": "int",
    "dt": "number", "tau_mem": "number_or_list", "tau_syn": "number_or_list", "theta": "number",
    "syn_input": "str", "input_gain": "str", "reset": "str", "reset_grad": "str",
    "surrogate": {"name": "str", "slope": "number"},
    "smooth": "bool",
    "readout": {"tau_out": "number", "source": "str"},
    "loss": {"name": "str", "t0": "int"},
    "lyapunov": {"k": "int", "ons": "int", "warmup": "int", "transient": "int", "batch_index": "int"},
    "flossing": {"target": "number", "params": "str_list"},
}
#: keys refimpl adds (allowed by docs/golden-format.md), with their default
OPTIONAL = {("lyapunov", "seed"): 0}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, (float, np.floating))) and not isinstance(v, (bool, np.bool_))


def _check_kind(key: str, value, kind: str) -> None:
    ok = {
        "str": lambda v: isinstance(v, str),
        "int": _is_int,
        "number": _is_number,
        "bool": lambda v: isinstance(v, (bool, np.bool_)),
        "int_list": lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(x) for x in v),
        "str_list": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
        "number_or_list": lambda v: _is_number(v) or (
            isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_number(x) for x in v)),
    }[kind]
    if not ok(value):
        what = {"str": "a string", "int": "an integer", "number": "a number", "bool": "true or false",
                "int_list": "a non-empty list of integers", "str_list": "a list of strings",
                "number_or_list": "a number or a non-empty list of numbers"}[kind]
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
    cfg = network_config(
        cell=d["cell"], layers=tuple(int(n) for n in d["layers"]), n_in=int(d["n_in"]),
        n_out=int(d["n_out"]), dt=float(d["dt"]),
        tau_mem=d["tau_mem"] if isinstance(d["tau_mem"], (list, tuple)) else float(d["tau_mem"]),
        tau_syn=d["tau_syn"] if isinstance(d["tau_syn"], (list, tuple)) else float(d["tau_syn"]),
        theta=float(d["theta"]), syn_input=d["syn_input"], input_gain=d["input_gain"],
        reset=d["reset"], reset_grad=d["reset_grad"],
        surrogate={"name": d["surrogate"]["name"], "slope": float(d["surrogate"]["slope"])},
        smooth=bool(d["smooth"]),
        readout={"tau_out": float(d["readout"]["tau_out"]), "source": d["readout"]["source"]})
    lo = d["loss"]
    loss = LossConfig(name=lo["name"], t0=int(lo["t0"]))
    ly = d["lyapunov"]
    lcfg = LyapunovConfig(k=int(ly["k"]), ons=int(ly["ons"]), warmup=int(ly["warmup"]),
                          transient=int(ly["transient"]), batch_index=int(ly["batch_index"]),
                          seed=int(seed))
    if lcfg.k > cfg.state_size:
        raise ValueError(f"config key 'lyapunov.k' must be <= M = {cfg.state_size}, got {lcfg.k}")
    fl = d["flossing"]
    for p in fl["params"]:
        if p not in FLOSS_PARAMS:
            raise ValueError(f"config key 'flossing.params' has unknown entry {p!r}; "
                             f"choose from {list(FLOSS_PARAMS)}")
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
                     "batch_index": lcfg.batch_index, "seed": lcfg.seed}
    d["flossing"] = {"target": float(fcfg.target), "params": list(fcfg.params)}
    return d


# ---------------------------------------------------------------------------
# the curated cases
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One golden case: a config, the problem size and the seed of its random data.

    ``drive`` scales the random inputs, ``w_in``/``g_rec``/``bias`` the
    weights (see :func:`make_problem`); ``steps`` are the Jacobian steps.
    """

    name: str
    covers: str
    config: dict
    T: int
    B: int
    seed: int
    steps: tuple = ()
    drive: float = 1.0
    w_in: float = 2.0
    g_rec: float = 1.5
    bias: float = 0.2

    def jacobian_steps(self) -> tuple:
        return self.steps or (1, self.T // 2, self.T - 1)


def _case_config(cell="clif", layers=(6,), n_in=3, n_out=2, dialect="engelken", reset=None,
                 reset_grad="detached", surrogate=("fast_sigmoid", 10.0), smooth=False,
                 readout=(5.0, None), loss=("bce_per_step", 0), k=4, ons=1, warmup=0, transient=0,
                 batch_index=0, seed=0, target=0.0, floss=("W_in", "W_rec", "b"), **extra) -> dict:
    kw = dict(cell=cell, layers=tuple(layers), n_in=n_in, n_out=n_out, reset_grad=reset_grad,
              surrogate={"name": surrogate[0], "slope": surrogate[1]}, smooth=smooth,
              readout={"tau_out": readout[0],
                       "source": readout[1] or ("spikes" if cell == "clif" else "state")}, **extra)
    if cell == "clif":
        kw["dialect"] = dialect
        if reset is not None:
            kw["reset"] = reset
    cfg = network_config(**kw)
    return config_to_dict(cfg, LossConfig(*loss),
                          LyapunovConfig(k=k, ons=ons, warmup=warmup, transient=transient,
                                         batch_index=batch_index, seed=seed),
                          FlossConfig(target=target, params=floss))


#: The shipped cases. Every one is small (N ≤ 8 per layer, T ≤ 30, B ≤ 3) and
#: was chosen so that its spikes are robust: no membrane within 1e-6 of θ (a
#: rounding difference cannot flip a spike), no pre-activation within 1e-6 of
#: a kink of σ' and no near-tie in ce_max (tests/test_golden.py checks this).
CASES: list[Case] = [
    Case("clif_engelken",
         "engelken dialect (new, one_minus_beta, zero), detached, fast_sigmoid γ=10, 1 layer, "
         "bce_per_step, spike readout τ_out=5",
         _case_config(layers=(6,), k=4, seed=101), T=24, B=2, seed=1),
    Case("clif_spytorch",
         "spytorch dialect (old, unit, zero), detached, fast_sigmoid γ=5, 1 layer, ce_max t0=2, "
         "membrane readout τ_out=5, ons=2 warmup=3 transient=1, batch_index=1",
         _case_config(dialect="spytorch", layers=(5,), surrogate=("fast_sigmoid", 5.0),
                      readout=(5.0, "membrane"), loss=("ce_max", 2), k=3, ons=2, warmup=3,
                      transient=1, batch_index=1, seed=102, n_out=3),
         T=25, B=3, seed=2, w_in=1.0, g_rec=0.6, bias=0.0),
    Case("clif_stork",
         "stork dialect (old, one_minus_beta, zero), attached, sigmoid γ=5, 2 layers, ce_mean "
         "t0=2, membrane readout τ_out=0",
         _case_config(dialect="stork", layers=(6, 4), reset_grad="attached", surrogate=("sigmoid", 5.0),
                      readout=(0.0, "membrane"), loss=("ce_mean", 2), k=4, seed=103),
         T=20, B=2, seed=3),
    Case("clif_subtract_attached",
         "engelken with subtract reset, attached, arctan γ=2, 2 layers, mse_per_step, spike "
         "readout τ_out=0, ons=3 warmup=2 transient=1",
         _case_config(layers=(5, 4), reset="subtract", reset_grad="attached", surrogate=("arctan", 2.0),
                      readout=(0.0, "spikes"), loss=("mse_per_step", 0), k=5, ons=3, warmup=2,
                      transient=1, seed=104),
         T=21, B=2, seed=4),
    Case("clif_no_reset_per_neuron_tau",
         "reset none, detached, gaussian γ=2, 1 layer, ce_last, spike readout τ_out=3, per-neuron "
         "τ_mem and τ_syn, dt=0.5, θ=0.8",
         _case_config(layers=(6,), reset="none", surrogate=("gaussian", 2.0), readout=(3.0, "spikes"),
                      loss=("ce_last", 0), k=6, seed=105, n_out=3, dt=0.5, theta=0.8,
                      tau_mem=(8.0, 10.0, 12.0, 15.0, 20.0, 6.0), tau_syn=(3.0, 5.0, 5.0, 4.0, 6.0, 2.0)),
         T=30, B=2, seed=5, g_rec=1.5, bias=-0.3),
    Case("clif_ignored_3layers",
         "zero reset with reset_grad ignored, triangle γ=1.5, 3 layers, (new, unit) gain, "
         "bce_per_step t0=3, spike readout τ_out=5, ons=2, flossing of V0 and I0 too",
         _case_config(layers=(4, 4, 3), reset="zero", input_gain="unit", reset_grad="ignored",
                      surrogate=("triangle", 1.5), loss=("bce_per_step", 3), k=4, ons=2, seed=106,
                      floss=("W_in", "W_rec", "b", "V0", "I0")),
         T=20, B=2, seed=6, w_in=1.0, g_rec=0.5, bias=0.0),
    Case("clif_smooth_sigmoid",
         "smooth mode, engelken, attached, sigmoid γ=4, 2 layers, mse_per_step t0=1, membrane "
         "readout τ_out=5, warmup=4, flossing target -0.05",
         _case_config(layers=(5, 4), reset_grad="attached", surrogate=("sigmoid", 4.0), smooth=True,
                      readout=(5.0, "membrane"), loss=("mse_per_step", 1), k=4, warmup=4, seed=107,
                      target=-0.05),
         T=22, B=2, seed=7),
    Case("clif_smooth_triangle_subtract",
         "smooth mode, spytorch switches with subtract reset, detached, triangle γ=1, 1 layer, "
         "ce_max, membrane readout τ_out=2",
         _case_config(dialect="spytorch", layers=(6,), reset="subtract", surrogate=("triangle", 1.0),
                      smooth=True, readout=(2.0, "membrane"), loss=("ce_max", 0), k=3, seed=108),
         T=20, B=2, seed=8, w_in=1.0, g_rec=0.6, bias=0.0),
    Case("clif_smooth_fast_sigmoid_ignored",
         "smooth mode, stork switches, subtract reset with reset_grad ignored, fast_sigmoid γ=10, "
         "2 layers, bce_per_step, spike readout τ_out=5, ons=2 transient=2",
         _case_config(dialect="stork", layers=(4, 3), reset="subtract", reset_grad="ignored",
                      smooth=True, loss=("bce_per_step", 0), k=4, ons=2, transient=2, seed=109),
         T=24, B=2, seed=9),
    Case("clif_snntorch_synaptic",
         "the switches of snnTorch's Synaptic neuron: (new, unit, subtract), detached, arctan γ=2 "
         "(snnTorch's default atan), 1 layer, mse_per_step, spike readout τ_out=4; "
         "validation/peers/snntorch_adapter.py runs snnTorch itself on it",
         _case_config(layers=(6,), input_gain="unit", reset="subtract", surrogate=("arctan", 2.0),
                      readout=(4.0, "spikes"), loss=("mse_per_step", 0), k=4, seed=114),
         T=24, B=2, seed=15, w_in=1.0, g_rec=0.6, bias=-0.2),
    Case("binary_surrogate",
         "binary cell, fast_sigmoid γ=5, state readout τ_out=0, bce_per_step",
         _case_config(cell="binary", layers=(8,), n_in=2, surrogate=("fast_sigmoid", 5.0),
                      readout=(0.0, "state"), loss=("bce_per_step", 0), k=4, seed=110),
         T=25, B=2, seed=10, w_in=1.0, g_rec=2.0, bias=0.0),
    Case("binary_smooth",
         "binary cell in smooth mode, arctan γ=2, activation readout τ_out=5, ce_mean, ons=2 "
         "warmup=3 transient=2, flossing of x0 too",
         _case_config(cell="binary", layers=(7,), n_in=2, surrogate=("arctan", 2.0), smooth=True,
                      readout=(5.0, "activation"), loss=("ce_mean", 1), k=3, ons=2, warmup=3,
                      transient=2, seed=111, floss=("W_in", "W_rec", "b", "x0")),
         T=26, B=2, seed=11, w_in=1.0, g_rec=2.0, bias=0.0),
    Case("rate_state",
         "rate cell (tanh), state readout τ_out=5, mse_per_step, flossing of x0 too",
         _case_config(cell="rate", layers=(8,), n_in=2, readout=(5.0, "state"),
                      loss=("mse_per_step", 0), k=5, seed=112, floss=("W_in", "W_rec", "b", "x0")),
         T=25, B=2, seed=12, w_in=1.0, g_rec=2.0, bias=0.0),
    Case("rate_activation_full_spectrum",
         "rate cell, activation readout τ_out=0, ce_last, full spectrum k=M=6, ons=3 warmup=2 "
         "transient=1, batch_index=2, flossing target 0.1",
         _case_config(cell="rate", layers=(6,), n_in=2, n_out=3, readout=(0.0, "activation"),
                      loss=("ce_last", 0), k=6, ons=3, warmup=2, transient=1, batch_index=2,
                      seed=113, target=0.1),
         T=29, B=3, seed=13, w_in=1.0, g_rec=2.0, bias=0.0),
]

CASE_NAMES = [c.name for c in CASES]


def get_case(name: str) -> Case:
    for c in CASES:
        if c.name == name:
            return c
    raise ValueError(f"unknown case {name!r}; the cases are {CASE_NAMES}")


def make_problem(case: Case):
    """``(params, inputs, targets)`` of a case, from its own seed alone.

    ``W_in ~ N(0, w_in²/n_in)``, ``W_rec ~ N(0, g_rec²/N)`` (zero diagonal),
    ``b = bias`` plus ``N(0, 0.1²)``; deeper clif layers, which see sparse 0/1
    spikes, get ``W_in`` four times stronger and ``0.5`` more bias; initial
    states ``N(0, 0.5²)`` (``V0`` uniform in ``[0, 1.2 θ)`` so that some
    neurons start above threshold), ``W_out ~ N(0, 1/N_L)``,
    ``b_out ~ N(0, 0.1²)``; inputs ``drive · N(0, 1.5²)`` (clif) or
    ``drive · N(0, 1)``; targets: bits, normals or class labels.
    Written out here rather than borrowed, so that the golden data do not
    change when other code's random choices do.
    """
    cfg, loss, _, _ = config_from_dict(case.config)
    rng = np.random.default_rng([case.seed, 20240])
    theta = cfg.theta if cfg.cell == "clif" else 0.0
    params = {}
    for l, N in enumerate(cfg.layers):
        p = f"layer{l + 1}/"
        n_in = cfg.layer_inputs(l)
        deep = l > 0 and cfg.cell == "clif"
        params[p + "W_in"] = rng.standard_normal((N, n_in)) * case.w_in / math.sqrt(n_in) * (4.0 if deep else 1.0)
        W = rng.standard_normal((N, N)) * case.g_rec / math.sqrt(N)
        np.fill_diagonal(W, 0.0)
        params[p + "W_rec"] = W
        params[p + "b"] = case.bias + (0.5 if deep else 0.0) + 0.1 * rng.standard_normal(N)
        if cfg.cell == "clif":
            params[p + "V0"] = theta * rng.uniform(0.0, 1.2, N)
            params[p + "I0"] = 0.5 * rng.standard_normal(N)
        else:
            params[p + "x0"] = 0.5 * rng.standard_normal(N)
    NL = cfg.layers[-1]
    params["readout/W_out"] = rng.standard_normal((cfg.n_out, NL)) / math.sqrt(NL)
    params["readout/b_out"] = 0.1 * rng.standard_normal(cfg.n_out)
    scale = 1.5 if cfg.cell == "clif" else 1.0
    inputs = case.drive * scale * rng.standard_normal((case.T, case.B, cfg.n_in))
    if loss.name.startswith("ce_"):
        targets = rng.integers(0, cfg.n_out, size=case.B).astype(np.int64)
    elif loss.name == "bce_per_step":
        targets = (rng.random((case.T, case.B, cfg.n_out)) < 0.5).astype(np.float64)
    else:
        targets = rng.standard_normal((case.T, case.B, cfg.n_out))
    return params, inputs, targets


def compute_case(case: Case) -> dict:
    """Every quantity of docs/golden-format.md for one case: golden path → array (in file order).

    A case whose spectrum is degenerate, lost precision or is ill-conditioned
    (:class:`refimpl.lyapunov.ConditioningWarning`) is refused with ``ValueError``: a
    reference whose smallest exponents are set by rounding cannot be reproduced."""
    from . import lyapunov
    suspect = (lyapunov.DegenerateSpectrumWarning, lyapunov.PrecisionWarning, lyapunov.ConditioningWarning)
    with warnings.catch_warnings():
        for w in suspect:
            warnings.simplefilter("error", w)
        try:
            return _compute_case(case)
        except suspect as exc:
            raise ValueError(f"case {case.name}: {exc}; refusing to export it") from None


def _compute_case(case: Case) -> dict:
    from . import adjoint, flossing, lyapunov
    from .network import dense_jacobian, param_shapes, simulate
    cfg, loss, lcfg, fcfg = config_from_dict(case.config)
    params, inputs, targets = make_problem(case)
    out = {}
    keys = list(param_shapes(cfg))
    for key in keys:
        out[f"params/{key}"] = params[key]
    out["inputs"] = inputs
    out["targets"] = targets
    value, grads, traj = adjoint.value_and_grad(cfg, params, inputs, targets, loss)
    for l in range(cfg.n_layers):
        p = f"forward/layer{l + 1}/"
        if cfg.cell == "clif":
            out[p + "V"], out[p + "I"], out[p + "S"] = traj.V[l], traj.I[l], traj.S[l]
        else:
            out[p + "x"] = traj.V[l]
    out["forward/readout/y"] = traj.y
    out["loss"] = np.float64(value)
    for key in keys:
        out[f"grad/{key}"] = grads[key]
    b = lcfg.batch_index
    ltraj = simulate(cfg, params, inputs[:, b:b + 1])
    steps = np.asarray(case.jacobian_steps(), dtype=np.int64)
    out["jacobian/steps"] = steps
    out["jacobian/D"] = np.stack([dense_jacobian(cfg, params, ltraj, int(t), 0) for t in steps])
    res = lyapunov.spectrum(cfg, params, inputs, lcfg)
    out["lyapunov/Q0"] = res.Q0
    out["lyapunov/spectrum"] = res.exponents
    fres = flossing.value_and_grad(cfg, params, inputs, lcfg, fcfg, Q0=res.Q0)
    out["flossing/loss"] = np.float64(fres.loss)
    for key in keys:
        if key in fres.grads:
            out[f"flossing/grad/{key}"] = fres.grads[key]
    return {k: as_stored(k, v) for k, v in out.items()}


def as_stored(path: str, value) -> np.ndarray:
    """float64, except the integer datasets: ``jacobian/steps`` and class-label ``targets``."""
    value = np.asarray(value)
    integer = path == "jacobian/steps" or (path == "targets" and np.issubdtype(value.dtype, np.integer))
    return value.astype(np.int64 if integer else np.float64)


def export(path, names: Sequence[str] | None = None) -> list:
    """Write the golden file of ``names`` (default: all of :data:`CASES`) to ``path``, atomically.

    Deterministic: fixed seeds, fixed order, no time stamps in the HDF5
    objects, so that a re-export holds identical datasets. Returns the names.
    """
    from .io import atomic_h5
    cases = CASES if names is None else [get_case(n) for n in names]
    with atomic_h5(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["generator"] = GENERATOR
        for case in cases:
            data = compute_case(case)
            g = f.create_group(case.name, track_order=True)
            g.attrs["config"] = json.dumps(case.config)
            g.attrs["description"] = case.covers
            for key, value in data.items():
                g.create_dataset(key, data=value, track_times=False)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)   # the temporary file of atomic_h5 is private (0600)
    return [c.name for c in cases]


def coverage(cases: Sequence[Case] = None) -> dict:
    """Which value of each switch the cases use: switch → {value: [case names]}."""
    cases = CASES if cases is None else cases
    cov: dict = {}

    def add(key, value, name):
        cov.setdefault(key, {}).setdefault(value, []).append(name)

    for c in cases:
        d = c.config
        add("cell", d["cell"], c.name)
        add("surrogate", d["surrogate"]["name"], c.name)
        add("loss", d["loss"]["name"], c.name)
        add("readout.source", d["readout"]["source"], c.name)
        add("readout.tau_out", "0" if d["readout"]["tau_out"] == 0 else ">0", c.name)
        add("mode", "smooth" if d["smooth"] else "surrogate", c.name)
        ly = d["lyapunov"]
        add("lyapunov", "ons>1" if ly["ons"] > 1 else "ons=1", c.name)
        if ly["warmup"]:
            add("lyapunov", "warmup>0", c.name)
        if ly["transient"]:
            add("lyapunov", "transient>0", c.name)
        if d["cell"] == "clif":
            add("layers", "1" if len(d["layers"]) == 1 else "2-3", c.name)
            add("reset", d["reset"], c.name)
            add("reset_grad", d["reset_grad"], c.name)
            add("syn_input", d["syn_input"], c.name)
            add("input_gain", d["input_gain"], c.name)
            for name, (syn, gain, reset) in DIALECTS.items():
                if (d["syn_input"], d["input_gain"]) == (syn, gain):
                    add("dialect" if d["reset"] == reset else "dialect switches, other reset", name, c.name)
    return cov


# ---------------------------------------------------------------------------
# reading a golden (or candidate) file
# ---------------------------------------------------------------------------

def _one_line(exc) -> str:
    msg = str(exc).strip().splitlines()
    return (msg[0] if msg else type(exc).__name__).strip()


def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape in ((), (1,)):
        return _attr_str(v.ravel()[0] if v.shape == (1,) else v[()])
    if isinstance(v, np.bytes_):
        return bytes(v).decode("utf-8", "replace")
    return v


@dataclass
class GoldenFile:
    """The contents of a golden-format file, read into memory."""

    path: str
    generator: str
    cases: dict      # name -> {path: array}
    configs: dict    # name -> config dict, or None when the group has no config attribute
    groups: dict     # name -> set of group paths inside the case (for layout checks)


def read_golden(path, what: str = "candidate") -> GoldenFile:
    """Read a whole golden-format file; ``FormatError`` (one line) if it is unreadable or not in the format."""
    import h5py
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{what} {path}: no such file")
    if p.is_dir():
        raise FormatError(f"{what} {path}: is a directory, not an HDF5 file")
    try:
        is_h5 = h5py.is_hdf5(str(p))
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"{what} {path}: cannot be read ({_one_line(exc)})") from None
    if not is_h5:
        raise FormatError(f"{what} {path}: not an HDF5 file (no HDF5 signature)")
    try:
        with h5py.File(str(p), "r") as f:
            fmt = _attr_str(f.attrs.get("format", None))
            if fmt is None:
                raise FormatError(f"{what} {path}: root attribute 'format' is missing "
                                  f"(expected {FORMAT!r})")
            if fmt != FORMAT:
                raise FormatError(f"{what} {path}: root attribute format = {fmt!r}, expected {FORMAT!r}")
            ver = f.attrs.get("format_version", None)
            if ver is None:
                raise FormatError(f"{what} {path}: root attribute 'format_version' is missing (expected 1)")
            ver = np.asarray(ver)
            if ver.size != 1 or not np.issubdtype(ver.dtype, np.integer) or int(ver.ravel()[0]) != FORMAT_VERSION:
                raise FormatError(f"{what} {path}: root attribute format_version = {ver.ravel().tolist()!r}, "
                                  f"expected the integer {FORMAT_VERSION}")
            gen = _attr_str(f.attrs.get("generator", "(no generator attribute)"))
            cases, configs, groups = {}, {}, {}
            for name in f:
                obj = f[name]
                if not isinstance(obj, h5py.Group):
                    raise FormatError(f"{what} {path}: root member {name!r} is not a case group")
                data, subgroups = {}, set()

                def visit(rel, item, data=data, subgroups=subgroups, name=name):
                    if isinstance(item, h5py.Dataset):
                        try:
                            value = item[()]
                        except Exception as exc:  # noqa: BLE001 - truncated or corrupted data
                            raise FormatError(f"{what} {path}: dataset {name}/{rel} cannot be read "
                                              f"({_one_line(exc)})") from None
                        arr = np.asarray(value)
                        if arr.dtype.kind not in "biuf":
                            raise FormatError(f"{what} {path}: dataset {name}/{rel} holds {arr.dtype} "
                                              "values, not numbers")
                        data[rel] = arr
                    else:
                        subgroups.add(rel)
                obj.visititems(visit)
                cfg = obj.attrs.get("config", None)
                if cfg is not None:
                    try:
                        cfg = json.loads(_attr_str(cfg))
                    except (TypeError, ValueError) as exc:
                        raise FormatError(f"{what} {path}: case {name!r} has a config attribute that is "
                                          f"not JSON ({_one_line(exc)})") from None
                    if not isinstance(cfg, dict):
                        raise FormatError(f"{what} {path}: case {name!r} config is not a JSON object")
                cases[name], configs[name], groups[name] = data, cfg, subgroups
    except FormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError …
        raise FormatError(f"{what} {path}: corrupted or truncated HDF5 file ({_one_line(exc)})") from None
    return GoldenFile(str(path), str(gen), cases, configs, groups)


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

#: quantity kind → (rtol, atol) for ``|c - r| <= atol + rtol |r|``; see docs/golden.md
TOLERANCES = {
    "copy":          (0.0, 0.0),      # params, inputs, targets, jacobian/steps: bit for bit
    "q0":            (0.0, 1e-15),    # lyapunov/Q0: LAPACK's QR; the BLAS kernel moves its last bits
    "state":         (1e-10, 1e-12),  # forward/layer<l>/V, I, x
    "spikes":        (1e-10, 1e-12),  # forward/layer<l>/S (0/1 in surrogate mode: any flip fails)
    "readout":       (1e-10, 1e-12),  # forward/readout/y
    "loss":          (1e-10, 1e-12),
    "grad":          (1e-8, 1e-10),
    "jacobian":      (1e-10, 1e-12),
    "spectrum":      (1e-8, 1e-10),
    "flossing_loss": (1e-8, 1e-12),
    "flossing_grad": (1e-7, 1e-9),
}
COPIES = ("inputs", "targets", "jacobian/steps", "lyapunov/Q0")
#: the order of the quantities in a case (docs/golden-format.md's table)
ORDER = ("params/", "inputs", "targets", "forward/", "loss", "grad/", "jacobian/steps", "jacobian/D",
         "lyapunov/Q0", "lyapunov/spectrum", "flossing/loss", "flossing/grad/")


def _order_key(path: str):
    for i, prefix in enumerate(ORDER):
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            sub = 0
            if prefix == "forward/":  # layer by layer, V I S (x), then the readout
                sub = 99 if path.startswith("forward/readout") else 0
                return (i, sub, path.split("/")[1], "VISx".find(path[-1]))
            return (i, sub, path, 0)
    return (len(ORDER), 0, path, 0)


def kind_of(path: str) -> str:
    """The tolerance class of a golden path."""
    if path == "lyapunov/Q0":
        return "q0"
    if path.startswith("params/") or path in COPIES:
        return "copy"
    if path.startswith("forward/readout/"):
        return "readout"
    if path.startswith("forward/"):
        return "spikes" if path.endswith("/S") else "state"
    if path.startswith("flossing/grad/"):
        return "flossing_grad"
    return {"loss": "loss", "jacobian/D": "jacobian", "lyapunov/spectrum": "spectrum",
            "flossing/loss": "flossing_loss"}.get(path, "grad" if path.startswith("grad/") else "other")


@dataclass
class Row:
    case: str
    quantity: str
    kind: str
    max_abs: float
    max_rel: float
    rtol: float
    atol: float
    ok: bool
    note: str = ""


@dataclass
class Report:
    reference: GoldenFile
    candidate: GoldenFile
    rows: list = field(default_factory=list)
    missing: dict = field(default_factory=dict)     # case -> [paths] (or ["(whole case)"])
    extra: dict = field(default_factory=dict)       # case -> [paths the reference does not have]
    strict: bool = False    # every quantity of the reference must be in the candidate (else exit 1)

    @property
    def mismatches(self) -> list:
        return [r for r in self.rows if not r.ok]

    @property
    def n_reference(self) -> int:
        """Datasets of the reference (every quantity that could be compared)."""
        return sum(len(d) for d in self.reference.cases.values())

    @property
    def n_compared(self) -> int:
        """Datasets of the reference that the candidate has."""
        return sum(sum(p in self.candidate.cases.get(n, {}) for p in d) for n, d in self.reference.cases.items())

    @property
    def exit_code(self) -> int:
        return 1 if self.mismatches or (self.strict and self.n_compared < self.n_reference) else 0


def _errors(c: np.ndarray, r: np.ndarray):
    """Elementwise ``|c - r|`` (0 where equal, inf where NaN) and the max relative error over ``r != 0``."""
    c = np.atleast_1d(c).astype(np.float64)
    r = np.atleast_1d(r).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(c - r)
    diff[c == r] = 0.0
    diff[np.isnan(diff)] = np.inf
    nz = r != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = float(np.max(diff[nz] / np.abs(r[nz]))) if np.any(nz) else float("nan")
    return diff, rel


def _spike_note(case, path, c, r, ref_data, config) -> str:
    """Where spikes differ, with the reference margin ``V - θ`` at the first flip."""
    flips = np.argwhere(c != r)
    if flips.size == 0:
        return ""
    t, b, n = (int(x) for x in flips[0])
    cvals = c[tuple(flips.T)]
    not01 = int(np.sum((cvals != 0) & (cvals != 1)))
    if not01:
        return (f"{len(flips)} entries differ, {not01} of them neither 0 nor 1 (spikes must be 0/1 in "
                f"surrogate mode), first at t={t} b={b} neuron={n}")
    msg = f"{len(flips)} spike(s) flipped, first at t={t} b={b} neuron={n}"
    vpath = path[:-1] + "V"
    if vpath in ref_data and config is not None and "theta" in config:
        margin = float(ref_data[vpath][t, b, n]) - float(config["theta"])
        msg += f" (reference V-θ there = {margin:.3g})"
    return msg + "; everything downstream differs too"


def _first_divergence(case_rows: list, cand: dict, ref: dict) -> str:
    """The earliest time step at which a forward state of the case disagrees."""
    first = None
    for r in case_rows:
        if r.ok or r.kind not in ("state", "spikes"):
            continue
        c, rv = cand[r.quantity], ref[r.quantity]
        diff, _ = _errors(c, rv)
        tol = r.atol + r.rtol * np.abs(rv)
        bad = np.argwhere(diff > tol)
        if bad.size:
            t = int(bad[:, 0].min())
            if first is None or t < first[0]:
                first = (t, r.quantity)
    if first is None:
        return ""
    return f"forward states first disagree at t={first[0]} ({first[1]})"


def _compress(paths: list, rdata: dict) -> list:
    """Missing paths, a group written as ``group/*`` when all of it is missing."""
    out, seen = [], set()
    for p in paths:
        parts = p.split("/")
        group = None
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth]) + "/"
            if all(q in paths for q in rdata if q.startswith(prefix)):
                group = prefix + "*"
                break
        item = group or p
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _config_diff(ref_cfg: dict, cand_cfg: dict) -> list:
    """GOLDEN keys (and refimpl's lyapunov.seed) whose values differ; extra keys are allowed."""
    diffs = []
    for key, kind in SCHEMA.items():
        subkeys = [(key, k2) for k2 in kind] if isinstance(kind, dict) else [(key,)]
        if key == "lyapunov":
            subkeys.append(("lyapunov", "seed"))
        for sk in subkeys:
            rv, cv = ref_cfg, cand_cfg
            for part in sk:
                rv = rv.get(part, "(missing)") if isinstance(rv, dict) else "(missing)"
                cv = cv.get(part, "(missing)") if isinstance(cv, dict) else "(missing)"
            if sk == ("lyapunov", "seed") and cv == "(missing)":
                continue  # refimpl's own key: other implementations need not copy it
            if isinstance(rv, (int, float)) and isinstance(cv, (int, float)) and not isinstance(cv, bool):
                same = float(rv) == float(cv)
            elif isinstance(rv, list) and isinstance(cv, list):
                same = len(rv) == len(cv) and all(
                    (float(a) == float(b)) if isinstance(a, (int, float)) and isinstance(b, (int, float))
                    else a == b for a, b in zip(rv, cv))
            else:
                same = rv == cv
            if not same:
                diffs.append(f"{'.'.join(sk)}={cv!r} (reference {rv!r})")
    return diffs


def expected_paths(config) -> list:
    """Every dataset docs/golden-format.md requires of a case with this config (the damaged-reference check)."""
    from .flossing import flossed_keys
    from .network import param_shapes
    cfg, _, _, fcfg = config_from_dict(config)
    keys = list(param_shapes(cfg))
    out = [f"params/{k}" for k in keys] + ["inputs", "targets"]
    for l in range(cfg.n_layers):
        out += [f"forward/layer{l + 1}/{q}" for q in (("V", "I", "S") if cfg.cell == "clif" else ("x",))]
    out += ["forward/readout/y", "loss"] + [f"grad/{k}" for k in keys]
    out += ["jacobian/steps", "jacobian/D", "lyapunov/Q0", "lyapunov/spectrum", "flossing/loss"]
    return out + [f"flossing/grad/{k}" for k in flossed_keys(cfg, fcfg)]


def check_reference(ref: GoldenFile) -> None:
    """``FormatError`` (exit 2) if the reference lacks a case's config or a quantity its config requires."""
    for name, data in ref.cases.items():
        if ref.configs[name] is None:
            raise FormatError(f"reference {ref.path} is damaged: case {name!r} has no config attribute")
        try:
            need = expected_paths(ref.configs[name])
        except ValueError as exc:
            raise FormatError(f"reference {ref.path} is damaged: case {name!r} has an invalid config "
                              f"({_one_line(exc)})") from None
        lost = [q for q in need if q not in data]
        if lost:
            shown = ", ".join(lost[:4]) + (f" (and {len(lost) - 4} more)" if len(lost) > 4 else "")
            raise FormatError(f"reference {ref.path} is damaged: case {name!r} lacks {shown}")


def compare(reference, candidate, rtol: float | None = None, atol: float | None = None,
            strict: bool = False) -> Report:
    """Compare every quantity present in ``candidate`` with ``reference`` (paths or :class:`GoldenFile`).

    ``rtol``/``atol``, when given, replace the per-kind defaults of
    :data:`TOLERANCES` for every computed quantity (copies of the inputs are
    always compared bit for bit). Raises :class:`FormatError` if the
    candidate is not in the format (unknown case, wrong shape, a dataset where
    the reference has a group or the other way round).
    """
    ref = reference if isinstance(reference, GoldenFile) else read_golden(reference, "reference")
    check_reference(ref)
    cand = candidate if isinstance(candidate, GoldenFile) else read_golden(candidate, "candidate")
    unknown = [n for n in cand.cases if n not in ref.cases]
    if unknown:
        raise FormatError(f"candidate {cand.path}: unknown case(s) {unknown}; the reference has "
                          f"{sorted(ref.cases)}")
    # layout and shapes first: a file not in the format gets exit 2 before any comparison
    for name, data in cand.cases.items():
        rdata = ref.cases[name]
        for path, arr in data.items():
            if path in ref.groups[name]:
                raise FormatError(f"candidate {cand.path}: {name}/{path} is a dataset, the format has a group there")
            if path in rdata and arr.shape != rdata[path].shape:
                raise FormatError(f"candidate {cand.path}: {name}/{path} has shape {arr.shape}, "
                                  f"expected {rdata[path].shape}")
        for gpath in cand.groups[name]:
            if gpath in rdata:
                raise FormatError(f"candidate {cand.path}: {name}/{gpath} is a group, the format has a dataset there")
    rep = Report(ref, cand, strict=strict)
    order = {n: i for i, n in enumerate(CASE_NAMES)}
    for name in sorted(ref.cases, key=lambda n: (order.get(n, len(order)), n)):
        if name not in cand.cases:
            rep.missing[name] = ["(whole case)"]
            continue
        rdata, cdata = ref.cases[name], cand.cases[name]
        ref_cfg, cand_cfg = ref.configs[name], cand.configs[name]
        missing = _compress([p for p in sorted(rdata, key=_order_key) if p not in cdata], rdata)
        if cand_cfg is None:
            missing.insert(0, "attr config")
        if missing:
            rep.missing[name] = missing
        extra = [p for p in cdata if p not in rdata]
        if extra:
            rep.extra[name] = extra
        case_rows = []
        if cand_cfg is not None and ref_cfg is not None:
            diffs = _config_diff(ref_cfg, cand_cfg)
            case_rows.append(Row(name, "attr config", "config", 0.0 if not diffs else float("nan"),
                                 float("nan"), 0.0, 0.0, not diffs,
                                 "" if not diffs else "differs: " + ", ".join(diffs)))
        copies = []
        for path in sorted(rdata, key=_order_key):
            if path not in cdata:
                continue
            rv, cv = rdata[path], cdata[path]
            kind = kind_of(path)
            rt, at = TOLERANCES.get(kind, (1e-10, 1e-12))
            if kind not in ("copy", "q0"):   # --rtol/--atol loosen computed quantities only
                rt = rt if rtol is None else rtol
                at = at if atol is None else atol
            diff, rel = _errors(cv, rv)
            ok = bool(np.all(diff <= at + rt * np.abs(np.atleast_1d(rv).astype(np.float64))))
            row = Row(name, path, kind, float(diff.max()) if diff.size else 0.0, rel, rt, at, ok)
            if kind == "copy":
                copies.append(row)
                continue
            if not ok and kind == "spikes" and not (ref_cfg or {}).get("smooth", False):
                row.note = _spike_note(name, path, cv, rv, rdata, ref_cfg)
            case_rows.append(row)
        if copies:
            bad = [r.quantity for r in copies if not r.ok]
            rels = [r.max_rel for r in copies if np.isfinite(r.max_rel)]
            case_rows.insert(1 if case_rows and case_rows[0].kind == "config" else 0, Row(
                name, f"copied inputs ({len(copies)})", "copy", max(r.max_abs for r in copies),
                max(rels) if rels else float("nan"), 0.0, 0.0, not bad,
                "" if not bad else "differ from the reference, so the candidate computed on other "
                                   "data: " + ", ".join(bad)))
        first = _first_divergence(case_rows, cdata, rdata)
        if first:
            for r in case_rows:
                if not r.ok and r.kind in ("state", "spikes") and not r.note:
                    r.note = first
                    break
        rep.rows.extend(case_rows)
    return rep


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.1e}"


def _tol(r: Row) -> str:
    if r.kind == "config":
        return "equal"
    if r.kind == "copy":
        return "exact"
    return f"rtol {r.rtol:.0e} atol {r.atol:.0e}"


def format_report(rep: Report, only_mismatches: bool = False) -> str:
    """The table of ``refimpl validate`` and its summary."""
    lines = [f"reference: {rep.reference.path} ({rep.reference.generator})",
             f"candidate: {rep.candidate.path} ({rep.candidate.generator})"]
    w = max([len(r.case) for r in rep.rows] + [4])
    q = max([len(r.quantity) for r in rep.rows] + [8])
    head = f"{'case':<{w}}  {'quantity':<{q}}  {'max abs err':>11}  {'max rel err':>11}  {'tolerance':<21}  status"
    lines.append(head)
    lines.append("-" * len(head))
    for r in rep.rows:
        if only_mismatches and r.ok:
            continue
        line = (f"{r.case:<{w}}  {r.quantity:<{q}}  {_fmt(r.max_abs):>11}  {_fmt(r.max_rel):>11}  "
                f"{_tol(r):<21}  {'ok' if r.ok else 'MISMATCH'}")
        if r.note:
            line += f"  ({r.note})"
        lines.append(line)
    # worst per kind
    lines.append("")
    lines.append("worst error per quantity kind:")
    kinds = {}
    for r in rep.rows:
        kinds.setdefault(r.kind, []).append(r)
    for kind, rows in kinds.items():
        worst = max(rows, key=lambda r: (r.max_abs if np.isfinite(r.max_abs) else np.inf))
        worst_rel = max((r.max_rel for r in rows if np.isfinite(r.max_rel)), default=float("nan"))
        bad = sum(not r.ok for r in rows)
        lines.append(f"  {kind:<14} {len(rows):4d} compared  max abs {_fmt(worst.max_abs):>8}  "
                     f"max rel {_fmt(worst_rel):>8}  ({worst.case}/{worst.quantity})"
                     + (f"  {bad} MISMATCH" if bad else ""))
    if rep.missing:
        lines.append("")
        lines.append("missing from the candidate (not compared):")
        for name, paths in rep.missing.items():
            lines.append(f"  {name}: {', '.join(paths)}")
    if rep.extra:
        lines.append("")
        lines.append("in the candidate but not in the reference (ignored):")
        for name, paths in rep.extra.items():
            lines.append(f"  {name}: {', '.join(paths)}")
    n_bad = len(rep.mismatches)
    n_missing = sum(len(v) for v in rep.missing.values())
    lines.append("")
    lines.append(f"{len(rep.rows)} quantities compared in {len({r.case for r in rep.rows})} case(s): "
                 f"{len(rep.rows) - n_bad} ok, {n_bad} MISMATCH; {n_missing} missing"
                 + (f" ({sum(v == ['(whole case)'] for v in rep.missing.values())} whole cases)"
                    if rep.missing else ""))
    lines.append(f"{rep.n_compared} of the reference's {rep.n_reference} datasets were in the candidate "
                 f"({len(rep.reference.cases) - sum(v == ['(whole case)'] for v in rep.missing.values())} "
                 f"of {len(rep.reference.cases)} cases)")
    incomplete = rep.n_compared < rep.n_reference
    if n_bad:
        lines.append("result: MISMATCH (exit 1)")
    elif rep.strict and incomplete:
        lines.append("result: INCOMPLETE: --strict needs every quantity of the reference (exit 1)")
    elif not rep.rows:
        lines.append("result: nothing to compare (exit 0)")
    else:
        lines.append("result: all present quantities agree (exit 0)" + (
            "; pass --strict to require all of them" if incomplete else ""))
    return "\n".join(lines)
