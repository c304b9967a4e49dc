"""``refimpl train``: a training run from a TOML configuration (docs/training.md), with its progress bar.

Ctrl-C stops after the current step, writes the checkpoint and prints the one command that resumes it.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import argparse

from refimpl.cli import shipped


class _PrintKeys(argparse.Action):
    """``--keys``: print every TOML key with its default, allowed values and meaning, and exit (like --help)."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        from refimpl.schema import table_markdown

        print(table_markdown())
        print("| **[task]** | | | the parameters of the task's generator (docs/training.md) |")
        parser.exit(0)


def add_parser(sub) -> list:
    p = sub.add_parser(
        "train",
        help="train a network on a task from a TOML configuration (with flossing)",
        description="Train a network on a task described by a TOML file "
        "(see docs/training.md). Presets: " + ", ".join(shipped("presets")),
    )
    p.add_argument("config", help="TOML file, or the name of a shipped preset")
    p.add_argument("--out", default=None, help="output directory (default: output.dir of the config)")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue from this checkpoint")
    p.add_argument("--epochs", type=int, default=None, help="total number of epochs (overrides training.epochs)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one key (TOML value syntax), e.g. --set network.layers=[16]",
    )
    p.add_argument("--force", action="store_true", help="start afresh even if the output directory already holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--keys", action=_PrintKeys, help="print every configuration key (default, allowed values, meaning) and exit")
    return ["train"]


class ProgressBar:
    """One line per epoch with a bar and the ETA; per-step updates in place when stderr is a terminal."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stdout
        self.width = width
        self.t0 = time.perf_counter()
        self.live = sys.stderr.isatty()
        self.start_epoch = None

    def bar(self, frac: float) -> str:
        n = int(round(frac * self.width))
        return "[" + "#" * n + "-" * (self.width - n) + "]"

    def __call__(self, ev: dict) -> None:
        kind = ev["kind"]
        if kind == "epoch":
            e, E, r = ev["epoch"], ev["epochs"], ev["row"]
            if self.start_epoch is None:
                self.start_epoch, self.t0 = e, time.perf_counter()
            el = time.perf_counter() - self.t0
            done = e - self.start_epoch
            eta = el / done * (E - e) if done else float("nan")
            rates = "/".join(f"{x:.0f}" for x in r["rates"])
            train = "" if e == 0 else f"train {r['train_loss']:.4f} ({r['train_acc']:.3f})  "
            if self.live:
                print("\r" + " " * 100 + "\r", end="", file=sys.stderr, flush=True)
            print(
                f"{self.bar(e / E if E else 1)} epoch {e:>3}/{E}  {train}test {r['test_loss']:.4f} "
                f"acc {r['test_acc']:.3f}  |dL/dx0| {r['grad_x0']:.2e}  rate {rates} Hz"
                + (f"  flossed {r['floss_steps']}" if r["floss_steps"] else "")
                + f"  {el:.0f} s"
                + ("" if math.isnan(eta) else f", ETA {eta:.0f} s"),
                file=self.stream,
                flush=True,
            )
        elif self.live and kind in ("step", "floss"):
            what = "floss" if kind == "floss" else "train"
            extra = f"λ1 {ev['lambda1']:+.4f}" if kind == "floss" else ""
            print(
                f"\r  {what} step {ev['step'] + 1}/{ev['n_steps']}  loss {ev['loss']:.4f} {extra}   ",
                end="",
                file=sys.stderr,
                flush=True,
            )


def run(args) -> int:
    from refimpl.training import Trainer
    from refimpl.training.configfile import load, resolve_path

    if args.resume is not None:  # named as typed (the library says "checkpoint")
        rp = Path(args.resume)
        if rp.is_dir():
            hint = f"; did you mean {str(rp / 'checkpoint.h5')!r}?" if (rp / "checkpoint.h5").is_file() else ""
            raise ValueError(f"--resume {args.resume}: is a directory, not a checkpoint file{hint}")
        if not rp.exists():
            raise ValueError(f"--resume {args.resume}: no such file")
    path = resolve_path(args.config)
    runcfg = load(path, overrides=args.set)
    if args.epochs is not None:
        if args.epochs < 0:
            raise ValueError(f"--epochs must be >= 0, got {args.epochs}")
        runcfg = runcfg.replace("training", epochs=args.epochs)
    if args.out is not None:
        out = Path(args.out)
    elif args.resume is not None:
        out = Path(args.resume).parent  # a resumed run continues in its own directory
    else:
        out = Path(runcfg.output.dir)
    from refimpl.io import check_writable

    check_writable(out, "--out" if args.out is not None else "output.dir", directory=True)
    progress = None if args.quiet or not runcfg.output.progress else ProgressBar()
    if args.resume is not None:
        tr = Trainer.resume(args.resume, runcfg, out, progress=progress)  # checks before writing anything
        print(f"resuming {args.resume} at epoch {tr.epoch} -> {runcfg.training.epochs} epochs, output in {out}")
    else:
        if (out / "checkpoint.h5").exists() and not args.force:
            raise ValueError(
                f"{out} already holds a run (checkpoint.h5); continue it with --resume "
                f"{out / 'checkpoint.h5'}, choose another --out, or pass --force"
            )
        tr = Trainer(runcfg, out, progress=progress)
        print(
            f"training {runcfg.task.name} ({runcfg.network.cell} {list(runcfg.network.layers)}, "
            f"flossing: {runcfg.flossing.schedule}) for {runcfg.training.epochs} epochs, output in {out}"
        )
    try:
        tr.fit(runcfg.training.epochs)
    except KeyboardInterrupt:
        ck = tr.checkpoint_path
        cmd = f"refimpl train {args.config} --resume {ck}"
        if args.out is not None:
            cmd += f" --out {args.out}"
        cmd += "".join(f" --set {s}" for s in args.set)
        if args.epochs is not None:
            cmd += f" --epochs {args.epochs}"
        print(
            f"refimpl train: interrupted (Ctrl-C); checkpoint {ck} saved at epoch {tr.epoch}; resume with: {cmd}", file=sys.stderr
        )
        return 130
    r = tr.row(-1)
    print(
        f"done: {tr.epoch} epochs, test loss {r['test_loss']:.4f}, accuracy {r['test_acc']:.3f}, "
        f"{tr.wall:.1f} s; wrote {out / 'log.h5'} and {tr.checkpoint_path}"
    )
    return 0
