"""The binary RNN at the published protocol, with the unpublished surrogate as an axis: final test
accuracy against the delay d with and without flossing (5 networks a point), ‖∂L/∂h₀‖ against epoch,
λ₁ over the flossing steps.

The grid is ``figures/sweeps/gf_binary_xor.toml``; the body is ``figures/gf_protocol.py``. Finished runs
are kept in ``figures/runs/gf_binary_xor/jobs/`` (committed) and reused when the script is rerun.

    python figures/fig_gf_binary_xor.py [--workers 2] [--quick] [--soft]

``--soft`` runs ``figures/sweeps/gf_binary_xor_soft.toml`` instead: the gentler surrogate that matches the
published λ₁ at sharpness 0.5, at d = 14, 18, 22.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gf_protocol  # noqa: E402


def _key(job):
    return (job.condition, job.axes["surrogate"], gf_protocol._delta(job.axes["delta"]))


if __name__ == "__main__":
    soft = "--soft" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--soft"]
    if soft:   # the gentler surrogate (sharpness 0.5) at d = 14, 18, 22
        gf_protocol.run_study("gf_binary_xor_soft.toml", "fig_gf_binary_xor_soft",
                              "binary RNN, gaussian γ = 0.9 (sharpness 0.5)", argv, doc=__doc__, group=_key)
    else:
        gf_protocol.run_study("gf_binary_xor.toml", "fig_gf_binary_xor",
                              "binary RNN, N = 80, published protocol", argv, doc=__doc__, group=_key)
