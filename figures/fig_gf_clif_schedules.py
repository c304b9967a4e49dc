"""Issue 13, point 3: the best flossing schedules of point 2 (the ‖∂L/∂x₀‖-threshold schedule, flossing as
an added loss term with weight 1 and 10) on the headline cLIF network at the published budget, δ = 2 and
4 steps of 5 ms — final test accuracy against the delay (5 networks a point), ‖∂L/∂h₀‖ against epoch, λ₁
over the flossing steps.

The grid is ``figures/sweeps/gf_clif_schedules.toml``; the body is ``figures/gf_protocol.py``. Finished runs
are kept in ``figures/runs/gf_clif_schedules/jobs/`` (committed) and reused when the script is rerun.

    python figures/fig_gf_clif_schedules.py [--workers 2] [--quick]
"""

import gf_protocol

if __name__ == "__main__":
    gf_protocol.run_study("gf_clif_schedules.toml", "fig_gf_clif_schedules",
        "recurrent cLIF, N = 80, dt = 5 ms, published budget, reset_grad detached: flossing schedules", doc=__doc__)  # fmt: skip
