"""Cost of the spectrum, the flossing gradient and BPTT against N, k and T (docs/performance.md, "Scaling").

Plots ``analysis/scaling.json`` (written by ``python analysis/scaling.py``): wall time (top row, with the
fitted power law of each series) and the method's GFLOP/s as a fraction of the dgemm rate (bottom row).

    python figures/fig_scaling.py [--data analysis/scaling.json] [--out figures/fig_scaling.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
AXES = {"N": ["spectrum_N_k16", "spectrum_N_k64", "flossing_N_k16", "flossing_N_k64", "bptt_N"],
    "k": ["spectrum_k", "flossing_k"], "T": ["spectrum_T", "flossing_T", "bptt_T"]}  # fmt: skip
TITLES = {"N": "against N (T = 200; BPTT B = 32)", "k": "against k (N = 512, T = 200)",
    "T": "against T (N = 256, k = 32; BPTT B = 32)"}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "analysis" / "scaling.json"))
    ap.add_argument("--out", default=str(ROOT / "figures" / "fig_scaling.png"))
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(args.data).read_text())
    fig, ax = plt.subplots(2, 3, figsize=(13, 7.5))
    for col, (attr, names) in enumerate(AXES.items()):
        for name in names:
            pts = data["points"].get(name)
            if not pts:
                continue
            x = np.array([p[attr] for p in pts], float)
            e = data["exponents"][name]
            label = f"{name.replace('_' + attr, '').replace('_', ' ')}  ∝ {attr}^{e['exponent']:.2f}"
            ax[0, col].loglog(x, [p["seconds"] for p in pts], "o-", label=label)
            ax[1, col].semilogx(x, [100 * p["fraction_of_dgemm"] for p in pts], "o-", label=name)
        ax[0, col].set_title(TITLES[attr])
        ax[0, col].set_ylabel("wall time (s), 1 thread")
        ax[0, col].legend(fontsize=7)
        ax[1, col].set_ylabel("method GFLOP/s, % of dgemm")
        ax[1, col].axhline(50, color="k", lw=0.6, ls=":")
        ax[1, col].set_xlabel(attr)
        ticks = sorted({p[attr] for name in names for p in data["points"].get(name, [])})
        for a in ax[:, col]:
            a.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
            a.minorticks_off()
    fig.suptitle(f"refimpl scaling (float64, 1 BLAS thread; dgemm {data['dgemm_gflops']:.1f} GFLOP/s)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
