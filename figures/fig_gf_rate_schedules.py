"""Issue 13, point 2 for the rate RNN of the gradient-flossing reference code: flossing schedules at the
published budget (pre-only, periodic with k = 1 and 16, a negative target, adaptive), final test accuracy
against d (5 networks a point), ‖∂L/∂h₀‖ against epoch, λ₁ over the flossing steps.

The grid is ``figures/sweeps/gf_rate_schedules.toml``; the body is ``figures/gf_protocol.py``. Finished runs
are kept in ``figures/runs/gf_rate_schedules/jobs/`` (committed) and reused when the script is rerun.

    python figures/fig_gf_rate_schedules.py [--workers 2] [--quick]
"""

import gf_protocol

if __name__ == "__main__":
    gf_protocol.run_study("gf_rate_schedules.toml", "fig_gf_rate_schedules",
        "rate RNN (tanh), N = 80, published budget, flossing schedules", doc=__doc__)  # fmt: skip
