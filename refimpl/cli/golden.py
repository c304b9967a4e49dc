"""``refimpl validate`` and ``refimpl golden``: the golden vectors (docs/golden.md)."""

from __future__ import annotations

import math
from pathlib import Path

HEAVY = ("numpy", "h5py", "numba", "refimpl.training", "refimpl.check.golden")


def add_parser(sub) -> list:
    p = sub.add_parser(
        "validate",
        help="compare a candidate golden-format file with the golden vectors",
        description="Compare every quantity present in CANDIDATE with the reference golden "
        "file. Exit 0: all present quantities agree; 1: a mismatch (or, with --strict, a "
        "missing quantity); 2: a file cannot be read, is not in the golden "
        "format, or the reference is damaged.",
    )
    p.add_argument("candidate", help="candidate HDF5 file in the golden format (docs/golden-format.md)")
    p.add_argument("--reference", default=None,
        help="reference golden file (default: the shipped one; for a candidate with event-based cases, the shipped "
        "event-based file)")  # fmt: skip
    p.add_argument(
        "--rtol", type=float, default=None, help="relative tolerance for every computed quantity (default: per quantity)"
    )
    p.add_argument(
        "--atol", type=float, default=None, help="absolute tolerance for every computed quantity (default: per quantity)"
    )
    p.add_argument("--mismatches-only", action="store_true", help="print only the rows that disagree")
    p.add_argument("--strict", action="store_true", help="every quantity of the reference must be in the candidate, or exit 1")
    g = sub.add_parser("golden", help="the golden vectors: export the file, list the cases")
    gs = g.add_subparsers(dest="golden_command", required=True)
    e = gs.add_parser("export", help="compute every case with refimpl and write a golden file")
    e.add_argument("path", help="the HDF5 file to write")
    e.add_argument("--case", action="append", default=None, help="only this case (repeatable)")
    e.add_argument("--events", action="store_true",
        help="the event-based cases instead (exact simulations, format version 2; docs/golden-format.md)")  # fmt: skip
    gs.add_parser("list", help="list the cases and what each covers")
    return ["validate", "golden"]


def run(args) -> int:
    from refimpl.check.golden import CASES, FormatError, compare, default_reference, export, format_report
    from refimpl.check.golden.events import EVENT_CASES, default_events_reference, export_events, is_exact

    if args.command == "validate":
        for name in ("rtol", "atol"):
            v = getattr(args, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"--{name} must be a finite number >= 0, got {v}")
        from refimpl.check.golden import read_golden

        cand = read_golden(args.candidate, "candidate")
        events = any(is_exact(c) for c in cand.configs.values())
        ref = args.reference if args.reference is not None else (default_events_reference() if events else default_reference())
        if args.reference is None and not Path(ref).exists():
            how = (
                "refimpl golden export --events refimpl/data/golden_events.h5"
                if events
                else "refimpl golden export refimpl/data/golden.h5"
            )
            raise FormatError(f"the shipped golden file {ref} is missing; write it with: {how}")
        rep = compare(ref, cand, rtol=args.rtol, atol=args.atol, strict=args.strict)
        try:
            print(format_report(rep, only_mismatches=args.mismatches_only), flush=True)
        except BrokenPipeError:  # `refimpl validate … | head`
            import os
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return rep.exit_code
    if args.golden_command == "list":
        for c in CASES:
            print(f"{c.name:<32} T={c.T:<3} B={c.B}  {c.covers}")
        for c in EVENT_CASES:
            print(f"{c.name:<32} event-based  {c.covers}")
        return 0
    from refimpl.io import check_writable

    check_writable(args.path, "path")
    try:
        names = export_events(args.path, args.case) if args.events else export(args.path, args.case)
    except BaseException as exc:
        import sys

        from refimpl.interrupt import is_interrupt

        if not is_interrupt(exc):
            raise
        print(
            f"refimpl golden: interrupted (Ctrl-C); nothing was written (the file {args.path} is written "
            "only when every case is done)",
            file=sys.stderr,
        )
        return 130
    size = Path(args.path).stat().st_size
    print(f"wrote {len(names)} case(s) to {args.path} ({size / 1024:.0f} KiB)")
    return 0
