"""Issue 13, point 3: every flossing schedule on the headline cLIF network at the published budget, side by
side and paired by seed with the run without flossing.

Reads the figure data of the three grids (written by the figure scripts from the committed runs):
``figures/fig_gf_clif_xor.json`` (no flossing and the published schedule, reset_grad detached and ignored),
``figures/fig_gf_clif_schedules.json`` (detached: the ‖∂L/∂h₀‖ threshold, the added term with w = 1, 10),
``figures/fig_gf_clif_schedules_ignored.json`` (ignored: the threshold, the added term with w = 1) and
``figures/fig_gf_clif_preonly.json`` (pre-flossing alone and no flossing, seeds 1, 6–10, one grid). The runs
of a delay are listed by seed in every file, so run ``i`` of a schedule and run ``i`` without flossing share
the network, the data and the initial state: the difference of their final test accuracies is a paired
comparison. Grids run at different commits differ also by rounding, which training amplifies
(:func:`noise_floor` measures it); the pre-flossing grid pairs runs made by one commit. Prints the markdown
tables of docs/results.md and writes the numbers as JSON.

    python analysis/gf_clif_schedules_table.py [--out analysis/gf_clif_schedules.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOLVED = 0.9

#: (reset_grad, label, figure data file, series key, the run without flossing it is paired with: (file, key) or
#: None for a row without flossing). The runs' ``floss_steps`` count the flossing gradients: the steps of the
#: sessions, or for the added term one per training step (3001).
_XOR, _SCH, _IGN, _PRE = "fig_gf_clif_xor.json", "fig_gf_clif_schedules.json", "fig_gf_clif_schedules_ignored.json", \
    "fig_gf_clif_preonly.json"  # fmt: skip
_THRESHOLD = "threshold: 500 pre + 100 whenever ‖∂L/∂h₀‖ < 1e-4"
_PUBLISHED = "published: 500 pre + 2 × 500, k = 75, target −0.01"
SERIES = [
    ("detached", "none", _XOR, "none/detached", None),
    ("detached", _PUBLISHED, _XOR, "floss/detached", (_XOR, "none/detached")),
    ("detached", _THRESHOLD, _SCH, "adaptive_grad", (_XOR, "none/detached")),
    ("detached", "added term, w = 1", _SCH, "term_w1", (_XOR, "none/detached")),
    ("detached", "added term, w = 10", _SCH, "term_w10", (_XOR, "none/detached")),
    ("detached", "none (seeds 1, 6–10)", _PRE, "none", None),
    ("detached", "pre-flossing alone, 500 steps (seeds 1, 6–10)", _PRE, "pre", (_PRE, "none")),
    ("ignored", "none", _XOR, "none/ignored", None),
    ("ignored", _PUBLISHED, _XOR, "floss/ignored", (_XOR, "none/ignored")),
    ("ignored", _THRESHOLD, _IGN, "adaptive_grad", (_XOR, "none/ignored")),
    ("ignored", "added term, w = 1", _IGN, "term_w1", (_XOR, "none/ignored")),
]


def paired(acc, base) -> dict:
    """Mean ± sem of the paired differences, how many seeds gained, and the two-sided paired t-test."""
    from scipy.stats import ttest_rel

    diff = np.asarray(acc) - np.asarray(base)
    n = diff.size
    p = float(ttest_rel(acc, base).pvalue) if n > 1 and np.any(diff != diff[0]) else float("nan")
    return {"mean": float(diff.mean()), "sem": float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "gained": int(np.sum(diff > 0)), "n": n, "p_ttest": p}  # fmt: skip


def _loader(figures: Path):
    """``load(name)``: the figure data ``figures/name`` (``{}`` if the grid has not been run), each file read once."""
    cache = {}

    def load(name: str) -> dict:
        if name not in cache:
            path = figures / name
            cache[name] = json.loads(path.read_text()) if path.exists() else {}
        return cache[name]

    return load


def table(figures: Path = ROOT / "figures", load=None) -> tuple[str, list]:
    load = load or _loader(figures)
    rows, lines = [], []
    head = ["reset_grad", "schedule", "d = 2δ", "n", "final accuracy, mean (min–max)", "solved", "epochs to 0.9 (median)",
        "flossing gradients (mean)", "λ₁ end (1/step)", "paired Δ vs none (mean ± sem)", "seeds gained",
        "p (paired t)"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for reset, label, fname, key, base in SERIES:
        ser = load(fname).get(key)
        if not ser:
            continue
        for d in sorted(ser, key=int):
            rs = ser[d]
            acc = np.array([r["test_acc"] for r in rs])
            base_rs = load(base[0]).get(base[1], {}).get(d, []) if base else []
            e90 = np.array([r["epochs_to_solved"] if r["epochs_to_solved"] is not None else np.nan for r in rs], float)
            grads = float(np.mean([r["floss_steps"] for r in rs]))
            row = {"reset_grad": reset, "schedule": label, "file": fname, "key": key, "d": int(d), "n": int(acc.size),
                "acc": acc.tolist(), "solved": int(np.sum(acc >= SOLVED)),
                "epochs_to_0.9_median": float(np.nanmedian(e90)) if np.isfinite(e90).any() else None,
                "flossing_gradients": grads, "lambda1_end": float(np.mean([r["lambda1_after"] for r in rs]))}  # fmt: skip
            if base is None or len(base_rs) != acc.size:
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


#: the same network, data and settings run by two grids at different commits of the code: (label, (file, key,
#: index of the run in its delay's list), the same for the other grid). Seed 1 is the first run of every grid.
SAME_RUN = [
    ("none, seed 1", (_XOR, "none/detached", 0), (_PRE, "none", 0)),
    ("500 pre-flossing steps, seed 1", (_SCH, "adaptive_grad", 0), (_PRE, "pre", 0)),
]


def noise_floor(figures: Path = ROOT / "figures", load=None) -> tuple[str, list]:
    """Final test accuracies of the same run made twice (``SAME_RUN``): the change of the code between the two
    grids changes sums in the last digits, and 3001 steps of training amplify that (the training losses of the
    two runs of seed 1 without flossing agree to 1e-15 at epoch 200 and differ by 1e-4 at epoch 500), so
    their difference is the noise floor of a comparison between grids run at different commits."""
    load = load or _loader(figures)
    out, lines = [], ["| run | d = 2δ | final accuracy, first grid | second grid | difference |", "|---|---|---|---|---|"]
    for label, (fa, ka, ia), (fb, kb, ib) in SAME_RUN:
        a, b = load(fa).get(ka, {}), load(fb).get(kb, {})
        for d in sorted(set(a) & set(b), key=int):
            x, y = a[d][ia]["test_acc"], b[d][ib]["test_acc"]
            out.append({"run": label, "d": int(d), "first": x, "second": y})
            lines.append(f"| {label} ({fa} / {fb}) | {d} | {x:.4f} | {y:.4f} | {y - x:+.4f} |")
    return "\n".join(lines) + "\n", out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="write the rows as JSON")
    a = p.parse_args(argv)
    load = _loader(ROOT / "figures")
    text, rows = table(load=load)
    print(text, end="")
    text2, same = noise_floor(load=load)
    print("\nThe same run made by two grids (different commits):\n\n" + text2, end="")
    if a.out:
        Path(a.out).write_text(json.dumps({"rows": rows, "same_run": same}, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
