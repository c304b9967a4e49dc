"""The headline study of issue 13: recurrent cLIF networks at the published gradient-flossing budget.
Final test accuracy against the delay δ (1 … 8 steps of 5 ms, τ_mem/dt = 2) with and without flossing, for
``reset_grad`` detached and ignored (5 networks a point), ‖∂L/∂h₀‖ against epoch, λ₁ over the
flossing steps.

The grid is ``figures/sweeps/gf_clif_xor.toml``; the body is ``figures/gf_protocol.py``. Finished runs
are kept in ``figures/runs/gf_clif_xor/jobs/`` (committed) and reused when the script is rerun.

    python figures/fig_gf_clif_xor.py [--workers 2] [--quick]
"""

import gf_protocol


def _key(job):
    return (job.condition, job.axes["reset_grad"], gf_protocol._delta(job.axes["delta"]))


if __name__ == "__main__":
    gf_protocol.run_study("gf_clif_xor.toml", "fig_gf_clif_xor",
        "recurrent cLIF, N = 80, dt = 5 ms, τ_mem/dt = 2, published budget", doc=__doc__, group=_key,
        series_name="reset_grad")  # fmt: skip
