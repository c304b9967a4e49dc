"""Issue 17, point 1: the exact event-driven simulation against the library's time-stepped model —
spike-time errors as dt is refined, and the speed of both on a 100-neuron network (docs/exact.md §4–5).

    python analysis/exact_vs_stepped.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

from refimpl.exact.events import ExactConfig, simulate  # noqa: E402
from refimpl.exact.reference import stepped  # noqa: E402


def small_network(seed=1, N=6, n_in=4, g=0.3, bias=0.3, T=200.0, n_spikes=80):
    rng = np.random.default_rng(seed)
    params = {"layer1/W_in": rng.uniform(0.8, 2.0, (N, n_in)), "layer1/W_rec": g * rng.standard_normal((N, N)),
        "layer1/b": np.full(N, bias)}  # fmt: skip
    return params, np.sort(rng.uniform(0, T, n_spikes)), rng.integers(0, n_in, n_spikes)


def convergence(dts=(0.1, 0.03, 0.01, 0.003, 0.001, 0.0003)):
    params, in_t, in_u = small_network()
    print("| τ_m, τ_s (ms) | spikes | " + " | ".join(f"dt = {dt} ms" for dt in dts) + " |")
    print("|---|---|" + "---|" * len(dts))
    for taus in ((10.0, 3.0), (20.0, 5.0), (10.0, 5.0), (10.0, 10.0)):
        cfg = ExactConfig(layers=(6,), n_in=4, tau_mem=taus[0], tau_syn=taus[1])
        ex = simulate(cfg, params, in_t, in_u, 200.0)
        cells = []
        for dt in dts:
            ts, us = stepped(cfg, params, in_t, in_u, 200.0, dt)
            a = [np.sort(ex.spike_times[ex.spike_units == i]) for i in range(6)]
            b = [np.sort(ts[us == i]) for i in range(6)]
            if [x.size for x in a] != [x.size for x in b]:
                cells.append(f"counts differ ({sum(x.size for x in b)} vs {ex.spike_times.size})")
            else:
                e = np.concatenate([np.abs(x - y) for x, y in zip(a, b)])
                cells.append(f"{e.max():.2g} / {np.median(e):.2g}")
        print(f"| {taus[0]:g}, {taus[1]:g} | {ex.spike_times.size} | " + " | ".join(cells) + " |")


def speed(N=100, n_in=50, T=1000.0, rate=20e-3, bias=1.3, seed=0):
    rng = np.random.default_rng(seed)
    p = {"layer1/W_in": 0.5 * rng.normal(0.0, 1.0, (N, n_in)), "layer1/W_rec": 0.6 * rng.normal(0, 1, (N, N)) / np.sqrt(N),
        "layer1/b": np.full(N, bias)}  # fmt: skip
    n_ev = rng.poisson(rate * T * n_in)
    in_t, in_u = np.sort(rng.uniform(0, T, n_ev)), rng.integers(0, n_in, n_ev)
    print(f"\n{N} neurons, {n_in} input channels, {n_ev} input spikes, {T:g} ms")
    print("| | spikes | time | spikes/s |\n|---|---|---|---|")
    for name, taus, root in (("exact, τ_m = 2τ_s (closed form)", (10.0, 5.0), "auto"),
            ("exact, τ_m = 2τ_s, root = bracket", (10.0, 5.0), "bracket"),
            ("exact, τ_m/τ_s = 10/3 (bracketing)", (10.0, 3.0), "auto")):  # fmt: skip
        cfg = ExactConfig(layers=(N,), n_in=n_in, tau_mem=taus[0], tau_syn=taus[1], root=root)
        simulate(cfg, p, in_t[:10], in_u[:10], 1.0)  # compile
        t0 = time.perf_counter()
        r = simulate(cfg, p, in_t, in_u, T, warn=False)
        el = time.perf_counter() - t0
        print(f"| {name} | {r.spike_times.size} | {el:.3f} s | {r.spike_times.size / el:.2g} |")
    from refimpl.exact.gradients import spike_readout_loss, value_and_grad

    ts = np.linspace(10.0, T, 100)
    loss = spike_readout_loss(rng.standard_normal((2, N)), np.zeros(2), 20.0, rng.standard_normal((ts.size, 2)))
    for name, taus in (
        ("exact gradient (adjoint), τ_m = 2τ_s", (10.0, 5.0)),
        ("exact gradient (adjoint), τ_m/τ_s = 10/3", (10.0, 3.0)),
    ):
        cfg = ExactConfig(layers=(N,), n_in=n_in, tau_mem=taus[0], tau_syn=taus[1])
        value_and_grad(cfg, p, in_t[:10], in_u[:10], T, loss, sample_times=ts)  # compile
        t0 = time.perf_counter()
        _, _, r = value_and_grad(cfg, p, in_t, in_u, T, loss, sample_times=ts)
        el = time.perf_counter() - t0
        print(f"| {name}: simulation + loss + gradient | {r.spike_times.size} | {el:.3f} s | {r.spike_times.size / el:.2g} |")
    cfg = ExactConfig(layers=(N,), n_in=n_in, tau_mem=10.0, tau_syn=5.0)
    stepped(cfg, p, in_t[:10], in_u[:10], 1.0, 0.1)
    t0 = time.perf_counter()
    ts, _ = stepped(cfg, p, in_t, in_u, T, 0.1)
    el = time.perf_counter() - t0
    print(f"| time-stepped model, dt = 0.1 ms | {ts.size} | {el:.3f} s | {ts.size / el:.2g} |")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    convergence()
    speed()
