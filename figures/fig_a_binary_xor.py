"""(a) Binary RNNs (N = 80) on the delayed XOR: final test accuracy against the delay δ with and
without pre-flossing (5 seeds a point), and ‖∂L/∂x₀‖ against δ.

The grid is ``figures/sweeps/a_binary_xor.toml``; the body is ``figures/delay_study.py``.
Results of finished runs are kept in ``figures/runs/a_binary_xor/`` and reused when the
script is rerun (an interrupted run continues).

    python figures/fig_a_binary_xor.py [--workers 2] [--quick]
"""

import delay_study

if __name__ == "__main__":
    delay_study.run_study("a_binary_xor.toml", "fig_a_binary_xor", "(a) binary RNN, N = 80, delayed XOR", doc=__doc__)
