"""(b) The surrogate spectrum of a binary RNN before and after flossing, and λ₁ during flossing.

Network: the binary RNN of figure (a) (``binary_delayed_xor`` preset, N = 80,
fast_sigmoid surrogate, W_rec ~ N(0, 1/N), analog ±1 delayed-XOR input with
δ = 10), seed 0. Spectra (all 80 exponents) are measured on the preset's fixed
spectrum input; flossing takes Adam steps (lr 0.01) on (1/k) Σ_{i≤k} λ_i²,
each on a fresh input of length ``T_floss`` (docs/model.md §7).

Panel 1: spectrum before and after ``STEPS`` flossing steps with k ∈ {1, 16, 32}.
Panel 2: λ₁ (of the flossing input) over flossing steps, k = 16, for surrogate
slopes γ ∈ {0.5, 1, 2, 4}.

    python figures/fig_b_binary_spectrum.py [--quick]
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import common

from refimpl.training.configfile import load_preset
from refimpl.dynamics.lyapunov import DegenerateSpectrumWarning
from refimpl.training import Trainer

N, DELTA, SEED = 80, 10, 0
KS = (1, 16, 32)
SLOPES = (0.5, 1.0, 2.0, 4.0)


def trainer(k: int, slope: float, T_floss: int, N: int = N) -> Trainer:
    run = load_preset(
        "binary_delayed_xor",
        [
            f"network.layers=[{N}]",
            f"network.slope={slope}",
            f"network.seed={SEED}",
            f"task.delta={DELTA}",
            f"task.T={4 * DELTA + 40}",
            f"task.seed={SEED}",
            f"flossing.k={k}",
            f"flossing.T={T_floss}",
            f"lyapunov.k={N}",
            "lyapunov.every=0",
            "output.progress=false",
        ],
    )
    return Trainer(run)


def floss_run(k, slope, steps, T_floss, n):
    tr = trainer(k, slope, T_floss, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateSpectrumWarning)
        before = tr.spectrum(n)
        t0 = time.perf_counter()
        tr.floss(steps, 0)
        sec = time.perf_counter() - t0
        after = tr.spectrum(n)
    lam1 = np.asarray(tr.history.floss["exponents"])[:, 0]
    return before.exponents, after.exponents, lam1, sec


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    out = common.out_dir(args)
    t_start = time.time()
    steps = 6 if args.quick else 300
    T_floss = 40 if args.quick else 200
    n = 12 if args.quick else N
    ks = tuple(min(k, n) for k in KS)
    data = {"N": n, "delta": DELTA, "seed": SEED, "steps": steps, "T_floss": T_floss, "spectra": {}, "lambda1_vs_step": {}}
    rows = []
    for k in ks:
        before, after, lam1, sec = floss_run(k, 1.0, steps, T_floss, n)
        data["spectra"]["before"] = before
        data["spectra"][f"k={k}"] = after
        rows.append([k, before[0], after[0], after[min(k, n) - 1], int(np.sum(np.abs(after) < 0.05)), f"{sec:.0f}"])
        print(f"k={k}: λ1 {before[0]:+.4f} -> {after[0]:+.4f}, λ_k {after[k - 1]:+.4f} ({sec:.0f} s)", flush=True)
    slope_rows = []
    for g in SLOPES:
        before, after, lam1, sec = floss_run(min(16, n), g, steps, T_floss, n)
        data["lambda1_vs_step"][str(g)] = lam1
        slope_rows.append([g, before[0], float(np.mean(lam1[:5])), float(np.mean(lam1[-10:])), after[0]])
        print(f"slope {g}: λ1 {before[0]:+.4f} -> {after[0]:+.4f}", flush=True)

    plt = common.pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    i = np.arange(1, n + 1)
    ax[0].plot(i, data["spectra"]["before"], "k-", label="before flossing")
    for k, c in zip(ks, ("C0", "C1", "C2")):
        ax[0].plot(i, data["spectra"][f"k={k}"], color=c, label=f"after, k = {k}")
        ax[0].axvline(k, color=c, lw=0.5, ls=":")
    ax[0].axhline(0, color="gray", lw=0.5)
    ax[0].set(xlabel="index i", ylabel="λ_i (1/step)", title=f"binary RNN N={n}: surrogate spectrum")
    ax[0].legend(fontsize=8)
    for g in SLOPES:
        ax[1].plot(data["lambda1_vs_step"][str(g)], label=f"γ = {g}")
    ax[1].axhline(0, color="gray", lw=0.5)
    ax[1].set(xlabel="flossing step", ylabel="λ₁ (1/step)", title="λ₁ during flossing (k = 16)")
    ax[1].legend(fontsize=8)

    table = (
        "# (b) Surrogate spectrum of a binary RNN before and after flossing\n\n"
        + common.provenance(argv, t_start)
        + f"\nN = {n}, δ = {DELTA}, seed {SEED}; {steps} Adam steps (lr 0.01), flossing input T = {T_floss}; "
        "spectra over all N exponents on the fixed spectrum input.\n\n"
        + common.md_table(
            ["k", "λ₁ before", "λ₁ after", "λ_k after", "count of abs(λ_i) < 0.05 after", "seconds"], rows, "{:+.4f}"
        )
        + "\nλ₁ during flossing (k = 16) for several surrogate slopes γ:\n\n"
        + common.md_table(
            ["γ", "λ₁ before", "λ₁ first 5 steps (mean)", "λ₁ last 10 steps (mean)", "λ₁ after (spectrum input)"],
            slope_rows,
            "{:+.4f}",
        )
    )
    common.write_outputs(out, "fig_b_binary_spectrum", fig, table, data)


if __name__ == "__main__":
    main()
