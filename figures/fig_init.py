"""Issue 8.1: fluctuation-driven initialization hits its targets in direct simulations.

For every clif dialect (engelken, spytorch, stork) and for binary and rate cells, a layer of
N = 400 neurons with n_in = 200 Bernoulli inputs at 20 Hz (dt = 1 ms) is initialized with
:func:`refimpl.model.init.fluctuation_init` for targets (μ_U, σ_U) ∈ {(0, 1), (−0.5, 0.5)} and
simulated with :func:`refimpl.model.network.simulate` for 1500 steps, 2 input realizations. The
free membrane (clif: threshold moved to 1e9 and no reset; binary/rate: the pre-activation
x) is pooled over neurons, steps ≥ 100 and realizations. A second column set shows the same
weights with the real threshold and reset, to show what spiking does to the membrane that
the initialization targets. The shot-noise formula of Rossbroich et al. (continuous time)
is not used: its weights would miss σ_U by the p² terms it leaves out (docs/derivations.md §5).

The three dialects share τ_mem and τ_syn, so their kernels differ only by the gain g and a
one-step shift, which the solved weights absorb: with the same weight seed their free
membranes are the same up to that shift, and so are the pooled statistics. Binary and rate
layers without recurrence have the same pre-activation x = W_in u.

    python figures/fig_init.py [--quick]
"""

import time

import numpy as np

import common

from refimpl.model import init
from refimpl.model.config import network_config, with_changes
from refimpl.model.network import simulate
from refimpl.tasks.generators import poisson_inputs

NU, N_IN, BURN = 20.0, 200, 100
CELLS = (("clif", "engelken"), ("clif", "spytorch"), ("clif", "stork"), ("binary", None), ("rate", None))
TARGETS = ((0.0, 1.0), (-0.5, 0.5))


def make(cell, dialect, N):
    if cell == "clif":
        return network_config(dialect, layers=(N,), n_in=N_IN, n_out=1)
    return network_config(cell=cell, layers=(N,), n_in=N_IN, n_out=1)


def pooled(cfg, params, u):
    tr = simulate(cfg, params, u)
    U = tr.V[0][BURN:]
    return float(U.mean()), float(U.std())


def main(argv=None):
    args = common.parser(__doc__).parse_args(argv)
    t0 = time.time()
    N, T, B = (60, 400, 1) if args.quick else (400, 1500, 2)
    u = poisson_inputs(T=T, batch=B, n_in=N_IN, rate_hz=NU, seed=7)
    rows, data = [], {}
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(CELLS), figsize=(3.3 * len(CELLS), 3.2))
    for ax, (cell, dialect) in zip(axes, CELLS):
        cfg = make(cell, dialect, N)
        for mu, sigma in TARGETS:
            p = init.fluctuation_init(cfg, mu_U=mu, sigma_U=sigma, nu_in=NU, seed=0)
            free = with_changes(cfg, theta=1e9, reset="none") if cell == "clif" else cfg
            m, s = pooled(free, p, u)
            spiking = pooled(cfg, p, u) if cell == "clif" else (float("nan"), float("nan"))
            name = f"{cell}" + (f" ({dialect})" if dialect else "")
            rows.append([name, mu, sigma, m, s, (m - mu) / max(abs(mu), sigma), s / sigma - 1, spiking[0], spiking[1]])
            data[f"{name} {mu} {sigma}"] = {"mean": m, "sd": s, "spiking": spiking}
            if (mu, sigma) == TARGETS[0]:
                U = simulate(free, p, u).V[0][BURN:].ravel()
                ax.hist(U, bins=80, density=True, alpha=0.7)
                x = np.linspace(-4, 4, 200)
                ax.plot(x, np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi), "k--", lw=1)
                ax.set(title=name, xlabel="free membrane U (θ)" if cell == "clif" else "pre-activation x")
    axes[0].set_ylabel("density (target: N(0, 1), dashed)")
    table = (
        "# Fluctuation-driven initialization: targets against simulation (issue 8.1)\n\n"
        + common.provenance(argv, t0)
        + f"\nN = {N} neurons, {N_IN} Bernoulli inputs at {NU:g} Hz, dt = 1 ms, T = {T}, {B} input "
        f"realizations (seed 7), weights seed 0; pooled over neurons, steps ≥ {BURN} and realizations. "
        "μ error in units of max(|μ_U|, σ_U); σ error relative. The last two columns: the same weights "
        "with the threshold and zero reset of the dialect (what spiking does to the membrane).\n\n"
        + common.md_table(
            ["cell", "μ_U target", "σ_U target", "μ̂ (free)", "σ̂ (free)", "μ error", "σ error", "μ̂ with spikes", "σ̂ with spikes"],
            rows,
            "{:+.4f}",
        )
    )
    common.write_outputs(common.out_dir(args), "fig_init", fig, table, data)


if __name__ == "__main__":
    main()
