"""``refimpl sweep``: a grid of training runs, restartable (docs/sweep.md); the engine is :mod:`refimpl.sweep`."""

from __future__ import annotations

from refimpl.cli import shipped

HEAVY = ("numpy", "h5py", "numba", "refimpl.training", "refimpl.sweep", "matplotlib.pyplot")


def add_parser(sub) -> list:
    p = sub.add_parser(
        "sweep",
        help="run a grid of training runs (restartable; process pool or Dask)",
        description="Expand a sweep file (see docs/sweep.md) into jobs, run those without a "
        "result, and aggregate. Shipped sweeps: " + ", ".join(shipped("presets/sweeps")),
    )
    p.add_argument("config", help="sweep TOML file, or the name of a shipped sweep")
    p.add_argument("--out", default=None, help="output directory (default: sweep.out)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes of the local pool (default: sweep.workers or the cores; 1: in this process)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on a Dask cluster, e.g. tcp://127.0.0.1:8786 (needs the extra .[sweep])",
    )
    p.add_argument("--dry-run", action="store_true", help="list the jobs and their status; run nothing")
    p.add_argument("--aggregate-only", action="store_true", help="only aggregate the existing results")
    p.add_argument("--force", action="store_true", help="delete and recompute results and work directories of a different spec")
    p.add_argument("--quiet", action="store_true", help="only the final summary line")
    return ["sweep"]


def checkpoint_epoch(path) -> int | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["epoch"])
    except (OSError, KeyError, ValueError):
        return None


def run(args) -> int:
    import sys
    import threading
    import time
    from pathlib import Path

    from refimpl.sweep import (
        aggregate,
        expand,
        flatten,
        fn_id,
        job_function,
        job_hash,
        job_status,
        load_spec,
        result_path,
        run_jobs,
        sweep_options,
        work_dir,
    )

    spec = load_spec(args.config)
    jobs = expand(spec)
    opts = sweep_options(spec)
    fn = job_function(spec)
    out = Path(args.out if args.out is not None else opts["out"])
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.dry_run and args.aggregate_only:
        raise ValueError("--dry-run and --aggregate-only exclude each other")
    progress = None if args.quiet else print
    if args.dry_run:
        counts = {}
        n_set = len(flatten(spec.get("set", {}), "[set]", ""))
        print(f"{len(jobs)} jobs ({fn_id(fn)}), output in {out}")
        if n_set and jobs:
            print(f"  [set] for every job: {' '.join(jobs[0].overrides[:n_set])}")
        for j in jobs:
            st = job_status(out, j, job_hash(j, fn))
            counts[st] = counts.get(st, 0) + 1
            if st == "partial":
                e = checkpoint_epoch(work_dir(out, j) / "checkpoint.h5")
                st = f"partial (checkpoint at epoch {e})" if e is not None else st
            print(f"  {st:<34} {j.name}  {' '.join(j.overrides[n_set:])}")
        print(", ".join(f"{n} {s}" for s, n in counts.items()))
        return 0
    res = None
    if not args.aggregate_only:
        t0 = time.perf_counter()
        import signal as _signal

        # a batch system's SIGTERM is handled like Ctrl-C: running training jobs checkpoint
        old = None
        if threading.current_thread() is threading.main_thread():

            def on_term(signum, frame):
                raise KeyboardInterrupt

            old = _signal.signal(_signal.SIGTERM, on_term)
        try:
            res = run_jobs(
                fn,
                jobs,
                out,
                workers=args.workers or opts["workers"],
                scheduler=args.scheduler,
                progress=progress,
                force=args.force,
                threads=opts["threads"],
            )
        except KeyboardInterrupt:
            done = sum(result_path(out, j).exists() for j in jobs)
            print(
                f"refimpl sweep: interrupted (Ctrl-C); {done} of {len(jobs)} results are in {out / 'jobs'}; rerun the same "
                "command to continue (finished jobs are skipped, training jobs resume from their "
                "checkpoints)",
                file=sys.stderr,
            )
            return 130
        finally:
            if old is not None:
                _signal.signal(_signal.SIGTERM, old)
        el = time.perf_counter() - t0
    agg = aggregate(out, spec, progress=progress)
    if progress is not None:
        print(agg["paths"]["md"].read_text(), end="")
    files = ", ".join(str(p) for p in agg["paths"].values() if p is not None)
    if res is not None:
        print(
            f"sweep: {len(jobs)} jobs: {len(res.ran)} ran, {len(res.skipped)} skipped, "
            f"{len(res.failed)} failed ({el:.1f} s); wrote {files}"
        )
        if res.failed:
            print(
                "failed jobs (tracebacks in " + str(out / "jobs") + "/<name>.failed.txt): " + ", ".join(res.failed),
                file=sys.stderr,
            )
            return 1
        return 0
    print(f"aggregated {len(agg['done'])} of {len(jobs)} jobs; wrote {files}")
    return 0
