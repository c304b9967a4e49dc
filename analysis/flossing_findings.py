"""The findings that ``refimpl demo`` shows beside its own runs: final test accuracy against the delay, with
and without flossing, at the published budget (3001 epochs of fresh batches of 16, 5 seeds), for the
rate RNN (the published network), the binary RNN and the recurrent cLIF network of issue 13, and for the
cLIF network the other schedules (the ‖∂L/∂h₀‖ threshold, flossing as an added loss term).

Reads the figure data ``figures/fig_gf_rate_xor.json``, ``fig_gf_binary_xor.json``, ``fig_gf_clif_xor.json`` and
``fig_gf_clif_schedules.json``, ``fig_gf_clif_preonly.json`` (written by the figure scripts from the
committed runs) and writes ``refimpl/data/flossing_findings.json``, which ships with the package (a few kB).

    python analysis/flossing_findings.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "refimpl" / "data" / "flossing_findings.json"
SOLVED = 0.9

CLIF = "recurrent cLIF, N = 80, dt = 5 ms, τ_mem = 10 ms (reset_grad detached)"
# (network, {series label: (figure data file, series key)}): every study has "no flossing"
STUDIES = [
    ("rate (tanh) RNN, N = 80 (the published network)",
        {"no flossing": ("fig_gf_rate_xor.json", "none"), "flossing": ("fig_gf_rate_xor.json", "floss")}),
    ("binary RNN, N = 80, gaussian surrogate γ = 1.8", {"no flossing": ("fig_gf_binary_xor.json", "none/gaussian1.8"),
        "flossing": ("fig_gf_binary_xor.json", "floss/gaussian1.8")}),
    (CLIF, {"no flossing": ("fig_gf_clif_xor.json", "none/detached"), "flossing": ("fig_gf_clif_xor.json", "floss/detached")}),
    (CLIF + ", other schedules", {"no flossing": ("fig_gf_clif_xor.json", "none/detached"),
        "‖∂L/∂h₀‖ threshold": ("fig_gf_clif_schedules.json", "adaptive_grad"),
        "added term, w = 1": ("fig_gf_clif_schedules.json", "term_w1"),
        "added term, w = 10": ("fig_gf_clif_schedules.json", "term_w10")}),
    (CLIF + ", seeds 1, 6–10", {"no flossing": ("fig_gf_clif_preonly.json", "none"),
        "500 pre-flossing steps alone": ("fig_gf_clif_preonly.json", "pre")}),
]  # fmt: skip


def main():
    loaded = {}  # figure data by file name: several studies read the same file
    studies = []
    for network, series in STUDIES:
        out = {"network": network, "sources": sorted({f"figures/{f}" for f, _ in series.values()}), "x": "d = 2δ (steps)",
            "series": {}}  # fmt: skip
        for label, (fname, key) in series.items():
            if fname not in loaded:
                path = ROOT / "figures" / fname
                loaded[fname] = json.loads(path.read_text()) if path.exists() else {}
            data = loaded[fname]
            if key not in data:
                continue
            ds = sorted(data[key], key=int)
            accs = [[r["test_acc"] for r in data[key][d]] for d in ds]
            out["series"][label] = {"d": [int(d) for d in ds], "mean_acc": [float(np.mean(a)) for a in accs],
                "solved": [f"{int(np.sum(np.asarray(a) >= SOLVED))}/{len(a)}" for a in accs]}  # fmt: skip
        if "no flossing" in out["series"] and len(out["series"]) > 1:
            studies.append(out)
    doc = {
        "what": "final test accuracy on the delayed XOR against the delay, published budget (3001 epochs, batch 16, "
        "T = 300); 'flossing': the published schedule (500 pre + 2 × 500 inter-flossing steps, k = 75; cLIF: "
        "target −0.01); the cLIF schedules: 500 pre-flossing steps then 100 steps whenever ‖∂L/∂h₀‖ < 1e-4, or "
        "weight·∇L_floss added to every training step. Solved: accuracy ≥ 0.9. Chance 0.5.",
        "made_by": "python analysis/flossing_findings.py (docs/results.md has every study)",
        "studies": studies,
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes, {len(studies)} studies)")


if __name__ == "__main__":
    main()
