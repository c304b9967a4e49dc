"""Issue 8, point 2: multi-layer recurrent spiking networks with and without flossing.

The sweep ``figures/sweeps/multilayer.toml`` trains 1, 2 and 3 recurrent cLIF
layers (32 neurons each) on the spiking delayed XOR, with and without
pre-flossing (k = 16 exponents of the whole stack), 3 seeds. The job
(:func:`multilayer_job`) adds to :func:`refimpl.sweep.train_job`:

* per-layer backpropagated error norms against lag, ``‖∂L/∂x^l_{T−lag}‖``
  (the V and I blocks of layer ``l``), for a loss at the last step, geometric
  mean over 8 test sequences; at initialization, after the pre-flossing
  boundary and after training;
* the top 32 surrogate exponents of the whole stack at the same three points;
* the gradient participation ratio logged during training (docs/training.md).

    python figures/fig_multilayer.py [--workers 2] [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import common

K_SPEC, B_ERR = 32, 8


def layer_error_curves(tr, B: int = B_ERR) -> np.ndarray:
    """Mean over ``B`` test sequences of log‖∂L/∂x^l_{T−lag}‖: shape (layers, T+1), index = lag."""
    from refimpl.model.config import LossConfig
    from refimpl.model.losses import loss_and_grad
    from refimpl.model.network import simulate, state_slices
    from refimpl.training import state_adjoints

    u = np.ascontiguousarray(tr.data.test_inputs[:, :B])
    tt = tr.data.test_targets
    targets = tt[:B] if tt.ndim == 1 else tt[:, :B]  # class labels (B,) or per-step targets (T, B, n_out)
    traj = simulate(tr.cfg, tr.params, u)
    T = u.shape[0]
    _, ybar = loss_and_grad(LossConfig(tr.loss_cfg.name, T - 1), traj.y, targets)
    sl = state_slices(tr.cfg)
    out = np.zeros((len(sl), T + 1))
    with np.errstate(divide="ignore"):
        for b in range(B):
            A = state_adjoints(tr.cfg, tr.params, traj, ybar, b)[::-1]
            for l, (sv, si) in enumerate(sl):
                blk = A[:, sv] if si is None else np.concatenate([A[:, sv], A[:, si]], axis=1)
                out[l] += np.log(np.linalg.norm(blk, axis=1)) / B
    return out


def _measure(tr, prefix: str, out: dict) -> None:
    k = min(K_SPEC, tr.cfg.state_size)
    out[f"errors_{prefix}"] = layer_error_curves(tr)
    out[f"spectrum_{prefix}"] = np.asarray(tr.spectrum(k).exponents, float)


def multilayer_job(job, job_dir) -> dict:
    from refimpl.sweep import train_job
    from refimpl.training import Trainer

    out = train_job(job, job_dir)
    run = job.run_config()
    tr = Trainer(run)
    _measure(tr, "initial", out)
    tr.boundary(0)
    _measure(tr, "preflossed", out)
    final = Trainer.resume(Path(job_dir) / "checkpoint.h5", run)
    _measure(final, "final", out)
    return out


def quick_spec(spec: dict) -> None:
    spec["axes"]["seed"] = {k: v[:1] for k, v in spec["axes"]["seed"].items()}
    spec["axes"]["depth"] = [{"network.layers": [6]}, {"network.layers": [6, 6]}]
    spec["set"].update(
        {
            "training.epochs": 2,
            "training.steps_per_epoch": 3,
            "training.test_size": 16,
            "lyapunov.k": 4,
            "flossing.k": 4,
            "lyapunov.every": 1,
        }
    )
    spec["conditions"]["floss"].update({"flossing.pre_steps": 3, "flossing.k": 4})


def _depth(job) -> int:
    v = job.axes["depth"]  # the axis value's label: the first key's value, the layer list
    return len(v["network.layers"] if isinstance(v, dict) else v)


HEADING = (
    "# Multi-layer recurrent cLIF networks with and without flossing (issue 8.2)\n\n",
    "\nSweep file `figures/sweeps/multilayer.toml`: spiking delayed XOR δ = 2 (T = 44), 32 neurons per layer, "
    "30 epochs × 20 Adam steps; pre-flossing 60 steps with k = 16 on the whole stack; seeds 0, 1, 2. ",
)


def main(argv=None, sweep_file="multilayer.toml", name="fig_multilayer", heading=HEADING, quick=quick_spec, args=None,
    edit=None, chance=0.5, fit=(5, 5)):  # fmt: skip
    """Run (or continue) a sweep with an axis ``depth`` and conditions ``none`` and ``floss`` whose job is
    :func:`multilayer_job`, and draw error norms, spectra, accuracy and gradient dimensionality by depth.
    ``heading``: the table's title and the sentence that describes the sweep; ``args``: the arguments if
    the calling script parsed them (it has options of its own, which ``edit(spec)`` applies); ``fit``: the
    error decay rate is fitted over lags ``fit[0] … T − fit[1]``."""
    args = args if args is not None else common.parser(__doc__).parse_args(argv)
    t0 = time.time()
    out = common.out_dir(args)
    spec, jobs, runs, _ = common.run_sweep(sweep_file, args, quick, edit)
    R = common.results_by(jobs, runs, lambda j: (j.condition, _depth(j)))
    depths = sorted({k[1] for k in R})
    plt = common.pyplot()
    fig, ax = plt.subplots(2, len(depths) + 1, figsize=(4.2 * (len(depths) + 1), 7.5))
    rows, data = [], {}
    for c, depth in enumerate(depths):
        for cond, stage, ls, what in (("none", "initial", "-", "initial"), ("floss", "preflossed", "--", "pre-flossed"),
            ("none", "final", ":", "trained, no flossing"), ("floss", "final", "-.", "trained, flossing")):  # fmt: skip
            curves = np.mean([d[f"errors_{stage}"] for d in R[(cond, depth)]], axis=0)
            for l in range(depth):
                # shifted by its largest value (a lower layer's error is 0 at the first lags: log 0 = -inf)
                top = np.max(curves[l][np.isfinite(curves[l])])
                ax[0, c].plot(curves[l] - top, ls=ls, color=f"C{l}", label=f"layer {l + 1}, {what}")
            data[f"errors/{cond}/{depth}" + ("/final" if stage == "final" else "")] = curves
        ax[0, c].set(xlabel="lag", ylabel="log ‖∂L/∂x^l‖ − its maximum")
        ax[0, c].set_title(f"{depth} layer(s): error norm vs lag (loss at the last step)", fontsize=9)
        ax[0, c].legend(fontsize=6)
        for cond, mk in (("none", "o"), ("floss", "s")):
            ds = R[(cond, depth)]
            acc = np.array([d["test_acc"] for d in ds])
            slopes = []
            for stage in ("initial", "preflossed", "final"):
                cur = np.mean([d[f"errors_{stage}"] for d in ds], axis=0)
                lag = np.arange(cur.shape[1])
                sel = (lag >= fit[0]) & (lag <= cur.shape[1] - fit[1])
                slopes.append("/".join(f"{np.polyfit(lag[sel], cur[l][sel], 1)[0]:+.3f}" for l in range(depth)))
            lam = [float(np.mean([d[f"spectrum_{s}"][0] for d in ds])) for s in ("initial", "preflossed", "final")]
            pr = [
                float(np.nanmean(d["history/dimensionality/grad_pr"])) if "history/dimensionality/grad_pr" in d else float("nan")
                for d in ds
            ]
            rows.append(
                [
                    depth,
                    cond,
                    acc.size,
                    float(acc.mean()),
                    float(acc.std(ddof=1) / np.sqrt(acc.size)) if acc.size > 1 else float("nan"),
                    float(acc.min()),
                    float(acc.max()),
                    *lam,
                    slopes[0] if cond == "none" else slopes[1],
                    slopes[2],
                    float(np.nanmean(pr)),
                ]
            )
    for depth, col in zip(depths, ("C0", "C1", "C2")):
        for cond, stage, ls, what in (("none", "initial", "-", "initial"), ("floss", "preflossed", "--", "pre-flossed"),
            ("none", "final", ":", "trained, no flossing"), ("floss", "final", "-.", "trained, flossing")):  # fmt: skip
            s = np.mean([d[f"spectrum_{stage}"] for d in R[(cond, depth)]], axis=0)
            ax[0, -1].plot(np.arange(1, s.size + 1), s, ls=ls, color=col, label=f"{depth} layer(s), {what}")
            data[f"spectrum/{cond}/{depth}" + ("/final" if stage == "final" else "")] = s
    ax[0, -1].set(title="spectrum of the whole stack (λ₁ is the largest)", xlabel="index i", ylabel="λ_i (1/step)")
    ax[0, -1].legend(fontsize=6)
    for c, depth in enumerate(depths):
        for cond, mk in (("none", "o"), ("floss", "s")):
            acc = [d["test_acc"] for d in R[(cond, depth)]]
            ax[1, 0].scatter(np.full(len(acc), depth + (0.08 if cond == "floss" else -0.08)), acc, marker=mk,
                color="C0" if cond == "none" else "C1",
                label=("pre-flossing" if cond == "floss" else "no flossing") if c == 0 else None)  # fmt: skip
    ax[1, 0].axhline(chance, color="gray", lw=0.6, ls=":", label=f"chance ({chance:g})")
    ax[1, 0].set(xlabel="layers", ylabel="final test accuracy", title="accuracy", xticks=depths)
    ax[1, 0].legend(fontsize=7)
    for cond, mk in (("none", "o"), ("floss", "s")):
        prs = [np.nanmean([np.nanmean(d["history/dimensionality/grad_pr"]) for d in R[(cond, depth)]]) for depth in depths]
        ax[1, 1].plot(depths, prs, marker=mk, label="pre-flossing" if cond == "floss" else "no flossing")
    ax[1, 1].set(xlabel="layers", ylabel="gradient participation ratio", title="gradient dimensionality (W_rec)", xticks=depths)
    ax[1, 1].legend(fontsize=7)
    for c in range(2, ax.shape[1]):
        ax[1, c].axis("off")
    fig.tight_layout()
    table = (
        heading[0]
        + common.provenance(argv, t0)
        + heading[1]
        + "Error decay rates are least-squares slopes of the mean log error norm of each layer against lag "
        f"(lags {fit[0]} … T−{fit[1]}), listed layer 1/layer 2/…; 'start' is the initial network (no flossing) or the "
        "pre-flossed one. grad PR: mean gradient participation ratio (W_rec samples over batch × time) "
        "over the logged epochs.\n\n"
        + common.md_table(
            [
                "layers",
                "condition",
                "n",
                "accuracy (mean)",
                "sem",
                "min",
                "max",
                "λ₁ initial",
                "λ₁ after boundary",
                "λ₁ final",
                "error decay per layer, start",
                "error decay per layer, final",
                "grad PR",
            ],
            rows,
            "{:.3f}",
        )
    )
    common.write_outputs(out, name, fig, table, data)


if __name__ == "__main__":
    main()
