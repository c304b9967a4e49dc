"""Accuracy against delay, with and without flossing: the shared body of figures (a) and (c).

A sweep file in ``figures/sweeps/`` defines the grid (seeds × δ × conditions);
this module runs it with :mod:`refimpl.sweep` (one HDF5 result per job in
``figures/runs/<study>/jobs/``, finished jobs skipped on a rerun, so an
interrupted figure continues where it stopped) and turns the results into the
figure and its table.

:func:`delay_job` is the sweep's job: :func:`refimpl.sweep.train_job` plus
the quantities measured at the start of training, on a fresh in-memory
trainer of the same configuration (deterministic, so these are the
network's values at the start of the job's training):

* ``grad_x0_preflossed``: ``‖∂L/∂x₀‖`` of the test loss after the
  pre-flossing boundary (equal to ``grad_x0_initial`` without flossing);
* ``lambda1_initial`` and ``lambda1_preflossed``: λ₁ (1/step) before and
  after pre-flossing, on the run's spectrum input.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import common

SOLVED = 0.9  # a run "solves" the task when its final test accuracy reaches this


def delay_job(job, job_dir) -> dict:
    from refimpl.sweep import train_job
    from refimpl.training import Trainer

    out = train_job(job, job_dir)
    tr = Trainer(job.run_config())
    out["lambda1_initial"] = float(tr.spectrum(1).exponents[0])
    tr.boundary(0)
    out["grad_x0_preflossed"] = float(tr.evaluate()["grad_x0"])
    out["lambda1_preflossed"] = float(tr.spectrum(1).exponents[0])
    return out


def quick_spec(s: dict) -> None:
    """The same sweep on a toy budget (2 delays, 1 seed, 2 epochs), for smoke tests."""
    s["axes"]["seed"] = {k: v[:1] for k, v in s["axes"]["seed"].items()}
    s["axes"]["delta"] = s["axes"]["delta"][:2]
    s["set"].update(
        {
            "training.epochs": 2,
            "training.steps_per_epoch": 3,
            "training.test_size": 32,
            "network.layers": [12],
            "lyapunov.k": 4,
            "flossing.k": 4,
        }
    )
    for c in s["conditions"].values():
        if c.get("flossing.pre_steps"):
            c.update({"flossing.pre_steps": 3, "flossing.k": 4})


KEEP = ("test_acc", "best_test_acc", "grad_x0_initial", "grad_x0_preflossed", "lambda1_initial",
    "lambda1_preflossed", "lambda1_after", "wall_time")  # fmt: skip


def run_study(sweep_files, name: str, title: str, argv=None, doc: str = "") -> dict:
    """Run the sweeps (one file, or several whose condition names differ) and draw one figure."""
    args = common.parser(doc).parse_args(argv)
    t0 = time.time()
    results, specs, n_jobs = {}, [], 0
    for sweep_file in [sweep_files] if isinstance(sweep_files, str) else sweep_files:
        spec, jobs, runs, _ = common.run_sweep(sweep_file, args, quick_spec)
        by = common.results_by(jobs, runs, lambda j: (j.condition, _delta(j.axes["delta"])))
        for (cond, delta), ds in by.items():
            results.setdefault(cond, {})[delta] = [{k: d[k] for k in KEEP} for d in ds]
        specs.append(spec)
        n_jobs += len(jobs)
    return figure(results, common.out_dir(args), name, title, specs, t0, n_jobs, argv)


def _delta(v):
    return v["task.delta"] if isinstance(v, dict) else v


LABELS = {"none": "no flossing", "floss": "pre-flossing", "none_ignored": "no flossing, reset_grad ignored",
    "floss_ignored": "pre-flossing, reset_grad ignored"}  # fmt: skip


def figure(results, out, name, title, specs, t0, n_jobs, argv):
    spec = specs[0]
    plt = common.pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    rows, data = [], {}
    cpu = 0.0
    for ci, cond in enumerate(results):
        marker, color = "os^v"[ci % 4], f"C{ci}"
        byd = results[cond]
        ds = sorted(byd, key=_delta)
        dv = np.array([_delta(d) for d in ds])
        acc = [np.array([r["test_acc"] for r in byd[d]]) for d in ds]
        g0 = [np.array([r["grad_x0_preflossed"] for r in byd[d]]) for d in ds]
        label = LABELS.get(cond, cond)
        m = np.array([a.mean() for a in acc])
        sem = np.array([a.std(ddof=1) / np.sqrt(a.size) if a.size > 1 else 0.0 for a in acc])
        ax[0].errorbar(dv, m, yerr=sem, marker=marker, color=color, capsize=3, label=label)
        for d, a in zip(dv, acc):
            ax[0].scatter(np.full(a.size, d), a, s=8, alpha=0.4, color=color)
        gm = np.array([np.exp(np.mean(np.log(g))) for g in g0])
        ax[1].semilogy(dv, gm, marker=marker, color=color, label=label)
        for d, rs in zip(dv, (byd[d] for d in ds)):
            a = np.array([r["test_acc"] for r in rs])
            cpu += sum(r["wall_time"] for r in rs)
            rows.append(
                [
                    cond,
                    int(d),
                    a.size,
                    float(a.mean()),
                    float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("nan"),
                    float(a.min()),
                    float(a.max()),
                    f"{int(np.sum(a >= SOLVED))}/{a.size}",
                    f"{np.exp(np.mean(np.log([r['grad_x0_preflossed'] for r in rs]))):.2e}",
                    float(np.mean([r["lambda1_preflossed"] for r in rs])),
                    float(np.mean([r["lambda1_after"] for r in rs])),
                ]
            )
        data[cond] = {str(int(d)): rs for d, rs in zip(dv, (byd[d] for d in ds))}
    ax[0].axhline(0.5, color="gray", lw=0.5, ls=":")
    ax[0].set(xlabel="delay δ (steps)", ylabel="final test accuracy", title=title, ylim=(0.4, 1.02))
    ax[0].legend(fontsize=8)
    ax[1].set(xlabel="delay δ (steps)", ylabel="‖∂L/∂x₀‖ (geometric mean over seeds)", title="‖∂L/∂x₀‖ at the start of training")
    ax[1].legend(fontsize=8)
    sw = spec["set"]
    budget = (
        f"{sw.get('training.epochs')} epochs × {sw.get('training.steps_per_epoch', 20)} Adam steps "
        f"(batch 32) per run; pre-flossing {spec['conditions']['floss'].get('flossing.pre_steps')} steps, "
        f"k = {spec['conditions']['floss'].get('flossing.k')}; {n_jobs} runs, "
        f"{cpu / 60:.0f} CPU-minutes of training in total"
    )
    seeds = spec["axes"]["seed"]
    table = (
        f"# {title}\n\n"
        + common.provenance(argv, t0)
        + "\nSweep files: "
        + ", ".join(f"`figures/sweeps/{Path(sp['_source']).name}`" for sp in specs)
        + f"; seeds (network.seed = task.seed): "
        f"{list(seeds['network.seed'])}; {budget}. "
        f"'solved' = final test accuracy ≥ {SOLVED}. Chance is 0.5. "
        "'At start' = after the pre-flossing boundary (the initial network without flossing); "
        "λ₁ in 1/step on the run's fixed spectrum input.\n\n"
        + common.md_table(
            [
                "condition",
                "δ",
                "n",
                "accuracy (mean)",
                "sem",
                "min",
                "max",
                "solved",
                "‖∂L/∂x₀‖ at start (geo. mean)",
                "λ₁ at start (1/step)",
                "λ₁ after training",
            ],
            rows,
            "{:.3f}",
        )
    )
    common.write_outputs(out, name, fig, table, data)
    return {"rows": rows}
