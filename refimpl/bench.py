"""``refimpl bench``: refimpl against PyTorch autograd on the same computation, side by side.

Three computations, each on one clif layer of the ``engelken`` dialect with the
``fast_sigmoid`` surrogate (γ = 10), driven by 100 Poisson inputs at 10 Hz
(``W_in ~ N(0, 6²/100)``, ``W_rec ~ N(0, 2²/N)``, the CLI's defaults):

* ``bptt`` — the ``bce_per_step`` loss on random 0/1 targets and its gradient
  (every parameter), batch ``B``, ``T`` steps;
* ``spectrum`` — ``k`` surrogate Lyapunov exponents (docs/model.md §6, ``ons = 1``);
* ``flossing`` — the flossing loss ``mean(λ²)`` and its gradient for
  ``W_in, W_rec, b`` (docs/model.md §7), stored (``checkpoint_every = None``) and,
  as a separate row, with checkpoints every ``c ≈ √T`` steps; the peers of that row
  checkpoint the same segments (``torch.utils.checkpoint``, ``jax.checkpoint``), and the
  storing peers' times of the row above are printed beside them.

The PyTorch peer (``validation/bench_torch.py`` of the checkout, loaded only here and only
when the benchmark runs) computes the same quantities the way the field does:
autograd through a surrogate-spike ``autograd.Function``, dense Jacobians by
autograd and ``torch.linalg.qr`` every step, ``create_graph=True`` for
flossing. Both sides run in this one process, float64, with the same number
of threads (``torch.set_num_threads`` and the OpenBLAS thread count of NumPy
and SciPy). Every case first checks that both sides agree (the max relative
difference is printed), then times every side in interleaved rounds (refimpl,
PyTorch, JAX, refimpl, ...; :func:`rounds`): each ratio is the median of the
rounds' ratios, so that the drift of the machine's speed cancels.

Reported per case (docs/performance.md explains every column): median wall
times, their ratio, the achieved GFLOP/s of the *method* (the FLOP count of
the algorithm, :func:`flops`, the same count for both sides), that rate as a
fraction of this machine's float64 matrix-multiply rate measured in the same
run (NumPy dgemm), and the peak memory of one evaluation: the growth of the
peak resident set size over a warmed-up, trimmed baseline, in a fresh
subprocess per measurement (:func:`_rss_child`).
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from numba import njit

from refimpl.bench_timing import dgemm_call, dgemm_flops, dgemm_rate, paired_ratio, per_call, rounds, timed
from refimpl.bench_peers import jax_peer, max_rel_diff, run_torch, torch_peer
from refimpl.bench_report import format_table, format_targets, write_json
from refimpl.grad.qr import qr_reverse_rows
from refimpl.linalg.lapack import gemm, qr_rows, qr_rows_householder, qr_work
from refimpl.interrupt import poll
from refimpl.threads import set_threads

KINDS = ("bptt", "spectrum", "flossing")
#: torch flossing keeps about this many M×M float64 matrices alive per step (measured at N = 256:
#: jacrev 4.6, the M-row trick 6.5); used to keep the peer within the memory budget
TORCH_FLOSS_MATRICES_PER_STEP = {"jacrev": 5.0, "rows": 7.0}


# ---------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    kind: str  # bptt, spectrum, flossing
    N: int
    k: int = 0  # spectrum, flossing
    T: int = 1000
    B: int = 1  # bptt batch
    checkpoint: int = 0  # flossing: checkpoint_every (0: store every Q_t)

    @property
    def label(self) -> str:
        if self.kind == "bptt":
            return f"bptt N={self.N} B={self.B} T={self.T}"
        c = f" c={self.checkpoint}" if self.checkpoint else ""
        return f"{self.kind} N={self.N} k={self.k} T={self.T}{c}"


N_IN = 100


def problem(case: Case, seed: int = 0):
    """``(cfg, params, inputs, targets, lcfg, Q0)`` of a case (identical for both sides)."""
    from refimpl.model.config import LyapunovConfig, network_config
    from refimpl.dynamics.lyapunov import initial_Q
    from refimpl.model.network import init_params
    from refimpl.tasks.generators import poisson_inputs

    cfg = network_config(dialect="engelken", layers=(case.N,), n_in=N_IN, n_out=1)
    params = init_params(cfg, seed, w_in=6.0, g_rec=2.0)
    B = case.B if case.kind == "bptt" else 1
    inputs = poisson_inputs(T=case.T, batch=B, n_in=N_IN, rate_hz=10.0, seed=seed + 1)
    targets = (np.random.default_rng(seed + 2).random((case.T, B, 1)) < 0.5).astype(float)
    lcfg = Q0 = None
    if case.kind != "bptt":
        lcfg = LyapunovConfig(k=case.k)
        Q0 = initial_Q(cfg.state_size, case.k, lcfg.seed)
    return cfg, params, inputs, targets, lcfg, Q0


def run_refimpl(case: Case, prob):
    """One evaluation by refimpl; returns the comparable results."""
    from refimpl.grad import adjoint
    from refimpl.dynamics import flossing, lyapunov
    from refimpl.model.config import LossConfig

    cfg, params, inputs, targets, lcfg, Q0 = prob
    if case.kind == "bptt":
        value, grads, _ = adjoint.value_and_grad(cfg, params, inputs, targets, LossConfig("bce_per_step"))
        return {"loss": value, **{f"grad/{k}": v for k, v in grads.items() if k.split("/")[1] not in ("V0", "I0")}}
    if case.kind == "spectrum":
        return {"spectrum": lyapunov.spectrum(cfg, params, inputs, lcfg, Q0).exponents}
    res = flossing.value_and_grad(cfg, params, inputs, lcfg, Q0=Q0, checkpoint_every=case.checkpoint or None)
    return {"loss": res.loss, "spectrum": res.exponents, **{f"grad/{k}": v for k, v in res.grads.items()}}


# ---------------------------------------------------------------------------
# FLOP counts of the methods and memory the method must store
# ---------------------------------------------------------------------------


def flops(case: Case, n_in: int = N_IN) -> float:
    """Floating-point operations of the method (not of either implementation); see docs/performance.md."""
    N, k, T, B = case.N, case.k, case.T, case.B
    M = 2 * N
    if case.kind == "bptt":
        # forward W_in z + W_rec S, backward J W_rec, Jᵀz, JᵀS (dense counts; 2 flops per multiply-add)
        return T * 2.0 * B * N * (2 * n_in + 3 * N)
    qr = 4.0 * M * k * k - 4.0 / 3.0 * k**3  # Householder R (dgeqrf) + explicit Q (dorgqr)
    fwd = 2.0 * N * N * k + qr  # W_rec (s ⊙ Q_V) and the QR, per step
    if case.kind == "spectrum":
        return T * fwd
    bwd = (
        2 * (2.0 * N * N * k)  # J W_rec (first and second order) and Jᵀ(s ⊙ Q_V)
        + 5.0 * M * k * k  # QR reverse rule: Q̄ᵀQ, Q copyltu(·), triangular solve
        + 2.0 * N * N
        + 2.0 * N * (n_in + N)
    )  # state adjoint and its weight gradients
    extra = fwd if case.checkpoint else 0.0  # recomputation of every segment
    return T * (fwd + bwd + extra)


def required_bytes(case: Case) -> float:
    """What the method must store (docs/derivations.md, Memory), in bytes."""
    N, k, T = case.N, case.k, case.T
    M = 2 * N
    traj = 8.0 * (T + 1) * N
    if case.kind != "flossing":
        return float("nan")
    if case.checkpoint:
        c = case.checkpoint
        return 8.0 * ((math.ceil(T / c) + c + 1) * M * k + c * k * k + traj)
    return 8.0 * ((T + 1) * M * k + T * k * k + traj)


def _seconds_per_iteration(loop, *args):
    """Seconds per iteration of a compiled ``loop(*args)`` whose last argument is its number of iterations
    (:func:`~refimpl.bench_timing.per_call` of the whole loop, whose warm-up call also compiles it)."""
    return per_call(lambda: loop(*args), 1) / args[-1]


@njit(cache=True)
def _qr_loop(X0, X, R, tau, work, householder, diag_only, n):
    for _ in range(n):
        X[:, :] = X0
        if householder:
            qr_rows_householder(X, R, tau, work)
        else:
            qr_rows(X, R, tau, work, diag_only, False)  # as the fused kernels call it (no copy of A)


@njit(cache=True)
def _copy_loop(X0, X, n):
    for _ in range(n):
        X[:, :] = X0


@njit(cache=True)
def _reverse_loop(Q, R, Qb, rbar, Mx, C, Ab, n):
    for _ in range(n):
        qr_reverse_rows(Q, R, Qb, rbar, True, Mx, C, Ab)


def qr_seconds(M: int, k: int) -> dict:
    """Seconds per call, on an ``M×k`` block, of refimpl's compiled thin QR (``cholqr2``, CholeskyQR2, which on
    this Gaussian block keeps its first pass, as on the blocks of the bench's QR iterations (docs/performance.md);
    ``cholqr2_diag`` with ``diag R`` alone, as the spectrum needs it), of LAPACK's Householder QR
    (``householder``, what the peers call) and of the QR reverse rule (``reverse``): the part of a spectrum
    or flossing step that every implementation must do (docs/performance.md). Timed in compiled loops (a
    call from Python adds about a microsecond, a tenth of the smallest QR), less the copy of the input block
    that each QR needs in the loop."""
    rng = np.random.default_rng(0)
    X0 = rng.standard_normal((k, M))
    X, R, tau, work = X0.copy(), np.empty((k, k)), np.empty(k), qr_work(k, M)
    n = max(20, min(2000, int(5e7 / (M * k * k))))
    copy = _seconds_per_iteration(_copy_loop, X0, X, n)
    out = {name: _seconds_per_iteration(_qr_loop, X0, X, R, tau, work, householder, diag, n) - copy
        for name, householder, diag in (("cholqr2", False, False), ("cholqr2_diag", False, True),
                                        ("householder", True, False))}  # fmt: skip
    Qb, rbar, Mx, C, Ab = rng.standard_normal((k, M)), rng.standard_normal(k), np.empty((k, k)), np.empty((k, k)), \
        np.empty((k, M))  # fmt: skip
    out["reverse"] = _seconds_per_iteration(_reverse_loop, X, R, Qb, rbar, Mx, C, Ab, n)
    return out


@njit(cache=True)
def _gemm_loop(J, W, out, n):
    for _ in range(n):
        gemm(False, False, 1.0, J, W, 0.0, out)


def product_seconds(B: int, N: int) -> float:
    """Seconds of one product ``J W_rec`` (``B×N`` times ``N×N``) on its own, best of 3: the faster of NumPy's
    one dgemm call and refimpl's :func:`~refimpl.linalg.lapack.gemm` (in row panels where OpenBLAS's
    small-matrix kernel is faster, docs/performance.md), timed in a compiled loop."""
    rng = np.random.default_rng(0)
    J, W, out = rng.standard_normal((B, N)), rng.standard_normal((N, N)), np.empty((B, N))
    n = max(1, int(2e8 // (2 * B * N * N)))
    return min(per_call(lambda: np.dot(J, W, out=out), n), _seconds_per_iteration(_gemm_loop, J, W, out, n))


# ---------------------------------------------------------------------------
# memory: max RSS growth of one evaluation, in a fresh process
# ---------------------------------------------------------------------------


def _status_kb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise OSError(field)


def _reset_peak() -> str:
    """Drop freed memory, then reset the peak RSS to the current RSS. Returns the method used."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux ≥ 4.0: VmHWM := VmRSS
        return "VmHWM"
    except OSError:
        return "ru_maxrss"


def _rss_child(spec: dict) -> None:
    """Entry point of the memory subprocess: prints one JSON line.

    After imports, JIT (cache) and one tiny evaluation, freed memory is
    returned to the system (``malloc_trim``) and the kernel's peak-RSS counter
    is reset to the current RSS (``/proc/self/clear_refs``); the growth of the
    peak over that baseline during one full evaluation is what the evaluation
    needed at its peak: every array alive at once, NumPy's, Numba's and
    PyTorch's alike. Where ``clear_refs`` is unavailable the growth of
    ``ru_maxrss`` is used (an underestimate when the warm-up peaked higher).
    """
    case = Case(**spec["case"])
    set_threads(spec["threads"], torch_too=spec["side"] == "torch")
    tiny = Case(case.kind, N=min(case.N, 8), k=min(case.k, 4), T=min(case.T, 5), B=min(case.B, 2),
        checkpoint=min(case.checkpoint, 2))  # fmt: skip
    side = spec["side"]
    fn = run_refimpl if side == "refimpl" else (lambda c, p: run_torch(c, p, spec["method"], spec.get("T_torch"),
        c.checkpoint))  # fmt: skip
    fn(tiny, problem(tiny))  # imports, JIT (cache), allocator warm-up
    prob = problem(case)
    method = _reset_peak()
    if method == "VmHWM":
        base = _status_kb("VmRSS")
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    fn(case, prob)
    elapsed = time.perf_counter() - t
    peak = _status_kb("VmHWM") if method == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_bytes": (peak - base) * 1024.0, "seconds": elapsed, "method": method}))


def measure_memory(case: Case, side: str, threads: int, method: str = "jacrev", T_torch=None) -> dict:
    spec = {"case": asdict(case), "side": side, "threads": threads, "method": method, "T_torch": T_torch}
    code = "import json,sys; from refimpl.bench import _rss_child; _rss_child(json.loads(sys.argv[1]))"
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# time to first result of a second process (warm JIT cache)
# ---------------------------------------------------------------------------


def startup_seconds(argv: list, runs: int = 2) -> float:
    """Wall time of ``python -m refimpl.cli ARGV`` from process start to exit; the last of ``runs``."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    t = float("nan")
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "refimpl.cli", *argv], capture_output=True, text=True, env=env)
        t = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(f"refimpl {' '.join(argv)} failed: {out.stderr.strip()[-300:]}")
    return t


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


@dataclass
class Row:
    case: Case
    refimpl_s: float = float("nan")
    torch_s: float = float("nan")
    refimpl_runs: list = field(default_factory=list)
    torch_runs: list = field(default_factory=list)
    torch_T: int = 0  # steps the peer ran (< T: time extrapolated linearly)
    torch_method: str = ""
    rel_diff: float = float("nan")
    flops: float = 0.0
    refimpl_peak_bytes: float = float("nan")
    torch_peak_bytes: float = float("nan")
    required_bytes: float = float("nan")
    jax_s: float = float("nan")
    jax_runs: list = field(default_factory=list)
    jax_compile_s: float = float("nan")
    jax_rel_diff: float = float("nan")
    one_thread_s: float = float("nan")  # refimpl at 1 BLAS thread, when the run uses more
    drift: float = float("nan")  # refimpl's median over the second half of the rounds / the first half
    torch_paired: float = float("nan")  # median over the rounds of the peer's time / refimpl's time
    jax_paired: float = float("nan")
    dgemm_gflops: float = float("nan")  # the dgemm rate, median over the rounds (a side of its own)
    peak_fraction: float = float("nan")  # median over the rounds of refimpl's GFLOP/s / the round's dgemm rate
    # checkpointed rows: the peers that store every step (the stored row's runs), for comparison only
    torch_storing_s: float = float("nan")
    jax_storing_s: float = float("nan")

    @property
    def ratio(self) -> float:
        """PyTorch's time / refimpl's: the median of the rounds' ratios (:func:`rounds`) when the peer ran
        in them, else the ratio of the medians (a peer run shared with an earlier case)."""
        return self.torch_paired if self.torch_paired == self.torch_paired else self.torch_s / self.refimpl_s

    @property
    def jax_ratio(self) -> float:
        return self.jax_paired if self.jax_paired == self.jax_paired else self.jax_s / self.refimpl_s

    def fraction_of(self, peak: float) -> float:
        """refimpl's GFLOP/s over the dgemm rate: the median of the rounds' fractions when the dgemm ran in
        them (:func:`bench_case`), else against the rate ``peak`` (FLOP/s ÷ 1e9) measured at the start."""
        if self.peak_fraction == self.peak_fraction:
            return self.peak_fraction
        return self.flops / self.refimpl_s / 1e9 / peak


def _mem_available() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return float("inf")


def torch_steps(case: Case, budget_bytes: float, method: str = "rows") -> int:
    """Steps the PyTorch flossing peer may run within ``budget_bytes`` (its graph grows ∝ T·M²)."""
    if case.kind != "flossing":
        return case.T
    per_step = TORCH_FLOSS_MATRICES_PER_STEP.get(method, 7.0) * 8.0 * (2 * case.N) ** 2
    return int(max(10, min(case.T, budget_bytes // per_step)))


def choose_method(case: Case, prob, requested: str) -> str:
    """The faster of the peer's two ways to build the dense Jacobian (``auto``), on a short prefix."""
    if case.kind == "bptt":
        return ""
    if requested != "auto":
        return requested
    best, best_t = "jacrev", float("inf")
    for method in ("jacrev", "rows"):
        T = min(case.T, 20)
        run_torch(case, prob, method, T=2)
        t = time.perf_counter()
        run_torch(case, prob, method, T=T)
        t = time.perf_counter() - t
        if t < best_t:
            best, best_t = method, t
    return best


_STORED_ROWS: dict = {}  # the stored rows by (kind, N, k, T, B), for the checkpointed row that follows


def bench_case(case: Case, args, log) -> Row:
    row = Row(case, flops=flops(case), required_bytes=required_bytes(case))
    prob = problem(case)
    tiny = Case(case.kind, N=min(case.N, 8), k=min(case.k, 4), T=min(case.T, 5), B=min(case.B, 2),
        checkpoint=min(case.checkpoint, 2))  # fmt: skip
    run_refimpl(tiny, problem(tiny))  # JIT compilation (or cache load) outside the timing

    def time_refimpl():
        return timed(lambda: run_refimpl(case, prob), args.repeats, args.max_seconds, args.min_seconds)

    # every side runs in the same rounds (refimpl, PyTorch, JAX, refimpl, ...): each ratio is the median of the
    # rounds' ratios, so that the drift of the machine's speed within the minutes of a case cancels
    fns = {"refimpl": lambda: run_refimpl(case, prob), "dgemm": dgemm_call(args.dgemm_n)}
    # a checkpointed row's peers checkpoint too (segments of the same length recomputed in their backward
    # pass: the same computation in the same memory class); the storing peers' times of the stored row above
    # are reported beside them (docs/performance.md, "Checkpointed flossing against checkpointing peers")
    every = case.checkpoint
    peer_key = (case.kind, case.N, case.k, case.T, case.B)
    stored = _STORED_ROWS.get(peer_key) if every else None
    T_torch = case.T
    if not args.no_torch:
        # the checkpointed row builds PyTorch's Jacobian as the stored row chose to (choose_method times the
        # same storing prefix for both rows): not timed twice
        row.torch_method = stored.torch_method if stored is not None else choose_method(case, prob, args.torch_jacobian)
        T_torch = torch_steps(case, args.torch_mem_budget, row.torch_method)
        row.torch_T = T_torch
        run_torch(tiny, problem(tiny), row.torch_method or "jacrev", every=tiny.checkpoint)
        fns["pytorch"] = lambda: run_torch(case, prob, row.torch_method, T=T_torch, every=every)
    if getattr(args, "jax", False):
        _, params, inputs, targets_, _, Q0 = prob
        run_jax, row.jax_compile_s = jax_peer().prepare(case.kind, params, inputs, targets_, Q0, every=every)
        run_jax()  # the first call of a compiled executable still allocates
        fns["jax"] = run_jax
    times, results = rounds(fns, args.repeats, args.max_seconds, args.min_seconds)
    ref = results["refimpl"]
    row.refimpl_runs = times["refimpl"]
    row.refimpl_s = statistics.median(row.refimpl_runs)
    # the fraction of the dgemm rate, also per round: the dgemm is a side of the rounds
    rates = [dgemm_flops(args.dgemm_n) / t / 1e9 for t in times["dgemm"]]
    row.dgemm_gflops = statistics.median(rates)
    row.peak_fraction = statistics.median(row.flops / t / 1e9 / r for t, r in zip(row.refimpl_runs, rates))
    half = len(row.refimpl_runs) // 2
    if half:
        row.drift = statistics.median(row.refimpl_runs[half:]) / statistics.median(row.refimpl_runs[:half])
    log(f"  refimpl  {case.label:<36} {row.refimpl_s:9.4f} s  (median of {len(row.refimpl_runs)}; drift over the "
        f"rounds x{row.drift:.2f})")  # fmt: skip
    if args.threads > 1:  # the thread policy's reference: the same case on one BLAS thread
        set_threads(1, torch_too=False)
        runs, _ = time_refimpl()
        set_threads(args.threads, torch_too=False)
        row.one_thread_s = statistics.median(runs)
        log(f"  refimpl  {case.label:<36} {row.one_thread_s:9.4f} s  on 1 thread ({args.threads} threads: "
            f"{row.one_thread_s / row.refimpl_s:.2f}x as fast)")  # fmt: skip
    if "pytorch" in fns:
        row.torch_runs, peer = times["pytorch"], results["pytorch"]
        scale = case.T / T_torch
        row.torch_s = statistics.median(row.torch_runs) * scale
        row.torch_paired = paired_ratio(row.torch_runs, row.refimpl_runs, scale)
        note = f"  (ran T={T_torch}, time scaled ×{scale:.2f})" if T_torch < case.T else ""
        log(
            f"  pytorch  {case.label:<36} {row.torch_s:9.4f} s  (median of {len(row.torch_runs)}"
            f"{', ' + row.torch_method if row.torch_method else ''}){note}"
        )
        if T_torch == case.T:
            row.rel_diff = max_rel_diff(ref, peer)
        else:  # compare on the prefix the peer ran
            short = Case(case.kind, case.N, case.k, T_torch, case.B, case.checkpoint)
            sp = problem(short)
            row.rel_diff = max_rel_diff(run_refimpl(short, sp), peer)
        log(f"  agree    {case.label:<36} max relative difference {row.rel_diff:.2e}")
    if "jax" in fns:
        row.jax_runs = times["jax"]
        row.jax_s = statistics.median(row.jax_runs)
        row.jax_paired = paired_ratio(row.jax_runs, row.refimpl_runs)
        row.jax_rel_diff = max_rel_diff(ref, results["jax"])
        log(f"  jax      {case.label:<36} {row.jax_s:9.4f} s  (median of {len(row.jax_runs)}; compile "
            f"{row.jax_compile_s:.2f} s, not counted)  max relative difference {row.jax_rel_diff:.2e}")  # fmt: skip
    if not every:
        _STORED_ROWS[peer_key] = row
    elif stored is not None:
        row.torch_storing_s, row.jax_storing_s = stored.torch_s, stored.jax_s
        ran = [(name, t) for name, t in (("pytorch", stored.torch_s), ("jax", stored.jax_s)) if t == t]
        if ran:
            log(f"  storing  {case.label:<36} the peers storing every step (the row above): " + ", ".join(
                f"{name} {t:.4f} s ({t / row.refimpl_s:.2f}x refimpl's)" for name, t in ran))  # fmt: skip
    if not args.no_memory:
        m = measure_memory(case, "refimpl", args.threads)
        row.refimpl_peak_bytes = m.get("peak_bytes", float("nan"))
        if not args.no_torch and not (row.torch_peak_bytes >= 0):
            m = measure_memory(case, "torch", args.threads, row.torch_method or "jacrev",
                row.torch_T if row.torch_T < case.T else None)  # fmt: skip
            row.torch_peak_bytes = m.get("peak_bytes",
                float("nan")) * (case.T / max(row.torch_T, 1) if row.torch_T < case.T else 1.0)  # fmt: skip
        log(
            f"  memory   {case.label:<36} refimpl {row.refimpl_peak_bytes / 1e6:8.1f} MB   "
            f"pytorch {row.torch_peak_bytes / 1e6:8.1f} MB"
        )
    return row


def cases_of(args) -> list:
    out = []
    kinds = [k.strip() for k in args.what.split(",")]
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"--what entries must be among {list(KINDS)}, got {kind!r}")
    for kind in kinds:
        for N in args.sizes:
            if kind == "bptt":
                out.append(Case("bptt", N, T=args.T_bptt, B=args.batch))
                continue
            for k in args.ks:
                if k > 2 * N:
                    continue
                out.append(Case(kind, N, k, T=args.T))
                if kind == "flossing" and args.checkpoint >= 0:
                    c = args.checkpoint or max(2, int(round(math.sqrt(args.T))))
                    out.append(Case(kind, N, k, T=args.T, checkpoint=c))
    return out


# ---------------------------------------------------------------------------
# CLI plugin
# ---------------------------------------------------------------------------


def _ints(text):
    return [int(x) for x in str(text).split(",") if x.strip()]


FULL_SIZES = {"sizes": "64,256", "ks": "16,64", "T": 1000, "T_bptt": 500, "batch": 32}
QUICK_SIZES = {"sizes": "16", "ks": "4", "T": 40, "T_bptt": 40, "batch": 4}


def run_cli(args) -> int:
    """``refimpl bench`` (the parser is :mod:`refimpl.cli.bench`)."""
    from refimpl.io import check_writable

    if args.out:
        check_writable(args.out, "--out")  # before minutes of timing
    # --quick changes the defaults, never a value given on the command line
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick:
        args.repeats = min(args.repeats, 2)
        args.min_seconds = 0.0
    try:
        args.sizes, args.ks = _ints(args.sizes), _ints(args.ks)
    except ValueError:
        raise ValueError("--sizes and --ks must be comma-separated integers")
    if not args.sizes or min(args.sizes) < 1 or (args.ks and min(args.ks) < 1):
        raise ValueError("--sizes and --ks must be positive")
    if args.threads is None:
        from refimpl.threads import default_threads

        args.threads = default_threads() or 1
    if args.repeats < 1 or args.T < 2 or args.T_bptt < 2 or args.batch < 1 or args.threads < 1:
        raise ValueError("--repeats, --batch, --threads must be >= 1 and --T, --T-bptt >= 2")
    if not args.no_torch:
        try:
            bt = torch_peer()
        except RuntimeError as exc:
            raise ValueError(str(exc))
    if getattr(args, "jax", False):
        try:
            bj = jax_peer()
        except RuntimeError as exc:
            raise ValueError(str(exc))
    args.torch_mem_budget = 0.5 * _mem_available() if args.torch_mem_budget is None else args.torch_mem_budget * 1e9

    def log(msg):
        print(msg, flush=True)

    threads = set_threads(args.threads, torch_too=not args.no_torch)
    load0 = os.getloadavg()
    args.dgemm_n = 512 if args.quick else 2048
    peak = dgemm_rate(args.dgemm_n)
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "threads": args.threads, "thread_settings": threads, "python": platform.python_version(),
        "numpy": np.__version__, "torch": None if args.no_torch else bt.version(),
        "jax": bj.version() if getattr(args, "jax", False) else None, "dgemm_gflops": peak,
        "load_before": load0}  # fmt: skip
    log(
        f"refimpl bench: {info['machine']}, {info['cpus']} CPUs, threads {args.threads} ({', '.join(threads)}), "
        f"load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}"
    )
    log(f"machine float64 matrix-multiply rate (NumPy dgemm, {args.dgemm_n}²): {peak:.1f} GFLOP/s")
    cases = cases_of(args)
    rows = []
    _STORED_ROWS.clear()
    t0 = time.perf_counter()
    try:
        for i, case in enumerate(cases):
            log(f"[{i + 1}/{len(cases)}] {case.label}  ({time.perf_counter() - t0:.0f} s elapsed)")
            rows.append(bench_case(case, args, log))
            poll()  # Ctrl-C: keep the cases timed so far
    except BaseException as exc:
        from refimpl.interrupt import is_interrupt

        if not is_interrupt(exc):
            raise
        # the cases timed so far are kept (a row is appended only when its case is complete)
        info["interrupted"] = True
        info["load_after"] = os.getloadavg()
        if args.out:
            write_json(args.out, info, {}, rows, peak)
        kept = (
            f"; the {len(rows)} finished case(s) of {len(cases)} are in {args.out}"
            if args.out
            else f"; {len(rows)} of {len(cases)} cases had finished (no --out)"
        )
        print(f"refimpl bench: interrupted (Ctrl-C){kept}", file=sys.stderr)
        return 130
    startup = {}
    if not args.no_startup:
        startup["lyapunov"] = startup_seconds(["lyapunov", "--T", "200", "--k", "8"])
        startup["floss"] = startup_seconds(["floss", "--T", "200", "--k", "8", "--steps", "0"])
        log(
            f"second process, warm JIT cache, start to exit: refimpl lyapunov {startup['lyapunov']:.2f} s, "
            f"refimpl floss (one gradient) {startup['floss']:.2f} s"
        )
    info["load_after"] = os.getloadavg()
    log("")
    if not args.no_torch:
        worst = max(r.rel_diff for r in rows)
        log(f"agreement: max relative difference refimpl vs PyTorch over all cases {worst:.2e}")
    if getattr(args, "jax", False):
        log(f"agreement: max relative difference refimpl vs JAX over all cases {max(r.jax_rel_diff for r in rows):.2e}")
    log(format_table(rows, peak))
    log(
        f"load average after: {info['load_after'][0]:.2f}; every side timed in the same interleaved rounds, "
        f"s = median of its runs; ratio = median over the rounds of pytorch/refimpl (jax ratio: jax/refimpl, the "
        f"compiled JAX executable, compile time not counted); GFLOP/s of the method's "
        f"FLOP count (docs/performance.md); 'of peak' = median over the rounds of refimpl GFLOP/s / the "
        f"round's dgemm rate (a dgemm {args.dgemm_n}² is a side of every round); MB = max-RSS growth "
        f"of one evaluation in a fresh process; need = what the method must store; c = checkpoints every c "
        f"steps, the peers checkpointing the same segments (the storing peers' times: the 'storing' lines)"
    )
    log("")
    log(format_targets(rows, peak))
    if args.out:
        write_json(args.out, info, startup, rows, peak)
        log(f"wrote {args.out}")
    if not args.no_torch and any(not (r.rel_diff <= 1e-6) for r in rows):
        print("refimpl bench: refimpl and PyTorch disagree (max relative difference > 1e-6)", file=sys.stderr)
        return 1
    if getattr(args, "jax", False) and any(not (r.jax_rel_diff <= 1e-6) for r in rows):
        print("refimpl bench: refimpl and JAX disagree (max relative difference > 1e-6)", file=sys.stderr)
        return 1
    return 0
