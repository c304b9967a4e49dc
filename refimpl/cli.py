"""The ``refimpl`` command line.

Each subcommand lives in a function pair ``_add_<name>(subparsers)`` /
``_run_<name>(args)`` here, or in the module named in :data:`PLUGINS`
(which provides ``add_parser(subparsers)`` and ``run(args)``). Exit codes:
0 success, 1 a failed check or mismatch, 2 bad input (a one-line message,
never a traceback).
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
import time

import numpy as np

#: subcommands implemented in their own modules (module path relative to refimpl)
PLUGINS = ["golden", "training", "demo", "bench", "sweep"]


class UsageError(Exception):
    """Bad input: reported in one line, exit code 2."""


# ---------------------------------------------------------------------------
# shared flags: a network, its parameters and a background input
# ---------------------------------------------------------------------------

def add_network_flags(p: argparse.ArgumentParser, *, layers="64", n_in=100) -> None:
    g = p.add_argument_group("network (MODEL §1)")
    g.add_argument("--cell", default="clif", help="clif, binary or rate")
    g.add_argument("--dialect", default="engelken", help="engelken, spytorch or stork (clif)")
    g.add_argument("--reset", default=None, help="override the dialect's reset: zero, subtract, none")
    g.add_argument("--surrogate", default="fast_sigmoid")
    g.add_argument("--slope", type=float, default=10.0, help="surrogate slope γ")
    g.add_argument("--reset-grad", default="detached", help="detached, attached or ignored (MODEL §3)")
    g.add_argument("--smooth", action="store_true", help="smooth mode (MODEL §2)")
    g.add_argument("--layers", default=None,
                   help=f"comma-separated layer sizes, e.g. 64 or 32,16 (default {layers}; binary and rate "
                        f"cells have one layer, default {layers.split(',')[0]})")
    p.set_defaults(layers_default=layers)
    g.add_argument("--n-in", type=int, default=n_in)
    g.add_argument("--n-out", type=int, default=1)
    g.add_argument("--tau-mem", type=float, default=10.0)
    g.add_argument("--tau-syn", type=float, default=5.0)
    g.add_argument("--dt", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--w-in", type=float, default=6.0, help="W_in ~ N(0, w_in²/n_in)")
    g.add_argument("--g-rec", type=float, default=2.0, help="W_rec ~ N(0, g_rec²/N)")
    g.add_argument("--bias", type=float, default=0.0)


def network_from_args(args):
    from .config import network_config
    given = args.layers
    if given is None:   # the default must fit the cell: map cells (binary, rate) have one layer
        given = args.layers_default if args.cell == "clif" else args.layers_default.split(",")[0]
    try:
        layers = tuple(int(x) for x in str(given).split(","))
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers, got {args.layers!r}")
    kw = dict(cell=args.cell, layers=layers, n_in=args.n_in, n_out=args.n_out, dt=args.dt,
              tau_mem=args.tau_mem, tau_syn=args.tau_syn, reset_grad=args.reset_grad,
              surrogate={"name": args.surrogate, "slope": args.slope}, smooth=args.smooth)
    if args.cell == "clif":
        kw["dialect"] = args.dialect
        if args.reset is not None:
            kw["reset"] = args.reset
    return network_config(**kw)


def add_input_flags(p, *, T=500) -> None:
    g = p.add_argument_group("input: independent Poisson spike trains")
    g.add_argument("--T", type=int, default=T, help="number of time steps")
    g.add_argument("--rate", type=float, default=10.0, help="input rate in Hz")
    g.add_argument("--input-seed", type=int, default=1)


def add_lyapunov_flags(p, *, k=32) -> None:
    g = p.add_argument_group("spectrum (MODEL §6)")
    g.add_argument("--k", type=int, default=k, help="number of exponents")
    g.add_argument("--ons", type=int, default=1, help="steps between QR re-orthonormalizations")
    g.add_argument("--warmup", type=int, default=0)
    g.add_argument("--transient", type=int, default=0)
    g.add_argument("--q-seed", type=int, default=0, help="seed of Q_0")


def problem_from_args(args):
    from .config import LyapunovConfig
    from .network import init_params
    from .tasks import poisson_inputs
    cfg = network_from_args(args)
    params = init_params(cfg, args.seed, w_in=args.w_in, g_rec=args.g_rec, bias=args.bias)
    inputs = poisson_inputs(T=args.T, batch=1, n_in=cfg.n_in, rate_hz=args.rate, seed=args.input_seed,
                            dt=cfg.dt)
    lcfg = LyapunovConfig(k=args.k, ons=args.ons, warmup=args.warmup, transient=args.transient,
                          seed=args.q_seed)
    return cfg, params, inputs, lcfg


# ---------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------

def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="check every derivative two independent ways (MODEL §8)")
    add_network_flags(p, layers="6,4", n_in=3)
    p.set_defaults(n_out=2, w_in=2.0, g_rec=1.5)
    p.add_argument("--T", type=int, default=20)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--loss", default="bce_per_step")
    p.add_argument("--fault", default=None,
                   help="switch on a deliberately wrong derivative to see the checks fail")
    p.add_argument("--list-faults", action="store_true")


def _run_gradcheck(args) -> int:
    from . import gradcheck
    from .config import LossConfig
    if args.list_faults:
        for name, (desc, _) in gradcheck.FAULTS.items():
            print(f"{name:<28} {desc}")
        return 0
    cfg = network_from_args(args)
    loss = LossConfig(args.loss, t0=min(2, args.T - 1))
    t = time.time()
    print(f"gradcheck: cell={cfg.cell} layers={cfg.layers} syn_input={cfg.syn_input} "
          f"input_gain={cfg.input_gain} reset={cfg.reset} reset_grad={cfg.reset_grad} "
          f"surrogate={cfg.surrogate.name}(γ={cfg.surrogate.slope}) T={args.T} seed={args.seed}"
          + (f" FAULT={args.fault}" if args.fault else ""))
    if args.fault:
        with gradcheck.inject(args.fault):
            rows = gradcheck.run(cfg, T=args.T, B=args.batch, seed=args.seed, loss=loss)
    else:
        rows = gradcheck.run(cfg, T=args.T, B=args.batch, seed=args.seed, loss=loss)
    print(gradcheck.format_table(rows))
    worst = {}
    for r in rows:
        worst[r.check] = max(worst.get(r.check, 0.0), r.error)
    print("worst per check: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    failed = [r for r in rows if not r.passed]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed ({time.time() - t:.1f} s)")
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# lyapunov
# ---------------------------------------------------------------------------

def _add_lyapunov(sub):
    p = sub.add_parser("lyapunov", help="surrogate Lyapunov spectrum of a network on Poisson input")
    add_network_flags(p)
    add_input_flags(p)
    add_lyapunov_flags(p)
    p.add_argument("--out", default=None, help="write the spectrum to this HDF5 file")
    p.add_argument("--plot", default=None, help="write a plot of the spectrum to this PNG file")


def spectrum_table(lam, err, dt) -> str:
    lines = [f"{'i':>4} {'λ_i [1/step]':>14} {'± err':>10} {'λ_i [1/ms]':>12}"]
    for i, (l, e) in enumerate(zip(lam, err)):
        lines.append(f"{i + 1:>4} {l:14.6f} {e:10.2e} {l / dt:12.6f}")
    return "\n".join(lines)


def _run_lyapunov(args) -> int:
    from .io import atomic_h5, check_writable, to_json
    from .lyapunov import spectrum
    from .network import simulate
    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        if path:
            check_writable(path, flag)   # before the computation, which would otherwise be lost
    cfg, params, inputs, lcfg = problem_from_args(args)
    t = time.time()
    res = spectrum(cfg, params, inputs, lcfg)
    rate = np.mean([S.mean() for S in simulate(cfg, params, inputs).S]) * 1000 / cfg.dt
    print(spectrum_table(res.exponents, res.error, cfg.dt))
    print(f"λ_max = {res.exponents.max():.6f}/step  Kaplan-Yorke dim = {res.kaplan_yorke:.3f}  "
          f"entropy rate = {res.entropy_rate:.4f}/step  PR(first vector) = {res.participation_ratio:.2f}  "
          f"mean rate = {rate:.1f} Hz  ({time.time() - t:.2f} s)")
    if args.out:
        with atomic_h5(args.out) as f:
            f.attrs["config"] = to_json({**cfg.to_dict(), "lyapunov": vars(lcfg) if hasattr(lcfg, "__dict__") else {}})
            f["spectrum"] = res.exponents
            f["error"] = res.error
            f["local"] = res.local
            f["Q0"] = res.Q0
            f["Q_final"] = res.Q_final
            f.attrs["kaplan_yorke"] = res.kaplan_yorke
            f.attrs["entropy_rate"] = res.entropy_rate
            f.attrs["participation_ratio"] = res.participation_ratio
        print(f"wrote {args.out}")
    if args.plot:
        plot_spectra({"spectrum": res.exponents}, args.plot)
        print(f"wrote {args.plot}")
    return 0


def plot_spectra(spectra: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, lam in spectra.items():
        ax.plot(np.arange(1, len(lam) + 1), lam, "o-", ms=3, label=label)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("index i")
    ax.set_ylabel("λ_i [1/step]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------
# floss
# ---------------------------------------------------------------------------

def _add_floss(sub):
    p = sub.add_parser("floss", help="Adam steps on the flossing loss, showing the exponents move")
    add_network_flags(p)
    add_input_flags(p)
    add_lyapunov_flags(p, k=16)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--target", type=float, default=0.0)
    p.add_argument("--params", default="W_in,W_rec,b", help="flossed parameters")
    p.add_argument("--tol", type=float, default=None,
                   help="stop once max|λ_i - target| < tol")
    p.add_argument("--checkpoint-every", type=int, default=None, help="recompute Q_t in segments")
    p.add_argument("--every", type=int, default=10, help="print every n steps")
    p.add_argument("--out", default=None, help="write the history to this HDF5 file")


def _run_floss(args) -> int:
    from .config import FlossConfig
    from .flossing import value_and_grad
    from .interrupt import DeferredInterrupt
    from .io import atomic_h5, check_writable, to_json
    from .optim import AdamConfig, AdamState, adam_step
    if args.out:
        check_writable(args.out, "--out")
    # a count or tolerance that makes the command do nothing, or never stop, is an error (before any work)
    if args.steps < 0:
        raise UsageError(f"--steps must be >= 0 (Adam steps), got {args.steps}")
    if args.every < 1:
        raise UsageError(f"--every must be >= 1 (print every n steps), got {args.every}")
    if args.tol is not None and not args.tol > 0:
        raise UsageError(f"--tol must be > 0 (max|λ_i - target|), got {args.tol}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise UsageError(f"--lr must be a finite number > 0, got {args.lr}")
    cfg, params, inputs, lcfg = problem_from_args(args)
    fcfg = FlossConfig(target=args.target, params=tuple(args.params.split(",")))
    opt, state = AdamConfig(lr=args.lr), AdamState()
    history, losses = [], []
    t0 = time.time()
    reached = None
    best = None   # (flossing loss, step, parameters): the best iterate is kept, not only the last

    def save(interrupted: bool) -> None:
        if not args.out:
            return
        with atomic_h5(args.out) as f:
            f.attrs["config"] = to_json(cfg.to_dict())
            f["exponents"] = np.array(history)
            f["loss"] = np.array(losses)
            f.attrs["steps_to_tol"] = -1 if reached is None else reached
            f.attrs["interrupted"] = interrupted      # True: the steps so far, cut short by Ctrl-C
            f.attrs["best_step"] = -1 if best is None else best[1]
            for name, ps in (("params", params), ("best_params", None if best is None else best[2])):
                if ps is None:
                    continue
                g = f.create_group(name)
                for key, v in ps.items():
                    g[key] = v

    def report() -> None:
        if best is None:
            return
        if args.tol is not None:
            met = "met" if reached is not None else "NOT met"
            print(f"target max|λ_i - target| < {args.tol}: {met}")
        drift = " (the flossing loss rose: see --lr)" if losses[-1] > losses[0] else ""
        print(f"flossing loss {losses[0]:.3e} -> {losses[-1]:.3e}{drift}; best {best[0]:.3e} at step {best[1]}"
              + ("; best parameters kept in best_params" if args.out else ""))

    try:
        with DeferredInterrupt(message=None) as sigint:
            for step in range(args.steps + 1):
                res = value_and_grad(cfg, params, inputs, lcfg, fcfg, checkpoint_every=args.checkpoint_every)
                history.append(res.exponents.copy())
                losses.append(res.loss)
                if best is None or res.loss < best[0]:
                    best = (res.loss, step, params)
                dev = np.max(np.abs(res.exponents - args.target))
                if step % args.every == 0 or step == args.steps:
                    lam = res.exponents
                    shown = ", ".join(f"{x:.4f}" for x in lam[:4]) + (" …" if len(lam) > 4 else "")
                    el = time.time() - t0
                    # the first steps include compilation: no ETA until 5 steps have run
                    eta = f"ETA {el / (step + 1) * (args.steps - step):5.0f} s" if step >= 5 else "ETA     -"
                    print(f"step {step:4d}  L_floss {res.loss:.3e}  max|λ-λ*| {dev:.4f}  λ: [{shown}]  "
                          f"{el:6.1f} s, {eta}", flush=True)
                if args.tol is not None and dev < args.tol:
                    reached = step
                    print(f"max|λ_i - target| < {args.tol} after {step} Adam steps")
                    break
                if step < args.steps:
                    params = adam_step(params, res.grads, state, opt)
                sigint.poll()
    except (KeyboardInterrupt, SystemError) as exc:
        # a second Ctrl-C inside a compiled kernel surfaces as a SystemError whose context is it
        if isinstance(exc, SystemError) and not isinstance(exc.__context__, KeyboardInterrupt):
            raise
        # exponents[i] and loss[i] are those of the parameters after i Adam steps; the saved
        # parameters are the last ones reached (adam_step returns a new dict: never half updated)
        save(True)
        where = f"; wrote the {len(history)} steps so far to {args.out}" if args.out else ""
        print(f"refimpl floss: interrupted after {len(history)} flossing steps{where}", file=sys.stderr)
        return 130
    save(False)
    report()
    if args.out:
        print(f"wrote {args.out}")
    return 0


# ---------------------------------------------------------------------------

BUILTIN = ("gradcheck", "lyapunov", "floss")


def build_parser():
    parser = argparse.ArgumentParser(prog="refimpl", description=(
        "Reference implementation of surrogate gradients, surrogate Lyapunov exponents and "
        "surrogate gradient flossing in spiking networks."))
    sub = parser.add_subparsers(dest="command", required=True)
    runners = {}
    for name in BUILTIN:
        globals()[f"_add_{name}"](sub)
        runners[name] = globals()[f"_run_{name}"]
    for mod in PLUGINS:
        m = importlib.import_module(f"refimpl.{mod}")
        for name in m.add_parser(sub):
            runners[name] = m.run
    return parser, runners


def main(argv=None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(runners[args.command](args) or 0)
    except (UsageError, ValueError) as exc:
        print(f"refimpl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"refimpl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
