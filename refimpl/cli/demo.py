"""``refimpl demo``: the main result on built-in defaults (the work is :func:`refimpl.demo.demo`)."""

from __future__ import annotations

DESCRIPTION = (
    "Train a recurrent cLIF network on the spiking delayed XOR with and without pre-flossing, "
    "from the same initial weights and data, and write report.png and summary.json."
)
HEAVY = ("numpy", "h5py", "numba", "refimpl.training", "refimpl.demo", "matplotlib.pyplot")


def add_parser(sub) -> list:
    p = sub.add_parser(
        "demo", help="train with and without surrogate gradient flossing; write report.png", description=DESCRIPTION
    )
    p.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    p.add_argument("--quick", action="store_true", help="toy sizes, for tests (seconds)")
    p.add_argument("--seed", type=int, default=None, help="network and task seed (default: the preset's, 1)")
    p.add_argument("--force", action="store_true", help="overwrite an earlier demo in --out")
    return ["demo"]


def run(args) -> int:
    from refimpl.demo import DEMO_OUTPUTS, demo
    from refimpl.io import check_writable

    out = check_writable(args.out, "--out", directory=True)
    found = [name for name in DEMO_OUTPUTS if (out / name).exists()]
    if found and not args.force:
        # like `refimpl train`: never overwrite earlier results (checkpoints included) silently
        raise ValueError(
            f"--out {args.out} already holds a demo ({', '.join(found)}); choose another --out or pass --force to overwrite it"
        )
    try:
        demo(args.out, quick=args.quick, seed=args.seed)
    except BaseException as exc:  # each training run checkpoints its last finished epoch (no partial files)
        import sys

        from refimpl.interrupt import is_interrupt

        if not is_interrupt(exc):
            raise
        kept = [name for name in DEMO_OUTPUTS if (out / name).exists()]
        what = f"kept {', '.join(kept)} in {args.out}" if kept else "nothing was written"
        print(f"refimpl demo: interrupted (Ctrl-C); {what}", file=sys.stderr)
        return 130
    return 0
