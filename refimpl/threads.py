"""BLAS threads: how many threads every OpenBLAS of the process (NumPy's, SciPy's) and PyTorch use.

On a 2-core machine under load, 2 OpenBLAS threads can be 10-50x slower than 1 for the small QR
steps of a spectrum and 6x slower for a training epoch (docs/performance.md, "Threads"), so sweeps and
the benchmark set this explicitly, and every ``refimpl`` command uses :func:`default_threads`.
"""

from __future__ import annotations

import ctypes
import os

#: the environment variable that sets the BLAS threads of a ``refimpl`` command
ENV = "REFIMPL_THREADS"


def _openblas_libs():
    """Handles of the OpenBLAS libraries loaded in this process (NumPy's and SciPy's)."""
    import numpy  # noqa: F401  (loads NumPy's OpenBLAS)
    import scipy.linalg  # noqa: F401  (loads SciPy's, which the numba kernels call)

    paths = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "openblas" in os.path.basename(p).lower():
                    paths.add(p)
    except OSError:
        pass
    libs = []
    for p in sorted(paths):
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for setter in (
            "openblas_set_num_threads",
            "scipy_openblas_set_num_threads",
            "scipy_openblas_set_num_threads64_",
            "openblas_set_num_threads64_",
        ):
            fn = getattr(lib, setter, None)
            if fn is not None:
                getter = getattr(lib, setter.replace("set_num_threads", "get_num_threads"), None)
                libs.append((os.path.basename(p), fn, getter))
                break
    return libs


def set_threads(n: int, torch_too: bool = True) -> list:
    """Use ``n`` threads in every BLAS of the process (and in PyTorch). Returns what was set."""
    done = []
    for name, setter, getter in _openblas_libs():
        setter(ctypes.c_int(n))
        got = getter() if getter is not None else n
        done.append(f"{name}={got}")
    if torch_too:
        try:
            import torch

            torch.set_num_threads(n)
            done.append(f"torch={torch.get_num_threads()}")
        except ImportError:
            pass
    return done


def default_threads(environ=None) -> int | None:
    """The BLAS threads of a ``refimpl`` command: ``REFIMPL_THREADS`` if it is set; ``None`` (BLAS is left as
    it is) if the user set ``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS``; otherwise 1. One thread because
    refimpl's products are small (a batch of trajectories times one weight matrix a step), where a second
    thread gains little on an idle machine and loses up to 50x when the other core is busy (a sweep, a
    second run): docs/performance.md, "Threads"."""
    environ = os.environ if environ is None else environ
    text = environ.get(ENV)
    if text is not None:
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"{ENV} must be a whole number >= 1, got {text!r}")
        return n
    if environ.get("OPENBLAS_NUM_THREADS") or environ.get("OMP_NUM_THREADS"):
        return None
    return 1


def default_workers() -> int:
    """Threads for independent trajectories (:mod:`refimpl.dynamics.batched`): one a core, measured faster than
    one thread on the idle machine (1.9–2.0×) and with both cores busy with other work (1.2–1.4×),
    docs/performance.md, "Threads"."""
    return os.cpu_count() or 1


def check_workers(workers) -> int:
    """``workers`` if it is a whole number ≥ 1; otherwise a ``ValueError`` naming the parameter."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return workers


def map_threads(fn, n: int, workers) -> list:
    """``[fn(0), …, fn(n-1)]`` on up to ``workers`` threads (``None``: :func:`default_workers`), in order.

    For work that releases the GIL (``nogil`` kernels, BLAS) and is independent item by item; each BLAS call
    stays on the thread count set by :func:`set_threads`, so the items, not BLAS, spread over the cores."""
    workers = check_workers(default_workers() if workers is None else workers)
    if workers == 1 or n == 1:
        return [fn(i) for i in range(n)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, n)) as pool:
        return list(pool.map(fn, range(n)))
