"""``refimpl sweep``: a grid of training runs, restartable (docs/sweep.md).

The work is :func:`refimpl.sweep.run_cli`."""
from __future__ import annotations

from . import shipped

HEAVY = ("numpy", "h5py", "numba", "refimpl.training", "refimpl.sweep", "matplotlib.pyplot")



def add_parser(sub) -> list:
    p = sub.add_parser("sweep", help="run a grid of training runs (restartable; process pool or Dask)",
                       description="Expand a sweep file (see docs/sweep.md) into jobs, run those without a "
                                   "result, and aggregate. Shipped sweeps: " + ", ".join(shipped("presets/sweeps")))
    p.add_argument("config", help="sweep TOML file, or the name of a shipped sweep")
    p.add_argument("--out", default=None, help="output directory (default: sweep.out)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local pool (default: sweep.workers or the cores; 1: in this process)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on a Dask cluster, e.g. tcp://127.0.0.1:8786 (needs the extra .[sweep])")
    p.add_argument("--dry-run", action="store_true", help="list the jobs and their status; run nothing")
    p.add_argument("--aggregate-only", action="store_true", help="only aggregate the existing results")
    p.add_argument("--force", action="store_true",
                   help="delete and recompute results and work directories of a different spec")
    p.add_argument("--quiet", action="store_true", help="only the final summary line")
    return ["sweep"]


def run(args) -> int:
    from ..sweep import run_cli
    return run_cli(args)
