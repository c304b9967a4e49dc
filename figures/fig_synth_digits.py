"""Issue 18, point 3: recurrent cLIF networks on the synthetic spoken digits (docs/digits.md), 1 and 2
hidden layers of 128, without flossing and with pre-flossing, 5 networks a point — test accuracy, the
surrogate spectrum at initialization, after pre-flossing and after training, the per-layer error norm
against lag (loss at the last step) and the gradient dimensionality.

The grid is ``figures/sweeps/synth_digits.toml``; each job is :func:`multilayer.multilayer_job` (a training
run plus the measurements at the three points). The data set must exist first (from the repository's root):

    refimpl digits make data/digits
    python figures/fig_synth_digits.py [--data data/digits] [--workers 2] [--quick]

``--data DIR`` reads ``DIR/train.h5`` and ``DIR/test.h5``: any files in the SHD layout, so the real Spiking
Heidelberg Digits too (put ``shd_train.h5``, ``shd_test.h5`` there as ``train.h5``, ``test.h5`` and use another
``--out``, since the runs are named by their settings, not by their data). Finished runs are kept in
``figures/runs/synth_digits/jobs/`` (committed) and reused when the script is rerun.
"""

from __future__ import annotations

import sys
from pathlib import Path

import common
import multilayer

# the error norm rises over the first ~20 lags (the synaptic current, then the membrane, carry it: τ_syn and
# τ_mem are 5 and 10 steps) and turns up again within ~10 steps of the sequence's start: the decay is fitted
# in between
FIT_LO, FIT_HI = 25, 15
HEADING = (
    "# Recurrent cLIF networks on the synthetic spoken digits, with and without pre-flossing (issue 18)\n\n",
    "\nSweep file `figures/sweeps/synth_digits.toml`: `refimpl digits make data/digits` (2880 training, 960 test "
    "samples, 700 channels, held-out test speakers), preset `synth_digits` (128 cLIF neurons a layer, T = 70 "
    "steps of 14 ms, max-over-time cross-entropy, fluctuation-driven initialization), 30 epochs of batches of "
    "64; pre-flossing 100 steps with k = 32 on the whole stack, target 0; seeds 1–5. Chance is 0.05. ",
)


def digits_job(job, job_dir) -> dict:
    """:func:`multilayer.multilayer_job`: the training run and its measurements."""
    return multilayer.multilayer_job(job, job_dir)


def quick_spec(spec: dict) -> None:
    multilayer.quick_spec(spec)
    spec["axes"]["depth"] = [{"network.layers": [6]}, {"network.layers": [6, 6]}]
    spec["set"].pop("training.steps_per_epoch")  # a fixed data set: an epoch is the whole set
    spec["set"]["training.batch_size"] = 16


if __name__ == "__main__":
    p = common.parser(__doc__)
    p.add_argument("--data", default="data/digits", help="directory with train.h5 and test.h5 (SHD layout)")
    args = p.parse_args()
    data = Path(args.data)
    for split in ("train", "test"):
        if not (data / f"{split}.h5").is_file():
            print(f"fig_synth_digits: no {data / f'{split}.h5'}; make the set first: refimpl digits make {data}", file=sys.stderr)
            raise SystemExit(2)

    def edit(spec):
        spec["set"].update({"task.train_path": str(data / "train.h5"), "task.test_path": str(data / "test.h5")})

    multilayer.main(None, "synth_digits.toml", "fig_synth_digits", HEADING, quick_spec, args, edit, chance=0.05,
        fit=(FIT_LO, FIT_HI))  # fmt: skip
