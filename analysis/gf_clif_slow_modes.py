"""The slow tangent modes of the headline cLIF study (issue 13, point 3): time constants τ_i = dt/|λ_i| of the
surrogate spectrum before training, after pre-flossing and after training, against τ_mem and τ_syn, and
‖∂L/∂h₀‖ against the delay, from the finished runs of ``figures/runs/gf_clif_xor/jobs/``.

    python analysis/gf_clif_slow_modes.py [--plot figures/fig_gf_clif_slow_modes.png]

Writes ``analysis/gf_clif_slow_modes.json`` and prints a Markdown table (one row per condition, reset_grad
and delay; means over the finished seeds). A mode is "slower than τ" when λ_i > −dt/τ (an expanding mode,
λ_i ≥ 0, counts as slower than any τ). The spectra are the logged ones: k = 75 exponents on the run's fixed
300-step input (preset ``gf_clif_xor``, dt = 5 ms, τ_mem = 10 ms, τ_syn = 5 ms).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "figures" / "runs" / "gf_clif_xor" / "jobs"
DT, TAU_MEM, TAU_SYN = 5.0, 10.0, 5.0


def slower_than(lam, tau):
    """How many exponents decay more slowly than exp(−t/τ) (λ > −dt/τ, 1/step)."""
    return int(np.sum(lam > -DT / tau))


def read_runs():
    runs = []
    for p in sorted(JOBS.glob("*.h5")):
        with h5py.File(p, "r") as f:
            ax = json.loads(f.attrs["axes"])
            h = f["history"]
            ep, st, ex = h["spectrum/epoch"][()], h["spectrum/stage"][()], h["spectrum/exponents"][()]
            pre = ex[(ep == 0) & (st == 1)]
            runs.append(
                {
                    "condition": str(f.attrs["condition"]),
                    "reset_grad": ax["reset_grad"],
                    "delta": int(ax["delta"]),
                    "seed": int(ax["seed"]),
                    "initial": ex[(ep == 0) & (st == 0)][0],
                    "preflossed": pre[0] if len(pre) else None,
                    "final": ex[-1],
                    "test_acc": float(f["test_acc"][()]),
                    "grad_x0_initial": float(f["grad_x0_initial"][()]),
                    "grad_x0": float(f["grad_x0"][()]),
                }
            )
    return runs


def summarize(runs):
    by = defaultdict(list)
    for r in runs:
        by[(r["condition"], r["reset_grad"], r["delta"])].append(r)
    rows = []
    for (cond, rg, d), rs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        row = {"condition": cond, "reset_grad": rg, "delta": d, "n": len(rs)}
        for stage in ("initial", "preflossed", "final"):
            lams = [r[stage] for r in rs if r[stage] is not None]
            if not lams:
                continue
            row[f"{stage}_lambda1"] = float(np.mean([lam[0] for lam in lams]))
            row[f"{stage}_tau1_ms"] = float(np.median([DT / abs(lam[0]) if lam[0] < 0 else np.inf for lam in lams]))
            row[f"{stage}_slower_than_tau_mem"] = float(np.mean([slower_than(lam, TAU_MEM) for lam in lams]))
            row[f"{stage}_slower_than_5tau_mem"] = float(np.mean([slower_than(lam, 5 * TAU_MEM) for lam in lams]))
        row["grad_x0_initial_geo"] = float(np.exp(np.mean(np.log([r["grad_x0_initial"] for r in rs]))))
        row["grad_x0_final_geo"] = float(np.exp(np.mean(np.log([r["grad_x0"] for r in rs]))))
        row["test_acc_mean"] = float(np.mean([r["test_acc"] for r in rs]))
        rows.append(row)
    return rows


def table(rows):
    out = [
        "| reset_grad | condition | δ (steps) | n | λ₁ init → pre-flossed → end (1/step) | τ₁ end (ms) "
        "| modes slower than τ_mem: init, pre-flossed, end | slower than 5 τ_mem: init, end "
        "| ‖∂L/∂h₀‖ start → end (geo.) | accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    f = lambda r, k, fmt="{:.3f}": fmt.format(r[k]) if k in r else "–"  # noqa: E731
    for r in rows:
        out.append(
            f"| {r['reset_grad']} | {r['condition']} | {r['delta']} | {r['n']} "
            f"| {f(r, 'initial_lambda1')} → {f(r, 'preflossed_lambda1')} → {f(r, 'final_lambda1')} "
            f"| {f(r, 'final_tau1_ms', '{:.0f}')} "
            f"| {f(r, 'initial_slower_than_tau_mem', '{:.1f}')}, {f(r, 'preflossed_slower_than_tau_mem', '{:.1f}')}, "
            f"{f(r, 'final_slower_than_tau_mem', '{:.1f}')} "
            f"| {f(r, 'initial_slower_than_5tau_mem', '{:.1f}')}, {f(r, 'final_slower_than_5tau_mem', '{:.1f}')} "
            f"| {r['grad_x0_initial_geo']:.1e} → {r['grad_x0_final_geo']:.1e} | {r['test_acc_mean']:.3f} |"
        )
    return "\n".join(out)


def plot(runs, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(16, 4.4))
    fig.suptitle(
        "Recurrent cLIF, N = 80, dt = 5 ms, τ_mem = 10 ms, τ_syn = 5 ms; delayed XOR at the published budget "
        "(preset gf_clif_xor); spectra: k = 75 on the fixed 300-step input",
        fontsize=9,
    )
    for p, rg in enumerate(("detached", "ignored")):
        a = ax[p]
        sel = [r for r in runs if r["reset_grad"] == rg]
        if not sel:
            continue
        for stage, cond, color, label in (
            ("initial", None, "gray", "initial network"),
            ("preflossed", "floss", "C1", "after 500 pre-flossing steps"),
            ("final", "none", "C0", "after training, no flossing"),
            ("final", "floss", "C3", "after training, flossing"),
        ):
            lams = [r[stage] for r in sel if r[stage] is not None and (cond is None or r["condition"] == cond)]
            if not lams:
                continue
            a.plot(np.arange(1, len(lams[0]) + 1), np.median(lams, axis=0), color=color, label=label)
        a.axhline(-DT / TAU_MEM, color="k", ls="--", lw=0.8, label="−dt/τ_mem: a mode as slow as the membrane")
        a.axhline(-DT / TAU_SYN, color="k", ls=":", lw=0.8, label="−dt/τ_syn")
        a.axhline(0.0, color="k", lw=0.5)
        a.set(xlabel="exponent index i", ylabel="λ_i (1/step; median over runs), τ_i = dt/|λ_i|",
            title=f"({'ab'[p]}) reset_grad = {rg}: the surrogate spectrum")  # fmt: skip
        a.legend(fontsize=7)
    a = ax[2]
    for rg, ls in (("detached", "-"), ("ignored", "--")):
        for cond, color in (("none", "C0"), ("floss", "C3")):
            rs = sorted([r for r in rows if r["reset_grad"] == rg and r["condition"] == cond], key=lambda r: r["delta"])
            if rs:
                a.semilogy([r["delta"] for r in rs], [r["grad_x0_final_geo"] for r in rs], ls=ls, marker="o",
                    color=color, label=f"{'no flossing' if cond == 'none' else 'flossing'}, {rg}")  # fmt: skip
    a.set(xlabel="delay δ (steps of 5 ms)", ylabel="‖∂L/∂h₀‖ after training (geo. mean)",
        title="(c) ‖∂L/∂h₀‖ after training (∞ not drawn)")  # fmt: skip
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plot", default=None, help="write the figure to this PNG file")
    args = ap.parse_args()
    runs = read_runs()
    rows = summarize(runs)
    print(f"{len(runs)} finished runs in {JOBS.relative_to(ROOT)}\n")
    print(table(rows))
    Path(__file__).with_suffix(".json").write_text(json.dumps({"n_runs": len(runs), "rows": rows}, indent=1) + "\n")
    if args.plot:
        plot(runs, rows, args.plot)


if __name__ == "__main__":
    main()
