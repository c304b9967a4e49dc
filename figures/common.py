"""Plumbing shared by the figure scripts: arguments, output files, tables.

Every script in ``figures/`` regenerates one figure of docs/results.md with
one command, ``python figures/<script>.py``, and writes next to it

* ``<name>.png``  the figure,
* ``<name>.md``   the table of the numbers plotted, with the command, the
  seeds and the compute budget,
* ``<name>.json`` the same numbers, machine-readable.

``--quick`` shrinks every budget so that a script can be smoke-tested in
seconds; its output goes to a separate directory and is never the figure
that docs/results.md quotes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from refimpl.io import atomic_text

HERE = Path(__file__).resolve().parent


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)  # fmt: skip
    p.add_argument("--out", default=None, help="output directory (default: figures/, or figures/quick/ with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny budget, for a smoke test")
    p.add_argument("--workers", type=int, default=2, help="processes for the sweeps")
    return p


def out_dir(args) -> Path:
    d = Path(args.out) if args.out else (HERE / "quick" if args.quick else HERE)
    d.mkdir(parents=True, exist_ok=True)
    return d


def md_table(header, rows, fmt="{:.3f}") -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return fmt.format(v)
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def provenance(argv=None, t0=None) -> str:
    script = Path(sys.argv[0]).resolve()
    try:  # the script as run from the repository's root, wherever the clone lives
        script = script.relative_to(HERE.parent)
    except ValueError:
        pass
    cmd = "python " + " ".join([script.as_posix()] + list(argv or sys.argv[1:]))
    wall = "" if t0 is None else f"; this invocation took {time.time() - t0:.0f} s, reusing any finished sweep jobs"
    return f"Command: `{cmd}` (Python {platform.python_version()}, {platform.machine()}{wall}).\n"


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_outputs(d: Path, name: str, fig, table_md: str, data: dict, indent: int | None = 1) -> None:
    """The figure, the table and the raw numbers; each written atomically."""
    png = d / f"{name}.png"
    tmp = d / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(png)
    atomic_text(d / f"{name}.md", table_md)
    atomic_text(d / f"{name}.json", json.dumps(_plain(data), indent=indent) + "\n")
    print(f"wrote {png}, {d / (name + '.md')}, {d / (name + '.json')}")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_sweep(sweep_file: str, args, quick=None, edit=None):
    """Run (or continue) the sweep ``figures/sweeps/<sweep_file>`` and aggregate it.

    Results go to ``<out>/runs/<stem>/`` (jobs already finished are skipped,
    so an interrupted figure continues). ``quick(spec)`` shrinks the spec for
    ``--quick``; ``edit(spec)``, if given, is applied after it (a script's own
    options, e.g. where its data are). Returns ``(spec, jobs, runs_dir, aggregate)``;
    stops with a message when jobs are missing or failed.
    """
    from refimpl import sweep

    spec = sweep.load_spec(HERE / "sweeps" / sweep_file)
    if args.quick and quick is not None:
        quick(spec)
    if edit is not None:
        edit(spec)
    runs = out_dir(args) / "runs" / Path(sweep_file).stem
    jobs = sweep.expand(spec)
    print(f"{sweep_file}: {len(jobs)} jobs in {runs} ({args.workers} workers)", flush=True)
    try:
        sweep.run_jobs(sweep.job_function(spec), jobs, runs, workers=args.workers)
    except KeyboardInterrupt:  # one line and exit 130, as `refimpl sweep`; finished results stay
        done = sum(sweep.result_path(runs, j).exists() for j in jobs)
        print(f"{sweep_file}: interrupted; {done} of {len(jobs)} results are in {runs / 'jobs'}; "
            "run the same command again to continue", file=sys.stderr, flush=True)  # fmt: skip
        raise SystemExit(130) from None
    agg = sweep.aggregate(runs, spec)
    if agg["missing"] or agg["failed"]:
        raise SystemExit(
            f"{sweep_file}: {len(agg['missing'])} jobs missing, {len(agg['failed'])} failed "
            f"(see {runs}/jobs/*.failed.txt); run the command again to continue"
        )
    return spec, jobs, runs, agg


def results_by(jobs, runs, key):
    """``{key(job): [result dict, …]}`` of a finished sweep, in job order."""
    from refimpl import sweep

    out = {}
    for j in jobs:
        _, data = sweep.load_result(sweep.result_path(runs, j))
        out.setdefault(key(j), []).append(data)
    return out
