"""Issue 13, point 3: the best flossing schedules of point 2 (the ‖∂L/∂x₀‖-threshold schedule, flossing as
an added loss term with weight 1 and 10) on the headline cLIF network at the published budget — final test
accuracy against the delay (5 networks a point), ‖∂L/∂h₀‖ against epoch, λ₁ over the flossing steps.

Two grids, the body of both is ``figures/gf_protocol.py``:

* ``figures/sweeps/gf_clif_schedules.toml``: reset_grad detached, δ = 2 and 4 steps of 5 ms;
* ``figures/sweeps/gf_clif_schedules_ignored.toml`` (``--ignored``): reset_grad ignored, δ = 1 and 2,
  the threshold schedule and the added term of weight 1.

Finished runs are kept in ``figures/runs/<grid>/jobs/`` (committed) and reused when the script is rerun.

    python figures/fig_gf_clif_schedules.py [--ignored] [--workers 2] [--quick]
"""

import common
import gf_protocol

if __name__ == "__main__":
    p = common.parser(__doc__)
    p.add_argument("--ignored", action="store_true", help="the reset_grad = ignored grid")
    args = p.parse_args()
    name = "gf_clif_schedules_ignored" if args.ignored else "gf_clif_schedules"
    reset = "ignored" if args.ignored else "detached"
    gf_protocol.run_study(f"{name}.toml", f"fig_{name}", f"recurrent cLIF, N = 80, dt = 5 ms, published budget, "
        f"reset_grad {reset}: flossing schedules", doc=__doc__, args=args)  # fmt: skip
