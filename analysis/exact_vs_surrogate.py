"""Issue 17, point 4 (first part): how far is a surrogate gradient from the exact gradient?

One recurrent cLIF network in continuous time (τ_m = 10 ms, τ_s = 5 ms; N = 20 neurons, 10 Poisson input
channels at 20 Hz, 200 ms), read out from its membranes at every ms (``U(t_j) = W_out V(t_j)``, two
outputs, random targets), loss ``½ mean_j ‖U(t_j) - y_j‖²``. The exact gradient comes from the event-based
simulation (adjoint pass, docs/exact.md §7). The surrogate gradient is BPTT through the library's
discrete model of the same network at step ``dt`` (docs/exact.md §4: same weights, bias ``(1 - α) b``,
input spikes binned, ``y_t = W_out V_{t+1}`` scored at the steps that end at ``t_j``), for dt ∈ {1, 0.5,
0.2, 0.1, 0.05, 0.01} ms, every surrogate of the library (two slopes of the fast sigmoid), and every
``reset_grad``.

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
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

from refimpl.exact.surrogate import compare_blocks as compare  # noqa: E402
from refimpl.exact.surrogate import exact_gradient, surrogate_gradient  # noqa: E402

DTS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.01)
SURROGATES = (
    ("fast_sigmoid", 2.0),
    ("fast_sigmoid", 10.0),
    ("gaussian", 2.0),
    ("sigmoid", 5.0),
    ("arctan", 2.0),
    ("triangle", 1.0),
)
RESET_GRADS = ("detached", "attached", "ignored")
BLOCKS = ("W_in", "W_rec", "b")


def network(seed: int, N: int = 20, n_in: int = 10, T: float = 200.0, rate: float = 0.02, bias: float = 0.6):
    rng = np.random.default_rng(seed)
    params = {"layer1/W_in": rng.uniform(0.0, 1.5, (N, n_in)), "layer1/W_rec": 0.8 * rng.standard_normal((N, N)) / math.sqrt(N),
        "layer1/b": np.full(N, bias)}  # fmt: skip
    n_ev = rng.poisson(rate * T * n_in)
    in_t, in_u = np.sort(rng.uniform(0, T, n_ev)), rng.integers(0, n_in, n_ev)
    W_out = rng.standard_normal((2, N)) / math.sqrt(N)
    ts = np.arange(1.0, T + 0.5, 1.0)
    targets = rng.standard_normal((ts.size, 2))
    return params, in_t, in_u, W_out, ts, targets


def spectra(cfg, params, in_t, in_u, T, surrogate, dts=DTS, reset_grad="detached"):
    """The 5 largest exponents of the exact network (1/s, tangent map over events, 20 ms transient) and of
    the discrete model's surrogate tangent map at each dt (1/step converted to 1/s), on the same input:
    ``out["exact"]``, ``out[dt]`` are λ₁, ``out["exact_top"]``, ``out[f"top_{dt}"]`` the five."""
    from refimpl.dynamics.lyapunov import spectrum as sg_spectrum
    from refimpl.exact.lyapunov import spectrum as exact_spectrum
    from refimpl.exact.reference import bin_events, stepped_network
    from refimpl.model.config import LyapunovConfig

    ex = exact_spectrum(cfg, params, in_t, in_u, T, k=5, transient=20.0)
    out = {"exact": float(ex.exponents[0]), "exact_err": float(ex.error[0]), "exact_top": ex.exponents.tolist()}
    for dt in dts:
        net, p = stepped_network(cfg, params, dt, surrogate={"name": surrogate[0], "slope": surrogate[1]}, reset_grad=reset_grad)
        n_steps = int(round(T / dt))
        lcfg = LyapunovConfig(k=5, transient=int(round(20.0 / dt)))
        lam = np.asarray(sg_spectrum(net, p, bin_events(in_t, in_u, cfg.n_in, n_steps, dt), lcfg).exponents) / dt * 1000.0
        out[dt], out[f"top_{dt}"] = float(lam[0]), lam.tolist()
    return out


FACTORS = {"N": (10, 20, 50), "bias": (0.3, 0.6, 0.9), "T": (50.0, 200.0, 800.0)}
DEFAULTS = {"N": 20, "bias": 0.6, "T": 200.0}


def factor_sweep(seeds, surrogates=(("fast_sigmoid", 10.0), ("fast_sigmoid", 2.0)), dts=DTS):
    """The W_rec comparison against dt while one of network size, bias (firing rate) and horizon varies
    (the others at DEFAULTS), and λ₁ of the exact and of the surrogate tangent map; detached reset."""
    from refimpl.exact.events import ExactConfig

    rows = []
    for factor, values in FACTORS.items():
        for v in values:
            kw = {**DEFAULTS, factor: v}
            cfg = ExactConfig(layers=(int(kw["N"]),), n_in=10, tau_mem=10.0, tau_syn=5.0)
            for seed in seeds:
                params, in_t, in_u, W_out, ts, targets = network(seed, N=int(kw["N"]), T=kw["T"], bias=kw["bias"])
                _, g_ex, res = exact_gradient(cfg, params, in_t, in_u, kw["T"], W_out, ts, targets)
                rate = res.spike_times.size / kw["N"] / (kw["T"] / 1000.0)
                for sur in surrogates:
                    sp = spectra(cfg, params, in_t, in_u, kw["T"], sur, dts=dts)
                    for dt in dts:
                        _, g_sg = surrogate_gradient(cfg, params, in_t, in_u, kw["T"], W_out, ts, targets, dt, sur, "detached")
                        c = compare(g_sg, g_ex)["W_rec"]
                        rows.append({"factor": factor, "value": v, "seed": seed, "surrogate": f"{sur[0]} {sur[1]:g}", "dt": dt,
                            "rate_hz": rate, "lambda1_exact": sp["exact"], "lambda1_sg": sp[dt], **c})  # fmt: skip
    return rows


def plot_sweep(rows, png) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from refimpl.io import atomic_savefig

    surs = sorted({r["surrogate"] for r in rows}, reverse=True)
    fig, ax = plt.subplots(2, 3, figsize=(15, 7.5), sharex=True)
    for col, (factor, values) in enumerate(FACTORS.items()):
        for n, v in enumerate(values):
            for s_i, sur in enumerate(surs):
                sel = [r for r in rows if r["factor"] == factor and r["value"] == v and r["surrogate"] == sur]
                dts = sorted({r["dt"] for r in sel})
                with np.errstate(divide="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (overflowed gradients)
                    cos = [np.nanmean([r["cos"] for r in sel if r["dt"] == d]) for d in dts]
                    lr = [np.nanmean([np.log10(r["norm_ratio"]) for r in sel if r["dt"] == d]) for d in dts]
                hz = np.mean([r["rate_hz"] for r in sel])
                kw = dict(color=f"C{n}", ls="-" if s_i == 0 else "--", marker="o", ms=3,
                    label=f"{factor} = {v:g} ({hz:.0f} Hz), {sur}")  # fmt: skip
                ax[0, col].plot(dts, cos, **kw)
                ax[1, col].plot(dts, lr, **kw)
        ax[0, col].set_title(f"({'abc'[col]}) varying {factor}", fontsize=10)
        ax[0, col].axhline(0, color="k", lw=0.5)
        ax[1, col].axhline(0, color="k", lw=0.5)
        ax[1, col].set_xlabel("dt of the time-stepped model [ms]")
        ax[1, col].set_xscale("log")
        ax[0, col].legend(fontsize=6)
    ax[0, 0].set_ylabel("cos(surrogate, exact) of the W_rec gradient")
    ax[1, 0].set_ylabel("log10 ‖g_surrogate‖ / ‖g_exact‖")
    fig.suptitle("surrogate (BPTT of the time-stepped cLIF) against exact (event-based) gradients; 3 networks each", fontsize=11)
    fig.tight_layout()
    atomic_savefig(fig, png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    from refimpl.exact.events import ExactConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="networks (weights, inputs, targets)")
    ap.add_argument("--out", default="analysis/exact_vs_surrogate.json", help="JSON file of every comparison")
    ap.add_argument("--plot", default="figures/fig_exact_vs_surrogate.png", help="the figure of the size/rate/horizon sweep")
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
            for rg in RESET_GRADS:
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
            for rg in ("detached", "attached"):
                sp = spectra(cfg, params, in_t, in_u, 200.0, sur, reset_grad=rg)
                spec_rows.append({"seed": seed, "surrogate": sur[0], "slope": sur[1], "reset_grad": rg,
                    **{str(k): v for k, v in sp.items()}})  # fmt: skip
    print("\nthe five largest exponents (1/s), network 1: exact, then the surrogate at dt = 1 and 0.1 ms")
    for r in spec_rows:
        if r["seed"] == args.seeds[0]:
            fmt = lambda v: " ".join(f"{x:+.0f}" for x in v)  # noqa: E731
            print(f"  {r['surrogate']} {r['slope']:g} {r['reset_grad']}: exact {fmt(r['exact_top'])}; "
                f"dt 1: {fmt(r['top_1.0'])}; dt 0.1: {fmt(r['top_0.1'])}")  # fmt: skip
    sweep_rows = factor_sweep(args.seeds)
    Path(args.out).write_text(json.dumps({"gradients": rows, "spectra": spec_rows, "sweep": sweep_rows}, indent=1))
    plot_sweep(sweep_rows, args.plot)
    print(f"\nW_rec against dt while one factor varies (detached; mean over seeds: cos / log10 norm ratio); figure {args.plot}")
    print("| factor | value | rate (Hz) | surrogate | " + " | ".join(f"dt = {dt:g}" for dt in DTS) + " |")
    print("|---|---|---|---|" + "---|" * len(DTS))
    for factor, values in FACTORS.items():
        for v in values:
            for sur in sorted({r["surrogate"] for r in sweep_rows}, reverse=True):
                sel = [r for r in sweep_rows if r["factor"] == factor and r["value"] == v and r["surrogate"] == sur]
                cells = []
                for dt in DTS:
                    d = [r for r in sel if r["dt"] == dt]
                    with np.errstate(divide="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (overflowed gradients)
                        c, lr = np.nanmean([r["cos"] for r in d]), np.nanmean([np.log10(r["norm_ratio"]) for r in d])
                    cells.append(f"{c:+.2f} / {lr:.1f}")
                print(f"| {factor} | {v:g} | {np.mean([r['rate_hz'] for r in sel]):.0f} | {sur} | " + " | ".join(cells) + " |")
    print("\nλ₁ (1/s, mean over seeds), exact | surrogate at each dt, detached reset")
    for factor, values in FACTORS.items():
        for v in values:
            for sur in sorted({r["surrogate"] for r in sweep_rows}, reverse=True):
                sel = [r for r in sweep_rows if r["factor"] == factor and r["value"] == v and r["surrogate"] == sur]
                ex = np.mean([r["lambda1_exact"] for r in sel if r["dt"] == DTS[0]])
                sg = " / ".join(f"{np.mean([r['lambda1_sg'] for r in sel if r['dt'] == dt]):+.0f}" for dt in DTS)
                print(f"| {factor} | {v:g} | {sur} | {ex:+.1f} | {sg} |")
    print("\n| seed | surrogate | reset_grad | exact λ₁ (1/s) | " + " | ".join(f"surrogate λ₁, dt = {dt:g}" for dt in DTS) + " |")
    print("|---|---|---|---|" + "---|" * len(DTS))
    for r in spec_rows:
        print(f"| {r['seed']} | {r['surrogate']} {r['slope']:g} | {r['reset_grad']} | {r['exact']:+.1f} ± {r['exact_err']:.1f} | "
            + " | ".join(f"{r[str(dt)]:+.3g}" for dt in DTS) + " |")  # fmt: skip
    # the table: mean over seeds
    print("\n| surrogate | reset_grad | dt (ms) | loss rel. diff | cos W_in / W_rec / b | ‖g_sg‖/‖g_ex‖ W_in / W_rec / b "
        "| sign agreement W_in / W_rec / b |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for sur in SURROGATES:
        for rg in RESET_GRADS:
            for dt in DTS:
                sel = [r for r in rows if (r["surrogate"], r["slope"], r["reset_grad"], r["dt"]) == (sur[0], sur[1], rg, dt)]

                def m(key, fmt, sel=sel):
                    return " / ".join(fmt.format(np.mean([r[f"{k}_{key}"] for r in sel])) for k in BLOCKS)

                print(f"| {sur[0]} {sur[1]:g} | {rg} | {dt:g} | {np.mean([r['loss_rel_diff'] for r in sel]):+.3f} | "
                    f"{m('cos', '{:+.2f}')} | {m('norm_ratio', '{:.2g}')} | {m('sign', '{:.2f}')} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
