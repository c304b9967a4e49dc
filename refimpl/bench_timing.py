"""Timing for ``refimpl bench`` and the analyses of docs/performance.md: best-of loops for kernels, and medians
of whole computations timed in interleaved rounds, so that a ratio of two sides is not moved by the drift of the
machine's speed (tens of percent within minutes on the development machine)."""

from __future__ import annotations

import functools
import statistics
import time

import numpy as np


def per_call(fn, n: int, repeats: int = 3) -> float:
    """Seconds per call of ``fn``: after one warm-up call, the best of ``repeats`` loops of ``n`` calls."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


@functools.cache
def dgemm_call(n: int):
    """One float64 matrix product ``n×n`` by NumPy (dgemm), as a function of no argument; it does
    ``dgemm_flops(n)`` FLOPs. A side of :func:`rounds` measures the machine's speed at the moment of the round."""
    rng = np.random.default_rng(0)
    A, Bm, C = rng.standard_normal((n, n)), rng.standard_normal((n, n)), np.empty((n, n))

    def product():
        np.matmul(A, Bm, out=C)

    return product


def dgemm_flops(n: int) -> float:
    return 2.0 * n**3


def dgemm_rate(n: int, repeats: int = 3) -> float:
    """This machine's float64 matrix-multiply rate (NumPy dgemm, ``n×n``), GFLOP/s, best of ``repeats``."""
    return dgemm_flops(n) / per_call(dgemm_call(n), 1, repeats) / 1e9


def timed(fn, repeats: int, max_seconds: float, min_seconds: float = 0.0, max_runs: int = 25):
    """Run ``fn`` ``repeats`` times (fewer once ``max_seconds`` are spent; more, up to ``max_runs``,
    until ``min_seconds`` are spent, so that short runs get a robust median). Returns (times, result)."""
    times, result = [], None
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
        spent = time.perf_counter() - start
        if len(times) >= max_runs or spent > max_seconds:
            break
        if len(times) >= repeats and spent >= min_seconds:
            break
    return times, result


def rounds(fns: dict, repeats: int, max_seconds: float, min_seconds: float = 0.0, max_runs: int = 25):
    """Time the callables ``fns`` (name → function) in rounds, one call of each per round in turn, so that
    the machine's drift (tens of percent within minutes on the development machine, docs/performance.md)
    moves every side of a ratio alike.

    A side takes part in the rounds until it ran ``repeats`` times and its runs took ``min_seconds`` (so
    that short runs get a robust median), at most ``max_runs`` times; a fast side thus runs in more rounds
    than a slow one. The first side (the reference) runs in every round, so that the ``i``-th run of any
    side has a reference run of the same round to be compared with (:func:`paired_ratio`). The rounds stop
    when no side wants more, or once ``max_seconds`` are spent (after one round at least). Returns
    ``({name: times}, {name: last result})``."""
    times = {name: [] for name in fns}
    results = dict.fromkeys(fns)
    first = next(iter(fns))

    def wants(name):
        runs = times[name]
        return len(runs) < max_runs and (len(runs) < repeats or sum(runs) < min_seconds)

    start = time.perf_counter()
    while True:
        active = [name for name in fns if name != first and wants(name)]
        if not active and not wants(first):
            return times, results
        for name in [first, *active]:
            t = time.perf_counter()
            results[name] = fns[name]()
            times[name].append(time.perf_counter() - t)
        if time.perf_counter() - start > max_seconds or len(times[first]) >= max_runs:
            return times, results


def paired_ratio(peer: list, ref: list, scale: float = 1.0) -> float:
    """The median over the rounds of ``scale · peer time / refimpl time`` (:func:`rounds`: the peer's ``i``-th
    run and the reference's ran in the same round)."""
    return statistics.median(scale * p / r for p, r in zip(peer, ref))
