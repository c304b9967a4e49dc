"""``refimpl gradcheck``: every derivative checked two independent ways (docs/model.md §8)."""

from __future__ import annotations

import time

from refimpl.cli.flags import as_flags, add_network_flags, network_from_args


def add_parser(sub) -> list:
    p = sub.add_parser(
        "gradcheck",
        help="check every derivative two independent ways (docs/model.md §8)",
        description="Check every derivative of one small network two independent ways: "
        "forward (JVP) against reverse (VJP) mode, and against central finite "
        "differences. Exit 1 if a check fails.",
    )
    add_network_flags(p, layers="6,4", n_in=3, w_in=2.0, g_rec=1.5)
    p.set_defaults(n_out=2)
    p.add_argument("--T", type=int, default=20, help="number of time steps")
    p.add_argument("--batch", type=int, default=2, help="number of input sequences")
    p.add_argument("--loss", default="bce_per_step", help="task loss: bce_per_step, mse_per_step, ce_max, ce_mean or ce_last")
    p.add_argument(
        "--fault", default=None, help="switch on a deliberately wrong derivative to see the checks fail (see --list-faults)"
    )
    p.add_argument("--list-faults", action="store_true", help="list the deliberate faults and exit")
    return ["gradcheck"]


def run(args) -> int:
    from refimpl.check import gradcheck
    from refimpl.model.config import LossConfig
    from refimpl.cli import UsageError

    if args.list_faults:
        for name, (desc, _) in gradcheck.FAULTS.items():
            print(f"{name:<28} {desc}")
        return 0
    if args.T < 2 or args.batch < 1:
        raise UsageError(f"--T must be >= 2 and --batch >= 1, got --T {args.T}, --batch {args.batch}")
    if args.fault is not None and args.fault not in gradcheck.FAULTS:
        raise UsageError(f"--fault must be one of {list(gradcheck.FAULTS)} (see --list-faults), got {args.fault!r}")
    cfg = network_from_args(args)
    try:
        loss = LossConfig(args.loss, t0=min(2, args.T - 1))
    except ValueError as exc:
        raise UsageError(as_flags(str(exc), [("loss.name", "--loss")])) from None
    t = time.time()
    print(
        f"gradcheck: cell={cfg.cell} layers={cfg.layers} syn_input={cfg.syn_input} "
        f"input_gain={cfg.input_gain} reset={cfg.reset} reset_grad={cfg.reset_grad} "
        f"surrogate={cfg.surrogate.name}(γ={cfg.surrogate.slope}) T={args.T} seed={args.seed}"
        + (f" FAULT={args.fault}" if args.fault else "")
    )
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
