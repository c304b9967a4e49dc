"""Running a sweep's jobs: in this process, on a local process pool or on a Dask cluster, with restart,
failure records and Ctrl-C handling."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import platform
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from refimpl import __version__
from refimpl.interrupt import poll
from refimpl.io import atomic_h5, atomic_text
from refimpl.sweep.results import failed_path, result_path, stored_hash, work_dir, write_tree
from refimpl.sweep.spec import INTERRUPT_GRACE, RESULT_FORMAT, Job, fn_id, job_hash

# ---------------------------------------------------------------------------
# executing one job (in the worker)
# ---------------------------------------------------------------------------

_IN_POOL_WORKER = False


def _watch_parent(ppid: int) -> None:
    """A pool worker whose driver died (e.g. SIGKILL) exits, instead of finishing jobs nobody
    waits for while a restarted sweep runs the same jobs."""
    while True:
        time.sleep(1.0)
        if os.getppid() != ppid:
            os._exit(1)


def _worker_init(ppid: int, threads: int) -> None:
    """Process-pool worker setup: idle workers ignore Ctrl-C (:func:`_execute` re-enables it while a
    job runs, so that a training job checkpoints), SIGTERM terminates, BLAS uses ``threads`` threads."""
    global _IN_POOL_WORKER
    _IN_POOL_WORKER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker inherits the driver's handler
    threading.Thread(target=_watch_parent, args=(ppid,), daemon=True).start()
    from refimpl.threads import set_threads

    set_threads(threads, torch_too=False)


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}


def _execute(fn, job: Job, out_dir: str, spec_hash: str) -> dict:
    """Run ``fn(job, job_dir)`` and write its result file (atomically, only at the end).

    An exception becomes ``OUT/jobs/<name>.failed.txt`` and a ``failed``
    status (the sweep goes on); ``KeyboardInterrupt`` propagates.
    """
    out = Path(out_dir)
    jdir = work_dir(out, job)
    jdir.mkdir(parents=True, exist_ok=True)
    atomic_text(
        jdir / "job.json",
        json.dumps(
            {
                "name": job.name,
                "spec_hash": spec_hash,
                "fn": fn_id(fn),
                "condition": job.condition,
                "axes": job.axes,
                "overrides": list(job.overrides),
            },
            indent=1,
        )
        + "\n",
    )
    fp = failed_path(out, job)
    t0 = time.perf_counter()
    old = None
    if _IN_POOL_WORKER:
        old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = fn(job, jdir)
        if not isinstance(result, dict):
            raise TypeError(f"the job function returned {type(result).__name__}, expected a dict")
        wall = time.perf_counter() - t0
        with atomic_h5(result_path(out, job)) as f:
            write_tree(f, result)
            f.attrs["format"] = RESULT_FORMAT
            f.attrs["job"] = job.name
            f.attrs["condition"] = job.condition
            f.attrs["axes"] = json.dumps(job.axes)
            f.attrs["overrides"] = json.dumps(list(job.overrides))
            f.attrs["spec_hash"] = spec_hash
            f.attrs["fn"] = fn_id(fn)
            f.attrs["refimpl_version"] = __version__
            f.attrs["wall_time"] = wall
            f.attrs["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            f.attrs["host"] = platform.node()
    except Exception as exc:
        tb = traceback.format_exc()
        atomic_text(
            fp,
            f"job {job.name} failed after {time.perf_counter() - t0:.1f} s on "
            f"{platform.node()} (pid {os.getpid()})\noverrides: {list(job.overrides)}\n\n{tb}",
        )
        return {"name": job.name, "status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    if fp.exists():
        fp.unlink()
    return {"name": job.name, "status": "done", "wall": wall, "scalars": _scalars(result)}


# ---------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------


class SweepResult(list):
    """The result files of all jobs, in job order (a ``list`` of ``Path``); a failed job's file
    does not exist. ``failed``, ``ran`` and ``skipped`` list job names."""

    def __init__(self, paths, failed=(), ran=(), skipped=()):
        super().__init__(paths)
        self.failed, self.ran, self.skipped = list(failed), list(ran), list(skipped)

    @property
    def ok(self) -> bool:
        return not self.failed


def job_status(out_dir, job: Job, spec_hash: str) -> str:
    """``done``, ``stale`` (a result or work directory of another spec), ``failed``, ``partial``
    (a checkpoint to resume from) or ``pending``."""
    rp = result_path(out_dir, job)
    if rp.exists():
        return "done" if stored_hash(rp) == spec_hash else "stale"
    wd = work_dir(out_dir, job)
    jj = wd / "job.json"
    if jj.exists():
        try:
            if json.loads(jj.read_text()).get("spec_hash") != spec_hash:
                return "stale"
        except (OSError, ValueError):
            return "stale"
    if failed_path(out_dir, job).exists():
        return "failed"
    return "partial" if (wd / "checkpoint.h5").exists() else "pending"


def _require_dask():
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError('--scheduler needs dask.distributed, the optional extra: pip install -e ".[sweep]"') from None
    return Client


def _pool_context():
    """``fork`` on Linux when this process runs no other thread, else ``spawn``.

    A forked worker starts at once with this process's modules (and any
    Numba kernels already loaded); a spawned one imports NumPy, SciPy, Numba
    and refimpl afresh and loads the kernels from the cache (seconds per
    worker). Fork is safe here: refimpl starts no Numba threads (no
    ``parallel=True``), OpenBLAS re-initializes its threads after a fork, and
    the worker initializer resets the signal handlers it inherits. With
    other threads running (a notebook, a Dask client) a fork would copy
    their held locks, so then (also once JAX or PyTorch is imported: their
    native thread pools are invisible to ``threading``), and off Linux,
    workers are spawned.
    (Measured: identical results either way.)
    """
    import multiprocessing

    # JAX and PyTorch start native thread pools that threading.active_count() does not see
    native_threads = any(m in sys.modules for m in ("jax", "torch"))
    if sys.platform.startswith("linux") and threading.active_count() == 1 and not native_threads:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _dask_executor(address: str):
    Client = _require_dask()
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"--scheduler {address}: cannot connect to the Dask scheduler ({exc})") from None
    return client, client.get_executor(pure=False)


def say(progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def run_jobs(fn, jobs, out_dir, *, executor=None, workers=None, scheduler=None, progress=print, force=False,
        threads=1) -> SweepResult:  # fmt: skip
    """Run ``fn(job, job_dir) -> dict`` on every job that has no result yet; returns a :class:`SweepResult`.

    * ``OUT/jobs/<name>.h5`` receives the returned dict (nested dicts become
      groups) and attributes (job, condition, axes, overrides as JSON,
      ``spec_hash``, ``fn``, ``refimpl_version``, ``wall_time``,
      ``finished``, ``host``), written atomically by the worker when the job
      has finished; ``job_dir = OUT/work/<name>/`` is the job's own
      directory (a training job keeps its checkpoint there and resumes).
    * A job whose result exists with the same spec hash is skipped. A
      result or work directory with another hash stops the sweep before
      anything runs (``ValueError``), unless ``force``, which deletes them.
    * Executor: ``executor`` if given (any ``concurrent.futures.Executor``,
      not shut down here); else a Dask cluster if ``scheduler`` is an
      address; else a pool of ``workers`` processes (default: the number
      of cores; forked or spawned, see :func:`_pool_context`) with
      ``threads`` BLAS threads each; one worker runs the jobs in this
      process.
    * A job that raises is recorded in ``OUT/jobs/<name>.failed.txt`` and
      the others go on. On Ctrl-C pending jobs are cancelled, running
      training jobs checkpoint, and ``KeyboardInterrupt`` propagates.
    """
    out = Path(out_dir).resolve()
    jobs = list(jobs)
    fid = fn_id(fn)
    seen = set()
    for j in jobs:
        if j.name in seen:
            raise ValueError(f"two jobs are named {j.name!r}")
        seen.add(j.name)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
    if executor is None and scheduler is not None:
        _require_dask()
    hashes = {j.name: job_hash(j, fn) for j in jobs}
    status = {j.name: job_status(out, j, hashes[j.name]) for j in jobs}
    stale = [j for j in jobs if status[j.name] == "stale"]
    if stale and not force:
        raise ValueError(
            f"{out} holds results or work of a different sweep for {len(stale)} job(s) "
            f"(e.g. {stale[0].name}: its spec hash differs); choose another --out, or pass "
            "--force to delete and recompute them"
        )
    import shutil

    for j in stale:
        rp = result_path(out, j)
        if rp.exists():
            rp.unlink()
        shutil.rmtree(work_dir(out, j), ignore_errors=True)
        status[j.name] = "pending"
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    atomic_text(
        out / "jobs.json",
        json.dumps(
            [
                {
                    "name": j.name,
                    "condition": j.condition,
                    "axes": j.axes,
                    "overrides": list(j.overrides),
                    "spec_hash": hashes[j.name],
                    "fn": fid,
                }
                for j in jobs
            ],
            indent=1,
        )
        + "\n",
    )

    todo = [j for j in jobs if status[j.name] != "done"]
    skipped = [j.name for j in jobs if status[j.name] == "done"]
    for name in skipped:
        say(progress, f"skip {name} (done)")
    n_total, counter = len(todo), [0]
    failed, ran = [], []

    def report(job, res):
        counter[0] += 1
        head = f"[{counter[0]}/{n_total}]"
        if res["status"] == "done":
            ran.append(job.name)
            sc = res.get("scalars", {})
            shown = [k for k in ("test_acc", "test_loss", "lambda1_after") if k in sc] or list(sc)[:3]
            vals = "  ".join(f"{k} {sc[k]:.4g}" for k in shown)
            say(progress, f"{head} done {job.name} ({res['wall']:.1f} s)  {vals}".rstrip())
        else:
            failed.append(job.name)
            say(progress, f"{head} FAILED {job.name}: {res['error']} (see {failed_path(out, job)})")

    def infrastructure_failure(job, exc):
        # the worker died or the executor failed: the job's own code may never have run
        text = "".join(traceback.format_exception(exc))
        atomic_text(failed_path(out, job), f"job {job.name}: the executor failed\n\n{text}")
        report(job, {"status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]})

    if todo:
        client = None
        own = False
        n_workers = min(workers or os.cpu_count() or 1, len(todo))
        if executor is None and scheduler is not None:
            client, executor = _dask_executor(scheduler)
            own = True
            nw = len(client.scheduler_info().get("workers", {}))
            say(progress, f"running {len(todo)} job(s) on the Dask cluster at {scheduler} ({nw} workers)")
        elif executor is None and n_workers > 1:
            ctx = _pool_context()
            executor = cf.ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init,
                initargs=(os.getpid(), threads))  # fmt: skip
            own = True
            say(progress, f"running {len(todo)} job(s) on {n_workers} worker processes ({ctx.get_start_method()})")
        elif executor is None:
            say(progress, f"running {len(todo)} job(s) in this process")
        try:
            if executor is None:
                for j in todo:
                    report(j, _execute(fn, j, str(out), hashes[j.name]))
            else:
                _run_on(executor, fn, todo, out, hashes, report, infrastructure_failure,
                    window=n_workers if isinstance(executor, cf.ProcessPoolExecutor) and own else None)  # fmt: skip
        finally:
            if own and client is None:
                executor.shutdown(wait=True)
            if client is not None:
                client.close()
    return SweepResult([result_path(out, j) for j in jobs], failed=failed, ran=ran, skipped=skipped)


def _run_on(executor, fn, todo, out, hashes, report, infrastructure_failure, window=None) -> None:
    """Submit the jobs (at most ``window`` at a time: an interrupted pool then has no queued job
    left to start) and report them as they finish."""
    queue = list(todo)
    running = {}

    def submit():
        while queue and (window is None or len(running) < window):
            j = queue.pop(0)
            try:
                running[executor.submit(_execute, fn, j, str(out), hashes[j.name])] = j
            except Exception as exc:  # e.g. BrokenProcessPool: a worker process died
                infrastructure_failure(j, exc)

    try:
        submit()
        while running:
            done, _ = cf.wait(list(running), timeout=0.5, return_when=cf.FIRST_COMPLETED)
            poll()  # Ctrl-C deferred by refimpl's main: act on it here
            for fut in done:
                j = running.pop(fut)
                # exception() of a finished future does not raise: a KeyboardInterrupt from a worker
                # (only that worker was signalled) is that job's failure, not this process's Ctrl-C
                exc = fut.exception()
                if exc is None:
                    report(j, fut.result())
                else:
                    infrastructure_failure(j, exc)
            submit()
    except KeyboardInterrupt:
        queue.clear()
        for fut in running:
            fut.cancel()
        live = [f for f in running if not f.done()]
        if live and isinstance(executor, cf.ProcessPoolExecutor):
            # running training jobs got Ctrl-C too (same process group) and checkpoint at their next
            # step; if the driver alone was signalled, forward it to the workers after a grace period
            cf.wait(live, timeout=INTERRUPT_GRACE)
            for p in list(getattr(executor, "_processes", {}).values()):
                if p.is_alive() and any(not f.done() for f in live):
                    try:
                        os.kill(p.pid, signal.SIGINT)
                    except OSError:
                        pass
        for fut, j in running.items():
            if fut.done() and not fut.cancelled():
                try:
                    res = fut.result()
                except BaseException:
                    continue
                report(j, res)
        raise
