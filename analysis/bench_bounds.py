"""Issue 16: what bounds the speed-up of ``refimpl bench``'s cases over the peers (docs/performance.md,
"What bounds the ratios").

**Spectrum and flossing.** Each step of the QR iteration needs one thin QR of the ``M×k`` block
``A_t = D_t Q_t`` (and flossing one QR reverse rule), and no implementation of the method can skip them;
nor the product of the ``k`` tangent rows with ``W_rec`` (``k×N`` times ``N×N``; flossing: again in the
reverse pass, and once more when a segment is recomputed), which is timed alone at its shape.
For every spectrum and flossing row of a bench JSON file (``refimpl bench --jax --out FILE``) this times,
alone and on one thread, refimpl's compiled QR (:func:`refimpl.linalg.lapack.qr_rows`, CholeskyQR2),
LAPACK's Householder QR (:func:`~refimpl.linalg.lapack.qr_rows_householder`, what the JAX and PyTorch peers
call) and the QR reverse rule on blocks of the row's shape, and computes the least time the row could take:
``T`` times the QR (and reverse rule) and the products, plus the rest of the method's FLOPs
(:func:`refimpl.bench.flops` less the QR's and the products') at the dgemm rate measured in the same file
(``least_at_dgemm_rate_s``: the same with the products at the dgemm rate too, as the previous release
counted them). The largest ratio over each peer that refimpl could
then reach is the peer's time over that least time.

**Drift.** The machine's speed drifts by tens of percent within minutes, and the bench file was written
minutes earlier, so the least time is not divided into the bench's peer times directly. Instead refimpl's
case runs again here, in rounds with the timings of the least time (each round: one refimpl run, then every
kernel timed anew), and ``refimpl_over_least`` is the median of the rounds' ratios. The bound against a peer
is the bench's ratio (itself the median of paired rounds, :func:`refimpl.bench_timing.rounds`) times that:
``max_ratio = (peer / refimpl)_bench · (refimpl / least)_here``, two ratios each measured within rounds.

**BPTT.** The products with spike inputs (``W_in z_t``, ``W_rec S_t``, ``Σ J zᵀ``, ``Σ J Sᵀ``) can skip
zeros, but the reverse pass's ``J_t W_rec`` (``B×N`` times ``N×N``, ``J_t`` the dense adjoint of the
synaptic current) cannot; and the reverse pass must read back at least one float per neuron, trajectory and
step that the forward pass wrote (``σ'(V_t − θ)`` or ``V_t``). The least time is ``T`` such products plus
the time to copy one ``(T+1, B, N)`` float64 array (write once, read once), measured here; the products are
counted twice: at the dgemm rate of the bench file, and timed alone at their own shape on one thread (the
rate this BLAS reaches for a ``B``-row product, the one any implementation calling it gets).

    python analysis/bench_bounds.py analysis/bench.json [--out analysis/bench_bounds.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from refimpl.bench import Case, flops, problem, product_seconds, qr_seconds, run_refimpl
from refimpl.bench_timing import per_call
from refimpl.io import atomic_text
from refimpl.threads import set_threads

ROOT = Path(__file__).resolve().parents[1]


def copy_seconds(n: int) -> float:
    """Seconds to copy ``n`` float64 (one write and one read of every element), best of 3."""
    src, dst = np.ones(n), np.empty(n)
    return per_call(lambda: np.copyto(dst, src), 1) if n else 0.0


def _least_bptt(r, peak):
    """The least time of a BPTT row, its parts timed anew: ``(least_s, parts)``."""
    N, B, T = r["N"], r["B"], r["T"]
    product = T * 2.0 * B * N * N / peak
    measured = T * product_seconds(B, N)
    memory = copy_seconds((T + 1) * B * N)
    return measured + memory, {"product_s": product, "product_measured_s": measured, "memory_s": memory,
        "least_at_dgemm_rate_s": product + memory}  # fmt: skip


def _least_qr(r, case, peak):
    """The least time of a spectrum or flossing row, its parts timed anew: ``(least_s, parts)``."""
    M, k, T = 2 * case.N, case.k, case.T
    q = qr_seconds(M, k)
    qr_flops = 4.0 * M * k * k - 4.0 / 3.0 * k**3
    n_qr = 1 if case.kind == "spectrum" else (3 if case.checkpoint else 2)  # forward, reverse, recomputed
    rev_flops = 5.0 * M * k * k if case.kind == "flossing" else 0.0
    rest = flops(case) / T - qr_flops * (2 if case.checkpoint else 1) - rev_flops
    # the spectrum needs diag R alone (qr_rows(..., diag_only=True)); flossing the whole R, and again when recomputed
    qr = q["cholqr2_diag"] if case.kind == "spectrum" else q["cholqr2"]
    per_step = qr * (2 if case.checkpoint else 1) + (q["reverse"] if case.kind == "flossing" else 0.0)
    least_peak = T * (per_step + rest / peak)
    # the k-row products with W_rec (the tangent product, again when recomputed, and J W_rec in the
    # reverse pass) timed at their shape, the rest of the FLOPs at the dgemm rate
    n_prod = (2 if case.checkpoint else 1) + (1 if case.kind == "flossing" else 0)
    tangent = product_seconds(k, case.N)
    least = T * (per_step + n_prod * tangent + (rest - n_prod * 2.0 * case.N * case.N * k) / peak)
    return least, {**q, "n_qr_like": n_qr, "tangent_product": tangent, "n_products": n_prod,
        "least_at_dgemm_rate_s": least_peak}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", help="a refimpl bench --out JSON file (with the JAX peer)")
    ap.add_argument("--out", default=str(ROOT / "analysis" / "bench_bounds.json"))
    ap.add_argument("--rounds", type=int, default=5, help="rounds of refimpl's run and the least time's timings")
    args = ap.parse_args(argv)
    set_threads(1, torch_too=False)
    data = json.loads(Path(args.bench).read_text())
    peak = data["info"]["dgemm_gflops"] * 1e9
    rows = []
    print(f"{'case':<36} {'QR µs':>7} {'LAPACK µs':>9} {'rev µs':>7} {'prod µs':>7} {'least s':>8} {'refimpl s':>9} "
        f"{'ref/least':>9} {'max vs pt':>9} {'now':>6} {'max vs jax':>10} {'now':>6}")  # fmt: skip
    for r in data["rows"]:
        case = Case(r["kind"], r["N"], r["k"], r["T"], r["B"], r["checkpoint"])
        prob = problem(case)
        run_refimpl(case, prob)  # compilation outside the rounds
        ref_times, leasts, parts = [], [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            run_refimpl(case, prob)
            ref_times.append(time.perf_counter() - t)
            least, p = _least_bptt(r, peak) if case.kind == "bptt" else _least_qr(r, case, peak)
            leasts.append(least)
            parts.append(p)
        over = statistics.median(t / least for t, least in zip(ref_times, leasts))
        # each part: its median over the rounds (counts and rates are the same in every round)
        med = {key: statistics.median(p[key] for p in parts) for key in parts[0]}
        row = {**{key: r[key] for key in ("label", "refimpl_s", "torch_s", "jax_s")}, **med,
            "least_s": statistics.median(leasts), "refimpl_here_s": statistics.median(ref_times),
            "refimpl_over_least": over, "rounds": args.rounds, "max_ratio_torch": r["ratio"] * over,
            "max_ratio_jax": r["jax_ratio"] * over, "ratio_torch": r["ratio"], "ratio_jax": r["jax_ratio"]}  # fmt: skip
        rows.append(row)
        if case.kind == "bptt":
            parts_text = (f"J W_rec {med['product_measured_s'] * 1e3:.1f} ms ({med['product_s'] * 1e3:.1f} at dgemm "
                f"rate), copy {med['memory_s'] * 1e3:.1f} ms")  # fmt: skip
        else:
            parts_text = (f"{med['cholqr2'] * 1e6:7.1f} {med['householder'] * 1e6:9.1f} {med['reverse'] * 1e6:7.1f} "
                f"{med['tangent_product'] * 1e6:7.1f}")  # fmt: skip
        print(f"{r['label']:<36} {parts_text:>33} {row['least_s']:8.4f} {row['refimpl_here_s']:9.4f} {over:9.2f} "
            f"{row['max_ratio_torch']:9.2f} {r['ratio']:6.2f} {row['max_ratio_jax']:10.2f} {r['jax_ratio']:6.2f}",
            flush=True)  # fmt: skip
    atomic_text(args.out, json.dumps({"bench": str(args.bench), "dgemm_gflops": peak / 1e9, "rows": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
