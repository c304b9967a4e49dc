"""Random test cases and golden-like input files, with numpy and h5py only.

``make_case(config, seed)`` builds the inputs of one golden case (parameters,
inputs, targets, Jacobian steps, Q0) for a config in the key layout of
``docs/golden-format.md``; ``write_golden_like(path, cases)`` writes such cases
as a golden file without the computed groups, which
``validation/torch_reference.py`` (or any other implementation) can read.
"""

from __future__ import annotations

import copy
import json
from typing import Mapping, Optional, Sequence

import numpy as np

FORMAT = "refimpl-golden"
FORMAT_VERSION = 1

#: the key layout of docs/golden-format.md with the defaults of docs/model.md; a config given to
#: ``make_case`` is deep-merged into this.
BASE_CONFIG = {"cell": "clif", "layers": [4], "n_in": 3, "n_out": 2, "dt": 1.0, "tau_mem": 10.0, "tau_syn": 5.0,
    "theta": 1.0, "syn_input": "new", "input_gain": "one_minus_beta", "reset": "zero", "reset_grad": "detached",
    "surrogate": {"name": "fast_sigmoid", "slope": 10.0}, "smooth": False,
    "readout": {"tau_out": 5.0, "source": None}, "loss": {"name": "bce_per_step", "t0": 0},
    "lyapunov": {"k": None, "ons": 1, "warmup": 0, "transient": 0, "batch_index": 0},
    "flossing": {"target": 0.0, "params": ["W_in", "W_rec", "b"]}}  # fmt: skip


def _merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def complete_config(config: Mapping) -> dict:
    """``config`` deep-merged into ``BASE_CONFIG``, readout source and k filled."""
    c = _merge(BASE_CONFIG, config)
    if c["readout"].get("source") is None:
        c["readout"]["source"] = "spikes" if c["cell"] == "clif" else "state"
    if c["lyapunov"].get("k") is None:
        c["lyapunov"]["k"] = state_size(c)
    return c


def state_size(config: Mapping) -> int:
    layers = [int(n) for n in config["layers"]]
    return 2 * sum(layers) if config.get("cell", "clif") == "clif" else layers[0]


def initial_Q(M: int, k: int, seed: int) -> np.ndarray:
    """Q0 of docs/conventions.md: thin QR of default_rng(seed).standard_normal((M, k)),
    columns signed so that diag R > 0."""
    G = np.random.default_rng(seed).standard_normal((M, k))
    Q, R = np.linalg.qr(G)
    s = np.where(np.diag(R) < 0, -1.0, 1.0)
    return Q * s


def make_case(config: Mapping, seed: int, T: int = 8, B: int = 2, jacobian_steps: Optional[Sequence[int]] = None,
        w_in_scale: Optional[float] = None, w_rec_scale: Optional[float] = None,
        input_scale: float = 1.0) -> dict:  # fmt: skip
    """A random case for ``config`` (completed with ``complete_config``).

    Returns ``{"config": dict, "params": {"layer1/W_in": ..., "readout/b_out": ...},
    "inputs": (T, B, n_in), "targets": (T, B, n_out) float or (B,) int64 labels,
    "jacobian/steps": (n,) int64, "lyapunov/Q0": (M, k)}``.  Q0 comes from
    ``np.random.default_rng(seed)`` alone (``initial_Q``); everything else from
    a second generator seeded with ``(seed, 1)``.  The scales are chosen so
    that clif layers spike now and then and binary/rate networks are in the
    chaotic regime.
    """
    c = complete_config(config)
    c["lyapunov"]["seed"] = int(seed)
    rng = np.random.default_rng([int(seed), 1])
    cell, sizes = c["cell"], [int(n) for n in c["layers"]]
    n_in, n_out = int(c["n_in"]), int(c["n_out"])
    if w_in_scale is None:
        w_in_scale = 2.0 if cell == "clif" else 1.0
    if w_rec_scale is None:
        w_rec_scale = {"clif": 1.0, "binary": 2.0, "rate": 2.0}[cell]
    theta = float(c.get("theta", 1.0))
    params = {}
    n_prev = n_in
    for l, n in enumerate(sizes, start=1):
        # layers > 1 get spikes (0/1, or Phi values in smooth mode): stronger weights
        win = w_in_scale * (1.0 if l == 1 else 2.0)
        params[f"layer{l}/W_in"] = win * rng.standard_normal((n, n_prev)) / np.sqrt(n_prev)
        params[f"layer{l}/W_rec"] = w_rec_scale * rng.standard_normal((n, n)) / np.sqrt(n)
        params[f"layer{l}/b"] = 0.1 * rng.standard_normal(n)
        if cell == "clif":
            params[f"layer{l}/V0"] = theta * rng.uniform(0.0, 1.5, n)
            params[f"layer{l}/I0"] = 0.5 * rng.standard_normal(n)
        else:
            params[f"layer{l}/x0"] = rng.standard_normal(n)
        n_prev = n
    params["readout/W_out"] = rng.standard_normal((n_out, sizes[-1])) / np.sqrt(sizes[-1])
    params["readout/b_out"] = 0.1 * rng.standard_normal(n_out)
    inputs = input_scale * rng.standard_normal((T, B, n_in))
    loss = c["loss"]["name"]
    if loss == "bce_per_step":
        targets = rng.integers(0, 2, (T, B, n_out)).astype(np.float64)
    elif loss == "mse_per_step":
        targets = rng.standard_normal((T, B, n_out))
    else:
        targets = rng.integers(0, n_out, B).astype(np.int64)
    if jacobian_steps is None:
        jacobian_steps = sorted({0, T // 2, T - 1})
    M, k = state_size(c), int(c["lyapunov"]["k"])
    return {"config": c, "params": params, "inputs": inputs, "targets": targets,
        "jacobian/steps": np.asarray(jacobian_steps, dtype=np.int64), "lyapunov/Q0": initial_Q(M, k, seed)}  # fmt: skip


def write_golden_like(path: str, cases: Mapping[str, Mapping], generator: str = "validation.cases") -> None:
    """Write ``{name: case}`` (cases as returned by ``make_case``) as a golden file
    holding the inputs of each case: attr ``config`` (JSON), ``params/...``,
    ``inputs``, ``targets``, ``jacobian/steps``, ``lyapunov/Q0``."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["generator"] = generator
        for name, case in cases.items():
            g = f.create_group(name)
            cfg = case["config"]
            g.attrs["config"] = cfg if isinstance(cfg, str) else json.dumps(cfg)
            for k, v in case["params"].items():
                g.create_dataset(f"params/{k}", data=np.asarray(v, dtype=np.float64))
            g.create_dataset("inputs", data=np.asarray(case["inputs"], dtype=np.float64))
            g.create_dataset("targets", data=np.asarray(case["targets"]))
            if "jacobian/steps" in case:
                g.create_dataset("jacobian/steps", data=np.asarray(case["jacobian/steps"], dtype=np.int64))
            if "lyapunov/Q0" in case:
                g.create_dataset("lyapunov/Q0", data=np.asarray(case["lyapunov/Q0"], dtype=np.float64))
