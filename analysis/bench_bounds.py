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
A checkpointed row's peers checkpoint too; against the storing peers of the row above (``*_storing_s`` in
the bench file) the ratio and bound are ``ratio_<peer>_storing`` and ``max_ratio_<peer>_storing`` (the
ratio of the medians, those peers having run in the other row's rounds).

**BPTT.** The products with spike inputs (``W_in z_t``, ``W_rec S_t``, ``Σ J zᵀ``, ``Σ J Sᵀ``) can skip
zeros, but the reverse pass's ``J_t W_rec`` (``B×N`` times ``N×N``, ``J_t`` the dense adjoint of the
synaptic current) cannot; it is timed alone at its shape on one thread (the rate this BLAS reaches for a
``B``-row product, the one any implementation calling it gets), and also counted at the dgemm rate of the
bench file. Two lower counts of the rest:

* ``least_copy_s`` (the previous release's least time): the products plus the time to copy one
  ``(T+1, B, N)`` float64 array (write once, read once): the reverse pass must read back at least one float
  per neuron, trajectory and step that the forward pass wrote (``σ'(V_t − θ)`` or ``V_t``). This counts no
  arithmetic of the forward pass at all.
* ``least_passes_s``, the least time (``least_s``) since this release: the products plus a least forward
  pass and a least reverse pass without the product, each a compiled loop timed alone
  (:func:`_forward_least`, :func:`_reverse_least`): the bench's neuron
  (clif, zero reset with a detached gradient, fast sigmoid) updated by the per-neuron functions of
  :mod:`refimpl.model.cell` with the configuration as compile-time constants, so that the compiler removes
  every branch on it and vectorizes the loop (NumPy's error model: the surrogate's division then
  vectorizes), the spikes listed in a pass of their own; the forward pass keeps only what the reverse pass
  reads (``σ'`` and the spikes, ``V`` and ``I`` in one row each), the input and recurrent products skip the
  zeros (:func:`refimpl.linalg.sparse.matmul_wt`), and the reverse pass runs the adjoint of every neuron and
  the sparse weight gradients with a fixed stand-in for ``J_t W_rec``. The readout and the loss (``B×T``
  numbers) are left out. These loops do less than any implementation of the method must do, but a
  hand-vectorized one could run them faster: the bound holds for code this compiler vectorizes.

    python analysis/bench_bounds.py analysis/bench.json [--out analysis/bench_bounds.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from refimpl.bench import Case, flops, problem, product_seconds, qr_seconds, run_refimpl
from refimpl.linalg.sparse import matmul_wt, nonzeros_by_step, outer_acc_listed
from refimpl.model import cell
from refimpl.model.cell import GRAD_DETACHED, RESET_ZERO, adjoint_element, membrane, reset_element, reset_rho
from refimpl.model.network import layer_params, layers_of
from refimpl.model.surrogate import FAST_SIGMOID, heaviside, sigma_prime
from refimpl.bench_timing import per_call
from refimpl.io import atomic_text
from refimpl.threads import set_threads

ROOT = Path(__file__).resolve().parents[1]


def copy_seconds(n: int) -> float:
    """Seconds to copy ``n`` float64 (one write and one read of every element), best of 3."""
    src, dst = np.ones(n), np.empty(n)
    return per_call(lambda: np.copyto(dst, src), 1) if n else 0.0


# the bench's neuron (refimpl.bench.problem: the engelken dialect's clif), as compile-time constants of the
# least loops below; _bptt_args checks that the bench's network is this one
_SYN_OLD, _RESET, _RESET_GRAD, _SUR = False, RESET_ZERO, GRAD_DETACHED, FAST_SIGMOID


@njit(nogil=True, error_model="numpy")  # not cached: a script loaded by path has no importable name
def _forward_least(z, z_ptr, z_idx, W_in, W_inT, W_rec, W_recT, b, alpha, beta, g, theta, gamma, V, I, I_new, S, s,
                   S_ptr, S_idx):  # fmt: skip
    """A least forward pass of BPTT (module docstring): ``S, s (T+1, B, N)`` and the spike list, the state ``V, I
    (B, N)`` in place."""
    T, B, _ = z.shape
    N = V.shape[1]
    k = 0
    S_ptr[0] = 0
    for bb in range(B):
        for i in range(N):
            S[0, bb, i] = heaviside(V[bb, i] - theta)
            s[0, bb, i] = sigma_prime(V[bb, i] - theta, _SUR, gamma)
            if S[0, bb, i] != 0.0:
                S_idx[k] = bb * N + i
                k += 1
    S_ptr[1] = k
    for t in range(T):
        matmul_wt(z[t], z_ptr[t], z_ptr[t + 1], z_idx, W_in, W_inT, 0.0, I_new)
        matmul_wt(S[t], S_ptr[t], S_ptr[t + 1], S_idx, W_rec, W_recT, 1.0, I_new)
        for bb in range(B):
            Vr, Ir, In, St, Sn, sn = V[bb], I[bb], I_new[bb], S[t, bb], S[t + 1, bb], s[t + 1, bb]
            for i in range(N):
                Ir[i], m = membrane(Vr[i], Ir[i], In[i], b[i], alpha[i], beta[i], g[i], _SYN_OLD)
                v = reset_element(m, St[i], 0.0, theta, _RESET, _RESET_GRAD)[0]
                Vr[i] = v
                Sn[i] = heaviside(v - theta)
                sn[i] = sigma_prime(v - theta, _SUR, gamma)
            for i in range(N):
                if Sn[i] != 0.0:
                    S_idx[k] = bb * N + i
                    k += 1
        S_ptr[t + 2] = k


@njit(nogil=True, error_model="numpy")  # not cached: a script loaded by path has no importable name
def _reverse_least(s, S, z, z_ptr, z_idx, S_ptr, S_idx, alpha, beta, g, JW, Vbar, Ibar, J, gW_inT, gW_recT, gb):
    """A least reverse pass of BPTT without its product ``J_t W_rec`` (module docstring; ``JW (B, N)`` stands in
    for it): the adjoint of every neuron and the sparse weight gradients, ``V̄, Ī, J (B, N)`` in place."""
    T = s.shape[0] - 1
    B, N = Vbar.shape
    for t in range(T - 1, -1, -1):
        for bb in range(B):
            Vr, Ir, Jr, Wr, sn, St = Vbar[bb], Ibar[bb], J[bb], JW[bb], s[t + 1, bb], S[t, bb]
            for i in range(N):
                vn = Vr[i] + sn[i] * Wr[i]
                rho = reset_rho(St[i], _RESET, _RESET_GRAD)
                Vr[i], Ir[i], Jr[i] = adjoint_element(vn, Ir[i], 0.0, rho, 0.0, alpha[i], beta[i], g[i], _SYN_OLD)
                gb[i] += Jr[i]
        outer_acc_listed(J, z[t], z_ptr[t], z_ptr[t + 1], z_idx, gW_inT)
        outer_acc_listed(J, S[t], S_ptr[t], S_ptr[t + 1], S_idx, gW_recT)


class _ForwardArrays(NamedTuple):
    """The arguments of :func:`_forward_least`, in its order."""

    z: np.ndarray
    z_ptr: np.ndarray
    z_idx: np.ndarray
    W_in: np.ndarray
    W_inT: np.ndarray
    W_rec: np.ndarray
    W_recT: np.ndarray
    b: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    g: np.ndarray
    theta: float
    gamma: float
    V: np.ndarray
    I: np.ndarray
    I_new: np.ndarray
    S: np.ndarray
    s: np.ndarray
    S_ptr: np.ndarray
    S_idx: np.ndarray


def _bptt_args(case):
    """``(_ForwardArrays, (cfg, params))`` of a BPTT case (refimpl.bench.problem)."""
    cfg, params, inputs, *_ = problem(case)
    L = layers_of(cfg)[0]
    if (L.syn_old, L.reset, L.reset_grad, L.act, L.smooth, L.sur) != (_SYN_OLD, _RESET, _RESET_GRAD, cell.ACT_SPIKE,
            False, _SUR):  # fmt: skip
        raise ValueError("the least BPTT loops are written for the bench's neuron; its configuration changed")
    W_in, W_rec, b, V0, I0 = layer_params(cfg, params, 0)
    T, B, _ = inputs.shape
    N = W_rec.shape[0]
    z = np.ascontiguousarray(inputs)
    z_ptr, z_idx = nonzeros_by_step(z)
    a = _ForwardArrays(z, z_ptr, z_idx, W_in, np.ascontiguousarray(W_in.T), W_rec, np.ascontiguousarray(W_rec.T), b,
        L.alpha, L.beta, L.g, L.theta, L.gamma, cell.initial_states(V0, B).copy(), cell.initial_states(I0, B).copy(),
        np.empty((B, N)), np.empty((T + 1, B, N)), np.empty((T + 1, B, N)), np.empty(T + 2, np.int64),
        np.empty((T + 1) * B * N, np.int64))  # fmt: skip
    return a, (cfg, params)


def _passes_seconds(case):
    """Seconds of :func:`_forward_least` and :func:`_reverse_least` on a BPTT case, best of 3 each."""
    a, _ = _bptt_args(case)
    V0, I0 = a.V.copy(), a.I.copy()

    def forward():
        a.V[:], a.I[:] = V0, I0  # every call from the same initial state
        _forward_least(*a)

    forward_s = per_call(forward, 1)
    B, N = V0.shape
    JW = np.full((B, N), 1e-3)
    bufs = [np.zeros((B, N)) for _ in range(3)] + [np.zeros((a.W_in.shape[1], N)), np.zeros((N, N)), np.zeros(N)]
    reverse_s = per_call(lambda: _reverse_least(a.s, a.S, a.z, a.z_ptr, a.z_idx, a.S_ptr, a.S_idx, a.alpha, a.beta,
        a.g, JW, *bufs), 1)  # fmt: skip
    return forward_s, reverse_s


def _least_bptt(r, peak):
    """The least time of a BPTT row, its parts timed anew: ``(least_s, parts)``."""
    N, B, T = r["N"], r["B"], r["T"]
    product = T * 2.0 * B * N * N / peak
    measured = T * product_seconds(B, N)
    memory = copy_seconds((T + 1) * B * N)
    forward_s, reverse_s = _passes_seconds(Case("bptt", N, T=T, B=B))
    passes = measured + forward_s + reverse_s
    return passes, {"product_s": product, "product_measured_s": measured, "memory_s": memory,
        "least_at_dgemm_rate_s": product + memory, "least_copy_s": measured + memory, "forward_least_s": forward_s,
        "reverse_least_s": reverse_s, "least_passes_s": passes}  # fmt: skip


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
        for peer in ("torch", "jax"):  # checkpointed rows: the bound against the storing peers (ratio of medians)
            storing = r.get(f"{peer}_storing_s", float("nan"))
            if r["checkpoint"] and storing == storing:
                row[f"ratio_{peer}_storing"] = storing / r["refimpl_s"]
                row[f"max_ratio_{peer}_storing"] = storing / r["refimpl_s"] * over
        rows.append(row)
        if case.kind == "bptt":
            parts_text = (f"J W_rec {med['product_measured_s'] * 1e3:.1f} ms ({med['product_s'] * 1e3:.1f} at dgemm "
                f"rate), copy {med['memory_s'] * 1e3:.1f}, fwd {med['forward_least_s'] * 1e3:.1f}, rev "
                f"{med['reverse_least_s'] * 1e3:.1f}")  # fmt: skip
        else:
            parts_text = (f"{med['cholqr2'] * 1e6:7.1f} {med['householder'] * 1e6:9.1f} {med['reverse'] * 1e6:7.1f} "
                f"{med['tangent_product'] * 1e6:7.1f}")  # fmt: skip
        print(f"{r['label']:<36} {parts_text:>33} {row['least_s']:8.4f} {row['refimpl_here_s']:9.4f} {over:9.2f} "
            f"{row['max_ratio_torch']:9.2f} {r['ratio']:6.2f} {row['max_ratio_jax']:10.2f} {r['jax_ratio']:6.2f}",
            flush=True)  # fmt: skip
    nan = float("nan")
    for row in rows:
        if "max_ratio_jax_storing" in row or "max_ratio_torch_storing" in row:
            print(f"{row['label']:<36} against the storing peers: pytorch {row.get('ratio_torch_storing', nan):.2f} "
                f"(at most {row.get('max_ratio_torch_storing', nan):.2f}), jax {row.get('ratio_jax_storing', nan):.2f} "
                f"(at most {row.get('max_ratio_jax_storing', nan):.2f})")  # fmt: skip
    atomic_text(args.out, json.dumps({"bench": str(args.bench), "dgemm_gflops": peak / 1e9, "rows": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
