"""Sweeps: a grid of training runs, run in parallel, restartable, aggregated into tables and a figure.

A sweep file (TOML, see docs/sweep.md) names a base run configuration and
the *axes* and *conditions* to vary; :func:`expand` turns it into a list of
:class:`Job` s (the Cartesian product, each job a set of ``section.key=value``
overrides of the base). :func:`run_jobs` runs a job function on every job
through a ``concurrent.futures`` executor — a local process pool by default,
a Dask cluster with ``scheduler=ADDRESS`` — and writes one HDF5 result per
job, atomically and only when the job has finished. A job whose result file
exists (with the same spec hash) is skipped, so a sweep that is interrupted,
killed or crashes loses nothing that finished; a training job that was cut
short resumes from the checkpoint in its work directory. :func:`aggregate`
reads the result files and writes mean/std/sem/n/min/max over seeds as CSV,
a markdown table and a figure.

Output layout::

    OUT/jobs/<name>.h5            result of a finished job (the job function's dict + attrs)
    OUT/jobs/<name>.failed.txt    traceback of a job that raised (removed when it later succeeds)
    OUT/work/<name>/              the job's own directory (checkpoint.h5, log.h5, job.json)
    OUT/jobs.json                 every job of the sweep: name, condition, axes, overrides, spec hash
    OUT/summary.csv, summary.md, summary.png

Modules, each importing only those before it: :mod:`~refimpl.sweep.spec` (the sweep file, jobs, hashes),
:mod:`~refimpl.sweep.results` (result files), :mod:`~refimpl.sweep.trainjob` (the standard job),
:mod:`~refimpl.sweep.engine` (running jobs: this process, a process pool or Dask),
:mod:`~refimpl.sweep.aggregate` (summary.csv/.md/.png). ``refimpl sweep`` is :mod:`refimpl.cli.sweep`.
"""

from refimpl.sweep.aggregate import aggregate
from refimpl.sweep.engine import SweepResult, job_status, run_jobs
from refimpl.sweep.results import failed_path, load_result, result_path, work_dir
from refimpl.sweep.spec import (RESULT_FORMAT, SWEEP_DIR, TRAIN_METRICS, TRAIN_TABLE, Job, expand, flatten, fn_id,
    job_function, job_hash, label, load_spec, resolve_sweep, sweep_names, sweep_options)  # fmt: skip
from refimpl.sweep.trainjob import train_job

__all__ = ["Job", "RESULT_FORMAT", "SWEEP_DIR", "SweepResult", "TRAIN_METRICS", "TRAIN_TABLE", "aggregate",
    "expand", "failed_path", "flatten", "fn_id", "job_function", "job_hash", "job_status", "label", "load_result",
    "load_spec", "resolve_sweep", "result_path", "run_jobs", "sweep_names", "sweep_options", "train_job",
    "work_dir"]  # fmt: skip
