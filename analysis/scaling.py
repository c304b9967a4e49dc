"""Issue 16, point 4: how refimpl's cost grows with N, k and T (docs/performance.md, "Scaling").

Times the three computations of ``refimpl bench`` (the same problems: one clif layer of the ``engelken``
dialect, 100 Poisson inputs at 10 Hz, float64, one BLAS thread) along three axes:

* N = 64 … 2048 (spectrum and flossing at k = 16 and 64, BPTT at batch 32), T = 200;
* k = 16 … 256 at N = 512 (spectrum and flossing), T = 200;
* T = 125 … 2000 at N = 256, k = 32 (all three; BPTT at batch 32).

For each point: the median wall time, the method's GFLOP/s (:func:`refimpl.bench.flops`) and its fraction of
the dgemm rate measured in the same run, and where the time goes — the share of the compiled thin QR
(:func:`refimpl.linalg.lapack.qr_rows`, and for flossing its reverse rule
:func:`refimpl.grad.qr.qr_reverse_rows`) timed alone on blocks of the same shape, the rest being the tangent
products, the elementwise work and, for flossing, the state adjoint. The cost exponent along each axis is the
least-squares slope of log(time) against log(size) over the points at and above the axis' ``fit_from``. The
memory of flossing with every ``Q_t`` stored and with checkpoints every ``⌈√T⌉`` steps is measured (peak RSS
growth in a fresh process, :func:`refimpl.bench.measure_memory`) against what the method must store.

    python analysis/scaling.py [--out analysis/scaling.json] [--quick]

Resumable: points already in ``--out`` (same case, same machine threads) are kept; a point is written as soon
as it is timed. ``figures/fig_scaling.py`` plots the file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path

import numpy as np

from refimpl.bench import Case, flops, measure_memory, problem, qr_seconds, required_bytes, run_refimpl
from refimpl.bench_timing import dgemm_rate, timed
from refimpl.io import atomic_text
from refimpl.threads import set_threads

ROOT = Path(__file__).resolve().parents[1]
T_AXIS = 200


def axes(quick: bool) -> dict:
    """The points of each axis: ``name -> (list of Case, the size attribute varied, fit_from)``."""
    if quick:
        Ns, ks, Ts = [32, 64], [8, 16], [50, 100]
        kN, Tk, TN, T0 = 64, 8, 64, 50
        return {name: (cs, attr, 0) for name, (cs, attr, _) in _axes(Ns, ks, Ts, kN, Tk, TN, T0).items()}
    Ns, ks, Ts = [64, 128, 256, 512, 1024, 2048], [16, 32, 64, 128, 256], [125, 250, 500, 1000, 2000]
    kN, Tk, TN, T0 = 512, 32, 256, T_AXIS
    return _axes(Ns, ks, Ts, kN, Tk, TN, T0)


def _axes(Ns, ks, Ts, kN, Tk, TN, T0) -> dict:
    out = {}
    for kind in ("spectrum", "flossing"):
        for k in (ks[0], ks[2] if len(ks) > 2 else ks[-1]):
            out[f"{kind}_N_k{k}"] = ([Case(kind, N, k, T=T0) for N in Ns], "N", 256)
        out[f"{kind}_k"] = ([Case(kind, kN, k, T=T0) for k in ks], "k", 64)
        out[f"{kind}_T"] = ([Case(kind, TN, Tk, T=T) for T in Ts], "T", 250)
    out["bptt_N"] = ([Case("bptt", N, T=T0, B=32) for N in Ns], "N", 256)
    out["bptt_T"] = ([Case("bptt", TN, T=T, B=32) for T in Ts], "T", 250)
    return out


def qr_share(case: Case, seconds: float) -> float:
    """Fraction of ``seconds`` that the thin QR (and for flossing its reverse rule) of the case's shape take
    (:func:`refimpl.bench.qr_seconds`)."""
    if case.kind == "bptt":
        return 0.0
    q = qr_seconds(2 * case.N, case.k)
    per_step = q["cholqr2"] + (q["reverse"] if case.kind == "flossing" else 0.0)
    return per_step * case.T / seconds


def fit(points: list, attr: str, fit_from: int) -> float:
    xs = [p[attr] for p in points if p[attr] >= fit_from]
    ys = [p["seconds"] for p in points if p[attr] >= fit_from]
    if len(xs) < 2:
        return float("nan")
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "analysis" / "scaling.json"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)
    set_threads(1, torch_too=False)
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data.setdefault("points", {})
    data["dgemm_gflops"] = dgemm_rate(512 if args.quick else 2048)
    data["load_before"] = os.getloadavg()
    data["threads"] = 1
    print(f"dgemm rate {data['dgemm_gflops']:.1f} GFLOP/s (1 thread); load {data['load_before'][0]:.2f}", flush=True)

    def save():
        atomic_text(out, json.dumps(data, indent=1, default=float))

    warm = set()
    for name, (cases, attr, fit_from) in axes(args.quick).items():
        pts = data["points"].setdefault(name, [])
        have = {p["label"] for p in pts}
        for case in cases:
            if case.label in have:
                continue
            if case.kind not in warm:  # JIT compilation (or cache load) outside the timing
                tiny = Case(case.kind, N=8, k=min(case.k, 4), T=5, B=2)
                run_refimpl(tiny, problem(tiny))
                warm.add(case.kind)
            prob = problem(case)
            runs, _ = timed(lambda: run_refimpl(case, prob), 3, 60.0, 1.0)
            s = statistics.median(runs)
            gf = flops(case) / s / 1e9
            p = {"label": case.label, "kind": case.kind, "N": case.N, "k": case.k, "T": case.T, "B": case.B,
                "seconds": s, "runs": runs, "gflops": gf, "fraction_of_dgemm": gf / data["dgemm_gflops"],
                "qr_share": qr_share(case, s), "load": os.getloadavg()[0]}  # fmt: skip
            pts.append(p)
            save()
            print(f"{name:<18} {case.label:<34} {s:9.4f} s  {gf:6.2f} GFLOP/s  {p['fraction_of_dgemm']:6.1%} of dgemm"
                f"  QR {p['qr_share']:5.1%}", flush=True)  # fmt: skip
        pts.sort(key=lambda p: p[attr])
        data.setdefault("exponents", {})[name] = {"axis": attr, "fit_from": fit_from,
            "exponent": fit(pts, attr, fit_from)}  # fmt: skip
        save()
    if not args.no_memory:
        mem = data.setdefault("memory", [])
        have = {m["label"] for m in mem}
        T = 100 if args.quick else 1000
        for N, k in [(16, 4)] if args.quick else [(64, 16), (256, 32), (1024, 32)]:
            for c in (0, math.ceil(math.sqrt(T))):
                case = Case("flossing", N, k, T=T, checkpoint=c)
                if case.label in have:
                    continue
                m = measure_memory(case, "refimpl", 1)
                mem.append({"label": case.label, "N": N, "k": k, "T": T, "checkpoint": c,
                    "peak_bytes": m.get("peak_bytes", float("nan")), "seconds": m.get("seconds", float("nan")),
                    "required_bytes": required_bytes(case)})  # fmt: skip
                save()
                print(f"memory {case.label:<40} {mem[-1]['peak_bytes'] / 1e6:9.1f} MB (method needs "
                    f"{mem[-1]['required_bytes'] / 1e6:9.1f} MB), {mem[-1]['seconds']:.2f} s", flush=True)  # fmt: skip
    data["load_after"] = os.getloadavg()
    save()
    print("exponents: " + ", ".join(f"{k} {v['axis']}^{v['exponent']:.2f}" for k, v in data["exponents"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
