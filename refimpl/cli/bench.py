"""``refimpl bench``: refimpl timed against its peers on the same computations (the work is
:func:`refimpl.bench.run_cli`; docs/performance.md)."""

from __future__ import annotations

from refimpl.cli import HEAVY


def heavy(args) -> tuple:
    return HEAVY + ("refimpl.bench",) + (() if args.no_torch else ("torch",))


def add_parser(sub) -> list:
    p = sub.add_parser("bench", help="time refimpl against PyTorch autograd on the same computation")
    p.add_argument("--quick", action="store_true", help="small sizes (CI, tests): N=16, k=4, T=40")
    p.add_argument("--what", default="bptt,spectrum,flossing", help="which computations")
    p.add_argument("--sizes", default=None, help="layer sizes N (default 64,256; --quick: 16)")
    p.add_argument("--ks", default=None, help="numbers of exponents k (spectrum, flossing; default 16,64; --quick: 4)")
    p.add_argument("--T", type=int, default=None, help="steps of the spectrum and flossing runs (default 1000; --quick: 40)")
    p.add_argument("--T-bptt", type=int, default=None, help="steps of the BPTT runs (default 500; --quick: 40)")
    p.add_argument("--batch", type=int, default=None, help="BPTT batch size (default 32; --quick: 4)")
    p.add_argument(
        "--checkpoint", type=int, default=0, help="flossing checkpoint interval of the extra row (0: round(√T), -1: no such row)"
    )
    p.add_argument("--repeats", type=int, default=3, help="rounds at least (every side once per round; medians)")
    p.add_argument(
        "--max-seconds", type=float, default=120.0, help="stop the rounds of a case once they took this long (at least one round)"
    )
    p.add_argument(
        "--min-seconds",
        type=float,
        default=5.0,
        help="repeat short rounds (up to 25) until they took this long, for a robust median",
    )
    p.add_argument("--threads", type=int, default=None,
        help="threads of every BLAS and of PyTorch, the same on both sides (default: REFIMPL_THREADS, else 1); "
        "above 1, refimpl is also timed on 1 thread")  # fmt: skip
    p.add_argument(
        "--torch-jacobian",
        default="auto",
        choices=("auto", "jacrev", "rows"),
        help="peer's dense Jacobian: torch.func.jacrev, the M-row trick, or the faster (auto)",
    )
    p.add_argument(
        "--torch-mem-budget",
        type=float,
        default=None,
        help="GB the PyTorch flossing graph may use (default: half of MemAvailable); "
        "beyond it the peer runs fewer steps and its time is scaled linearly",
    )
    p.add_argument("--no-torch", action="store_true", help="time refimpl alone")
    p.add_argument("--jax", action="store_true",
        help="also time the JAX peer (validation/bench_jax.py; needs jax==0.10.2, jaxlib==0.10.2)")  # fmt: skip
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-startup", action="store_true", help="skip the second-process start-up timing")
    p.add_argument("--out", default=None, help="write every number to this JSON file")
    return ["bench"]


def run(args) -> int:
    from refimpl.bench import run_cli

    return run_cli(args)
