"""The binary RNN at the published protocol, with the unpublished surrogate as an axis: final test
accuracy against the delay d with and without flossing (5 networks a point), ‖∂L/∂h₀‖ against epoch,
λ₁ over the flossing steps.

The grid is ``figures/sweeps/gf_binary_xor.toml``; the body is ``figures/gf_protocol.py``. Finished runs
are kept in ``figures/runs/gf_binary_xor/jobs/`` (committed) and reused when the script is rerun.

    python figures/fig_gf_binary_xor.py [--workers 2] [--quick] [--soft | --adaptive]

``--soft`` runs ``figures/sweeps/gf_binary_xor_soft.toml`` instead: the gentler surrogate that matches the
published λ₁ at sharpness 0.5, at d = 14, 18, 22. ``--adaptive`` runs
``figures/sweeps/gf_binary_xor_adaptive.toml``: flossing during training whenever λ₁ < −0.1/step.
"""

import sys

import gf_protocol


def _key(job):
    return (job.condition, job.axes["surrogate"], gf_protocol._delta(job.axes["delta"]))


VARIANTS = {
    "": ("gf_binary_xor.toml", "fig_gf_binary_xor", "binary RNN, N = 80, published protocol"),
    "--soft": ("gf_binary_xor_soft.toml", "fig_gf_binary_xor_soft", "binary RNN, gaussian γ = 0.9 (sharpness 0.5)"),
    "--adaptive": (
        "gf_binary_xor_adaptive.toml",
        "fig_gf_binary_xor_adaptive",
        "binary RNN, gaussian γ = 1.8, flossing during training",
    ),
}

if __name__ == "__main__":
    flag = next((a for a in sys.argv[1:] if a in VARIANTS), "")
    argv = [a for a in sys.argv[1:] if a not in VARIANTS]
    sweep_file, name, title = VARIANTS[flag]
    gf_protocol.run_study(sweep_file, name, title, argv, doc=__doc__, group=_key)
