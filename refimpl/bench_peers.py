"""The two peers of ``refimpl bench`` (docs/performance.md): the eager PyTorch and the compiled JAX
implementation of the same three computations, files of the source checkout's ``validation/``.

They are not an installed package, so that they cannot clash with a user's own ``validation``: each is loaded
by path under a name of its own, once per process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

VALIDATION = Path(__file__).resolve().parent.parent / "validation"
#: the PyTorch peer
PEER_FILE = VALIDATION / "bench_torch.py"
#: the JAX peer
JAX_FILE = VALIDATION / "bench_jax.py"


def _load(name: str, path: Path, library: str, missing_file: str, missing_library: str):
    """The module of ``path``, loaded once under ``name`` after checking that ``library`` imports."""
    import importlib
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise RuntimeError(missing_file)
    try:
        importlib.import_module(library)
    except ImportError as exc:
        raise RuntimeError(f"{missing_library}: {exc}") from None
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def torch_peer():
    """The PyTorch peer (``validation/bench_torch.py``; ``pip install -e '.[validation]'``)."""
    return _load("refimpl_bench_torch", PEER_FILE, "torch",
        f"refimpl bench needs the PyTorch peer {PEER_FILE}, which is part of the source checkout (validation/), "
        "not of an installed refimpl; pass --no-torch to time refimpl alone",
        "refimpl bench needs PyTorch for its peer (pip install -e '.[validation]', i.e. torch==2.13.0), or "
        "--no-torch to time refimpl alone")  # fmt: skip


def jax_peer():
    """The JAX peer (``validation/bench_jax.py``; optional: ``pip install jax==0.10.2 jaxlib==0.10.2``)."""
    return _load("refimpl_bench_jax", JAX_FILE, "jax",
        f"refimpl bench --jax needs the JAX peer {JAX_FILE}, part of the source checkout",
        "refimpl bench --jax needs JAX (pip install jax==0.10.2 jaxlib==0.10.2)")  # fmt: skip


def run_torch(case, prob, method: str = "jacrev", T: int | None = None, every: int = 0):
    """One evaluation of ``case`` (a :class:`refimpl.bench.Case`) by the PyTorch peer (``T`` steps, default all;
    flossing with ``every > 0``: each segment of ``every`` steps recomputed in the backward pass)."""
    bt = torch_peer()
    _, params, inputs, targets, _, Q0 = prob
    T = case.T if T is None else T
    if case.kind == "bptt":
        value, grads = bt.bptt(params, inputs[:T], targets[:T])
        return {"loss": value, **{f"grad/{k}": v for k, v in grads.items()}}
    if case.kind == "spectrum":
        return {"spectrum": bt.spectrum(params, inputs[:T, 0], Q0, method=method)}
    value, lam, grads = bt.flossing(params, inputs[:T, 0], Q0, method=method, every=every)
    return {"loss": value, "spectrum": lam, **{f"grad/{k}": v for k, v in grads.items()}}


def max_rel_diff(a: dict, b: dict) -> float:
    """``max over quantities of max|a - b| / max|b|`` (keys present in both)."""
    worst = 0.0
    for key in sorted(set(a) & set(b)):
        x, y = np.asarray(a[key], float), np.asarray(b[key], float)
        scale = max(float(np.max(np.abs(y))), 1e-300)
        worst = max(worst, float(np.max(np.abs(x - y))) / scale)
    return worst
