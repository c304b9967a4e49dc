"""Issue 16, point 3: the thread policy measured on an idle and on a loaded machine (docs/performance.md,
"Threads").

Two ways to put a second core to work on one computation, each against one thread:

* **BLAS threads** (``REFIMPL_THREADS=2``): the benchmark's cases (``refimpl bench``'s problems) with 1 and 2
  OpenBLAS threads;
* **trajectory threads** (one BLAS thread each): the spectra of 4 trajectories
  (:func:`refimpl.dynamics.batched.spectra`), the flossing gradient averaged over 4 input sequences
  (:func:`~refimpl.dynamics.batched.floss_mean`) and BPTT with its batch split in two
  (:func:`refimpl.grad.adjoint.value_and_grad_split`), with ``workers = 1`` and ``2``.

``--load 1`` measures on the machine as it is (run it idle); ``--load 3`` first starts two busy-loop processes,
one per core, waits until the 1-minute load average shows them (≥ 2.7, at most 2 minutes), measures, and
stops them, so that the measuring process competes with two others (load average about 3). Every number is
the median of 3 runs (at least one run; a side stops repeating after 30 s); the load average is recorded
with each.

    python analysis/threads.py --load 1 [--out analysis/threads.json]
    python analysis/threads.py --load 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from refimpl.bench import Case, problem, run_refimpl
from refimpl.bench_timing import timed
from refimpl.io import atomic_text
from refimpl.threads import set_threads

ROOT = Path(__file__).resolve().parents[1]

BLAS_CASES = [Case("bptt", 64, T=300, B=32), Case("bptt", 256, T=300, B=32), Case("spectrum", 64, 64, T=300),
    Case("spectrum", 256, 16, T=300), Case("spectrum", 256, 64, T=300), Case("spectrum", 1024, 64, T=100),
    Case("flossing", 64, 64, T=300), Case("flossing", 256, 64, T=300)]  # fmt: skip


def _trajectory_jobs():
    """``(label, fn(workers))`` of the trajectory-parallel computations."""
    from refimpl.dynamics import batched
    from refimpl.grad import adjoint
    from refimpl.model.config import FlossConfig, LossConfig, LyapunovConfig
    from refimpl.tasks.generators import poisson_inputs

    jobs = []
    for label, N, k, T in (("spectra of 4 trajectories N=256 k=64 T=300", 256, 64, 300),
                           ("flossing mean over 4 sequences N=256 k=32 T=300", 256, 32, 300)):  # fmt: skip
        cfg, params, *_ = problem(Case("spectrum", N, k, T=T))
        u = poisson_inputs(T=T, batch=4, n_in=100, rate_hz=10.0, seed=1)
        lcfg = LyapunovConfig(k=k)
        if label.startswith("spectra"):
            jobs.append((label, lambda w, c=cfg, p=params, u=u, l=lcfg: batched.spectra(c, p, u, l, workers=w)))
        else:
            jobs.append((label, lambda w, c=cfg, p=params, u=u, l=lcfg: batched.floss_mean(c, p, u, l, FlossConfig(),
                workers=w)))  # fmt: skip
    for N in (64, 256):
        cfg, params, inputs, targets, _, _ = problem(Case("bptt", N, T=300, B=32))
        jobs.append((f"bptt N={N} B=32 T=300 split in 2", lambda w, c=cfg, p=params, u=inputs, y=targets:
            adjoint.value_and_grad_split(c, p, u, y, LossConfig("bce_per_step"), workers=w)))  # fmt: skip
    return jobs


def _burners(n: int) -> list:
    """Start ``n`` busy loops; return once the 1-minute load average shows them (≥ n + 0.7, at most 120 s)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    t = time.time()
    while os.getloadavg()[0] < n + 0.7 and time.time() - t < 120:
        time.sleep(2.0)
    return procs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", type=int, choices=(1, 3), required=True)
    ap.add_argument("--out", default=str(ROOT / "analysis" / "threads.json"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    rows = []
    data[f"load{args.load}"] = {"rows": rows, "cpus": os.cpu_count()}

    def median(fn):
        runs, _ = timed(fn, 3, 30.0, 0.5)
        return statistics.median(runs), os.getloadavg()[0]

    # JIT (or cache load) before any timing and before the burners start
    set_threads(1, torch_too=False)
    for case in BLAS_CASES:
        tiny = Case(case.kind, N=8, k=min(case.k, 4), T=5, B=2)
        run_refimpl(tiny, problem(tiny))
    jobs = _trajectory_jobs()
    procs = _burners(2) if args.load == 3 else []
    try:
        for case in BLAS_CASES:
            prob = problem(case)
            r = {"what": "BLAS threads", "label": case.label}
            for n in (1, 2):
                set_threads(n, torch_too=False)
                r[f"s{n}"], r[f"load{n}"] = median(lambda: run_refimpl(case, prob))
            set_threads(1, torch_too=False)
            rows.append(r)
            print(f"{r['label']:<50} 1 BLAS thread {r['s1']:8.4f} s   2 threads {r['s2']:8.4f} s   "
                f"2 vs 1: {r['s1'] / r['s2']:5.2f}x   load {r['load2']:.2f}", flush=True)  # fmt: skip
        for label, fn in jobs:
            fn(1)  # warm-up
            r = {"what": "trajectory threads", "label": label}
            for w in (1, 2):
                r[f"s{w}"], r[f"load{w}"] = median(lambda: fn(w))
            rows.append(r)
            print(f"{label:<50} 1 worker      {r['s1']:8.4f} s   2 workers {r['s2']:8.4f} s   "
                f"2 vs 1: {r['s1'] / r['s2']:5.2f}x   load {r['load2']:.2f}", flush=True)  # fmt: skip
    finally:
        for p in procs:
            p.kill()
    data[f"load{args.load}"]["load_after"] = os.getloadavg()
    atomic_text(out, json.dumps(data, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
