"""Issue 13, point 3: every flossing schedule on the headline cLIF network at the published budget, side by
side and paired by seed with the run without flossing.

Reads the figure data of the three grids (written by the figure scripts from the committed runs):
``figures/fig_gf_clif_xor.json`` (no flossing and the published schedule, reset_grad detached and ignored),
``figures/fig_gf_clif_schedules.json`` (detached: the ‖∂L/∂h₀‖ threshold, the added term with w = 1, 10) and
``figures/fig_gf_clif_schedules_ignored.json`` (ignored: the threshold, the added term with w = 1). The runs
of a delay are listed by seed (1 … 5) in every file, so run ``i`` of a schedule and run ``i`` without flossing
share the network, the data and the initial state: the difference of their final test accuracies is a
paired comparison. Prints the markdown table of docs/results.md and writes the numbers as JSON.

    python analysis/gf_clif_schedules_table.py [--out analysis/gf_clif_schedules.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOLVED = 0.9

#: (reset_grad, label, figure data file, series key, an added loss term?). The runs' ``floss_steps`` count the
#: flossing gradients: the steps of the sessions, or for the added term one per training step (3001).
SERIES = [
    ("detached", "none", "fig_gf_clif_xor.json", "none/detached", False),
    ("detached", "published: 500 pre + 2 × 500, k = 75, target −0.01", "fig_gf_clif_xor.json", "floss/detached", False),
    ("detached", "threshold: 500 pre + 100 whenever ‖∂L/∂h₀‖ < 1e-4", "fig_gf_clif_schedules.json", "adaptive_grad", False),
    ("detached", "added term, w = 1", "fig_gf_clif_schedules.json", "term_w1", True),
    ("detached", "added term, w = 10", "fig_gf_clif_schedules.json", "term_w10", True),
    ("ignored", "none", "fig_gf_clif_xor.json", "none/ignored", False),
    ("ignored", "published: 500 pre + 2 × 500, k = 75, target −0.01", "fig_gf_clif_xor.json", "floss/ignored", False),
    ("ignored", "threshold: 500 pre + 100 whenever ‖∂L/∂h₀‖ < 1e-4", "fig_gf_clif_schedules_ignored.json", "adaptive_grad",
        False),
    ("ignored", "added term, w = 1", "fig_gf_clif_schedules_ignored.json", "term_w1", True),
]  # fmt: skip


def paired(acc, base) -> dict:
    """Mean ± sem of the paired differences, how many seeds gained, and the two-sided paired t-test."""
    from scipy.stats import ttest_rel

    diff = np.asarray(acc) - np.asarray(base)
    n = diff.size
    p = float(ttest_rel(acc, base).pvalue) if n > 1 and np.any(diff != diff[0]) else float("nan")
    return {"mean": float(diff.mean()), "sem": float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "gained": int(np.sum(diff > 0)), "n": n, "p_ttest": p}  # fmt: skip


def table(figures: Path = ROOT / "figures") -> tuple[str, list]:
    data = {}
    rows, lines = [], []
    head = ["reset_grad", "schedule", "d = 2δ", "n", "final accuracy, mean (min–max)", "solved", "epochs to 0.9 (median)",
        "flossing gradients (mean)", "λ₁ end (1/step)", "paired Δ vs none (mean ± sem)", "seeds gained",
        "p (paired t)"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for reset, label, fname, key, _term in SERIES:
        path = figures / fname
        if fname not in data:
            data[fname] = json.loads(path.read_text()) if path.exists() else {}
        ser = data[fname].get(key)
        if not ser:
            continue
        for d in sorted(ser, key=int):
            rs = ser[d]
            acc = np.array([r["test_acc"] for r in rs])
            base_rs = data["fig_gf_clif_xor.json"].get(f"none/{reset}", {}).get(d, [])
            e90 = np.array([r["epochs_to_solved"] if r["epochs_to_solved"] is not None else np.nan for r in rs], float)
            grads = float(np.mean([r["floss_steps"] for r in rs]))
            row = {"reset_grad": reset, "schedule": label, "key": key, "d": int(d), "n": int(acc.size),
                "acc": acc.tolist(), "solved": int(np.sum(acc >= SOLVED)),
                "epochs_to_0.9_median": float(np.nanmedian(e90)) if np.isfinite(e90).any() else None,
                "flossing_gradients": grads, "lambda1_end": float(np.mean([r["lambda1_after"] for r in rs]))}  # fmt: skip
            if key.startswith("none") or len(base_rs) != acc.size:
                row["paired"] = None
                pair = ["–", "–", "–"]
            else:
                row["paired"] = pr = paired(acc, [r["test_acc"] for r in base_rs])
                pair = [f"{pr['mean']:+.3f} ± {pr['sem']:.3f}", f"{pr['gained']}/{pr['n']}", f"{pr['p_ttest']:.3f}"]
            rows.append(row)
            e = row["epochs_to_0.9_median"]
            lines.append(f"| {reset} | {label} | {d} | {acc.size} | {acc.mean():.3f} ({acc.min():.3f}–{acc.max():.3f}) | "
                f"{row['solved']}/{acc.size} | {'–' if e is None else f'{e:.0f}'} | {grads:.0f} | "
                f"{row['lambda1_end']:+.3f} | " + " | ".join(pair) + " |")  # fmt: skip
    return "\n".join(lines) + "\n", rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="write the rows as JSON")
    a = p.parse_args(argv)
    text, rows = table()
    print(text, end="")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
