"""``refimpl floss``: Adam steps on the flossing loss of one network, the exponents printed as they move.

Interrupting (Ctrl-C) saves the steps so far to ``--out`` at the last safe point — the exponents
and losses, the parameters, the best iterate and the Adam moments — and ``--resume FILE``
continues from there with the same flags, as ``refimpl train --resume`` does (docs/cli.md).
"""

from __future__ import annotations

import math
import sys
import time

from refimpl.cli import UsageError
from refimpl.cli.flags import NETWORK_FLAGS, add_input_flags, as_flags, add_lyapunov_flags, add_network_flags, problem_from_args

#: flags that define the problem: a resumed run must give the same values
PROBLEM_FLAGS = (*NETWORK_FLAGS, "layers", "n_in", "n_out", "T", "rate", "input_seed", "k", "ons", "warmup", "transient")
PROBLEM_FLAGS += ("q_seed", "lr", "target", "params", "checkpoint_every")
FORMAT = "refimpl-floss"


def add_parser(sub) -> list:
    p = sub.add_parser(
        "floss",
        help="Adam steps on the flossing loss, showing the exponents move",
        description="Drive the k largest surrogate Lyapunov exponents of one network toward "
        "--target by Adam steps on the flossing loss (1/k) Σ (λ_i - target)² "
        "(docs/model.md §7).",
    )
    add_network_flags(p)
    add_input_flags(p)
    add_lyapunov_flags(p, k=16)
    p.add_argument("--steps", type=int, default=100, help="number of Adam steps")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument("--target", type=float, default=0.0, help="target of every exponent [1/step]")
    p.add_argument("--params", default="W_in,W_rec,b", help="flossed parameters, comma-separated")
    p.add_argument("--tol", type=float, default=None, help="stop once max|λ_i - target| < tol (default: run all --steps)")
    p.add_argument(
        "--checkpoint-every", type=int, default=0, help="recompute Q_t in segments of this many QR steps to save memory (0: off)"
    )
    p.add_argument("--every", type=int, default=10, help="print every n steps")
    p.add_argument("--out", default=None, help="write the history to this HDF5 file")
    p.add_argument(
        "--resume",
        default=None,
        metavar="FLOSS_H5",
        help="continue an interrupted run from its --out file (the same flags; --steps is the total)",
    )
    return ["floss"]


def _check(args) -> None:
    """Counts and tolerances that would make the command do nothing, or never stop, are errors."""
    if args.steps < 0:
        raise UsageError(f"--steps must be >= 0 (Adam steps), got {args.steps}")
    if args.every < 1:
        raise UsageError(f"--every must be >= 1 (print every n steps), got {args.every}")
    if args.tol is not None and not args.tol > 0:
        raise UsageError(f"--tol must be > 0 (max|λ_i - target|), got {args.tol}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise UsageError(f"--lr must be a finite number > 0, got {args.lr}")
    if not math.isfinite(args.target):
        raise UsageError(f"--target must be a finite number, got {args.target}")
    if args.checkpoint_every < 0:
        raise UsageError(f"--checkpoint-every must be >= 0 (0: off), got {args.checkpoint_every}")


def _problem(args) -> dict:
    return {k: getattr(args, k) for k in PROBLEM_FLAGS}


def _load(path, args):
    """The state an interrupted run saved: (history, losses, params, Adam state, best, steps_to_tol)."""
    import json
    import os

    import h5py
    import numpy as np

    from refimpl.io import read_dict
    from refimpl.training.optim import AdamState

    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        what = (
            "is a directory" if os.path.isdir(path) else "does not exist" if not os.path.exists(path) else "is not an HDF5 file"
        )
        raise UsageError(f"--resume {path}: {what}") from exc
    with f:
        if f.attrs.get("format") != FORMAT or "adam" not in f:
            raise UsageError(f"--resume {path}: not a resumable refimpl floss file (written with --out)")
        saved = json.loads(f.attrs["problem"])
        now = json.loads(json.dumps(_problem(args)))
        diff = [k for k in PROBLEM_FLAGS if saved.get(k) != now.get(k)]
        if diff:
            shown = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)!r} there, {now.get(k)!r} here" for k in diff[:4])
            raise UsageError(f"--resume {path}: was run with other flags ({shown}); give the same flags")
        history, losses = list(np.array(f["exponents"])), list(np.array(f["loss"]))
        params = {k: np.array(v) for k, v in read_dict(f["params"]).items()}
        g = f["adam"]
        state = AdamState(read_dict(g["m"]), read_dict(g["v"]), int(g.attrs["t"]))
        best = None
        if int(f.attrs["best_step"]) >= 0:
            best = (
                float(f.attrs["best_loss"]),
                int(f.attrs["best_step"]),
                {k: np.array(v) for k, v in read_dict(f["best_params"]).items()},
            )
        reached = int(f.attrs["steps_to_tol"])
    return history, losses, params, state, best, (None if reached < 0 else reached)


def run(args) -> int:
    import numpy as np

    from refimpl.model.config import FlossConfig
    from refimpl.dynamics.flossing import value_and_grad
    from refimpl.interrupt import DeferredInterrupt, is_interrupt
    from refimpl.io import atomic_h5, check_writable, to_json, write_dict
    from refimpl.training.optim import AdamConfig, AdamState, adam_step

    _check(args)
    if args.resume and not args.out:
        args.out = args.resume  # a resumed run continues in its own file
    if args.out:
        check_writable(args.out, "--out")
    cfg, params, inputs, lcfg = problem_from_args(args)
    try:
        fcfg = FlossConfig(target=args.target, params=tuple(args.params.split(",")))
        from refimpl.dynamics.flossing import flossed_keys

        flossed_keys(cfg, fcfg)
    except ValueError as exc:
        raise UsageError(as_flags(str(exc), [("flossing.params", "--params")])) from None
    opt, state = AdamConfig(lr=args.lr), AdamState()
    history, losses = [], []
    reached = None
    best = None  # (flossing loss, step, parameters): the best iterate is kept, not only the last
    if args.resume:
        history, losses, params, state, best, reached = _load(args.resume, args)
        print(f"resuming {args.resume} after {len(history)} flossing steps -> {args.steps}")
        if reached is not None:
            print(f"max|λ_i - target| < {args.tol} was reached at step {reached}; nothing to do")
    start = len(history)
    safe = (params, AdamState(dict(state.m), dict(state.v), state.t), start)  # the last consistent state
    t0 = time.time()
    ce = args.checkpoint_every or None

    def save(interrupted: bool) -> None:
        if not args.out:
            return
        ps, st, n = safe
        with atomic_h5(args.out) as f:
            f.attrs["format"] = FORMAT
            f.attrs["config"] = to_json(cfg.to_dict())
            f.attrs["problem"] = to_json(_problem(args))
            f["exponents"] = np.array(history[:n]).reshape(n, -1)
            f["loss"] = np.array(losses[:n])
            f.attrs["steps_to_tol"] = -1 if reached is None else reached
            f.attrs["interrupted"] = interrupted  # True: the steps so far, cut short by Ctrl-C
            f.attrs["best_step"] = -1 if best is None else best[1]
            f.attrs["best_loss"] = np.nan if best is None else best[0]
            write_dict(f.create_group("params"), ps)  # the parameters after n Adam steps (resume point)
            if best is not None:
                write_dict(f.create_group("best_params"), best[2])
            g = f.create_group("adam")
            g.attrs["t"] = st.t
            write_dict(g.create_group("m"), st.m)
            write_dict(g.create_group("v"), st.v)

    try:
        with DeferredInterrupt(message=None) as sigint:
            for step in range(start, args.steps + 1):
                if reached is not None:
                    break
                res = value_and_grad(cfg, params, inputs, lcfg, fcfg, checkpoint_every=ce)
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
                    done = step + 1 - start
                    eta = f"ETA {el / done * (args.steps - step):5.0f} s" if done > 5 else "ETA     -"
                    print(
                        f"step {step:4d}  L_floss {res.loss:.3e}  max|λ-λ*| {dev:.4f}  λ: [{shown}]  {el:6.1f} s, {eta}",
                        flush=True,
                    )
                if args.tol is not None and dev < args.tol:
                    reached = step
                    print(f"max|λ_i - target| < {args.tol} after {step} Adam steps")
                if step < args.steps and reached is None:
                    params = adam_step(params, res.grads, state, opt)
                    safe = (params, AdamState(dict(state.m), dict(state.v), state.t), step + 1)
                else:
                    safe = (params, safe[1], step + 1)
                sigint.poll()
    except BaseException as exc:  # Ctrl-C, also in the disguise of an error from inside a kernel
        if not is_interrupt(exc):
            raise
        save(True)
        n = safe[2]
        where = (
            f"; wrote the {n} steps so far to {args.out} (continue with --resume {args.out})"
            if args.out
            else "; nothing was written (no --out)"
        )
        print(f"refimpl floss: interrupted (Ctrl-C) after {n} flossing steps{where}", file=sys.stderr)
        return 130
    save(False)
    if best is not None and losses:
        if args.tol is not None:
            met = "met" if reached is not None else "NOT met"
            print(f"target max|λ_i - target| < {args.tol}: {met}")
        drift = " (the flossing loss rose: see --lr)" if losses[-1] > losses[0] else ""
        print(
            f"flossing loss {losses[0]:.3e} -> {losses[-1]:.3e}{drift}; best {best[0]:.3e} at step {best[1]}"
            + ("; best parameters kept in best_params" if args.out else "")
        )
    if args.out:
        print(f"wrote {args.out}")
    return 0
