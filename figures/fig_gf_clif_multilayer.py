"""Issue 13, point 4: the headline cLIF comparison for 2 and 3 recurrent layers at the published budget —
final test accuracy against the delay with and without flossing (5 networks a point), ‖∂L/∂h₀‖ against
epoch, λ₁ over the flossing steps.

The grid is ``figures/sweeps/gf_clif_multilayer.toml``; the body is ``figures/gf_protocol.py``. Finished
runs are kept in ``figures/runs/gf_clif_multilayer/jobs/`` (committed) and reused when the script is rerun.

    python figures/fig_gf_clif_multilayer.py [--workers 2] [--quick]
"""

import gf_protocol


def _key(job):
    return (job.condition, f"{len(job.axes['layers'])} layers", gf_protocol._delta(job.axes["delta"]))


if __name__ == "__main__":
    gf_protocol.run_study("gf_clif_multilayer.toml", "fig_gf_clif_multilayer",
        "recurrent cLIF, 2 and 3 layers of 80, dt = 5 ms, published budget", doc=__doc__, group=_key,
        series_name="layers")  # fmt: skip
