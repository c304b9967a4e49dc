"""Issue 16: the checkpointed flossing rows of ``refimpl bench`` against peers that checkpoint too
(docs/performance.md, "Checkpointed flossing against checkpointing peers").

``refimpl bench`` compares flossing with checkpoints every ``c`` steps (``checkpoint_every = c``: the
forward pass keeps ``Q_t`` every ``c`` steps, the reverse pass recomputes each segment) with peers that
keep every step: the same gradient, but not the same memory. This script adds the like-for-like comparison:
the JAX peer with each segment of ``c`` steps under ``jax.checkpoint`` (rematerialized in the reverse pass)
and the PyTorch peer with ``torch.utils.checkpoint`` of each segment — what a user of either writes to bound
the memory of a long scan — next to the storing peers and refimpl storing every step, all in the same rounds
(:func:`refimpl.bench_timing.rounds`; each ratio the median of the rounds' ratios). It also records XLA's
planned working memory of the two JAX gradients (``memory_analysis()``) and every side's agreement with
refimpl.

    python analysis/checkpointed_peers.py [--out analysis/checkpointed_peers.json] [--sizes 64:16,256:64]

Needs the ``validation`` extra (PyTorch) and JAX. One BLAS thread (as ``refimpl bench --threads 1``).
Resumable: rows already in ``--out`` are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from refimpl.bench import Case, choose_method, problem, run_refimpl
from refimpl.bench_peers import jax_peer, max_rel_diff, run_torch
from refimpl.bench_timing import paired_ratio, rounds
from refimpl.io import atomic_text
from refimpl.threads import set_threads

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("refimpl_c", "refimpl", "jax", "jax_c", "torch", "torch_c")


def _jax_side(prob, every: int):
    _, params, inputs, targets, _, Q0 = prob
    run, compile_s = jax_peer().prepare("flossing", params, inputs, targets, Q0, every=every)
    run()  # the first call of a compiled executable still allocates
    temp = jax_peer().flossing_temp_bytes(params, inputs[:, 0], Q0, every=every)
    return run, compile_s, temp


def measure(N: int, k: int, T: int, c: int, repeats: int, max_seconds: float) -> dict:
    case_c, case = Case("flossing", N, k, T=T, checkpoint=c), Case("flossing", N, k, T=T)
    prob = problem(case)
    run_refimpl(case, prob)  # compilation outside the rounds
    run_refimpl(case_c, prob)
    method = choose_method(case, prob, "auto")  # the faster way to build PyTorch's Jacobian, as refimpl bench picks it
    jax_run, jax_compile, jax_temp = _jax_side(prob, 0)
    jax_c_run, jax_c_compile, jax_c_temp = _jax_side(prob, c)
    fns = {
        "refimpl_c": lambda: run_refimpl(case_c, prob),
        "refimpl": lambda: run_refimpl(case, prob),
        "jax": jax_run,
        "jax_c": jax_c_run,
        "torch": lambda: run_torch(case, prob, method),
        "torch_c": lambda: run_torch(case, prob, method, every=c),
    }
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    times, results = rounds(fns, repeats, max_seconds)
    ref = results["refimpl_c"]
    row = {"label": case_c.label, "N": N, "k": k, "T": T, "checkpoint": c, "torch_method": method,
        "load_before": load, "load_after": os.getloadavg()[0], "seconds": time.perf_counter() - t0,
        "jax_compile_s": jax_compile, "jax_c_compile_s": jax_c_compile,
        "jax_temp_bytes": jax_temp, "jax_c_temp_bytes": jax_c_temp}  # fmt: skip
    for side in SIDES:
        row[f"{side}_s"] = statistics.median(times[side])
        row[f"{side}_runs"] = times[side]
        row[f"{side}_rel_diff"] = max_rel_diff(ref, results[side])
        # each side against refimpl's checkpointed run of the same rounds
        row[f"{side}_over_refimpl_c"] = paired_ratio(times[side], times["refimpl_c"])
    for peer in ("refimpl", "jax", "torch"):  # what checkpointing costs each implementation, paired by rounds
        row[f"{peer}_checkpoint_cost"] = paired_ratio(times[f"{peer}_c"], times[peer])
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "analysis" / "checkpointed_peers.json"))
    ap.add_argument("--sizes", default="64:16,64:64,256:16,256:64", help="N:k pairs (default: the bench's)")
    ap.add_argument("--T", type=int, default=1000)
    ap.add_argument("--checkpoint", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-seconds", type=float, default=150.0)
    args = ap.parse_args(argv)
    try:
        sizes = [tuple(int(v) for v in pair.split(":")) for pair in args.sizes.split(",")]
        if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
            raise ValueError
    except ValueError:
        ap.error(f"--sizes {args.sizes!r}: expected N:k pairs such as 64:16,256:64")
    set_threads(1, torch_too=True)
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"rows": []}
    done = {r["label"] for r in data["rows"]}
    for N, k in sizes:
        label = Case("flossing", N, k, T=args.T, checkpoint=args.checkpoint).label
        if label in done:
            continue
        row = measure(N, k, args.T, args.checkpoint, args.repeats, args.max_seconds)
        data["rows"].append(row)
        atomic_text(out, json.dumps(data, indent=1))
        print(f"{label:<32} refimpl c {row['refimpl_c_s']:.4f} s | over it: jax {row['jax_over_refimpl_c']:.2f} "
            f"jax c {row['jax_c_over_refimpl_c']:.2f} torch {row['torch_over_refimpl_c']:.2f} torch c "
            f"{row['torch_c_over_refimpl_c']:.2f} | checkpointing costs: refimpl {row['refimpl_checkpoint_cost']:.2f} "
            f"jax {row['jax_checkpoint_cost']:.2f} torch {row['torch_checkpoint_cost']:.2f} | jax temp "
            f"{row['jax_temp_bytes'] / 1e6:.1f} -> {row['jax_c_temp_bytes'] / 1e6:.1f} MB | agreement "
            f"{max(row[f'{s}_rel_diff'] for s in SIDES):.1e} | load {row['load_before']:.2f}->{row['load_after']:.2f}",
            flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
