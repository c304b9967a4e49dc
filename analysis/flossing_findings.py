"""The findings that ``refimpl demo`` shows beside its own runs: final test accuracy against the delay, with
and without flossing, at the published budget (3001 epochs of fresh batches of 16, 5 seeds), for the
rate RNN (the published network), the binary RNN and the recurrent cLIF network of issue 13.

Reads the figure data ``figures/fig_gf_rate_xor.json``, ``fig_gf_binary_xor.json`` and ``fig_gf_clif_xor.json``
(written by the figure scripts from the committed runs) and writes ``refimpl/data/flossing_findings.json``,
which ships with the package (a few kB).

    python analysis/flossing_findings.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "refimpl" / "data" / "flossing_findings.json"
SOLVED = 0.9

STUDIES = [
    ("fig_gf_rate_xor.json", "rate (tanh) RNN, N = 80 (the published network)", {"none": "no flossing", "floss": "flossing"}),
    (
        "fig_gf_binary_xor.json",
        "binary RNN, N = 80, gaussian surrogate γ = 1.8",
        {"none/gaussian1.8": "no flossing", "floss/gaussian1.8": "flossing"},
    ),
    (
        "fig_gf_clif_xor.json",
        "recurrent cLIF, N = 80, dt = 5 ms, τ_mem = 10 ms (reset_grad detached)",
        {"none/detached": "no flossing", "floss/detached": "flossing"},
    ),
]


def main():
    studies = []
    for fname, network, series in STUDIES:
        path = ROOT / "figures" / fname
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        out = {"network": network, "source": f"figures/{fname}", "x": "d = 2δ (steps)", "series": {}}
        for key, label in series.items():
            if key not in data:
                continue
            ds = sorted(data[key], key=int)
            accs = [[r["test_acc"] for r in data[key][d]] for d in ds]
            out["series"][label] = {"d": [int(d) for d in ds], "mean_acc": [float(np.mean(a)) for a in accs],
                "solved": [f"{int(np.sum(np.asarray(a) >= SOLVED))}/{len(a)}" for a in accs]}  # fmt: skip
        studies.append(out)
    doc = {
        "what": "final test accuracy on the delayed XOR against the delay, published budget (3001 epochs, batch 16, "
        "T = 300), published flossing schedule (500 pre + 2 × 500 inter-flossing steps, k = 75); "
        "cLIF: target −0.01. Solved: accuracy ≥ 0.9. Chance 0.5.",
        "made_by": "python analysis/flossing_findings.py (docs/results.md has every study)",
        "studies": studies,
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes, {len(studies)} studies)")


if __name__ == "__main__":
    main()
