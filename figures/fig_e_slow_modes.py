"""(e) Flossing creates slow tangent modes: time scales 1/|λ_i| of flossed modes against τ_mem and τ_syn.

A recurrent cLIF network (engelken dialect, N = 64, reset_grad = ignored,
fast_sigmoid γ = 10, dt = 1 ms, 100 Poisson inputs at 10 Hz, W_in ~ N(0, 6²/100),
W_rec ~ N(0, 2²/N)) is flossed with k = 16 toward target 0 (Adam, lr 2e-3,
120 steps, a fresh input of T = 200 each step, W_in, W_rec and b
flossed), for several (τ_mem, τ_syn). Before and after, the top 32 exponents
are measured on a held-out input (T = 1000 after a transient of 100) and
turned into time scales τ_i = dt/|λ_i| (ms).

Without recurrence and reset the surrogate tangent map of a cLIF neuron is
diagonal with exponents ln β = −dt/τ_mem and ln α = −dt/τ_syn, i.e. time
scales exactly τ_mem and τ_syn: these are the reference lines.

reset_grad = ignored because that is where flossing converges (docs/results.md,
issue 3: with the detached zero reset, the reset factor (1 − S_t) zeroes the
tangent of every spiking neuron and the flossing loss cannot be driven to 0).
One extra run with reset_grad = detached at (τ_mem, τ_syn) = (10, 5) shows that
contrast.

    python figures/fig_e_slow_modes.py [--quick]
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import common

from refimpl.dynamics import flossing, lyapunov
from refimpl.model.config import FlossConfig, LyapunovConfig, network_config
from refimpl.model.network import init_params
from refimpl.training.optim import AdamConfig, AdamState, adam_step
from refimpl.tasks.generators import poisson_inputs

#: (τ_mem, τ_syn, reset_grad)
RUNS = ((10.0, 5.0, "ignored"), (20.0, 5.0, "ignored"), (20.0, 10.0, "ignored"), (40.0, 10.0, "ignored"), (10.0, 5.0, "detached"))
K, K_SPEC, SEED = 16, 32, 0


def spectrum(cfg, params, T, k):
    u = poisson_inputs(T=T + 100, batch=1, n_in=100, rate_hz=10.0, seed=999)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lyapunov.DegenerateSpectrumWarning)
        return lyapunov.spectrum(cfg, params, u, LyapunovConfig(k=k, transient=100)).exponents


def run(tau_mem, tau_syn, reset_grad, N, steps, T, T_spec, k, k_spec):
    cfg = network_config(dialect="engelken", layers=(N,), n_in=100, n_out=1, tau_mem=tau_mem, tau_syn=tau_syn,
        reset_grad=reset_grad, surrogate={"name": "fast_sigmoid", "slope": 10.0})  # fmt: skip
    params = init_params(cfg, SEED, w_in=6.0, g_rec=2.0)
    before = spectrum(cfg, params, T_spec, k_spec)
    opt, state, lc = AdamConfig(lr=2e-3), AdamState(), LyapunovConfig(k=k)
    trace = []
    for i in range(steps):
        u = poisson_inputs(T=T, batch=1, n_in=100, rate_hz=10.0, seed=1000 + i)
        try:
            res = flossing.value_and_grad(cfg, params, u, lc, FlossConfig())
        except flossing.FlossingError:
            trace.append(np.nan)
            continue
        trace.append(float(np.max(np.abs(res.exponents))))
        params = adam_step(params, res.grads, state, opt)
    after = spectrum(cfg, params, T_spec, k_spec)
    return before, after, np.array(trace)


def timescales(lam, dt=1.0):
    with np.errstate(divide="ignore"):
        return dt / np.abs(lam)


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    out = common.out_dir(args)
    t0 = time.time()
    N, steps, T, T_spec, k, k_spec = (12, 5, 60, 200, 4, 8) if args.quick else (64, 120, 200, 1000, K, K_SPEC)
    data, rows = {"N": N, "k": k, "steps": steps, "seed": SEED, "runs": []}, []
    for tm, ts, rg in RUNS:
        before, after, trace = run(tm, ts, rg, N, steps, T, T_spec, k, k_spec)
        tb, ta = timescales(before), timescales(after)
        data["runs"].append(
            {"tau_mem": tm, "tau_syn": ts, "reset_grad": rg, "before": before, "after": after, "max_abs_lambda_trace": trace}
        )
        rows.append(
            [
                tm,
                ts,
                rg,
                float(np.median(tb[:k])),
                float(np.median(ta[:k])),
                float(np.min(ta[:k])),
                float(np.median(ta[k:])),
                float(np.median(ta[:k]) / tm),
                float(trace[-1]),
            ]
        )
        print(
            f"τ_mem {tm}, τ_syn {ts}, {rg}: median τ of top {k}: {np.median(tb[:k]):.1f} -> {np.median(ta[:k]):.1f} ms; "
            f"modes {k + 1}..{k_spec} after: {np.median(ta[k:]):.1f} ms; max|λ| {trace[0]:.4f} -> {trace[-1]:.4f}",
            flush=True,
        )

    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(RUNS), figsize=(3.6 * len(RUNS), 3.8), sharey=True)
    for ax, r in zip(axes, data["runs"]):
        i = np.arange(1, len(r["before"]) + 1)
        ax.semilogy(i, timescales(r["before"]), "k.-", label="before")
        ax.semilogy(i, timescales(r["after"]), "C3.-", label=f"after flossing k={k}")
        ax.axhline(r["tau_mem"], color="C0", ls="--", lw=1, label="τ_mem")
        ax.axhline(r["tau_syn"], color="C2", ls=":", lw=1, label="τ_syn")
        ax.axvline(k + 0.5, color="gray", lw=0.5)
        ax.set_xlabel("index i")
        ax.set_title(f"τ_mem = {r['tau_mem']:g}, τ_syn = {r['tau_syn']:g} ms\nreset_grad = {r['reset_grad']}", fontsize=9)
    axes[0].set_ylabel("time scale dt/|λ_i| (ms)")
    axes[0].legend(fontsize=7)
    table = (
        "# (e) Flossing creates slow tangent modes\n\n"
        + common.provenance(argv, t0)
        + f"\nN = {N}, k = {k} flossed toward 0 for {steps} Adam steps (lr 2e-3, T = {T} per step, input "
        f"seeds 1000+step), seed {SEED}; spectra (top {k_spec}) on a held-out input (seed 999, T = {T_spec}).\n\n"
        + common.md_table(
            [
                "τ_mem (ms)",
                "τ_syn (ms)",
                "reset_grad",
                f"median τ_i, i ≤ {k}, before",
                f"median τ_i, i ≤ {k}, after",
                f"min τ_i, i ≤ {k}, after",
                f"median τ_i, {k} < i ≤ {k_spec}, after",
                "(median after) / τ_mem",
                "max abs λ_i, last flossing step",
            ],
            rows,
            "{:.2f}",
        )
    )
    common.write_outputs(out, "fig_e_slow_modes", fig, table, data)


if __name__ == "__main__":
    main()
