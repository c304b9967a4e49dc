"""(d) Surrogate exponents predict gradients: backpropagated error norm against lag vs exp(λ₁·lag).

For each network of a grid, two independent measurements:

* **predicted**: λ₁ by Benettin's method (docs/model.md §6) on one long input
  (``T_SPEC`` steps after a transient of 100);
Both use an instantaneous readout (τ_out = 0), so that the error enters at
the last step only.

* **measured**: the decay rate of the backpropagated error. A single error
  signal (random ȳ at the last step) is propagated back by exact BPTT under
  the surrogate rule (``refimpl.training.state_adjoints``) along ``B`` other
  trajectories of the same input statistics; the rate is the least-squares
  slope of the trajectory-mean of log‖∂L/∂x_{T−lag}‖ against lag over
  ``lag ∈ [LAG0, LAG1]`` (capped where λ₁·lag < −500 to stay clear of underflow).

Grid: recurrent cLIF (engelken dialect, N = 64, 100 Poisson inputs at 10 Hz,
dt = 1 ms, W_in ~ N(0, 6²/100)) over g_rec ∈ {1, 2, 4} × slope γ ∈ {2, 5, 10, 25}
× reset ∈ {zero, subtract} × reset_grad ∈ {detached, attached}, and binary RNNs
(N = 64, the same Poisson input, W_in ~ N(0, 2²/100)) over
g ∈ {0.5, 1, 2, 4} × γ ∈ {0.5, 1, 2}; network seed = grid index. R² is reported
against the identity line (measured = predicted), 1 − Σ(m−p)²/Σ(m−m̄)², and as
the squared Pearson correlation.

    python figures/fig_d_error_vs_lambda.py [--quick]
"""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np

import common

from refimpl.dynamics import lyapunov
from refimpl.model.config import LyapunovConfig, network_config
from refimpl.model.network import init_params, simulate
from refimpl.tasks.generators import poisson_inputs
from refimpl.training import state_adjoints

N_IN, RATE = 100, 10.0
LAG0, LAG1 = 20, 200
#: instantaneous readout: a leaky one (τ_out > 0) would feed the error in at every
#: earlier step too, and its own decay exp(−dt/τ_out) would mask the network's
READOUT = {"tau_out": 0.0, "source": "spikes"}


def grid(quick: bool):
    if quick:
        yield dict(cell="clif", g=2.0, slope=10.0, reset="zero", reset_grad="detached")
        yield dict(cell="binary", g=1.0, slope=1.0, reset="none", reset_grad="detached")
        return
    for g, s, r, rg in itertools.product((1.0, 2.0, 4.0), (2.0, 5.0, 10.0, 25.0), ("zero", "subtract"), ("detached", "attached")):
        yield dict(cell="clif", g=g, slope=s, reset=r, reset_grad=rg)
    for g, s in itertools.product((0.5, 1.0, 2.0, 4.0), (0.5, 1.0, 2.0)):
        yield dict(cell="binary", g=g, slope=s, reset="none", reset_grad="detached")


def build(spec: dict, N: int, seed: int):
    sur = {"name": "fast_sigmoid", "slope": spec["slope"]}
    if spec["cell"] == "clif":
        cfg = network_config(dialect="engelken", layers=(N,), n_in=N_IN, n_out=1, reset=spec["reset"],
            reset_grad=spec["reset_grad"], surrogate=sur, readout=READOUT)  # fmt: skip
        params = init_params(cfg, seed, w_in=6.0, g_rec=spec["g"])
    else:
        cfg = network_config(cell="binary", layers=(N,), n_in=N_IN, n_out=1, surrogate=sur,
            readout={**READOUT, "source": "state"})  # fmt: skip
        params = init_params(cfg, seed, w_in=2.0, g_rec=spec["g"])
    return cfg, params


def measure(spec, seed, N, T_spec, T_err, B):
    cfg, params = build(spec, N, seed)
    u_spec = poisson_inputs(T=T_spec + 100, batch=1, n_in=N_IN, rate_hz=RATE, seed=10_000 + seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lyapunov.DegenerateSpectrumWarning)
        lam1 = float(lyapunov.spectrum(cfg, params, u_spec, LyapunovConfig(k=1, transient=100)).exponents[0])
    u = poisson_inputs(T=T_err, batch=B, n_in=N_IN, rate_hz=RATE, seed=20_000 + seed)
    traj = simulate(cfg, params, u)
    rng = np.random.default_rng(seed)
    ybar = np.zeros(traj.y.shape)
    ybar[-1] = rng.standard_normal(ybar[-1].shape)
    with np.errstate(divide="ignore"):
        logn = np.array(
            [np.log(np.linalg.norm(state_adjoints(cfg, params, traj, ybar, b), axis=1))[::-1] for b in range(B)]
        )  # (B, T+1), index = lag
    curve = logn.mean(axis=0)
    hi = LAG1 if lam1 >= 0 else min(LAG1, int(500 / -lam1))
    lags = np.arange(curve.size)
    sel = (lags >= LAG0) & (lags <= hi) & np.isfinite(curve)
    rate = float(np.polyfit(lags[sel], curve[sel], 1)[0]) if sel.sum() >= 5 else float("nan")
    return lam1, rate, curve


def r_squared(pred, meas):
    """R² against the identity line, and the squared Pearson correlation."""
    r2_id = float(1 - np.sum((meas - pred) ** 2) / np.sum((meas - meas.mean()) ** 2))
    return r2_id, float(np.corrcoef(pred, meas)[0, 1] ** 2)


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    out = common.out_dir(args)
    t0 = time.time()
    N, T_spec, T_err, B = (16, 200, 120, 2) if args.quick else (64, 1000, 300, 8)
    specs = list(grid(args.quick))
    rows, curves = [], []
    for seed, spec in enumerate(specs):
        lam1, rate, curve = measure(spec, seed, N, T_spec, T_err, B)
        rows.append({**spec, "seed": seed, "lambda1": lam1, "rate": rate})
        curves.append(curve)
        print(f"{seed:3d} {spec}: λ1 {lam1:+.4f}  error decay rate {rate:+.4f}", flush=True)
    p = np.array([r["lambda1"] for r in rows])
    m = np.array([r["rate"] for r in rows])
    ok = np.isfinite(p) & np.isfinite(m)
    r2_id, r2_pearson = r_squared(p[ok], m[ok])
    summary = {"n_networks": int(ok.sum()), "r2_identity": r2_id, "r2_pearson": r2_pearson,
        "max_abs_diff": float(np.max(np.abs(m[ok] - p[ok]))),
        "median_abs_diff": float(np.median(np.abs(m[ok] - p[ok])))}  # fmt: skip
    cells = np.array([r["cell"] for r in rows])
    for cell in ("clif", "binary"):
        sel = ok & (cells == cell)
        if sel.sum() >= 3:  # the binary RNNs span a wider range; R² of each family alone is the stricter test
            summary[f"r2_identity_{cell}"], summary[f"r2_pearson_{cell}"] = r_squared(p[sel], m[sel])
            summary[f"n_{cell}"] = int(sel.sum())
    print(summary)

    plt = common.pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for i in np.linspace(0, len(rows) - 1, min(6, len(rows))).astype(int):
        c = curves[i]
        lags = np.arange(c.size)
        (line,) = ax[0].plot(lags, c - c[LAG0], lw=1)
        ax[0].plot(lags, rows[i]["lambda1"] * (lags - LAG0), ls="--", color=line.get_color(), lw=1)
    ax[0].set(xlabel="lag (steps)", ylabel="log ‖∂L/∂x_{T−lag}‖ (shifted)", title="error norm (solid) vs λ₁·lag (dashed)")
    for cell, mk in (("clif", "o"), ("binary", "s")):
        sel = np.array([r["cell"] == cell for r in rows]) & ok
        ax[1].scatter(p[sel], m[sel], marker=mk, s=18, label=cell)
    lo, hi = np.nanmin(np.r_[p, m]), np.nanmax(np.r_[p, m])
    ax[1].plot([lo, hi], [lo, hi], "k:", lw=1)
    ax[1].set(xlabel="λ₁ (Benettin, 1/step)", ylabel="measured error decay rate (1/step)",
        title=f"R² = {r2_id:.3f} (identity), {r2_pearson:.3f} (Pearson), n = {int(ok.sum())}")  # fmt: skip
    ax[1].legend(fontsize=8)
    header = ["cell", "g", "γ", "reset", "reset_grad", "seed", "λ₁", "measured rate", "difference"]
    table_rows = [
        [r["cell"], r["g"], r["slope"], r["reset"], r["reset_grad"], r["seed"], r["lambda1"], r["rate"], r["rate"] - r["lambda1"]]
        for r in rows
    ]
    table = (
        "# (d) Surrogate exponents predict gradients\n\n"
        + common.provenance(argv, t0)
        + f"\nN = {N}; λ₁ on T = {T_spec} steps (after 100 transient); error norms on B = {B} other "
        f"trajectories of T = {T_err}, fit over lags {LAG0}–{LAG1}. Seeds: network seed = row index; "
        "inputs 10000+seed (spectrum), 20000+seed (errors).\n\n"
        + f"**R² (identity line) = {r2_id:.4f}; Pearson r² = {r2_pearson:.4f}; n = {int(ok.sum())} networks; "
        f"median |measured − λ₁| = {summary['median_abs_diff']:.4f}, max = {summary['max_abs_diff']:.4f} /step.**\n\n"
        + "".join(
            f"- {c} only: n = {summary[f'n_{c}']}, R² (identity) = {summary[f'r2_identity_{c}']:.4f}, "
            f"Pearson r² = {summary[f'r2_pearson_{c}']:.4f}\n"
            for c in ("clif", "binary")
            if f"n_{c}" in summary
        )
        + "\n"
        + common.md_table(header, table_rows, "{:+.4f}")
    )
    common.write_outputs(out, "fig_d_error_vs_lambda", fig, table, {"summary": summary, "rows": rows, "curves": curves})


if __name__ == "__main__":
    main()
