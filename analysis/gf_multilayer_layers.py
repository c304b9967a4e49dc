"""Issue 13, point 4: per-layer error decay and gradient dimensionality of the multi-layer cLIF runs
(``figures/sweeps/gf_clif_multilayer.toml``: 2 and 3 recurrent layers, without and with flossing).

A stack of recurrent layers is one map whose tangent map ``D_t`` is block lower-triangular (layer ``l``
reads the spikes of layer ``l - 1`` at the same step, docs/model.md §1.2): its Lyapunov spectrum is the
union of the spectra of the diagonal blocks, each layer driven by the spikes of the layer below. An error
injected at the readout (the top layer) travels back inside the top block and leaks down through the
feed-forward blocks, so the error of layer ``l`` decays at the slowest rate among the blocks ``l … L``.
For each finished run, for the initial network and the trained one:

* **per-layer error decay**: the loss scored at the last step only (``t_err = T - 1``), its state adjoint
  ``x̄_t`` (:func:`refimpl.grad.measures.state_adjoints`) split by layer, ``log ‖x̄^l‖`` averaged over
  ``--batch`` test sequences against the lag ``T - t``, and its slope over lags ``--fit`` (1/step);
* **per-layer block spectra**: λ₁ (and the top exponents) of layer ``l`` alone, driven by the spikes the
  layer below produced on the spectrum input (a one-layer network with layer ``l``'s parameters, so its
  trajectory is layer ``l``'s), beside λ₁ of the whole network;
* **per-layer gradient dimensionality**: the participation ratio of the per-step terms of layer ``l``'s
  ``W_rec`` gradient of the task loss (:mod:`refimpl.dynamics.dimensionality`) on the same test sequences.

The trained network is read from each run's final checkpoint (``work/<run>/checkpoint.h5`` of the sweep
directory; not committed), the initial one rebuilt from its ``config.toml``. Results go to a JSON file that
is extended on rerun (finished runs are skipped):

    python analysis/gf_multilayer_layers.py --out analysis/gf_clif_layers.json
    python analysis/gf_multilayer_layers.py --summarize analysis/gf_clif_layers.json
    python analysis/gf_multilayer_layers.py --accuracy analysis/gf_clif_layers.json
    python analysis/gf_multilayer_layers.py --plot figures/fig_gf_clif_layers.png analysis/gf_clif_layers.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SWEEP_DIR = ROOT / "figures" / "runs" / "gf_clif_multilayer"
N_CURVE = 121  # lags of the stored error curves


def layer_error_curves(cfg, params, inputs, targets, loss_cfg):
    """``log ‖x̄^l_{T-lag}‖`` (``(L, T+1)``, averaged over the trajectories of ``inputs``) for the loss
    scored at the last step alone; lag 0 is the state the last output reads."""
    from refimpl.grad.measures import state_adjoints
    from refimpl.model.losses import LossConfig, loss_and_grad
    from refimpl.model.network import simulate, state_slices

    T, B = inputs.shape[:2]
    traj = simulate(cfg, params, inputs)
    _, ybar = loss_and_grad(LossConfig(loss_cfg.name, T - 1), traj.y, targets)
    out = np.zeros((cfg.n_layers, T + 1))
    for b in range(B):
        xbar = state_adjoints(cfg, params, traj, ybar, b)[::-1]  # row j: lag j
        for l, (sV, sI) in enumerate(state_slices(cfg)):
            n2 = np.sum(xbar[:, sV] ** 2, axis=1) + (np.sum(xbar[:, sI] ** 2, axis=1) if sI is not None else 0.0)
            with np.errstate(divide="ignore"):
                out[l] += 0.5 * np.log(n2) / B
    return out


def decay_rate(curve, lo: int, hi: int) -> float:
    """Least-squares slope of ``curve[lo:hi+1]`` against lag (1/step); NaN if any entry is not finite."""
    lags = np.arange(lo, hi + 1)
    y = curve[lo : hi + 1]
    return float(np.polyfit(lags, y, 1)[0]) if np.all(np.isfinite(y)) else float("nan")


def layer_network(cfg, params, l: int):
    """Layer ``l`` (0-based) alone as a one-layer network: its config and parameters (readout zero)."""
    n_in = cfg.n_in if l == 0 else cfg.layers[l - 1]
    N = cfg.layers[l]
    cfg1 = dataclasses.replace(cfg, layers=(N,), n_in=n_in)
    p = {"layer1/" + k.split("/", 1)[1]: v for k, v in params.items() if k.startswith(f"layer{l + 1}/")}
    p["readout/W_out"] = np.zeros((cfg.n_out, N))
    p["readout/b_out"] = np.zeros(cfg.n_out)
    return cfg1, p


def block_spectra(cfg, params, inputs, lcfg):
    """The exponents of each diagonal block of ``D_t`` along the trajectory of ``inputs`` (one trajectory):
    layer ``l`` driven by the spikes of layer ``l - 1`` (the input for ``l = 0``); ``lcfg.k`` of them, or
    all of a block's if it has fewer."""
    from refimpl.dynamics.lyapunov import DegenerateSpectrumWarning, spectrum
    from refimpl.model.network import simulate

    traj = simulate(cfg, params, inputs)
    out = []
    for l in range(cfg.n_layers):
        cfg1, p1 = layer_network(cfg, params, l)
        z = np.ascontiguousarray(traj.layer_input(l))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateSpectrumWarning)
            lcfg1 = dataclasses.replace(lcfg, k=min(lcfg.k, cfg1.state_size))
            out.append(np.asarray(spectrum(cfg1, p1, z, lcfg1).exponents))
    return out


def layer_dimensionality(cfg, params, inputs, targets, loss_cfg):
    """Per layer, the participation ratio of the per-step terms of its ``W_rec`` gradient of the task loss
    (NaN for a silent layer, whose ``W_rec`` gradient is zero), and the layers' firing rates (Hz)."""
    from refimpl.dynamics.dimensionality import gradient_samples
    from refimpl.grad.measures import firing_rates
    from refimpl.model.losses import loss_and_grad
    from refimpl.model.network import simulate

    traj = simulate(cfg, params, inputs)
    _, ybar = loss_and_grad(loss_cfg, traj.y, targets)
    prs = [float(gradient_samples(cfg, params, traj, ybar, names=("W_rec",), layers=(l,)).participation_ratios()["all"])
        for l in range(cfg.n_layers)]  # fmt: skip
    return prs, firing_rates(cfg, traj).tolist()


def measure(tr, n_batch: int, fit, k: int) -> dict:
    """Every per-layer quantity of the trainer's current network."""
    u, y = tr.data.test_inputs[:, :n_batch], tr.data.test_targets[:, :n_batch]
    params = tr.params_for(n_batch)
    curves = layer_error_curves(tr.cfg, params, u, y, tr.loss_cfg)
    lcfg = tr.run.lyapunov.config(k)
    blocks = block_spectra(tr.cfg, tr.single_params(), tr.spectrum_input(), lcfg)
    full = tr.spectrum(k)
    prs, rates = layer_dimensionality(tr.cfg, params, u, y, tr.loss_cfg)
    return {"decay_rate": [decay_rate(c, *fit) for c in curves], "curves": [c[:N_CURVE].tolist() for c in curves],
        "lambda1_block": [float(b[0]) for b in blocks], "block_top": [b[:5].tolist() for b in blocks],
        "lambda1_full": float(full.exponents[0]), "full_top": np.asarray(full.exponents[:5]).tolist(),
        "grad_pr": prs, "rate_hz": rates}  # fmt: skip


def one_run(work: Path, n_batch: int, fit, k: int) -> dict | None:
    """Both networks of one finished sweep run, or None if it has not finished."""
    import h5py

    from refimpl.training import Trainer, read_log
    from refimpl.training.configfile import load

    ck = work / "checkpoint.h5"
    if not ck.exists():
        return None
    run = load(work / "config.toml")
    with h5py.File(ck, "r") as f:
        if int(f.attrs["epoch"]) < run.training.epochs:
            return None
    job = json.loads((work / "job.json").read_text())
    init = Trainer(run, None)
    final = Trainer.resume(ck, run, None)
    log = read_log(work / "log.h5")
    rec = {"name": job["name"], "condition": job["condition"], "seed": job["axes"]["seed"],
        "layers": list(job["axes"]["layers"]), "delta": job["axes"]["delta"], "fit": list(fit), "batch": n_batch,
        "test_acc": float(log["epochs/test_acc"][-1]), "init": measure(init, n_batch, fit, k),
        "final": measure(final, n_batch, fit, k)}  # fmt: skip
    dim = {key[len("dimensionality/") :]: np.asarray(v).tolist() for key, v in log.items() if key.startswith("dimensionality/")}
    rec["logged_dimensionality"] = dim  # all layers together, at every spectrum of training
    return rec


def summarize(path) -> str:
    """Markdown table: mean ± sd over seeds of the per-layer decay rates, block λ₁ and gradient PR."""
    runs = json.loads(Path(path).read_text())
    groups = {}
    for r in runs:
        groups.setdefault((len(r["layers"]), r["delta"], r["condition"]), []).append(r)
    head = ["layers", "δ", "flossing", "seeds", "test acc", "stage", "error decay rate per layer (1/step)",
        "block λ₁ per layer (1/step)", "λ₁ whole", "gradient PR per layer", "rate per layer (Hz)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def ms(vals):
        v = np.asarray(vals, float)
        return f"{np.nanmean(v):+.3f} ± {np.nanstd(v):.3f}" if v.size > 1 else f"{v[0]:+.3f}"

    def per_layer(rs, stage, key, fmt=ms):
        return " / ".join(fmt([r[stage][key][l] for r in rs]) for l in range(len(rs[0]["layers"])))

    def pr(vals):  # silent layers (NaN) are left out of the mean
        v = np.asarray(vals, float)
        return f"{np.mean(v[np.isfinite(v)]):.1f}" if np.isfinite(v).any() else "silent"

    for (nl, d, cond), rs in sorted(groups.items()):
        acc = np.mean([r["test_acc"] for r in rs])
        solved = sum(r["test_acc"] >= 0.9 for r in rs)
        for stage in ("init", "final"):
            lines.append(f"| {nl} | {d} | {cond} | {len(rs)} | {acc:.3f} ({solved}/{len(rs)}) | {stage} | "
                f"{per_layer(rs, stage, 'decay_rate')} | {per_layer(rs, stage, 'lambda1_block')} | "
                f"{ms([r[stage]['lambda1_full'] for r in rs])} | {per_layer(rs, stage, 'grad_pr', pr)} | "
                f"{per_layer(rs, stage, 'rate_hz', lambda v: f'{np.mean(v):.1f}')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def accuracy_table(path) -> str:
    """Markdown: final test accuracy (solved = ≥ 0.9) and λ₁ after training per depth, δ and condition."""
    runs = json.loads(Path(path).read_text())
    groups = {}
    for r in runs:
        groups.setdefault((len(r["layers"]), r["delta"], r["condition"]), []).append(r)
    lines = ["| layers | δ | test accuracy, no flossing (solved) | with flossing (solved) | λ₁ after training, none / flossing "
        "(1/step) | seeds (none, flossing) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for nl, d in sorted({(k[0], k[1]) for k in groups}):
        cells, lams, ns = [], [], []
        for c in ("none", "floss"):
            rs = groups.get((nl, d, c), [])
            acc = [r["test_acc"] for r in rs]
            cells.append(f"{np.mean(acc):.3f} ({sum(a >= 0.9 for a in acc)}/{len(rs)})" if rs else "–")
            lams.append(f"{np.mean([r['final']['lambda1_full'] for r in rs]):+.3f}" if rs else "–")
            ns.append(str(len(rs)))
        lines.append(f"| {nl} | {d} | {cells[0]} | {cells[1]} | {lams[0]} / {lams[1]} | {', '.join(ns)} |")
    return "\n".join(lines) + "\n"


def plot(path, png) -> None:
    """(a) log error norm per layer against lag, trained networks, δ = 2; (b) decay rate against block λ₁;
    (c) gradient PR per layer, initial and trained."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from refimpl.io import atomic_savefig

    runs = json.loads(Path(path).read_text())
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    styles = {"none": ":", "floss": "-"}
    for r in runs:
        if r["delta"] != 2 or len(r["layers"]) != 3:
            continue
        for l, c in enumerate(r["final"]["curves"]):
            lab = f"layer {l + 1}, {r['condition']}" if r["seed"] == min(x["seed"] for x in runs) else None
            ax[0].plot(np.arange(len(c)), np.asarray(c), color=f"C{l}", ls=styles[r["condition"]], lw=1, label=lab)
    ax[0].set_xlabel("lag (steps of 5 ms)")
    ax[0].set_ylabel("log ‖x̄ˡ‖ (mean over test sequences)")
    ax[0].set_title("(a) error per layer, trained 3-layer networks, δ = 2", fontsize=10)
    ax[0].legend(fontsize=7)
    lo = []
    for r in runs:
        for stage, mk in (("init", "o"), ("final", "s")):
            m = r[stage]
            slowest_above = [max(m["lambda1_block"][l:]) for l in range(len(r["layers"]))]
            for l in range(len(r["layers"])):
                ax[1].scatter(slowest_above[l], m["decay_rate"][l], marker=mk, s=14, color=f"C{l}",
                    facecolors="none" if r["condition"] == "none" else None, alpha=0.8)  # fmt: skip
                lo.append(slowest_above[l])
    if lo:
        x = np.linspace(min(lo), max(lo), 2)
        ax[1].plot(x, x, color="k", lw=0.6)
    ax[1].set_xlabel("max of block λ₁ over layers l … L [1/step]")
    ax[1].set_ylabel("error decay rate of layer l [1/step]")
    ax[1].set_title("(b) decay rate vs block exponents (○ init, □ trained; hollow: no flossing)", fontsize=9)
    labels, x0 = [], 0
    for nl in (2, 3):
        bars = [("initial", "init", "none", "0.7"), ("trained, no flossing", "final", "none", "C1"),
            ("trained, flossing", "final", "floss", "C0")]  # fmt: skip
        for l in range(nl):
            for b_i, (lab, stage, cond, color) in enumerate(bars):
                vals = [r[stage]["grad_pr"][l] for r in runs if len(r["layers"]) == nl and r["condition"] == cond]
                v = np.asarray(vals, float)
                v = v[np.isfinite(v)]
                ax[2].bar(x0 + 0.27 * (b_i - 1), v.mean() if v.size else 0.0, 0.25, color=color,
                    label=lab if (nl, l) == (2, 0) else None)  # fmt: skip
            labels.append(f"{nl} layers: {l + 1}")
            x0 += 1
    ax[2].set_xticks(range(len(labels)), labels, fontsize=7)
    ax[2].set_xlabel("network: layer (no bar: the layer is silent in every run)")
    ax[2].set_ylabel("participation ratio of the W_rec gradient terms")
    ax[2].set_title("(c) gradient dimensionality per layer (mean over δ, seeds)", fontsize=10)
    ax[2].legend(fontsize=6)
    fig.tight_layout()
    atomic_savefig(fig, png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--summarize"]:
        print(summarize(argv[1]), end="")
        return 0
    if argv[:1] == ["--accuracy"]:
        print(accuracy_table(argv[1]), end="")
        return 0
    if argv[:1] == ["--plot"]:
        plot(argv[2], argv[1])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep-dir", default=str(SWEEP_DIR), help="the sweep's output directory")
    p.add_argument("--batch", type=int, default=8, help="test sequences of the error curves and the gradient PR")
    p.add_argument("--fit", type=int, nargs=2, default=[10, 60], metavar=("LO", "HI"), help="lags of the slope fit")
    p.add_argument("--k", type=int, default=10, help="exponents of the block and whole spectra")
    p.add_argument("--out", required=True, help="JSON file of the results (kept and extended on rerun)")
    args = p.parse_args(argv)
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.exists() else []
    have = {r["name"] for r in done}
    for work in sorted((Path(args.sweep_dir) / "work").iterdir()):
        if work.name in have:
            continue
        rec = one_run(work, args.batch, tuple(args.fit), args.k)
        if rec is None:
            continue
        done.append(rec)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(done, indent=1))
        os.replace(tmp, out)
        f = rec["final"]
        print(f"{rec['name']}: acc {rec['test_acc']:.3f}; decay per layer "
            f"{' '.join(f'{x:+.3f}' for x in f['decay_rate'])}; block λ₁ {' '.join(f'{x:+.3f}' for x in f['lambda1_block'])}; "
            f"λ₁ {f['lambda1_full']:+.3f}; PR {' '.join(f'{x:.1f}' for x in f['grad_pr'])}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
