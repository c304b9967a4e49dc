"""Issue 13, point 1: does training use the gradient that flossing recovers? Measured during training at the
published budget on the map networks of the gradient-flossing reference code (presets ``gf_rate_xor``,
``gf_binary_xor``).

At epochs 0, 10, 20, … 300 and every 250 epochs after (and always at the last one), on a fixed batch of
test sequences:

* the **lag profile of the task gradient**: the W_rec gradient of the task loss is a sum over loss steps
  ``t`` and earlier steps ``s`` of ``x̄^{(t)}_{s+1} φ(x_s)ᵀ`` (the error of the output at ``t`` having travelled
  ``lag = t - s`` steps back before it meets ``W_rec``); binned by lag, each bin's share of the gradient is
  its projection on the whole, ``<G_lag, G> / ‖G‖²`` (the shares sum to 1). The task needs lags δ and 2δ
  (``y_t = s_{t-δ} XOR s_{t-2δ}``): ``share_ge_delta`` is the share carried by lags ≥ δ;
* ``‖∂L/∂x₀‖`` and λ₁ of the flossing spectrum (``k`` = flossing.k on the flossing input);
* the **alignment** ``cos(∇L_task, ∇L_floss)`` over the flossed parameters (W_in, W_rec, b): > 0 means a
  flossing step also lowers the task loss, < 0 that it raises it;
* the task loss on the batch.

    python analysis/gf_gradient_use.py gf_rate_xor --delta 25 --seeds 1 2 3 --out analysis/gf_gradient_use_rate.json

Runs go one after another in this process (1 BLAS thread); finished runs are kept in the output JSON and
skipped when the command is rerun, so an interrupted study continues.
``python analysis/gf_gradient_use.py --summarize FILE.json …`` prints the table of docs/results.md, and
``… --plot OUT.png FILE.json …`` draws λ₁, the long-lag share and the alignment against epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from refimpl.model.cell import adjoint_element  # noqa: E402


# not cached: tests load this script under another module name, which a numba cache entry would record
@njit(cache=False)
def _current_adjoint(Vbar_next, Ibar_next, rho, c, alpha, beta, g, syn_old):
    """``J``, the adjoint of ``I_{s+1}`` (the quantity that meets ``W_rec S_s``), for each row: the third
    output of the library's per-neuron ``D_sᵀ`` (``model.cell.adjoint_element``, docs/model.md §4)."""
    R, N = Vbar_next.shape
    J = np.empty((R, N))
    for r in range(R):
        for i in range(N):
            J[r, i] = adjoint_element(Vbar_next[r, i], Ibar_next[r, i], 0.0, rho[i], c[i], alpha[i], beta[i], g[i],
                syn_old)[2]  # fmt: skip
    return J


def lag_profile(cfg, params, inputs, targets, loss_cfg, b: int = 0, return_total: bool = False):
    """``p[lag]``: the share of the task loss's W_rec gradient (trajectory ``b``) carried by each lag.

    One layer, read out from its state (map cells) or membrane (cLIF) without memory (``τ_out = 0``), so that
    the output ``y_t`` reads ``x_{t+1}`` (``V_{t+1}``). The adjoints of every scored step are propagated
    together, one row each, with the library's ``D_sᵀ`` (apply_DT); at step ``s`` row ``t`` meets
    ``W_rec`` as ``J^{(t)}_s S_sᵀ`` (``J`` the adjoint of the current ``I_{s+1}``; for a map cell the adjoint
    of ``x_{s+1}``, ``S_s = φ(x_s)``), at lag ``t - s``. The share of a lag is the projection of its part
    of the gradient on the whole, ``<G_lag, G> / ‖G‖²``."""
    from refimpl.model.losses import loss_and_grad
    from refimpl.model.network import apply_DT, layers_of, simulate

    Ls = layers_of(cfg)
    assert len(Ls) == 1 and cfg.readout.source in ("state", "membrane") and cfg.readout.tau_out == 0
    L = Ls[0]
    traj = simulate(cfg, params, inputs)
    _, ybar = loss_and_grad(loss_cfg, traj.y, targets)  # (T, B, n_out)
    T = inputs.shape[0]
    row_t = np.array([t for t in range(T) if np.any(ybar[t, b] != 0)])
    Vb, Ib = np.zeros((len(row_t), L.N)), np.zeros((len(row_t), L.N))
    W_out = params["readout/W_out"]
    S = traj.S[0][:, b]  # S_s, (T+1, N)
    rho, c = traj.lin[0].rho[:, b], traj.lin[0].c[:, b]
    G = np.zeros((L.N, L.N))
    met = []  # (s, lags, J) of the rows alive at s
    for s in range(T - 1, -1, -1):
        hit = row_t == s  # the output y_s reads x_{s+1}
        if hit.any():
            Vb[hit] += ybar[s, b] @ W_out
        live = row_t >= s
        J = _current_adjoint(Vb[live], Ib[live], rho[s], c[s], L.alpha, L.beta, L.g, L.syn_old)
        G += np.outer(J.sum(axis=0), S[s])
        met.append((s, row_t[live] - s, J))
        ((Vb, Ib),) = apply_DT(cfg, Ls, params, traj, s, [(Vb, Ib)], b)
    # G is the BPTT gradient of W_rec from trajectory b (checked in tests/test_analysis.py)
    shares = np.zeros(T)
    for s, lags, J in met:  # <J_r S_sᵀ, G> = J_r · (G S_s), binned by lag
        shares += np.bincount(lags, weights=J @ (G @ S[s]), minlength=T)
    shares /= max(np.sum(G * G), 1e-300)
    return (shares, G) if return_total else shares


def flat(grads: dict, keys) -> np.ndarray:
    return np.concatenate([np.ravel(grads[k]) for k in keys])


def measure(tr, run, delta: int, n_lag: int, n_task: int) -> dict:
    """Every diagnostic at the trainer's current parameters."""
    from refimpl.dynamics import flossing
    from refimpl.grad.adjoint import value_and_grad
    from refimpl.dynamics.flossing import flossed_keys
    from refimpl.grad.measures import initial_state_keys
    from refimpl.model.losses import loss_and_grad  # noqa: F401  (the loss of lag_profile)

    u, y = tr.data.test_inputs[:, :n_task], tr.data.test_targets[:, :n_task]
    params = tr.params_for(n_task)
    loss, g_task, _ = value_and_grad(tr.cfg, params, u, y, tr.loss_cfg)
    shares = np.mean([lag_profile(tr.cfg, params, u, y, tr.loss_cfg, b) for b in range(n_lag)], axis=0)
    fl = run.flossing
    lcfg = run.lyapunov.config(k=fl.k, flossing=fl)
    fcfg = fl.floss_config()
    fres = flossing.value_and_grad(tr.cfg, tr.single_params(), tr.data.floss_input(0), lcfg, fcfg)
    keys = flossed_keys(tr.cfg, fcfg)
    a, f = flat(g_task, keys), flat(fres.grads, keys)
    x0 = [k for k in initial_state_keys(tr.cfg) if k in g_task]
    return {"epoch": tr.epoch, "task_loss": float(loss), "share_ge_delta": float(shares[delta:].sum()),
        "share_ge_2delta": float(shares[2 * delta :].sum()), "share_lt_delta": float(shares[:delta].sum()),
        "lag_profile": shares[: 3 * delta + 1].tolist(),
        "grad_x0": float(np.linalg.norm(flat(g_task, x0))) if x0 else float("nan"),
        "lambda1_floss": float(fres.exponents[0]), "floss_loss": float(fres.loss),
        "cos_task_floss": float(a @ f / max(np.linalg.norm(a) * np.linalg.norm(f), 1e-300)),
        "norm_task": float(np.linalg.norm(a)), "norm_floss": float(np.linalg.norm(f))}  # fmt: skip


def one_run(preset: str, delta: int, seed: int, schedule: str, epochs: int | None, n_lag: int, n_task: int, extra=()):
    from refimpl.training.configfile import load_preset
    from refimpl.training import Trainer

    sets = [f"task.delta={delta}", f"network.seed={seed}", f"task.seed={seed}", "output.progress=false", "lyapunov.every=0"]
    if schedule == "none":
        sets += ['flossing.schedule="none"', "flossing.pre_steps=0"]
    if epochs is not None:
        sets.append(f"training.epochs={epochs}")
    run = load_preset(preset, sets + list(extra))
    E = run.training.epochs
    marks = set(range(0, min(E, 301), 10)) | set(range(0, E + 1, 250)) | {E}
    rows = []
    t0 = time.time()
    tr = Trainer(run, None)
    rows.append(measure(tr, run, delta, n_lag, n_task))
    for e in sorted(marks - {0}):  # train up to the next measurement, measure, go on
        tr.fit(e)
        rows.append(measure(tr, run, delta, n_lag, n_task))
        rows[-1]["floss_steps_so_far"] = int(tr.floss_counter)
    acc = tr.row(-1)["test_acc"]
    return {"preset": preset, "delta": delta, "seed": seed, "schedule": schedule, "epochs": E, "set": list(extra),
        "final_test_acc": float(acc), "wall_s": time.time() - t0, "rows": rows}  # fmt: skip


def summarize(paths) -> str:
    """A Markdown table of the finished runs of the given JSON files (for docs/results.md)."""
    head = ["network", "δ", "seed", "flossing", "final test acc", "λ₁ e0 → e10 → end",
        "share lags ≥ δ: e0, e10, median e10–300, end", "loss e90 → e100, e190 → e200",
        "cos(∇task, ∇floss): e100, e200, median"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for path in paths:
        for r in json.loads(Path(path).read_text()):
            by = {row["epoch"]: row for row in r["rows"]}
            end = r["rows"][-1]
            mid = [by[e]["share_ge_delta"] for e in range(10, 301, 10) if e in by]
            cos = [row["cos_task_floss"] for row in r["rows"]]

            def f(e, k, by=by):
                return f"{by[e][k]:.2f}" if e in by else "–"

            lines.append(
                "| "
                + " | ".join(
                    [
                        r["preset"].replace("gf_", "").replace("_xor", ""),
                        str(r["delta"]),
                        str(r["seed"]),
                        r["schedule"],
                        f"{r['final_test_acc']:.3f}",
                        f"{by[0]['lambda1_floss']:+.3f} → {by[10]['lambda1_floss']:+.3f} → {end['lambda1_floss']:+.3f}",
                        f"{by[0]['share_ge_delta']:.2f}, {by[10]['share_ge_delta']:.2f}, {np.median(mid):.2f}, "
                        f"{end['share_ge_delta']:.2f}",
                        f"{f(90, 'task_loss')} → {f(100, 'task_loss')}, {f(190, 'task_loss')} → {f(200, 'task_loss')}",
                        f"{f(100, 'cos_task_floss')}, {f(200, 'cos_task_floss')}, {np.median(cos):+.2f}",
                    ]
                )
                + " |"
            )
    return "\n".join(lines) + "\n"


def plot(paths, png) -> None:
    """λ₁, the share of the task gradient carried by lags ≥ δ, and the flossing–task alignment against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from refimpl.io import atomic_savefig

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for path in paths:
        for r in json.loads(Path(path).read_text()):
            ep = np.array([row["epoch"] for row in r["rows"]])
            net = r["preset"].replace("gf_", "").replace("_xor", "")
            flossed, plain = {"rate": ("C0", "C9"), "binary": ("C3", "C1"), "clif": ("C2", "C8")}.get(net, ("C4", "C6"))
            color = flossed if r["schedule"] != "none" else plain
            kw = dict(color=color, alpha=0.8, lw=1.2, ls="-" if r["schedule"] != "none" else ":",
                label=f"{net} δ={r['delta']}, {r['schedule']}" if r["seed"] == 1 else None)  # fmt: skip
            if net == "clif":
                kw["ls"] = "-." if r["schedule"] != "none" else (0, (1, 3))
                kw["lw"] = 1.0 if r["delta"] == 2 else 1.6
            ax[0].plot(ep + 1, [row["lambda1_floss"] for row in r["rows"]], **kw)
            ax[1].plot(ep + 1, [row["share_ge_delta"] for row in r["rows"]], **kw)
            ax[2].plot(ep + 1, [row["cos_task_floss"] for row in r["rows"]], **kw)
    for a, t in zip(
        ax, ("λ₁ of the flossing spectrum [1/step]", "share of the task gradient from lags ≥ δ", "cos(∇L_task, ∇L_floss)")
    ):
        a.set_xscale("log")
        a.set_xlabel("epoch + 1")
        a.set_title(t, fontsize=10)
        a.axvline(100, color="k", lw=0.4, ls="--")
        a.axvline(200, color="k", lw=0.4, ls="--")
    ax[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--summarize":
        print(summarize(sys.argv[2:]), end="")
        return 0
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--plot":
        plot(sys.argv[3:], sys.argv[2])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("preset", help="gf_rate_xor, gf_binary_xor or gf_clif_xor")
    p.add_argument("--delta", type=int, default=25, help="the task's delay δ (the paper's d = 2δ)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="network and task seeds")
    p.add_argument("--schedules", nargs="+", default=["periodic", "none"], help="the preset's schedule, or none")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's, 3001)")
    p.add_argument("--n-lag", type=int, default=1, help="test sequences of the lag profile")
    p.add_argument("--n-task", type=int, default=32, help="test sequences of the task loss and gradient")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a further preset override")
    p.add_argument("--out", required=True, help="JSON file of the results (kept and extended on rerun)")
    args = p.parse_args(argv)
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.exists() else []
    have = {(r["preset"], r["delta"], r["seed"], r["schedule"], r["epochs"], tuple(r.get("set", ()))) for r in done}
    for seed in args.seeds:
        for sch in args.schedules:
            from refimpl.training.configfile import load_preset

            E = args.epochs if args.epochs is not None else load_preset(args.preset).training.epochs
            if (args.preset, args.delta, seed, sch, E, tuple(args.set)) in have:
                continue
            r = one_run(args.preset, args.delta, seed, sch, args.epochs, args.n_lag, args.n_task, args.set)
            done.append(r)
            if out.exists():  # another process may have added runs meanwhile: keep them
                key = lambda x: (x["preset"], x["delta"], x["seed"], x["schedule"], x["epochs"], tuple(x.get("set", ())))  # noqa: E731
                mine = {key(x) for x in done}
                done += [x for x in json.loads(out.read_text()) if key(x) not in mine]
            tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(done, indent=1))
            os.replace(tmp, out)
            last = r["rows"][-1]
            print(
                f"{args.preset} δ={args.delta} seed {seed} {sch}: test acc {r['final_test_acc']:.3f}, "
                f"share of lags ≥ δ {r['rows'][0]['share_ge_delta']:.3f} -> {last['share_ge_delta']:.3f}, "
                f"cos(task, floss) {r['rows'][0]['cos_task_floss']:+.3f} -> {last['cos_task_floss']:+.3f}, "
                f"{r['wall_s']:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
