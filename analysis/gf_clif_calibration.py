"""The headline cLIF network of issue 13 (preset ``gf_clif_xor``) at initialization: mean firing rate and
λ₁ for the time steps and surrogate slopes considered, before choosing dt = 5 ms and γ = 2.

For each (dt, γ, reset_grad) and 3 networks (seeds 1–3) of the preset's initialization, on its inputs:
the mean rate (Hz) over a 300-step input, λ₁ of the flossing spectrum (T = 55, k = 75, 16 discarded QR
steps, as flossing sees it) and λ₁ of the logged spectrum (T = 300, 30 discarded). Writes
``analysis/gf_clif_calibration.json`` and prints a table.

    python analysis/gf_clif_calibration.py
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from refimpl.dynamics import lyapunov
from refimpl.model import network
from refimpl.model.config import LyapunovConfig
from refimpl.training import Trainer
from refimpl.training.configfile import load_preset

DTS = (1.0, 5.0)
SLOPES = (2.0, 5.0, 10.0)
RESET_GRADS = ("detached", "ignored")
SEEDS = (1, 2, 3)


def measure(dt, slope, reset_grad, seed):
    run = load_preset(
        "gf_clif_xor",
        overrides=[
            f"network.dt={dt}",
            f"network.slope={slope}",
            f'network.reset_grad="{reset_grad}"',
            f"network.seed={seed}",
            f"task.seed={seed}",
        ],
    )
    tr = Trainer(run)
    p = tr.single_params()
    u = tr.data.task.generate(1, tr.data.derive(99, seed), tr.data.dt, T=300).inputs
    u55 = tr.data.task.generate(1, tr.data.derive(98, seed), tr.data.dt, T=55).inputs
    rate = float(network.simulate(tr.cfg, p, u).S[0][1:].mean() / (dt * 1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        l55 = lyapunov.spectrum(tr.cfg, p, u55, LyapunovConfig(k=75, transient=16, seed=1)).exponents[0]
        l300 = lyapunov.spectrum(tr.cfg, p, u, LyapunovConfig(k=8, transient=30, seed=1)).exponents[0]
    return rate, float(l55), float(l300)


def main():
    t0 = time.time()
    out = {"seeds": list(SEEDS), "results": {}}
    print("| dt (ms) | γ | reset_grad | rate (Hz) | λ₁ flossing spectrum (T=55) | λ₁ logged (T=300) |")
    print("|---|---|---|---|---|---|")
    for dt in DTS:
        for g in SLOPES:
            for rg in RESET_GRADS:
                m = np.array([measure(dt, g, rg, s) for s in SEEDS])
                out["results"][f"{dt}/{g}/{rg}"] = {"rate_hz": m[:, 0].tolist(), "lambda1_55": m[:, 1].tolist(),
                    "lambda1_300": m[:, 2].tolist()}  # fmt: skip
                print(
                    f"| {dt:g} | {g:g} | {rg} | {m[:, 0].mean():.1f} | {m[:, 1].mean():.3f} ± {m[:, 1].std():.3f} "
                    f"| {m[:, 2].mean():.3f} ± {m[:, 2].std():.3f} |",
                    flush=True,
                )
    out["wall_s"] = time.time() - t0
    Path(__file__).with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
