"""The published gradient-flossing protocol (presets ``gf_rate_xor``, ``gf_binary_xor``): accuracy against
the delay with and without flossing, ‖∂L/∂h₀‖ against epoch, λ₁ over the flossing steps.

A sweep file in ``figures/sweeps/`` (``gf_rate_xor.toml``, ``gf_binary_xor.toml``) defines the grid.
Its job, :func:`gf_job`, is :func:`refimpl.sweep.train_job` with the history trimmed to what the
figures use (the full flossing spectra of 1500 steps × 75 exponents would be ~1 MB per run), so
that the per-run result files in ``figures/runs/<study>/jobs/`` are small enough to commit: a
later session completes an interrupted grid by rerunning the same command, which skips every
finished job.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import common

SOLVED = 0.9  # a run "solves" the task when its final test accuracy reaches this


def gf_job(job, job_dir) -> dict:
    from refimpl.sweep import train_job

    out = train_job(job, job_dir)
    h = out.pop("history")
    keep = {
        k: np.asarray(h[k])
        for k in (
            "epochs/epoch",
            "epochs/test_acc",
            "epochs/test_loss",
            "epochs/train_loss",
            "epochs/grad_x0",
            "epochs/grad_norm",
            "epochs/floss_steps",
            "spectrum/epoch",
            "spectrum/stage",
            "spectrum/exponents",
            "flossing/epoch",
            "flossing/loss",
        )
        if k in h
    }
    fx = np.asarray(h.get("flossing/exponents", np.zeros((0, 1))))
    keep["flossing/lambda1"] = fx[:, 0] if fx.size else np.zeros(0)
    acc, ep = keep["epochs/test_acc"], keep["epochs/epoch"]
    hit = np.nonzero(acc >= SOLVED)[0]
    out["epochs_to_solved"] = float(ep[hit[0]]) if hit.size else float("nan")
    out["history"] = keep
    return out


def _delta(v):
    return v["task.delta"] if isinstance(v, dict) else v


LABELS = {"none": "no flossing", "floss": "flossing (published schedule)"}


def run_study(sweep_file: str, name: str, title: str, argv=None, doc: str = "", group=None, series_name="surrogate",
    args=None) -> dict:  # fmt: skip
    """Run (or continue) the sweep and draw accuracy against d, ‖∂L/∂h₀‖ against epoch, λ₁ over flossing.
    ``args``: the arguments already parsed (by a script with flags of its own), else parsed from ``argv``."""
    args = args if args is not None else common.parser(doc).parse_args(argv)
    t0 = time.time()
    spec, jobs, runs, _ = common.run_sweep(sweep_file, args, quick_spec)
    group = group or (lambda j: (j.condition, _delta(j.axes["delta"])))
    by = common.results_by(jobs, runs, group)
    for rs in by.values():  # result files are flat: "history/epochs/test_acc" -> r["history"]["epochs/test_acc"]
        for r in rs:
            r["history"] = {k[len("history/") :]: np.asarray(v) for k, v in r.items() if k.startswith("history/")}
    return figure(by, common.out_dir(args), name, title, spec, t0, len(jobs), argv, series_name)


def quick_spec(s: dict) -> None:
    s["axes"]["seed"] = {k: v[:1] for k, v in s["axes"]["seed"].items()}
    s["axes"]["delta"] = [{"task.delta": 3}, {"task.delta": 5}]  # fits the quick T
    if "layers" in s["axes"]:
        s["axes"]["layers"] = [{"network.layers": [12, 12]}]
    s["set"].update(
        {
            "training.epochs": 3,
            "training.test_size": 16,
            "training.eval_every": 2,
            "network.layers": [12],
            "lyapunov.k": 4,
            "lyapunov.every": 2,
            "task.T": 60,
        }
    )
    for c in s["conditions"].values():
        if c.get("flossing.schedule") != "none":  # absent: the preset's schedule
            c.update({"flossing.pre_steps": 2, "flossing.steps": 2, "flossing.k": min(4, c.get("flossing.k", 4))})
            if c.get("flossing.every", 1):
                c["flossing.every"] = 2
        elif c.get("flossing.weight", 0) > 0:  # flossing as a loss term only
            c["flossing.k"] = 4


def figure(by, out, name, title, spec, t0, n_jobs, argv, series_name="surrogate"):
    """``series_name``: the name of the second key of a run's group (the table column)."""
    plt = common.pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.2))
    series = sorted({k[:-1] for k in by}, key=lambda c: (c[1:], c[0] != "none"))  # (condition[, surrogate])
    rows, data, cpu = [], {}, 0.0
    for ci, ser in enumerate(series):
        cond = ser[0]
        color, marker = f"C{ci}", "os^vD<>"[ci % 7]
        keys = sorted([k for k in by if k[:-1] == ser], key=lambda k: k[-1])
        d_vals = np.array([2 * k[-1] for k in keys])  # the paper's d = 2 delta
        accs = [np.array([r["test_acc"] for r in by[k]]) for k in keys]
        m = np.array([a.mean() for a in accs])
        sem = np.array([a.std(ddof=1) / np.sqrt(a.size) if a.size > 1 else 0.0 for a in accs])
        lab = ", ".join([LABELS.get(cond, cond), *ser[1:]])
        ax[0].errorbar(d_vals, m, yerr=sem, marker=marker, color=color, capsize=3, label=lab)
        for d, a in zip(d_vals, accs):
            ax[0].scatter(np.full(a.size, d), a, s=8, alpha=0.4, color=color)
        for k, d, a in zip(keys, d_vals, accs):
            rs = by[k]
            cpu += sum(r["wall_time"] for r in rs)
            e90 = np.array([r["epochs_to_solved"] for r in rs])
            rows.append(
                [
                    *k[:-1],
                    int(d),
                    a.size,
                    float(a.mean()),
                    float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("nan"),
                    float(a.min()),
                    float(a.max()),
                    f"{int(np.sum(a >= SOLVED))}/{a.size}",
                    float(np.nanmedian(e90)) if np.any(np.isfinite(e90)) else float("nan"),
                    f"{np.exp(np.mean(np.log([r['grad_x0_initial'] for r in rs]))):.1e}",
                    f"{np.exp(np.mean(np.log([r['grad_x0'] for r in rs]))):.1e}",
                    float(np.mean([r["lambda1_after"] for r in rs])),
                    float(np.mean([r["floss_steps"] for r in rs])),
                    float(np.mean([r["wall_time"] for r in rs])),
                ]
            )
            data.setdefault("/".join(map(str, ser)), {})[str(int(d))] = [
                {
                    kk: r[kk]
                    for kk in (
                        "test_acc",
                        "best_test_acc",
                        "epochs_to_solved",
                        "grad_x0_initial",
                        "grad_x0",
                        "lambda1_after",
                        "floss_steps",
                        "wall_time",
                    )
                }
                | {
                    "grad_x0_rows": r["history"]["epochs/grad_x0"],
                    "acc_rows": r["history"]["epochs/test_acc"],
                    "train_loss_rows": r["history"]["epochs/train_loss"],
                    # every 10th flossing step: the JSON stays small (the full trace is in the job file)
                    "floss_lambda1_every10": r["history"]["flossing/lambda1"][::10],
                }
                for r in rs
            ]
        # ‖∂L/∂h₀‖ against epoch at the middle delay, λ₁ over flossing steps at every delay (seed 0)
        mid = keys[len(keys) // 2]
        for r in by[mid]:
            h = r["history"]
            ax[1].semilogy(h["epochs/epoch"], h["epochs/grad_x0"], color=color, alpha=0.5,
                label=f"{lab}, d = {2 * mid[-1]}" if r is by[mid][0] else None)  # fmt: skip
        for k in keys:
            lam = by[k][0]["history"]["flossing/lambda1"]
            if lam.size:
                ax[2].plot(lam, color=color, alpha=0.3 + 0.7 * keys.index(k) / max(1, len(keys) - 1),
                    label=f"{', '.join(map(str, ser[1:]))} d = {2 * k[-1]}".strip())  # fmt: skip
    ax[0].axhline(0.5, color="gray", lw=0.5, ls=":", label="chance")
    ax[0].set(xlabel="delay d = 2δ (steps)", ylabel="final test accuracy", ylim=(0.4, 1.02))
    ax[0].set_title(title, fontsize=8)
    ax[0].legend(fontsize=8)
    ax[1].set(xlabel="epoch", ylabel="‖∂L/∂h₀‖ (test loss)", title="gradient w.r.t. the initial state")
    ax[1].legend(fontsize=8)
    ax[2].set(xlabel="flossing step (pre: 0–499, then two sessions)", ylabel="λ₁ (1/step), flossing input",
        title="largest exponent λ₁ while flossing (seed 1)")  # fmt: skip
    ax[2].legend(fontsize=7)
    seeds = spec["axes"]["seed"]
    header = ["condition", *([series_name] if len(keys[0]) > 2 else []), "d", "n", "accuracy (mean)", "sem",
        "min", "max", "solved (≥ 0.9)", "epochs to 0.9 (median)", "‖∂L/∂h₀‖ start (geo.)", "‖∂L/∂h₀‖ end (geo.)",
        "λ₁ end (mean, 1/step)", "flossing steps (mean)", "wall s/run"]  # fmt: skip
    table = (
        f"# {title}\n\n"
        + common.provenance(argv, t0)
        + f"\nSweep file: `figures/sweeps/{Path(spec['_source']).name}` (base preset "
        f"`{spec['sweep']['base']}`); seeds (network.seed = task.seed): {list(seeds['network.seed'])}; "
        f"{n_jobs} runs, {cpu / 60:.0f} CPU-minutes of training. Chance is 0.5; the best reachable "
        "accuracy is about 0.998 (the first scored step depends on a hidden bit, as in the reference). "
        "Wall times were measured with two runs sharing the two cores.\n\n" + common.md_table(header, rows, "{:.3f}")
    )
    common.write_outputs(out, name, fig, table, data, indent=None)
    return {"rows": rows}
