"""Issue 17, point 4 (first part): how far is a surrogate gradient from the exact gradient?

One recurrent cLIF network in continuous time (τ_m = 10 ms, τ_s = 5 ms; N = 20 neurons, 10 Poisson input
channels at 20 Hz, 200 ms), read out from its membranes at every ms (``U(t_j) = W_out V(t_j)``, two
outputs, random targets), loss ``½ mean_j ‖U(t_j) - y_j‖²``. The exact gradient comes from the event-based
simulation (adjoint pass, docs/exact.md §7). The surrogate gradient is BPTT through the library's
discrete model of the same network at step ``dt`` (docs/exact.md §4: same weights, bias ``(1 - α) b``,
input spikes binned, ``y_t = W_out V_{t+1}`` scored at the steps that end at ``t_j``), for dt ∈ {1, 0.5,
0.2, 0.1, 0.05, 0.01} ms, several surrogates and slopes, and ``reset_grad`` detached and ignored.

Per parameter block (``W_in``, ``W_rec``, ``b``): the cosine similarity between the surrogate and the
exact gradient, the norm ratio ``‖g_sg‖/‖g_exact‖`` and the fraction of entries whose signs agree (entries
with ``|g_exact| > 1e-3 max|g_exact|``). The readout's own gradient is left out (it involves no spike).
Also printed: the relative difference of the loss values (the two forward models differ by O(dt)), and
λ₁ of the exact network against λ₁ of the discrete model's surrogate tangent map at each dt (1/s).

    python analysis/exact_vs_surrogate.py [--seeds 1 2 3] [--out analysis/exact_vs_surrogate.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

DTS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.01)
SURROGATES = (("fast_sigmoid", 2.0), ("fast_sigmoid", 10.0), ("gaussian", 2.0), ("sigmoid", 5.0))
BLOCKS = ("W_in", "W_rec", "b")


def network(seed: int, N: int = 20, n_in: int = 10, T: float = 200.0, rate: float = 0.02):
    rng = np.random.default_rng(seed)
    params = {"layer1/W_in": rng.uniform(0.0, 1.5, (N, n_in)), "layer1/W_rec": 0.8 * rng.standard_normal((N, N)) / math.sqrt(N),
        "layer1/b": np.full(N, 0.6)}  # fmt: skip
    n_ev = rng.poisson(rate * T * n_in)
    in_t, in_u = np.sort(rng.uniform(0, T, n_ev)), rng.integers(0, n_in, n_ev)
    W_out = rng.standard_normal((2, N)) / math.sqrt(N)
    ts = np.arange(1.0, T + 0.5, 1.0)
    targets = rng.standard_normal((ts.size, 2))
    return params, in_t, in_u, W_out, ts, targets


def exact_gradient(cfg, params, in_t, in_u, T, W_out, ts, targets):
    from refimpl.exact.gradients import membrane_readout_loss, value_and_grad

    L, g, res = value_and_grad(cfg, params, in_t, in_u, T, membrane_readout_loss(W_out, np.zeros(2), targets), sample_times=ts)
    return L, {k: g["layer1/" + k] for k in BLOCKS}, res


def surrogate_gradient(cfg, params, in_t, in_u, T, W_out, ts, targets, dt, surrogate, reset_grad):
    from refimpl.exact.reference import bin_events, stepped_network
    from refimpl.grad.adjoint import backward
    from refimpl.model.network import simulate

    net, p = stepped_network(cfg, params, dt, n_out=2, readout={"source": "membrane", "tau_out": 0.0},
        surrogate={"name": surrogate[0], "slope": surrogate[1]}, reset_grad=reset_grad)  # fmt: skip
    p["readout/W_out"] = W_out
    n_steps = int(round(T / dt))
    traj = simulate(net, p, bin_events(in_t, in_u, cfg.n_in, n_steps, dt))
    steps = np.rint(ts / dt).astype(int) - 1  # y_t reads V_{t+1}, the membrane at (t+1) dt = t_j
    U = traj.y[steps, 0]
    err = (U - targets) / ts.size
    ybar = np.zeros_like(traj.y)
    ybar[steps, 0] = err
    g = backward(net, p, traj, ybar)
    alpha = math.exp(-dt / cfg.tau_syn)
    out = {"W_in": g["layer1/W_in"], "W_rec": g["layer1/W_rec"], "b": (1.0 - alpha) * g["layer1/b"]}  # b_d = (1 - α) b
    return 0.5 * float(np.sum((U - targets) * err)), out


def spectra(cfg, params, in_t, in_u, T, surrogate, dts=DTS):
    """λ₁ of the exact network (1/s, tangent map over events, 20 ms transient) and of the discrete model's
    surrogate tangent map at each dt (1/step converted to 1/s), detached reset, on the same input."""
    from refimpl.dynamics.lyapunov import spectrum as sg_spectrum
    from refimpl.exact.lyapunov import spectrum as exact_spectrum
    from refimpl.exact.reference import bin_events, stepped_network
    from refimpl.model.config import LyapunovConfig

    ex = exact_spectrum(cfg, params, in_t, in_u, T, k=3, transient=20.0)
    out = {"exact": float(ex.exponents[0]), "exact_err": float(ex.error[0])}
    for dt in dts:
        net, p = stepped_network(cfg, params, dt, surrogate={"name": surrogate[0], "slope": surrogate[1]})
        n_steps = int(round(T / dt))
        lcfg = LyapunovConfig(k=3, transient=int(round(20.0 / dt)))
        out[dt] = float(sg_spectrum(net, p, bin_events(in_t, in_u, cfg.n_in, n_steps, dt), lcfg).exponents[0]) / dt * 1000.0
    return out


def compare(g_sg, g_ex) -> dict:
    out = {}
    for k in BLOCKS:
        a, e = g_sg[k].ravel(), g_ex[k].ravel()
        if not np.any(e) or not np.all(np.isfinite(a)):  # a block with no exact gradient, or an overflow
            out[k] = {"cos": float("nan"), "norm_ratio": float("inf") if np.any(e) else float("nan"), "sign": float("nan")}
            continue
        big = np.abs(e) > 1e-3 * np.abs(e).max()
        na, ne = np.linalg.norm(a), np.linalg.norm(e)
        out[k] = {"cos": float(a @ e / (na * ne)), "norm_ratio": float(na / ne),
            "sign": float(np.mean(np.sign(a[big]) == np.sign(e[big])))}  # fmt: skip
    return out


def main(argv=None) -> int:
    from refimpl.exact.events import ExactConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="networks (weights, inputs, targets)")
    ap.add_argument("--out", default="analysis/exact_vs_surrogate.json", help="JSON file of every comparison")
    args = ap.parse_args(argv)
    cfg = ExactConfig(layers=(20,), n_in=10, tau_mem=10.0, tau_syn=5.0)
    rows = []
    for seed in args.seeds:
        params, in_t, in_u, W_out, ts, targets = network(seed)
        L_ex, g_ex, res = exact_gradient(cfg, params, in_t, in_u, 200.0, W_out, ts, targets)
        rate = res.spike_times.size / 20 / 0.2
        print(f"seed {seed}: {res.spike_times.size} spikes ({rate:.0f} Hz), exact loss {L_ex:.4f}, "
            f"min crossing slope {res.min_slope:.3f}", flush=True)  # fmt: skip
        for sur in SURROGATES:
            for rg in ("detached", "ignored"):
                for dt in DTS:
                    L_sg, g_sg = surrogate_gradient(cfg, params, in_t, in_u, 200.0, W_out, ts, targets, dt, sur, rg)
                    c = compare(g_sg, g_ex)
                    flat = {f"{k}_{m}": c[k][m] for k in BLOCKS for m in c[k]}
                    rows.append({"seed": seed, "surrogate": sur[0], "slope": sur[1], "reset_grad": rg, "dt": dt,
                        "loss_rel_diff": (L_sg - L_ex) / L_ex, "rate_hz": rate, **flat})  # fmt: skip
    spec_rows = []
    for seed in args.seeds:
        params, in_t, in_u, *_ = network(seed)
        for sur in (("fast_sigmoid", 2.0), ("fast_sigmoid", 10.0)):
            sp = spectra(cfg, params, in_t, in_u, 200.0, sur)
            spec_rows.append({"seed": seed, "surrogate": sur[0], "slope": sur[1], **{str(k): v for k, v in sp.items()}})
    Path(args.out).write_text(json.dumps({"gradients": rows, "spectra": spec_rows}, indent=1))
    print("\n| seed | surrogate | exact λ₁ (1/s) | " + " | ".join(f"surrogate λ₁, dt = {dt:g}" for dt in DTS) + " |")
    print("|---|---|---|" + "---|" * len(DTS))
    for r in spec_rows:
        print(f"| {r['seed']} | {r['surrogate']} {r['slope']:g} | {r['exact']:+.1f} ± {r['exact_err']:.1f} | "
            + " | ".join(f"{r[str(dt)]:+.3g}" for dt in DTS) + " |")  # fmt: skip
    # the table: mean over seeds
    print("\n| surrogate | reset_grad | dt (ms) | loss rel. diff | cos W_in / W_rec / b | ‖g_sg‖/‖g_ex‖ W_in / W_rec / b "
        "| sign agreement W_in / W_rec / b |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for sur in SURROGATES:
        for rg in ("detached", "ignored"):
            for dt in DTS:
                sel = [r for r in rows if (r["surrogate"], r["slope"], r["reset_grad"], r["dt"]) == (sur[0], sur[1], rg, dt)]

                def m(key, fmt, sel=sel):
                    return " / ".join(fmt.format(np.mean([r[f"{k}_{key}"] for r in sel])) for k in BLOCKS)

                print(f"| {sur[0]} {sur[1]:g} | {rg} | {dt:g} | {np.mean([r['loss_rel_diff'] for r in sel]):+.3f} | "
                    f"{m('cos', '{:+.2f}')} | {m('norm_ratio', '{:.2g}')} | {m('sign', '{:.2f}')} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
