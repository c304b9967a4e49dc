"""Issue 8.6: the best flossing schedule — accuracy per unit of compute on the spiking delayed XOR.

Grid: ``figures/sweeps/schedules.toml`` (8 schedules × 3 seeds × δ ∈ {2, 3}): no flossing; pre-flossing with
k ∈ {1, 16, 32}, with 20 instead of 60 steps, and toward target −0.05 instead of 0; periodic
(20 pre-steps, then 10 steps every 5 epochs, at most 5 sessions); adaptive (every 5 epochs,
20 steps whenever λ₁ leaves [−0.2, 0.05]). Network and task: the ``delayed_xor`` preset
(cLIF N = 64), 30 epochs × 20 Adam steps. δ = 2 is the hardest delay solved in figure (c);
δ = 3 checks whether any schedule solves more.

Compute is the wall time of each run (training, evaluation and flossing; 1 BLAS thread
per worker), and the number of flossing steps. "Gain per minute" is the mean accuracy
above the no-flossing runs of the same seeds, divided by the extra wall time in minutes.

    python figures/fig_schedules.py [--workers 2] [--quick]
"""

import time

import numpy as np

import common

SOLVED = 0.9  # final test accuracy that counts as solved


def quick_spec(spec):
    spec["axes"]["seed"] = {k: v[:1] for k, v in spec["axes"]["seed"].items()}
    spec["set"].update(
        {"training.epochs": 2, "training.steps_per_epoch": 3, "training.test_size": 16, "network.layers": [8], "lyapunov.k": 4}
    )
    for c in spec["conditions"].values():
        if "flossing.k" in c:
            c["flossing.k"] = min(c["flossing.k"], 4)
        for key in ("flossing.pre_steps", "flossing.steps"):
            if c.get(key):
                c[key] = 2
        if "flossing.every" in c:
            c["flossing.every"] = 1


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    t0 = time.time()
    spec, jobs, runs, agg = common.run_sweep("schedules.toml", args, quick_spec)
    R = common.results_by(jobs, runs, lambda j: (j.axes["delta"], j.condition))
    deltas = sorted({d for d, _ in R})
    rows, data, solved_at = {}, {}, []
    for delta in deltas:
        base = R[(delta, "none")]
        acc0, wall0 = np.mean([d["test_acc"] for d in base]), np.mean([d["wall_time"] for d in base])
        rows[delta] = []
        for (dd, cond), ds in R.items():
            if dd != delta:
                continue
            acc = np.array([d["test_acc"] for d in ds])
            wall = np.array([d["wall_time"] for d in ds])
            extra = (wall.mean() - wall0) / 60
            gain = (acc.mean() - acc0) / extra if cond != "none" and extra > 0 else float("nan")
            n_solved = int(np.sum(acc >= SOLVED))
            rows[delta].append(
                [
                    cond,
                    acc.size,
                    float(acc.mean()),
                    float(acc.std(ddof=1) / np.sqrt(acc.size)) if acc.size > 1 else float("nan"),
                    float(acc.min()),
                    float(acc.max()),
                    f"{n_solved}/{acc.size}",
                    float(np.mean([d["floss_steps"] for d in ds])),
                    float(wall.mean()),
                    float(gain),
                    float(np.mean([d["lambda1_after"] for d in ds])),
                ]
            )
            data[f"{delta}/{cond}"] = {"test_acc": acc, "wall_time": wall}
            if n_solved == acc.size:
                solved_at.append(delta)
        rows[delta].sort(key=lambda r: -r[2])
    hardest = max(solved_at) if solved_at else None
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(deltas), figsize=(6.5 * len(deltas), 4.2), squeeze=False)
    for ax, delta in zip(axes[0], deltas):
        for r in rows[delta]:
            ax.errorbar(r[8], r[2], yerr=0 if np.isnan(r[3]) else r[3], marker="o", capsize=3)
            ax.annotate(r[0], (r[8], r[2]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set(xlabel="wall time per run (s, 1 thread)", ylabel="final test accuracy (mean ± sem)",
            title=f"flossing schedules, spiking delayed XOR δ = {delta}")  # fmt: skip
    seeds = spec["axes"]["seed"]["network.seed"]
    header = ["schedule", "n", "accuracy (mean)", "sem", "min", "max", f"solved (≥ {SOLVED})", "flossing steps",
        "wall time per run (s)", "gain per extra minute", "λ₁ after training"]  # fmt: skip
    table = (
        "# Flossing schedules: accuracy per unit of compute (issue 8.6)\n\n"
        + common.provenance(argv, t0)
        + f"\nSweep file `figures/sweeps/schedules.toml`; seeds {list(seeds)}, "
        f"{spec['set']['training.epochs']} epochs × 20 Adam steps. 'Gain per extra minute': mean accuracy "
        "above the no-flossing runs at the same δ divided by the extra wall time (minutes). "
        f"Hardest δ solved by every seed of some schedule: {hardest}.\n"
        + "".join(
            f"\n## δ = {delta}{' (hardest solved)' if delta == hardest else ''}\n\n"
            + common.md_table(header, rows[delta], "{:.3f}")
            for delta in deltas
        )
    )
    common.write_outputs(common.out_dir(args), "fig_schedules", fig, table, data)


if __name__ == "__main__":
    main()
