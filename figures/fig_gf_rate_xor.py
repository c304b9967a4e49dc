"""The rate RNN of the gradient-flossing reference code at the published protocol: final test accuracy
against the delay d with and without flossing (5 networks a point), ‖∂L/∂h₀‖ against epoch, λ₁ over the
flossing steps.

The grid is ``figures/sweeps/gf_rate_xor.toml``; the body is ``figures/gf_protocol.py``. Finished runs
are kept in ``figures/runs/gf_rate_xor/jobs/`` (committed) and reused when the script is rerun.

    python figures/fig_gf_rate_xor.py [--workers 2] [--quick]
"""

import gf_protocol

if __name__ == "__main__":
    gf_protocol.run_study("gf_rate_xor.toml", "fig_gf_rate_xor", "rate RNN (tanh), N = 80, published protocol", doc=__doc__)
