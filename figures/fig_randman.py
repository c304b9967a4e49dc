"""Issue 8.5: the Randman benchmark with and without flossing, and with and without
fluctuation-driven initialization, 5 seeds (grid: figures/sweeps/randman.toml).

Network and task: the ``randman`` preset (recurrent cLIF, N = 64, engelken dialect,
5 classes of 1-d random manifolds over 20 input units, 50 steps, max-over-time
cross-entropy; 64 training and 32 test samples per class), 20 epochs. Conditions: no
flossing; the preset's adaptive schedule (λ₁ kept in [−0.2, 0.05], sessions of 5 steps,
k = 8, at most 3 sessions); 60 pre-flossing steps (k = 8, target 0). Fluctuation-driven initialization targets a
free membrane of mean 0 and SD 1 θ, 30 % of its variance from recurrence at 10 Hz.

    python figures/fig_randman.py [--workers 2] [--quick]
"""

import time

import numpy as np

import common


def quick_spec(spec):
    spec["axes"]["seed"] = {k: v[:1] for k, v in spec["axes"]["seed"].items()}
    spec["set"].update(
        {
            "training.epochs": 2,
            "network.layers": [8],
            "task.samples_per_class": 4,
            "task.test_samples_per_class": 4,
            "training.batch_size": 8,
            "lyapunov.k": 4,
            "flossing.k": 4,
        }
    )


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    t0 = time.time()
    spec, jobs, runs, agg = common.run_sweep("randman.toml", args, quick_spec)
    R = common.results_by(jobs, runs, lambda j: (j.condition, j.axes["init"]))
    plt = common.pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    rows, data = [], {}
    for i, ((cond, init), ds) in enumerate(sorted(R.items(), key=lambda kv: (kv[0][1], kv[0][0]))):
        acc = np.array([d["test_acc"] for d in ds])
        curves = np.array([d["history/epochs/test_acc"] for d in ds])
        label = f"{init} init, {cond}"
        ax[0].scatter(np.full(acc.size, i), acc, s=14)
        ax[0].errorbar(i, acc.mean(), yerr=acc.std(ddof=1) / np.sqrt(acc.size) if acc.size > 1 else 0, fmt="k_", capsize=4)
        ax[1].plot(curves.mean(axis=0), label=label)
        lam0 = np.mean([d.get("lambda1_before", np.nan) for d in ds])
        lam1 = np.mean([d["lambda1_after"] for d in ds])
        rows.append(
            [
                init,
                cond,
                acc.size,
                float(acc.mean()),
                float(acc.std(ddof=1) / np.sqrt(acc.size)) if acc.size > 1 else float("nan"),
                float(acc.min()),
                float(acc.max()),
                float(lam0),
                float(lam1),
                float(np.mean([d["floss_steps"] for d in ds])),
                float(np.mean([d["wall_time"] for d in ds])),
            ]
        )
        data[f"{init}/{cond}"] = {"test_acc": acc, "curves": curves}
    ax[0].set_xticks(range(len(rows)), [f"{r[0]}\n{r[1]}" for r in rows], fontsize=8)
    ax[0].set(ylabel="final test accuracy", title="Randman, 5 classes (chance 0.2)")
    ax[1].set(xlabel="epoch", ylabel="test accuracy (mean over seeds)")
    ax[1].legend(fontsize=7)
    seeds = spec["axes"]["seed"]["network.seed"]
    table = (
        "# Randman: flossing × fluctuation-driven initialization (issue 8.5)\n\n"
        + common.provenance(argv, t0)
        + f"\nSweep file `figures/sweeps/randman.toml`, seeds {list(seeds)} (network.seed = task.seed), "
        f"{spec['set']['training.epochs']} epochs. λ₁ in 1/step (before training, after training).\n\n"
        + common.md_table(
            [
                "init",
                "condition",
                "n",
                "accuracy (mean)",
                "sem",
                "min",
                "max",
                "λ₁ before",
                "λ₁ after",
                "flossing steps",
                "seconds per run",
            ],
            rows,
            "{:.3f}",
        )
    )
    common.write_outputs(common.out_dir(args), "fig_randman", fig, table, data)


if __name__ == "__main__":
    main()
