"""(c) Recurrent cLIF networks (N = 64, engelken dialect) on the spiking delayed XOR: final test accuracy against
the delay δ with and without pre-flossing (5 seeds a point), and ‖∂L/∂x₀‖ against δ: the headline study of the project.

The grid is ``figures/sweeps/c_clif_xor.toml``; the body is ``figures/delay_study.py``.
Results of finished runs are kept in ``figures/runs/c_clif_xor/`` and reused when the
script is rerun (an interrupted run continues).

    python figures/fig_c_clif_xor.py [--workers 2] [--quick]
"""

import delay_study

if __name__ == "__main__":
    delay_study.run_study(("c_clif_xor.toml", "c_clif_xor_ignored.toml"), "fig_c_clif_xor",
        "(c) recurrent cLIF, N = 64, spiking delayed XOR", doc=__doc__)  # fmt: skip
