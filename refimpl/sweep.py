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
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import difflib
import hashlib
import importlib
import itertools
import json
import math
import os
import platform
import signal
import sys
import threading
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .training.configfile import resolve_named, shipped_names
from .io import atomic_h5, atomic_savefig, atomic_text

RESULT_FORMAT = "refimpl-sweep-job"
SWEEP_DIR = Path(__file__).parent / "presets" / "sweeps"

SPEC_SECTIONS = ("sweep", "axes", "conditions", "set", "aggregate")
SWEEP_KEYS = ("base", "out", "job", "workers", "seed_axis", "threads")
AGGREGATE_KEYS = ("metric", "x", "metrics")

#: the scalar results of :func:`train_job` (the metrics a sweep of training runs can aggregate)
TRAIN_METRICS = ("test_acc", "test_loss", "best_test_acc", "best_epoch", "test_acc_initial", "train_loss",
                 "train_acc", "grad_x0", "grad_x0_initial", "lambda1_before", "lambda1_preflossed",
                 "lambda1_after", "floss_steps", "epochs", "resumed_from_epoch", "wall_time")
#: the columns of summary.md for training sweeps (all scalar metrics go to summary.csv)
TRAIN_TABLE = ("test_acc", "best_test_acc", "test_loss", "grad_x0", "lambda1_before", "lambda1_after",
               "floss_steps", "wall_time")

#: seconds the driver waits after Ctrl-C for running jobs to checkpoint by themselves
#: before it forwards SIGINT to the pool's workers
INTERRUPT_GRACE = 3.0

_ALLOWED_NAME = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+")


# ---------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One point of the grid.

    ``name`` is deterministic and filesystem-safe (``floss-delta=14-seed=3``:
    the condition, then ``axis=label`` for every axis in file order);
    ``axes`` maps axis name to the value that labels it; ``overrides`` are
    ``section.key=value`` strings applied to the base configuration in order
    (``[set]`` first, then the condition, then the axes). ``base`` is the
    parsed base TOML (a dict, so that a job needs no file on the worker that
    runs it), ``None`` for a job function that needs no run configuration.
    """

    name: str
    condition: str
    axes: dict
    overrides: tuple
    base: dict | None = field(default=None, repr=False)
    digest: str = field(default="", repr=False, compare=False)

    def run_config(self):
        """The job's :class:`refimpl.training.RunConfig` (base + overrides)."""
        from .training.configfile import apply_overrides, from_dict
        if self.base is None:
            raise ValueError(f"job {self.name}: the sweep has no base configuration (sweep.base)")
        return from_dict(apply_overrides(self.base, self.overrides, source=f"job {self.name}:"),
                         source=f"job {self.name}")


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _job_digest(job: Job) -> str:
    """What the sweep says about a job: its name, condition, axes and the value of every
    configuration key that the base file or an override sets, as the run configuration reads it
    (so ``2`` and ``2.0`` agree); without a base, the overrides.

    Keys left at their defaults are not included, so a refimpl update that adds configuration
    keys does not turn finished results into "another sweep"; ``[output]`` only says where files
    go. (Each result file records ``refimpl_version``.)
    """
    d = {"name": job.name, "condition": job.condition, "axes": job.axes}
    if job.base is not None:
        explicit = {}
        for sec, body in job.base.items():
            if isinstance(body, dict):
                explicit.setdefault(sec, set()).update(body)
        for o in job.overrides:
            sec, key = o.split("=", 1)[0].split(".", 1)
            explicit.setdefault(sec, set()).add(key)
        cfg = job.run_config().to_dict()
        d["config"] = {sec: {k: cfg.get(sec, {}).get(k) for k in sorted(keys)}
                       for sec, keys in sorted(explicit.items()) if sec != "output"}
    else:
        d["overrides"] = list(job.overrides)
    return _sha(d)


def fn_id(fn) -> str:
    """``module:qualname`` of a job function (it must be importable by the workers)."""
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not mod or not qual or "<" in qual:
        raise ValueError(f"the job function must be a top-level function of an importable module "
                         f"(the workers import it), got {fn!r}")
    return f"{mod}:{qual}"


def job_hash(job: Job, fn) -> str:
    """The spec hash stored in a result file: the job function and everything that determines the
    job's result. A result with another hash belongs to another sweep."""
    return _sha([fn_id(fn), job.digest or _job_digest(job)])[:20]


# ---------------------------------------------------------------------------
# the sweep file
# ---------------------------------------------------------------------------

def sweep_names() -> list:
    return shipped_names(SWEEP_DIR)


def resolve_sweep(name) -> Path:
    """A sweep file by path, or a shipped one (``refimpl/presets/sweeps/``) by name."""
    return resolve_named(name, SWEEP_DIR, "shipped sweep", "sweep file")


def load_spec(path) -> dict:
    """Read a sweep file. ``sweep.base``, when it names a file beside the sweep file, becomes an
    absolute path; ``_source`` records the file (for messages and the default output directory)."""
    path = resolve_sweep(path)
    try:
        spec = tomllib.loads(path.read_bytes().decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: malformed TOML: {' '.join(str(exc).split())}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc}") from None
    spec["_source"] = str(path)
    sw = spec.get("sweep")
    if isinstance(sw, dict) and isinstance(sw.get("base"), str):
        beside = path.parent / sw["base"]
        if not Path(sw["base"]).is_absolute() and beside.is_file():
            sw["base"] = str(beside.resolve())
    return spec


def _suggest(word, options) -> str:
    hint = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.5)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def _check_name(kind: str, name: str, src: str) -> None:
    if not name or not set(name) <= _ALLOWED_NAME:
        raise ValueError(f"{src}: {kind} name {name!r} may only contain letters, digits, '_', '.' and '+' "
                         "(it becomes part of file names)")


def _flatten(d: dict, where: str, src: str) -> dict:
    """``{"network": {"seed": 1}}`` (TOML dotted keys) and ``{"network.seed": 1}`` (quoted) alike
    become ``{"network.seed": 1}``; ``label`` stays as it is."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and "." not in k and k != "label":
            for k2, v2 in v.items():
                if isinstance(v2, dict):
                    raise ValueError(f"{src}: {where}: {k}.{k2} is a table; expected SECTION.KEY = value")
                out[f"{k}.{k2}"] = v2
        else:
            if k != "label" and "." not in k:
                raise ValueError(f"{src}: {where}: key {k!r} is not of the form SECTION.KEY "
                                 "(e.g. \"training.lr\")")
            out[k] = v
    return out


def _label(v) -> str:
    """A value as it appears in a job name."""
    if isinstance(v, bool):
        s = "true" if v else "false"
    elif isinstance(v, float):
        s = repr(v)
    elif isinstance(v, (list, tuple)):
        s = "_".join(_label(x) for x in v)
    else:
        s = str(v)
    return "".join(c if c in _ALLOWED_NAME or c == "-" else "_" for c in s)


def _override(key: str, value, where: str, src: str) -> str:
    from .training.configfile import toml_value
    try:
        return f"{key}={toml_value(value)}"
    except ValueError:
        raise ValueError(f"{src}: {where}: {key} = {value!r} is not a TOML value a run configuration "
                         "can take") from None


def _parse_axis(name: str, value, src: str) -> list:
    """An axis as ``[(label value, {key: value}), ...]``."""
    where = f"axes.{name}"
    form = (f"{where} must be a table of zipped lists ({{ \"section.key\" = [v1, v2] }}) or a list of "
            f"tables ([{{ \"section.key\" = v1 }}, ...])")
    if isinstance(value, dict):
        flat = _flatten(value, where, src)
        labels = flat.pop("label", None)
        if not flat:
            raise ValueError(f"{src}: {where} sets no SECTION.KEY")
        n = None
        for k, v in flat.items():
            if not isinstance(v, list) or not v:
                raise ValueError(f"{src}: {where}: {k!r} must be a non-empty list of values (zipped "
                                 f"keys), got {v!r}")
            if n is None:
                n, first = len(v), k
            elif len(v) != n:
                raise ValueError(f"{src}: {where}: the zipped lists differ in length: {first!r} has {n} "
                                 f"values, {k!r} has {len(v)}")
        if labels is not None and (not isinstance(labels, list) or len(labels) != n):
            raise ValueError(f"{src}: {where}: label must be a list of {n} values, got {labels!r}")
        keys = list(flat)
        points = [{k: flat[k][i] for k in keys} for i in range(n)]
        labels = labels if labels is not None else [flat[keys[0]][i] for i in range(n)]
        out = list(zip(labels, points))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = []
        for i, v in enumerate(value):
            flat = _flatten(v, f"{where}[{i}]", src)
            lab = flat.pop("label", None)
            if not flat:
                raise ValueError(f"{src}: {where}[{i}] sets no SECTION.KEY")
            out.append((lab if lab is not None else next(iter(flat.values())), flat))
    else:
        raise ValueError(f"{src}: {form}, got {value!r}")
    seen = {}
    for lab, _ in out:
        s = _label(lab)
        if s in seen:
            raise ValueError(f"{src}: {where}: two values share the label {s!r} in job names "
                             "(give each a distinct label = ...)")
        seen[s] = True
    return out


def _base_dict(spec: dict, src: str):
    """The base configuration as a dict (``None`` if the sweep has no base)."""
    from .training.configfile import resolve_path
    base = spec.get("sweep", {}).get("base")
    if base is None:
        return None
    if not isinstance(base, str):
        raise ValueError(f"{src}: sweep.base must be a preset name or a TOML path, got {base!r}")
    path = resolve_path(base)
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: malformed TOML: {' '.join(str(exc).split())}") from None


def sweep_options(spec: dict) -> dict:
    """The ``[sweep]`` and ``[aggregate]`` settings with their defaults (checked)."""
    src = spec.get("_source", "sweep")
    sw = spec.get("sweep", {})
    for key in sw:
        if key not in SWEEP_KEYS:
            raise ValueError(f"{src}: unknown key {key!r} in [sweep]{_suggest(key, SWEEP_KEYS)} "
                             f"(valid keys: {', '.join(SWEEP_KEYS)})")
    ag = spec.get("aggregate", {})
    for key in ag:
        if key not in AGGREGATE_KEYS:
            raise ValueError(f"{src}: unknown key {key!r} in [aggregate]{_suggest(key, AGGREGATE_KEYS)} "
                             f"(valid keys: {', '.join(AGGREGATE_KEYS)})")
    axes = list(spec.get("axes", {}))
    default_out = f"runs/sweep_{Path(src).stem}" if "_source" in spec else "runs/sweep"
    opts = {"base": sw.get("base"), "out": sw.get("out", default_out), "job": sw.get("job", "train"),
            "workers": sw.get("workers", os.cpu_count() or 1), "threads": sw.get("threads", 1),
            "seed_axis": sw.get("seed_axis", "seed" if "seed" in axes else None),
            "metric": ag.get("metric", "test_acc"), "metrics": ag.get("metrics")}
    for key in ("out", "job"):
        if not isinstance(opts[key], str) or not opts[key]:
            raise ValueError(f"{src}: sweep.{key} must be a non-empty string, got {opts[key]!r}")
    for key in ("workers", "threads"):
        v = opts[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{src}: sweep.{key} must be an integer >= 1, got {v!r}")
    sa = opts["seed_axis"]
    if sa is not None and sa not in axes:
        raise ValueError(f"{src}: sweep.seed_axis = {sa!r} is not an axis{_suggest(sa, axes)} "
                         f"(axes: {', '.join(axes) or 'none'})")
    if opts["job"] == "train" and opts["base"] is None:
        raise ValueError(f"{src}: sweep.base is required for job = \"train\" (a preset name or a TOML path)")
    if not isinstance(opts["metric"], str):
        raise ValueError(f"{src}: aggregate.metric must be a string, got {opts['metric']!r}")
    others = [a for a in axes if a != sa]
    x = ag.get("x", others[0] if others else None)
    if x is not None and x not in others:
        raise ValueError(f"{src}: aggregate.x = {x!r} must be one of the axes that are not the seed axis"
                         f"{_suggest(x, others)} (those: {', '.join(others) or 'none'})")
    opts["x"] = x
    m = opts["metrics"]
    if m is not None and (not isinstance(m, list) or not all(isinstance(s, str) for s in m)):
        raise ValueError(f"{src}: aggregate.metrics must be a list of metric names, got {m!r}")
    if opts["job"] == "train":
        for name in [opts["metric"], *(m or [])]:
            if name not in TRAIN_METRICS:
                raise ValueError(f"{src}: aggregate metric {name!r} is not a result of training jobs"
                                 f"{_suggest(name, TRAIN_METRICS)} (those: {', '.join(TRAIN_METRICS)})")
    return opts


def job_function(spec: dict):
    """The job function of a sweep: :func:`train_job` or the ``module:function`` of ``sweep.job``."""
    src = spec.get("_source", "sweep")
    name = sweep_options(spec)["job"]
    if name == "train":
        return train_job
    if ":" not in name:
        raise ValueError(f"{src}: sweep.job must be \"train\" or \"module:function\", got {name!r}")
    mod, attr = name.split(":", 1)
    try:
        m = importlib.import_module(mod)
    except ImportError as exc:
        raise ValueError(f"{src}: sweep.job: cannot import module {mod!r} ({exc})") from None
    fn = getattr(m, attr, None)
    if not callable(fn):
        raise ValueError(f"{src}: sweep.job: module {mod!r} has no function {attr!r}")
    fn_id(fn)
    return fn


def expand(spec: dict) -> list:
    """The jobs of a sweep: every condition × every value of every axis, all checked up front.

    Raises ``ValueError`` naming the section and key for an unknown section
    or key, zipped lists of different lengths, a key set by two sources, or
    a job whose run configuration is invalid (every job's configuration is
    built here, so a typo fails before anything runs). Jobs are ordered
    with the seed axis outermost, so that an interrupted sweep has all
    conditions for the first seeds.
    """
    from .training.configfile import SECTIONS as CFG_SECTIONS, check_keys
    src = spec.get("_source", "sweep")
    for sec in spec:
        if sec.startswith("_"):
            continue
        if sec not in SPEC_SECTIONS:
            raise ValueError(f"{src}: unknown section [{sec}]{_suggest(sec, SPEC_SECTIONS)} "
                             f"(sections: {', '.join('[' + s + ']' for s in SPEC_SECTIONS)})")
        if not isinstance(spec[sec], dict):
            raise ValueError(f"{src}: {sec} must be a section [{sec}], not a value")
    opts = sweep_options(spec)
    base = _base_dict(spec, src)

    sources = []   # (where, {key: value}) in application order, for key checks
    set_ = _flatten(spec.get("set", {}), "[set]", src)
    if "label" in set_:
        raise ValueError(f"{src}: [set]: key 'label' is not of the form SECTION.KEY")
    sources.append(("[set]", set_))
    conds = spec.get("conditions", {}) or {"base": {}}
    conditions = {}
    for cname, body in conds.items():
        _check_name("condition", cname, src)
        if not isinstance(body, dict):
            raise ValueError(f"{src}: conditions.{cname} must be a table [conditions.{cname}], got {body!r}")
        flat = _flatten(body, f"[conditions.{cname}]", src)
        if "label" in flat:
            raise ValueError(f"{src}: [conditions.{cname}]: key 'label' is not of the form SECTION.KEY")
        conditions[cname] = flat
        sources.append((f"[conditions.{cname}]", flat))
    axes = {}
    for aname, value in spec.get("axes", {}).items():
        _check_name("axis", aname, src)
        axes[aname] = _parse_axis(aname, value, src)
        for i, (_, point) in enumerate(axes[aname]):
            sources.append((f"axes.{aname}", point))

    if base is not None:
        task_name = base.get("task", {}).get("name", "delayed_xor")
        for where, d in sources:
            task_name = d.get("task.name", task_name)
        for where, d in sources:
            for key in d:
                sec, k = key.split(".", 1)
                if sec not in CFG_SECTIONS:
                    raise ValueError(f"{src}: {where}: {key!r}: unknown section [{sec}]"
                                     f"{_suggest(sec, CFG_SECTIONS)} (sections: {', '.join(CFG_SECTIONS)})")
                probe = {"task": {"name": task_name}}
                probe.setdefault(sec, {})[k] = None
                check_keys(probe, f"{src}: {where}")

    # which keys each condition / axis sets: a key set twice (other than by [set]) is ambiguous
    owners = {}
    for cname, flat in conditions.items():
        for key in flat:
            owners.setdefault(key, set()).add("conditions")
    for aname, points in axes.items():
        for _, point in points:
            for key in point:
                owners.setdefault(key, set()).add(f"axes.{aname}")
    for key, who in owners.items():
        if len(who) > 1:
            names = sorted(w if w != "conditions" else "[conditions]" for w in who)
            raise ValueError(f"{src}: {key!r} is set by both {names[0]} and {names[1]}; "
                             "let one of them own the key")

    seed_axis = opts["seed_axis"]
    anames = list(axes)
    order = ([seed_axis] if seed_axis else []) + ["\0condition"] + [a for a in anames if a != seed_axis]
    ranges = [list(conditions) if a == "\0condition" else range(len(axes[a])) for a in order]
    jobs, names = [], {}
    for combo in itertools.product(*ranges):
        pick = dict(zip(order, combo))
        cname = pick.pop("\0condition")
        overrides = [_override(k, v, "[set]", src) for k, v in set_.items()]
        overrides += [_override(k, v, f"[conditions.{cname}]", src) for k, v in conditions[cname].items()]
        labels = {}
        for a in anames:
            lab, point = axes[a][pick[a]]
            labels[a] = lab
            overrides += [_override(k, v, f"axes.{a}", src) for k, v in point.items()]
        name = "-".join([cname] + [f"{a}={_label(labels[a])}" for a in anames])
        if name in names:
            raise ValueError(f"{src}: two jobs would both be named {name!r}")
        names[name] = True
        job = Job(name, cname, labels, tuple(overrides), base)
        if base is not None:
            try:
                job.run_config()   # every job's configuration must be valid before anything runs
            except ValueError as exc:
                raise ValueError(f"{src}: {exc}") from None
        object.__setattr__(job, "digest", _job_digest(job))
        jobs.append(job)
    return jobs


# ---------------------------------------------------------------------------
# result files
# ---------------------------------------------------------------------------

def result_path(out_dir, job: Job) -> Path:
    return Path(out_dir) / "jobs" / f"{job.name}.h5"


def failed_path(out_dir, job: Job) -> Path:
    return Path(out_dir) / "jobs" / f"{job.name}.failed.txt"


def work_dir(out_dir, job: Job) -> Path:
    return Path(out_dir) / "work" / job.name


def _write_tree(g, d: dict, where: str = "") -> None:
    """A nested dict of scalars, arrays and strings as HDF5 datasets and groups (``None`` is left out)."""
    import h5py
    for key, v in d.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"result keys must be non-empty strings, got {where}{key!r}")
        if v is None:
            continue
        if isinstance(v, dict):
            _write_tree(g.require_group(key), v, f"{where}{key}/")
        elif isinstance(v, str):
            g.create_dataset(key, data=v, dtype=h5py.string_dtype())
        else:
            a = np.asarray(v)
            if a.dtype.kind in "UO":
                if not all(isinstance(x, str) for x in a.ravel()):
                    raise TypeError(f"result {where}{key}: cannot store {v!r} (numbers, arrays, strings "
                                    "and dicts of them)")
                a = a.astype(object)
                g.create_dataset(key, data=a, dtype=h5py.string_dtype())
            else:
                g.create_dataset(key, data=a)


def load_result(path) -> tuple:
    """``(meta, data)`` of a result file: ``meta`` its attributes (``axes`` and ``overrides``
    decoded from JSON), ``data`` every dataset by its ``a/b`` path (0-d values as Python scalars,
    strings as ``str``)."""
    import h5py
    meta, data = {}, {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            meta[k] = json.loads(v) if k in ("axes", "overrides") else (v.item() if hasattr(v, "item") else v)

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            if h5py.check_string_dtype(obj.dtype) is not None:
                v = obj.asstr()[()]
                v = v if isinstance(v, str) else np.asarray(v, dtype=object)
            else:
                v = obj[()]
                if np.ndim(v) == 0:
                    v = v.item()
            data[name] = v
        f.visititems(visit)
    return meta, data


def _stored_hash(path) -> str | None:
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("spec_hash", ""))
    except OSError:
        return None


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
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # a forked worker inherits the driver's handler
    threading.Thread(target=_watch_parent, args=(ppid,), daemon=True).start()
    from .threads import set_threads
    set_threads(threads, torch_too=False)


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, bool)}


def _execute(fn, job: Job, out_dir: str, spec_hash: str) -> dict:
    """Run ``fn(job, job_dir)`` and write its result file (atomically, only at the end).

    An exception becomes ``OUT/jobs/<name>.failed.txt`` and a ``failed``
    status (the sweep goes on); ``KeyboardInterrupt`` propagates.
    """
    out = Path(out_dir)
    jdir = work_dir(out, job)
    jdir.mkdir(parents=True, exist_ok=True)
    atomic_text(jdir / "job.json", json.dumps({"name": job.name, "spec_hash": spec_hash, "fn": fn_id(fn),
                                               "condition": job.condition, "axes": job.axes,
                                               "overrides": list(job.overrides)}, indent=1) + "\n")
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
            _write_tree(f, result)
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
        atomic_text(fp, f"job {job.name} failed after {time.perf_counter() - t0:.1f} s on "
                        f"{platform.node()} (pid {os.getpid()})\noverrides: {list(job.overrides)}\n\n{tb}")
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
        return "done" if _stored_hash(rp) == spec_hash else "stale"
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
        raise ValueError("--scheduler needs dask.distributed, the optional extra: "
                         "pip install -e \".[sweep]\"") from None
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


def _say(progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def run_jobs(fn, jobs, out_dir, *, executor=None, workers=None, scheduler=None, progress=print,
             force=False, threads=1) -> SweepResult:
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
        raise ValueError(f"{out} holds results or work of a different sweep for {len(stale)} job(s) "
                         f"(e.g. {stale[0].name}: its spec hash differs); choose another --out, or pass "
                         "--force to delete and recompute them")
    import shutil
    for j in stale:
        rp = result_path(out, j)
        if rp.exists():
            rp.unlink()
        shutil.rmtree(work_dir(out, j), ignore_errors=True)
        status[j.name] = "pending"
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    atomic_text(out / "jobs.json", json.dumps(
        [{"name": j.name, "condition": j.condition, "axes": j.axes, "overrides": list(j.overrides),
          "spec_hash": hashes[j.name], "fn": fid} for j in jobs], indent=1) + "\n")

    todo = [j for j in jobs if status[j.name] != "done"]
    skipped = [j.name for j in jobs if status[j.name] == "done"]
    for name in skipped:
        _say(progress, f"skip {name} (done)")
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
            _say(progress, f"{head} done {job.name} ({res['wall']:.1f} s)  {vals}".rstrip())
        else:
            failed.append(job.name)
            _say(progress, f"{head} FAILED {job.name}: {res['error']} (see {failed_path(out, job)})")

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
            _say(progress, f"running {len(todo)} job(s) on the Dask cluster at {scheduler} ({nw} workers)")
        elif executor is None and n_workers > 1:
            ctx = _pool_context()
            executor = cf.ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init,
                                              initargs=(os.getpid(), threads))
            own = True
            _say(progress, f"running {len(todo)} job(s) on {n_workers} worker processes "
                           f"({ctx.get_start_method()})")
        elif executor is None:
            _say(progress, f"running {len(todo)} job(s) in this process")
        try:
            if executor is None:
                for j in todo:
                    report(j, _execute(fn, j, str(out), hashes[j.name]))
            else:
                _run_on(executor, fn, todo, out, hashes, report, infrastructure_failure,
                        window=n_workers if isinstance(executor, cf.ProcessPoolExecutor) and own else None)
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
            except Exception as exc:     # e.g. BrokenProcessPool: a worker process died
                infrastructure_failure(j, exc)

    try:
        submit()
        while running:
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
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


# ---------------------------------------------------------------------------
# the standard job: one training run
# ---------------------------------------------------------------------------

def train_job(job: Job, job_dir) -> dict:
    """Train the job's run configuration in ``job_dir`` and return its final metrics and history.

    Resumes from ``job_dir/checkpoint.h5`` when it exists (a job cut short
    continues where its last checkpoint left it; the result is the same as
    an uninterrupted run's). Returns the scalars of :data:`TRAIN_METRICS`
    (final test accuracy/loss, best test accuracy and its epoch, ``‖∂L/∂x₀‖``
    at the start and end, λ₁ of the initial network, after pre-flossing
    and of the final network (1/step), flossing steps, epochs, training wall
    time, the epoch the job resumed from), ``spectrum_after`` (the final
    spectrum) and ``history``: every dataset of ``log.h5``
    (:func:`refimpl.training.read_log`).
    """
    from .training import Trainer, read_log
    job_dir = Path(job_dir)
    run = job.run_config()
    ck = job_dir / "checkpoint.h5"
    if ck.exists():
        tr = Trainer.resume(ck, run, job_dir)
    else:
        tr = Trainer(run, job_dir)
    resumed_from = tr.epoch
    tr.fit()
    log = read_log(job_dir / "log.h5")
    acc = log["epochs/test_acc"]
    out = {"test_acc": float(acc[-1]), "test_loss": float(log["epochs/test_loss"][-1]),
           "best_test_acc": float(np.max(acc)), "best_epoch": int(np.argmax(acc)),
           "test_acc_initial": float(acc[0]),
           "train_loss": float(log["epochs/train_loss"][-1]), "train_acc": float(log["epochs/train_acc"][-1]),
           "grad_x0": float(log["epochs/grad_x0"][-1]), "grad_x0_initial": float(log["epochs/grad_x0"][0]),
           "floss_steps": int(np.sum(log["epochs/floss_steps"])), "epochs": int(tr.epoch),
           "resumed_from_epoch": int(resumed_from), "wall_time": float(tr.wall)}
    se, st, sx = log["spectrum/epoch"], log["spectrum/stage"], log["spectrum/exponents"]
    for key, stage in (("lambda1_before", 0), ("lambda1_preflossed", 1)):
        idx = np.nonzero((se == 0) & (st == stage))[0]
        if idx.size:
            out[key] = float(sx[idx[0], 0])
    spec = tr.spectrum()
    out["lambda1_after"] = float(spec.exponents[0])
    out["spectrum_after"] = np.asarray(spec.exponents, float)
    out["history"] = log
    return out


# ---------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------

def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _stats(values) -> dict:
    a = np.asarray(values, float)
    n = a.size
    std = float(np.std(a, ddof=1)) if n > 1 else math.nan
    return {"n": n, "mean": float(np.mean(a)), "std": std, "sem": std / math.sqrt(n) if n > 1 else math.nan,
            "min": float(np.min(a)), "max": float(np.max(a))}


def aggregate(out_dir, spec: dict, *, progress=None) -> dict:
    """Mean, std (ddof 1), sem, n, min and max over the seed axis of every scalar result.

    Groups are (condition, values of the non-seed axes); only result files
    whose spec hash matches the sweep are used. Writes ``OUT/summary.csv``
    (one row per group and metric), ``OUT/summary.md`` (one row per group,
    ``mean ± sem`` per metric) and ``OUT/summary.png`` (``aggregate.metric``
    against ``aggregate.x``, one line per condition and combination of the
    other axes, error bars = sem). Returns ``{"rows": [...], "columns":
    [condition, axes...], "metrics": [...], "done": [...], "missing": [...],
    "failed": [...], "paths": {"csv", "md", "png"}}``; each row is a dict
    with the group columns and ``metric, n, mean, std, sem, min, max``.
    """
    out = Path(out_dir)
    jobs = expand(spec)
    opts = sweep_options(spec)
    fn = job_function(spec)
    seed_axis = opts["seed_axis"]
    axes = [a for a in (jobs[0].axes if jobs else {}) if a != seed_axis]
    columns = ["condition", *axes]
    groups, values, order = {}, {}, []
    done, missing, failed = [], [], []
    metric_names = []
    for j in jobs:
        rp = result_path(out, j)
        if not rp.exists() or _stored_hash(rp) != job_hash(j, fn):
            (failed if failed_path(out, j).exists() else missing).append(j.name)
            continue
        done.append(j.name)
        _, data = load_result(rp)
        key = (j.condition, *(_label(j.axes[a]) for a in axes))
        if key not in groups:
            groups[key] = {"condition": j.condition, **{a: j.axes[a] for a in axes}}
            values[key] = {}
            order.append(key)
        for m, v in data.items():
            if "/" in m or not _is_number(v):
                continue
            if m not in metric_names:
                metric_names.append(m)
            values[key].setdefault(m, []).append(float(v))
    primary = opts["metric"]
    metric_names.sort(key=lambda m: (m != primary, m))
    rows = []
    for key in order:
        for m in metric_names:
            if m in values[key]:
                rows.append({**groups[key], "metric": m, **_stats(values[key][m])})
    paths = {"csv": out / "summary.csv", "md": out / "summary.md", "png": out / "summary.png"}
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(paths["csv"], columns, rows)
    table = opts["metrics"] or ([m for m in TRAIN_TABLE if m in metric_names] if fn is train_job
                                else metric_names)
    if primary in metric_names and primary not in table:
        table = [primary, *table]
    atomic_text(paths["md"], _markdown(spec, columns, rows, order, groups, table, jobs, done, missing, failed,
                                       seed_axis))
    if primary in metric_names:
        _figure(paths["png"], rows, primary, opts["x"], axes, jobs, seed_axis)
    else:
        if paths["png"].exists():
            paths["png"].unlink()
        _say(progress, f"no figure: no result has the metric {primary!r}"
             + (f" (metrics: {', '.join(metric_names)})" if metric_names else ""))
        paths["png"] = None
    return {"rows": rows, "columns": columns, "metrics": metric_names, "done": done, "missing": missing,
            "failed": failed, "paths": paths}


def _write_csv(path, columns, rows) -> None:
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    stat_cols = ["metric", "n", "mean", "std", "sem", "min", "max"]
    w.writerow(columns + stat_cols)
    for r in rows:
        w.writerow([json.dumps(r[c]) if isinstance(r[c], (list, dict)) else r[c] for c in columns]
                   + [repr(r[c]) if isinstance(r[c], float) else r[c] for c in stat_cols])
    atomic_text(path, buf.getvalue())


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}g}"


def _markdown(spec, columns, rows, order, groups, table, jobs, done, missing, failed, seed_axis) -> str:
    src = spec.get("_source", "sweep")
    by = {}
    for r in rows:
        key = tuple(_label(r[c]) if c != "condition" else r[c] for c in columns)
        by.setdefault(key, {})[r["metric"]] = r
    lines = [f"# Sweep summary: {src}", "",
             f"{len(done)} of {len(jobs)} jobs done"
             + (f", {len(failed)} failed" if failed else "") + (f", {len(missing)} missing" if missing else "")
             + (f"; mean ± sem over the axis `{seed_axis}` (n = number of seeds)" if seed_axis
                else "; no seed axis (n = 1)") + ".", ""]
    lines.append("| " + " | ".join(columns + ["n"] + table) + " |")
    lines.append("|" + "---|" * (len(columns) + 1 + len(table)))
    for key in order:
        g = groups[key]
        cells = [str(g[c]) for c in columns]
        ms = by.get(key, {})
        n = max((r["n"] for r in ms.values()), default=0)
        cells.append(str(n))
        for m in table:
            r = ms.get(m)
            cells.append("" if r is None else (_fmt(r["mean"]) if r["n"] < 2
                                               else f"{_fmt(r['mean'])} ± {_fmt(r['sem'], 2)}"))
        lines.append("| " + " | ".join(cells) + " |")
    if failed:
        lines += ["", "Failed (see jobs/<name>.failed.txt): " + ", ".join(failed)]
    if missing:
        lines += ["", "Missing: " + ", ".join(missing)]
    return "\n".join(lines) + "\n"


def _figure(path, rows, metric, x, axes, jobs, seed_axis) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    rows = [r for r in rows if r["metric"] == metric]
    fig = Figure(figsize=(5.5, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    if x is None:
        xs_all = [r["condition"] for r in rows]
        numeric = False
    else:
        xs_all = [r[x] for r in rows]
        numeric = all(_is_number(v) for v in xs_all)
    cats = []
    for v in xs_all:
        if _label(v) not in cats:
            cats.append(_label(v))
    others = [a for a in axes if a != x]
    series = {}
    for r in rows:
        lab = ", ".join([r["condition"]] * (x is not None) + [f"{a}={_label(r[a])}" for a in others]) or metric
        series.setdefault(lab, []).append(r)
    for lab, rs in series.items():
        if x is None:
            pts = [(cats.index(r["condition"]), r) for r in rs]
        else:
            pts = [(float(r[x]) if numeric else cats.index(_label(r[x])), r) for r in rs]
        pts.sort(key=lambda p: p[0])
        ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts],
                    yerr=[0.0 if math.isnan(p[1]["sem"]) else p[1]["sem"] for p in pts],
                    marker="o", ms=4, capsize=3, label=lab,
                    ls="none" if x is None else "-")   # conditions are categories, not a curve
    if not numeric:
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats)
    elif len(cats) <= 12:
        ax.set_xticks(sorted({float(v) for v in xs_all}))
    ax.margins(x=0.15)
    ax.set_xlabel(x if x is not None else "condition")
    ax.set_ylabel(metric)
    ns = sorted({r["n"] for r in rows})
    n = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    ax.set_title(f"mean ± sem over {seed_axis} (n = {n})" if seed_axis else "one job per point", fontsize=9)
    if len(series) > 1 or x is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)


def _checkpoint_epoch(path) -> int | None:
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["epoch"])
    except (OSError, KeyError, ValueError):
        return None


def run_cli(args) -> int:
    """``refimpl sweep`` (the parser is :mod:`refimpl.cli.sweep`)."""
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
        n_set = len(_flatten(spec.get("set", {}), "[set]", ""))
        print(f"{len(jobs)} jobs ({fn_id(fn)}), output in {out}")
        if n_set and jobs:
            print(f"  [set] for every job: {' '.join(jobs[0].overrides[:n_set])}")
        for j in jobs:
            st = job_status(out, j, job_hash(j, fn))
            counts[st] = counts.get(st, 0) + 1
            if st == "partial":
                e = _checkpoint_epoch(work_dir(out, j) / "checkpoint.h5")
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
            res = run_jobs(fn, jobs, out, workers=args.workers or opts["workers"], scheduler=args.scheduler,
                           progress=progress, force=args.force, threads=opts["threads"])
        except KeyboardInterrupt:
            done = sum(result_path(out, j).exists() for j in jobs)
            print(f"refimpl sweep: interrupted (Ctrl-C); {done} of {len(jobs)} results are in {out / 'jobs'}; rerun the same "
                  "command to continue (finished jobs are skipped, training jobs resume from their "
                  "checkpoints)", file=sys.stderr)
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
        print(f"sweep: {len(jobs)} jobs: {len(res.ran)} ran, {len(res.skipped)} skipped, "
              f"{len(res.failed)} failed ({el:.1f} s); wrote {files}")
        if res.failed:
            print("failed jobs (tracebacks in " + str(out / "jobs") + "/<name>.failed.txt): "
                  + ", ".join(res.failed), file=sys.stderr)
            return 1
        return 0
    print(f"aggregated {len(agg['done'])} of {len(jobs)} jobs; wrote {files}")
    return 0
