"""``refimpl demo``: the regime where flossing was found to help a spiking network, in about 3 minutes.

The headline network of docs/results.md (preset ``gf_clif_xor``: 80 recurrent cLIF neurons, dialect
``engelken``, fast-sigmoid surrogate, dt = 5 ms, τ_mem = 10 ms, at the published budget of 3001 Adam steps
on fresh batches) is trained on the spiking delayed XOR with δ = 4 steps (memory of 40 ms = 4 τ_mem) twice
from the same initial weights and the same data: once plainly, once after 500 pre-flossing steps (Adam
steps that drive the top 75 surrogate Lyapunov exponents toward −0.01/step). Pre-flossing alone is the
schedule that raised the final accuracy there on every one of 10 networks (by 1–3 points; the periodic
sessions and flossing as an added loss term did not help). The two trainings run side by side, one a core.
The demo measures

* the surrogate spectrum of the initial network, after pre-flossing and after both trainings;
* the backpropagated error norm ``‖∂L/∂x_t‖`` against the lag for a loss at the last step, before and after
  pre-flossing, together with the prediction ``exp(λ₁·lag)`` (the error signal travels backward through
  exactly the tangent maps whose growth rate λ₁ measures);
* test accuracy and loss of both trainings every 100 epochs,

and shows them beside the published-budget studies (``refimpl/data/flossing_findings.json``). It writes
``report.png``, ``summary.json`` and both runs' ``log.h5`` / ``checkpoint.h5`` (sub-directories
``no_flossing/`` and ``flossing/``). ``--quick`` shrinks everything for tests (a few seconds after
compilation).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

#: the preset the demo starts from, and what it changes (refimpl.training.configfile keys); docs/training.md
PRESET = "gf_clif_xor"
DEMO = {
    "network": {"seed": 1},
    "task": {"delta": 4, "seed": 1},
    "flossing": {"schedule": "pre"},  # the preset's 500 steps, k = 75, target -0.01; no inter-flossing sessions
    "lyapunov": {"every": 0},  # the demo measures its spectra itself
    "output": {"checkpoint_every": 0, "progress": False},
}

#: --quick: the same pipeline on a toy size (for tests)
QUICK = {"network": {"layers": [12]}, "task": {"T": 40, "delta": 3},
    "training": {"epochs": 3, "test_size": 16, "eval_every": 1},
    "flossing": {"pre_steps": 4, "k": 4, "T": 20, "transient": 2}, "lyapunov": {"k": 4, "T": 40, "transient": 2}}  # fmt: skip

ERROR_BATCH = 16  # trajectories averaged in the error-norm panel


#: what a finished (or interrupted) demo leaves in its directory
DEMO_OUTPUTS = ("summary.json", "report.png", "no_flossing", "flossing")


def _merge(base: dict, extra: dict) -> dict:
    out = {k: dict(v) for k, v in base.items()}
    for sec, kv in extra.items():
        out.setdefault(sec, {}).update(kv)
    return out


def demo_config(quick: bool = False, seed: int | None = None):
    """The two runs (plain, pre-flossing) of the demo as :class:`RunConfig` objects."""
    from refimpl.training.configfile import from_dict, load_preset

    d = _merge(load_preset(PRESET).to_dict(), DEMO)
    if quick:
        d = _merge(d, QUICK)
    if seed is not None:
        d["network"]["seed"] = d["task"]["seed"] = seed
    floss = from_dict(d, "demo")
    plain = floss.replace("flossing", schedule="none", pre_steps=0)
    return plain, floss


def _fit(run, out_dir) -> None:
    """One training run into ``out_dir`` (the plain run, in a child process beside the flossed one)."""
    from refimpl.training import Trainer

    Trainer(run, out_dir).fit()


def _error_curve(cfg, params, data, loss_cfg):
    from refimpl.grad.measures import error_norm_vs_lag

    lags, norms = error_norm_vs_lag(cfg, params, data.test_inputs, data.test_targets, loss_cfg, batch=ERROR_BATCH)
    with np.errstate(divide="ignore"):
        return lags, np.exp(np.mean(np.log(norms), axis=0))  # geometric mean over trajectories


def _slope(lags, curve, lo, hi):
    sel = (lags >= lo) & (lags <= hi) & (curve > 0)
    if sel.sum() < 2:
        return float("nan")
    return float(np.polyfit(lags[sel], np.log(curve[sel]), 1)[0])


def demo(out_dir="demo_out", *, quick: bool = False, seed: int | None = None, echo=print) -> dict:
    """Run the demo; returns the summary (also written to ``summary.json``)."""
    from refimpl.dynamics import lyapunov
    from refimpl.training import Trainer

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain_cfg, floss_cfg = demo_config(quick, seed)
    net, task, tr_cfg, fl = floss_cfg.network, floss_cfg.task.opts, floss_cfg.training, floss_cfg.flossing
    n_steps = tr_cfg.epochs * tr_cfg.steps_per_epoch
    echo(
        f"refimpl demo{' --quick' if quick else ''}: spiking delayed XOR (delta = {task['delta']}, "
        f"target x[t-{task['delta']}] xor x[t-{2 * task['delta']}], T = {task['T']}), cLIF N = "
        f"{net.layers[0]} ({net.dialect}, {net.surrogate} γ = {net.slope:g}, dt = {net.dt:g} ms); "
        f"{n_steps} Adam steps per run, with and without {fl.pre_steps} pre-flossing steps (k = {fl.k})",
        flush=True,
    )

    # ---- initial network: spectrum and error norms (this also compiles the kernels)
    t = time.perf_counter()
    plain = Trainer(plain_cfg)  # measurements only; the run itself writes into no_flossing/
    lcfg = floss_cfg.lyapunov.config()
    spec_input = plain.spectrum_input()
    spec0 = plain.spectrum()
    lags, err0 = _error_curve(plain.cfg, plain.params, plain.data, plain.loss_cfg)
    t_measure = time.perf_counter() - t

    # ---- plain training, in a child process beside the flossed one (the two runs are independent)
    import multiprocessing as mp

    t = time.perf_counter()
    child = None
    if "fork" in mp.get_all_start_methods():
        child = mp.get_context("fork").Process(target=_fit, args=(plain_cfg, out / "no_flossing"), daemon=True)
        child.start()
    else:
        _fit(plain_cfg, out / "no_flossing")

    # ---- pre-flossing + training (same seeds), keeping the parameters right after pre-flossing
    after_pre = {}
    marks = {}

    def hook(ev):
        if ev["kind"] == "boundary" and ev["epoch"] == 0:
            after_pre.update(floss.params)
            marks["pre_done"] = time.perf_counter()

    t_f = time.perf_counter()
    floss = Trainer(floss_cfg, out / "flossing", progress=hook)
    try:
        floss.fit()
    except BaseException:
        if child is not None and child.is_alive():
            child.terminate()
        raise
    t_floss_run = time.perf_counter() - t_f
    t_pre = marks["pre_done"] - t_f
    if child is not None:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"the training run without flossing failed (exit code {child.exitcode})")
    t_plain = time.perf_counter() - t
    plain = Trainer.resume(out / "no_flossing" / "checkpoint.h5", plain_cfg)
    echo(f"  without flossing: test accuracy {plain.history.rows['test_acc'][-1]:.3f} ({plain.wall:.1f} s)", flush=True)
    spec1 = lyapunov.spectrum(floss.cfg, after_pre, spec_input, lcfg)
    _, err1 = _error_curve(floss.cfg, after_pre, floss.data, floss.loss_cfg)
    echo(
        f"  with pre-flossing: test accuracy {floss.history.rows['test_acc'][-1]:.3f} "
        f"({t_floss_run:.1f} s, of which {t_pre:.1f} s pre-flossing)",
        flush=True,
    )
    spec_plain_end = plain.spectrum()
    spec_floss_end = floss.spectrum()

    # ---- summary
    hp, hf = plain.history.rows, floss.history.rows
    fit_hi = max(2, min(int(task["T"]) // 4, 20))
    summary = {
        "task": {"name": "delayed_xor", **{k: v for k, v in task.items()}, "t0": plain.loss_cfg.t0, "chance_accuracy": 0.5},
        "accuracy": {
            "no_flossing": hp["test_acc"][-1],
            "flossing": hf["test_acc"][-1],
            "best_no_flossing": max(hp["test_acc"]),
            "best_flossing": max(hf["test_acc"]),
            "initial": hp["test_acc"][0],
        },
        "test_loss": {"no_flossing": hp["test_loss"][-1], "flossing": hf["test_loss"][-1], "initial": hp["test_loss"][0]},
        "lambda1_per_step": {
            "initial": float(spec0.exponents[0]),
            "after_preflossing": float(spec1.exponents[0]),
            "after_training_no_flossing": float(spec_plain_end.exponents[0]),
            "after_training_flossing": float(spec_floss_end.exponents[0]),
        },
        "spectra_per_step": {
            "initial": spec0.exponents.tolist(),
            "after_preflossing": spec1.exponents.tolist(),
            "after_training_no_flossing": spec_plain_end.exponents.tolist(),
            "after_training_flossing": spec_floss_end.exponents.tolist(),
        },
        "error_norm_log_slope": {
            "lags": [1, fit_hi],
            "initial": _slope(lags, err0, 1, fit_hi),
            "after_preflossing": _slope(lags, err1, 1, fit_hi),
        },
        "adam_steps_per_run": n_steps,
        "preflossing_steps": fl.pre_steps,
        "timings_s": {
            "initial_measurements_incl_compilation": t_measure,
            "training_no_flossing": plain.wall,
            "both_trainings_side_by_side": t_plain,
            "preflossing": t_pre,
            "training_flossing_incl_preflossing": t_floss_run,
        },
        "quick": quick,
        "config": floss_cfg.replace("output", dir=str(out)).to_dict(),  # where this demo wrote
    }
    summary["context"] = (
        f"recurrent cLIF, N = {net.layers[0]} ({net.dialect}, {net.surrogate} γ = {net.slope:g}, dt = {net.dt:g} ms, "
        f"τ_mem = {net.tau_mem:g} ms, τ_syn = {net.tau_syn:g} ms); spiking delayed XOR, δ = {task['delta']}, "
        f"T = {task['T']}; {n_steps} Adam steps per run; flossing: {fl.pre_steps} pre-flossing steps, k = {fl.k}"
    )
    d_acc = summary["accuracy"]["flossing"] - summary["accuracy"]["no_flossing"]
    summary["verdict"] = (
        f"pre-flossing {'helped' if d_acc > 0.01 else 'hurt' if d_acc < -0.01 else 'made no clear difference'} "
        f"here: final test accuracy {summary['accuracy']['flossing']:.3f} with vs "
        f"{summary['accuracy']['no_flossing']:.3f} without (difference {d_acc:+.3f}; one network, chance 0.5)"
    )
    found = findings()
    summary["findings"] = found["studies"] if found else None

    t = time.perf_counter()
    _plot(out / "report.png", summary, lags, err0, err1, hp, hf, fit_hi)
    t_plot = time.perf_counter() - t
    summary["timings_s"]["plot"] = t_plot
    summary["timings_s"]["total"] = time.perf_counter() - t_start
    from refimpl.io import atomic_text

    atomic_text(out / "summary.json", json.dumps(_finite(summary), indent=2, allow_nan=False) + "\n")

    lam = summary["lambda1_per_step"]
    es = summary["error_norm_log_slope"]
    echo(
        f"  λ₁ [1/step]: initial {lam['initial']:+.3f} -> after pre-flossing {lam['after_preflossing']:+.3f}; "
        f"after training: without flossing {lam['after_training_no_flossing']:+.3f}, "
        f"with {lam['after_training_flossing']:+.3f}"
    )
    echo(
        f"  error norm |dL/dx_t| decays per step of lag (fit over lags 1-{fit_hi}): "
        f"initial {es['initial']:+.3f} (λ₁ {lam['initial']:+.3f}), after pre-flossing "
        f"{es['after_preflossing']:+.3f} (λ₁ {lam['after_preflossing']:+.3f})"
    )
    echo(
        f"  test accuracy (chance 0.5): without flossing {summary['accuracy']['no_flossing']:.3f}, "
        f"with pre-flossing {summary['accuracy']['flossing']:.3f}"
    )
    echo(f"  {summary['verdict']}")
    echo(f"  wall time {summary['timings_s']['total']:.1f} s; wrote {out / 'report.png'}, {out / 'summary.json'}")
    return summary


def _finite(obj):
    """Non-finite floats become ``null`` so that summary.json is strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def findings() -> dict | None:
    """The published-budget studies the demo shows beside its own runs (``refimpl/data/flossing_findings.json``,
    written by ``analysis/flossing_findings.py``), or None if the file is missing."""
    path = Path(__file__).resolve().parent / "data" / "flossing_findings.json"
    return json.loads(path.read_text()) if path.exists() else None


def _plot(path, summary, lags, err0, err1, hp, hf, fit_hi):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spectra = summary["spectra_per_step"]
    lam = summary["lambda1_per_step"]
    dt = summary["config"]["network"]["dt"]
    per_s = 1000.0 / dt  # λ [1/step] × steps per second = λ [1/s]
    fig, axs = plt.subplots(2, 3, figsize=(16.5, 8.5))
    ax = axs.ravel()
    a = ax[0]
    styles = {"initial": ("C0", "o-", "initial network"), "after_preflossing": ("C1", "s-", "after pre-flossing"),
        "after_training_no_flossing": ("C0", "x--", "trained, no flossing"),
        "after_training_flossing": ("C1", "x--", "trained, with flossing")}  # fmt: skip
    for key, (c, st, label) in styles.items():
        v = np.asarray(spectra[key])
        a.plot(np.arange(1, v.size + 1), v, st, color=c, ms=4, label=label)
    for key in ("initial", "after_preflossing"):
        a.annotate(f"λ₁ (largest) = {lam[key]:+.3f}/step = {lam[key] * per_s:+.0f}/s", (1, lam[key]),
            xytext=(4, 8 if key == "after_preflossing" else -14), textcoords="offset points", fontsize=7)  # fmt: skip
    a.axhline(0, color="k", lw=0.6)
    a.set_xlabel("index i (i = 1: the largest exponent)")
    a.xaxis.get_major_locator().set_params(integer=True)
    a.set_ylabel("surrogate Lyapunov exponent λ_i [1/step]")
    a.secondary_yaxis("right", functions=(lambda x: x * per_s, lambda y: y / per_s)).set_ylabel("λ_i [1/s]")
    a.set_title("(a) spectra before / after flossing")
    a.legend(fontsize=7, loc="lower right")

    a = ax[1]
    ep = np.asarray(hp["epoch"])
    a.plot(ep, hp["test_acc"], "o-", ms=3, color="C0", label="no flossing")
    a.plot(np.asarray(hf["epoch"]), hf["test_acc"], "o-", ms=3, color="C1", label="pre-flossing")
    a.axhline(0.5, color="k", lw=0.6, ls=":", label="chance (0.5)")
    a.set_xlabel("epoch")
    a.set_ylabel("test accuracy (scored bits)")
    a.set_title("(b) training with / without flossing (same seeds)")
    a.legend(fontsize=8)

    a = ax[2]
    a.plot(ep, hp["test_loss"], "o-", ms=3, color="C0", label="no flossing: test")
    a.plot(np.asarray(hf["epoch"]), hf["test_loss"], "o-", ms=3, color="C1", label="pre-flossing: test")
    a.plot(ep[1:], hp["train_loss"][1:], "--", color="C0", alpha=0.6, label="no flossing: train")
    a.plot(np.asarray(hf["epoch"])[1:], hf["train_loss"][1:], "--", color="C1", alpha=0.6, label="pre-flossing: train")
    a.axhline(np.log(2), color="k", lw=0.6, ls=":", label="chance (ln 2)")
    # the untrained network's loss (epoch 0; large with the published readout gain √N) would squash the
    # curves: the axis shows the trained range and says where the first point lies
    later = [v for v in (*hp["test_loss"][1:], *hf["test_loss"][1:], *hp["train_loss"][1:], *hf["train_loss"][1:])
        if np.isfinite(v)]  # fmt: skip
    if later and hp["test_loss"][0] > 2 * max(later):
        lo, hi = min(min(later), np.log(2)), max(max(later), np.log(2))
        a.set_ylim(lo - 0.1 * (hi - lo), hi + 0.3 * (hi - lo))
        a.annotate(f"epoch 0: {hp['test_loss'][0]:.2f}", (0.02, 0.95), xycoords="axes fraction", fontsize=7, va="top")
    a.set_xlabel("epoch")
    a.set_ylabel("BCE loss")
    a.set_title("(c) training curves")
    a.legend(fontsize=8)

    a = ax[3]
    for curve, key, c, label in (
        (err0, "initial", "C0", "initial network"),
        (err1, "after_preflossing", "C1", "after pre-flossing"),
    ):
        a.semilogy(lags, curve, "-", color=c, label=f"{label}")
        ref = 1
        pred = curve[ref] * np.exp(lam[key] * (lags - ref))
        a.semilogy(lags, pred, ":", color=c, lw=1.5, label=f"exp(λ₁·lag), λ₁ (largest) = {lam[key]:+.3f}/step")
    a.set_xlabel("lag = t_err + 1 - t [steps]")
    a.set_ylabel("‖∂L/∂x_t‖ (geometric mean)")
    a.set_title("(d) backpropagated error vs lag")
    lo = max(min(np.min(err0[err0 > 0]), np.min(err1[err1 > 0])) * 0.3, 1e-30)
    a.set_ylim(bottom=lo)
    a.legend(fontsize=7)

    a = ax[4]
    studies = summary["findings"]  # read once, by demo()
    if studies:
        for i, st in enumerate(studies):
            for j, (label, ser) in enumerate(st["series"].items()):
                if i > 0 and studies[i - 1]["network"] in st["network"] and label == "no flossing":
                    continue  # the same runs as the study before (a study of other schedules)
                a.plot(ser["d"], ser["mean_acc"], "--" if label == "no flossing" else "-", marker="os^vD"[j % 5],
                    color=f"C{i + 2}", label=f"{st['network'].split(',')[0]}: {label}")  # fmt: skip
        a.axhline(0.5, color="k", lw=0.6, ls=":", label="chance (0.5)")
        a.set(xlabel="delay d = 2δ (steps)", ylabel="final test accuracy (mean over 5–6 seeds)", ylim=(0.4, 1.02))
        a.legend(fontsize=6)
    a.set_title("(e) where flossing was looked for: the published budget", fontsize=9)

    a = ax[5]
    a.axis("off")
    lines = [summary["verdict"], ""]
    if studies:
        lines += ["At the published budget (3001 epochs, 5–6 seeds; docs/results.md):"]
        for st in studies:
            ser = st["series"]
            b = ser["no flossing"]
            base = {d: f"{n} ({m:.2f})" for d, n, m in zip(b["d"], b["solved"], b["mean_acc"])}
            lines += [f"• {st['network']}"]
            for label, s_ in ser.items():
                if label != "no flossing":
                    pairs = ", ".join(f"d={d}: {n} ({m:.2f}) vs {base.get(d, '–')}"
                        for d, n, m in zip(s_["d"], s_["solved"], s_["mean_acc"]))  # fmt: skip
                    lines += [f"   solved (mean accuracy), {label} vs none: {pairs}"]
    import textwrap

    a.text(0, 1, "\n".join(textwrap.fill(x, 70, subsequent_indent="   ") if x else "" for x in lines), va="top", fontsize=6.5)
    a.set_title("(f) what it shows", fontsize=9)
    fig.suptitle(summary["context"], fontsize=9)
    fig.tight_layout()
    fig.subplots_adjust(wspace=0.38)  # room for the 1/s axis of (a)
    from refimpl.io import atomic_savefig

    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
