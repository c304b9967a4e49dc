"""The standard job of a sweep: one training run (``sweep.job = "train"``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------------
# the standard job: one training run
# ---------------------------------------------------------------------------


def train_job(job, job_dir) -> dict:
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
    from refimpl.training import Trainer, read_log

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
        "best_test_acc": float(np.max(acc)), "best_epoch": int(np.argmax(acc)), "test_acc_initial": float(acc[0]),
        "train_loss": float(log["epochs/train_loss"][-1]), "train_acc": float(log["epochs/train_acc"][-1]),
        "grad_x0": float(log["epochs/grad_x0"][-1]), "grad_x0_initial": float(log["epochs/grad_x0"][0]),
        "floss_steps": int(np.sum(log["epochs/floss_steps"])), "epochs": int(tr.epoch),
        "resumed_from_epoch": int(resumed_from), "wall_time": float(tr.wall)}  # fmt: skip
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
