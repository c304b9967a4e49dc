"""Aggregating a sweep's results: mean ± sem over seeds into summary.csv, .md and .png."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from refimpl.checks import is_num
from refimpl.io import atomic_savefig, atomic_text
from refimpl.sweep.engine import say
from refimpl.sweep.results import failed_path, load_result, result_path, stored_hash
from refimpl.sweep.spec import TRAIN_TABLE, expand, job_function, job_hash, label, sweep_options
from refimpl.sweep.trainjob import train_job

# ---------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------


def _stats(values) -> dict:
    a = np.asarray(values, float)
    n = a.size
    std = float(np.std(a, ddof=1)) if n > 1 else math.nan
    return {"n": n, "mean": float(np.mean(a)), "std": std, "sem": std / math.sqrt(n) if n > 1 else math.nan,
        "min": float(np.min(a)), "max": float(np.max(a))}  # fmt: skip


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
        if not rp.exists() or stored_hash(rp) != job_hash(j, fn):
            (failed if failed_path(out, j).exists() else missing).append(j.name)
            continue
        done.append(j.name)
        _, data = load_result(rp)
        key = (j.condition, *(label(j.axes[a]) for a in axes))
        if key not in groups:
            groups[key] = {"condition": j.condition, **{a: j.axes[a] for a in axes}}
            values[key] = {}
            order.append(key)
        for m, v in data.items():
            if "/" in m or not is_num(v):
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
    table = opts["metrics"] or ([m for m in TRAIN_TABLE if m in metric_names] if fn is train_job else metric_names)
    if primary in metric_names and primary not in table:
        table = [primary, *table]
    atomic_text(paths["md"], _markdown(spec, columns, rows, order, groups, table, jobs, done, missing, failed, seed_axis))
    if primary in metric_names:
        _figure(paths["png"], rows, primary, opts["x"], axes, jobs, seed_axis)
    else:
        if paths["png"].exists():
            paths["png"].unlink()
        say(
            progress,
            f"no figure: no result has the metric {primary!r}"
            + (f" (metrics: {', '.join(metric_names)})" if metric_names else ""),
        )
        paths["png"] = None
    return {"rows": rows, "columns": columns, "metrics": metric_names, "done": done, "missing": missing,
        "failed": failed, "paths": paths}  # fmt: skip


def _write_csv(path, columns, rows) -> None:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    stat_cols = ["metric", "n", "mean", "std", "sem", "min", "max"]
    w.writerow(columns + stat_cols)
    for r in rows:
        w.writerow(
            [json.dumps(r[c]) if isinstance(r[c], (list, dict)) else r[c] for c in columns]
            + [repr(r[c]) if isinstance(r[c], float) else r[c] for c in stat_cols]
        )
    atomic_text(path, buf.getvalue())


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}g}"


def _markdown(spec, columns, rows, order, groups, table, jobs, done, missing, failed, seed_axis) -> str:
    src = spec.get("_source", "sweep")
    by = {}
    for r in rows:
        key = tuple(label(r[c]) if c != "condition" else r[c] for c in columns)
        by.setdefault(key, {})[r["metric"]] = r
    lines = [
        f"# Sweep summary: {src}",
        "",
        f"{len(done)} of {len(jobs)} jobs done"
        + (f", {len(failed)} failed" if failed else "")
        + (f", {len(missing)} missing" if missing else "")
        + (f"; mean ± sem over the axis `{seed_axis}` (n = number of seeds)" if seed_axis else "; no seed axis (n = 1)")
        + ".",
        "",
    ]
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
            cells.append("" if r is None else (_fmt(r["mean"]) if r["n"] < 2 else f"{_fmt(r['mean'])} ± {_fmt(r['sem'], 2)}"))
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
        numeric = all(is_num(v) for v in xs_all)
    cats = []
    for v in xs_all:
        if label(v) not in cats:
            cats.append(label(v))
    others = [a for a in axes if a != x]
    series = {}
    for r in rows:
        lab = ", ".join([r["condition"]] * (x is not None) + [f"{a}={label(r[a])}" for a in others]) or metric
        series.setdefault(lab, []).append(r)
    for lab, rs in series.items():
        if x is None:
            pts = [(cats.index(r["condition"]), r) for r in rs]
        else:
            pts = [(float(r[x]) if numeric else cats.index(label(r[x])), r) for r in rs]
        pts.sort(key=lambda p: p[0])
        ax.errorbar(
            [p[0] for p in pts],
            [p[1]["mean"] for p in pts],
            yerr=[0.0 if math.isnan(p[1]["sem"]) else p[1]["sem"] for p in pts],
            marker="o",
            ms=4,
            capsize=3,
            label=lab,
            ls="none" if x is None else "-",
        )  # conditions are categories, not a curve
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
