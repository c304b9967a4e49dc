"""Issue 13, point 3: the best flossing schedules of point 2 (the ‖∂L/∂x₀‖-threshold schedule, flossing as
an added loss term with weight 1 and 10) on the headline cLIF network at the published budget — final test
accuracy against the delay (5 networks a point), ‖∂L/∂h₀‖ against epoch, λ₁ over the flossing steps.

Three grids (``--grid``), the body of each is ``figures/gf_protocol.py``:

* ``detached`` (``figures/sweeps/gf_clif_schedules.toml``): reset_grad detached, δ = 2 and 4 steps of 5 ms;
* ``ignored`` (``gf_clif_schedules_ignored.toml``): reset_grad ignored, δ = 1 and 2, the threshold schedule
  and the added term of weight 1;
* ``preonly`` (``gf_clif_preonly.toml``): pre-flossing alone against no flossing on five new networks
  (seeds 6–10) and seed 1 again, δ = 2 and 4.

Finished runs are kept in ``figures/runs/<grid file>/jobs/`` (committed) and reused when the script is rerun;
``analysis/gf_clif_schedules_table.py`` pairs every schedule with the run without flossing seed by seed.

    python figures/fig_gf_clif_schedules.py [--grid detached|ignored|preonly] [--workers 2] [--quick]
"""

import common
import gf_protocol

GRIDS = {
    "detached": ("gf_clif_schedules", "reset_grad detached: flossing schedules"),
    "ignored": ("gf_clif_schedules_ignored", "reset_grad ignored: flossing schedules"),
    "preonly": ("gf_clif_preonly", "reset_grad detached: pre-flossing alone, seeds 1, 6-10"),
}

if __name__ == "__main__":
    p = common.parser(__doc__)
    p.add_argument("--grid", choices=sorted(GRIDS), default="detached", help="which grid")
    args = p.parse_args()
    name, what = GRIDS[args.grid]
    gf_protocol.run_study(f"{name}.toml", f"fig_{name}", f"recurrent cLIF, N = 80, dt = 5 ms, published budget, {what}",
        doc=__doc__, args=args)  # fmt: skip
