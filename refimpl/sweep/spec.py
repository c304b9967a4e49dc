"""The sweep file and its jobs: reading and checking a spec, expanding it into :class:`Job` records, their
hashes (docs/sweep.md)."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import itertools
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


from refimpl.training.configfile import resolve_named, shipped_names

RESULT_FORMAT = "refimpl-sweep-job"
SWEEP_DIR = Path(__file__).resolve().parent.parent / "presets" / "sweeps"

SPEC_SECTIONS = ("sweep", "axes", "conditions", "set", "aggregate")
SWEEP_KEYS = ("base", "out", "job", "workers", "seed_axis", "threads")
AGGREGATE_KEYS = ("metric", "x", "metrics")

#: the scalar results of :func:`train_job` (the metrics a sweep of training runs can aggregate)
TRAIN_METRICS = ("test_acc", "test_loss", "best_test_acc", "best_epoch", "test_acc_initial", "train_loss",
    "train_acc", "grad_x0", "grad_x0_initial", "lambda1_before", "lambda1_preflossed", "lambda1_after",
    "floss_steps", "epochs", "resumed_from_epoch", "wall_time")  # fmt: skip
#: the columns of summary.md for training sweeps (all scalar metrics go to summary.csv)
TRAIN_TABLE = ("test_acc", "best_test_acc", "test_loss", "grad_x0", "lambda1_before", "lambda1_after", "floss_steps", "wall_time")

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
        from refimpl.training.configfile import apply_overrides, from_dict

        if self.base is None:
            raise ValueError(f"job {self.name}: the sweep has no base configuration (sweep.base)")
        return from_dict(apply_overrides(self.base, self.overrides, source=f"job {self.name}:"), source=f"job {self.name}")


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
        d["config"] = {sec: {k: cfg.get(sec, {}).get(k) for k in sorted(keys)} for sec,
            keys in sorted(explicit.items()) if sec != "output"}  # fmt: skip
    else:
        d["overrides"] = list(job.overrides)
    return _sha(d)


#: the built-in training job lived in the module refimpl.sweep before it became a package; result files
#: hash it under that name, which it keeps so that finished results stay valid
STABLE_IDS = {"refimpl.sweep.trainjob:train_job": "refimpl.sweep:train_job"}


def fn_id(fn) -> str:
    """``module:qualname`` of a job function (it must be importable by the workers)."""
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not mod or not qual or "<" in qual:
        raise ValueError(
            f"the job function must be a top-level function of an importable module (the workers import it), got {fn!r}"
        )
    return STABLE_IDS.get(f"{mod}:{qual}", f"{mod}:{qual}")


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
        raise ValueError(
            f"{src}: {kind} name {name!r} may only contain letters, digits, '_', '.' and '+' (it becomes part of file names)"
        )


def flatten(d: dict, where: str, src: str) -> dict:
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
                raise ValueError(f'{src}: {where}: key {k!r} is not of the form SECTION.KEY (e.g. "training.lr")')
            out[k] = v
    return out


def label(v) -> str:
    """A value as it appears in a job name."""
    if isinstance(v, bool):
        s = "true" if v else "false"
    elif isinstance(v, float):
        s = repr(v)
    elif isinstance(v, (list, tuple)):
        s = "_".join(label(x) for x in v)
    else:
        s = str(v)
    return "".join(c if c in _ALLOWED_NAME or c == "-" else "_" for c in s)


def _override(key: str, value, where: str, src: str) -> str:
    from refimpl.training.configfile import toml_value

    try:
        return f"{key}={toml_value(value)}"
    except ValueError:
        raise ValueError(f"{src}: {where}: {key} = {value!r} is not a TOML value a run configuration can take") from None


def _parse_axis(name: str, value, src: str) -> list:
    """An axis as ``[(label value, {key: value}), ...]``."""
    where = f"axes.{name}"
    form = (
        f'{where} must be a table of zipped lists ({{ "section.key" = [v1, v2] }}) or a list of '
        f'tables ([{{ "section.key" = v1 }}, ...])'
    )
    if isinstance(value, dict):
        flat = flatten(value, where, src)
        labels = flat.pop("label", None)
        if not flat:
            raise ValueError(f"{src}: {where} sets no SECTION.KEY")
        n = None
        for k, v in flat.items():
            if not isinstance(v, list) or not v:
                raise ValueError(f"{src}: {where}: {k!r} must be a non-empty list of values (zipped keys), got {v!r}")
            if n is None:
                n, first = len(v), k
            elif len(v) != n:
                raise ValueError(
                    f"{src}: {where}: the zipped lists differ in length: {first!r} has {n} values, {k!r} has {len(v)}"
                )
        if labels is not None and (not isinstance(labels, list) or len(labels) != n):
            raise ValueError(f"{src}: {where}: label must be a list of {n} values, got {labels!r}")
        keys = list(flat)
        points = [{k: flat[k][i] for k in keys} for i in range(n)]
        labels = labels if labels is not None else [flat[keys[0]][i] for i in range(n)]
        out = list(zip(labels, points))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = []
        for i, v in enumerate(value):
            flat = flatten(v, f"{where}[{i}]", src)
            lab = flat.pop("label", None)
            if not flat:
                raise ValueError(f"{src}: {where}[{i}] sets no SECTION.KEY")
            out.append((lab if lab is not None else next(iter(flat.values())), flat))
    else:
        raise ValueError(f"{src}: {form}, got {value!r}")
    seen = {}
    for lab, _ in out:
        s = label(lab)
        if s in seen:
            raise ValueError(f"{src}: {where}: two values share the label {s!r} in job names (give each a distinct label = ...)")
        seen[s] = True
    return out


def _base_dict(spec: dict, src: str):
    """The base configuration as a dict (``None`` if the sweep has no base)."""
    from refimpl.training.configfile import resolve_path

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
            raise ValueError(
                f"{src}: unknown key {key!r} in [sweep]{_suggest(key, SWEEP_KEYS)} (valid keys: {', '.join(SWEEP_KEYS)})"
            )
    ag = spec.get("aggregate", {})
    for key in ag:
        if key not in AGGREGATE_KEYS:
            raise ValueError(
                f"{src}: unknown key {key!r} in [aggregate]{_suggest(key, AGGREGATE_KEYS)} "
                f"(valid keys: {', '.join(AGGREGATE_KEYS)})"
            )
    axes = list(spec.get("axes", {}))
    default_out = f"runs/sweep_{Path(src).stem}" if "_source" in spec else "runs/sweep"
    opts = {"base": sw.get("base"), "out": sw.get("out", default_out), "job": sw.get("job", "train"),
        "workers": sw.get("workers", os.cpu_count() or 1), "threads": sw.get("threads", 1),
        "seed_axis": sw.get("seed_axis", "seed" if "seed" in axes else None),
        "metric": ag.get("metric", "test_acc"), "metrics": ag.get("metrics")}  # fmt: skip
    for key in ("out", "job"):
        if not isinstance(opts[key], str) or not opts[key]:
            raise ValueError(f"{src}: sweep.{key} must be a non-empty string, got {opts[key]!r}")
    for key in ("workers", "threads"):
        v = opts[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{src}: sweep.{key} must be an integer >= 1, got {v!r}")
    sa = opts["seed_axis"]
    if sa is not None and sa not in axes:
        raise ValueError(
            f"{src}: sweep.seed_axis = {sa!r} is not an axis{_suggest(sa, axes)} (axes: {', '.join(axes) or 'none'})"
        )
    if opts["job"] == "train" and opts["base"] is None:
        raise ValueError(f'{src}: sweep.base is required for job = "train" (a preset name or a TOML path)')
    if not isinstance(opts["metric"], str):
        raise ValueError(f"{src}: aggregate.metric must be a string, got {opts['metric']!r}")
    others = [a for a in axes if a != sa]
    x = ag.get("x", others[0] if others else None)
    if x is not None and x not in others:
        raise ValueError(
            f"{src}: aggregate.x = {x!r} must be one of the axes that are not the seed axis"
            f"{_suggest(x, others)} (those: {', '.join(others) or 'none'})"
        )
    opts["x"] = x
    m = opts["metrics"]
    if m is not None and (not isinstance(m, list) or not all(isinstance(s, str) for s in m)):
        raise ValueError(f"{src}: aggregate.metrics must be a list of metric names, got {m!r}")
    if opts["job"] == "train":
        for name in [opts["metric"], *(m or [])]:
            if name not in TRAIN_METRICS:
                raise ValueError(
                    f"{src}: aggregate metric {name!r} is not a result of training jobs"
                    f"{_suggest(name, TRAIN_METRICS)} (those: {', '.join(TRAIN_METRICS)})"
                )
    return opts


def job_function(spec: dict):
    """The job function of a sweep: :func:`train_job` or the ``module:function`` of ``sweep.job``."""
    src = spec.get("_source", "sweep")
    name = sweep_options(spec)["job"]
    if name == "train":
        from refimpl.sweep.trainjob import train_job

        return train_job
    if ":" not in name:
        raise ValueError(f'{src}: sweep.job must be "train" or "module:function", got {name!r}')
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
    from refimpl.training.configfile import SECTIONS as CFG_SECTIONS, check_keys

    src = spec.get("_source", "sweep")
    for sec in spec:
        if sec.startswith("_"):
            continue
        if sec not in SPEC_SECTIONS:
            raise ValueError(
                f"{src}: unknown section [{sec}]{_suggest(sec, SPEC_SECTIONS)} "
                f"(sections: {', '.join('[' + s + ']' for s in SPEC_SECTIONS)})"
            )
        if not isinstance(spec[sec], dict):
            raise ValueError(f"{src}: {sec} must be a section [{sec}], not a value")
    opts = sweep_options(spec)
    base = _base_dict(spec, src)

    sources = []  # (where, {key: value}) in application order, for key checks
    set_ = flatten(spec.get("set", {}), "[set]", src)
    if "label" in set_:
        raise ValueError(f"{src}: [set]: key 'label' is not of the form SECTION.KEY")
    sources.append(("[set]", set_))
    conds = spec.get("conditions", {}) or {"base": {}}
    conditions = {}
    for cname, body in conds.items():
        _check_name("condition", cname, src)
        if not isinstance(body, dict):
            raise ValueError(f"{src}: conditions.{cname} must be a table [conditions.{cname}], got {body!r}")
        flat = flatten(body, f"[conditions.{cname}]", src)
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
                    raise ValueError(
                        f"{src}: {where}: {key!r}: unknown section [{sec}]"
                        f"{_suggest(sec, CFG_SECTIONS)} (sections: {', '.join(CFG_SECTIONS)})"
                    )
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
            raise ValueError(f"{src}: {key!r} is set by both {names[0]} and {names[1]}; let one of them own the key")

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
        name = "-".join([cname] + [f"{a}={label(labels[a])}" for a in anames])
        if name in names:
            raise ValueError(f"{src}: two jobs would both be named {name!r}")
        names[name] = True
        job = Job(name, cname, labels, tuple(overrides), base)
        if base is not None:
            try:
                job.run_config()  # every job's configuration must be valid before anything runs
            except ValueError as exc:
                raise ValueError(f"{src}: {exc}") from None
        object.__setattr__(job, "digest", _job_digest(job))
        jobs.append(job)
    return jobs
