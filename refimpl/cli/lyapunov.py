"""``refimpl lyapunov``: the surrogate Lyapunov spectrum of one network on Poisson input (docs/model.md §6)."""

from __future__ import annotations

import sys
import time

from refimpl.cli.flags import add_input_flags, add_lyapunov_flags, add_network_flags, problem_from_args
from refimpl.cli import HEAVY


def heavy(args) -> tuple:
    return HEAVY + (("matplotlib.pyplot",) if args.plot else ())


def add_parser(sub) -> list:
    p = sub.add_parser(
        "lyapunov",
        help="surrogate Lyapunov spectrum of a network on Poisson input",
        description="The k largest surrogate Lyapunov exponents of one network driven by "
        "independent Poisson spike trains (Benettin's QR method).",
    )
    add_network_flags(p)
    add_input_flags(p)
    add_lyapunov_flags(p)
    p.add_argument("--out", default=None, help="write the spectrum to this HDF5 file")
    p.add_argument("--plot", default=None, help="write a plot of the spectrum to this PNG file")
    return ["lyapunov"]


def spectrum_table(lam, err, dt) -> str:
    lines = [f"{'i':>4} {'λ_i [1/step]':>14} {'± err':>10} {'λ_i [1/ms]':>12}"]
    for i, (l, e) in enumerate(zip(lam, err)):
        lines.append(f"{i + 1:>4} {l:14.6f} {e:10.2e} {l / dt:12.6f}")
    return "\n".join(lines)


def run(args) -> int:
    from refimpl.io import check_writable

    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        if path:
            check_writable(path, flag)  # before the computation, which would otherwise be lost
    written = []
    try:
        _compute_and_write(args, written)
    except BaseException as exc:  # every file is written atomically: it is complete or absent
        from refimpl.interrupt import is_interrupt

        if not is_interrupt(exc):
            raise
        kept = f"; {', '.join(written)} complete" if written else "; nothing was written"
        print(f"refimpl lyapunov: interrupted (Ctrl-C){kept}", file=sys.stderr)
        return 130
    return 0


def _compute_and_write(args, written: list) -> None:
    from dataclasses import asdict

    import numpy as np

    from refimpl.io import atomic_h5, to_json
    from refimpl.dynamics.lyapunov import spectrum
    from refimpl.model.network import simulate

    cfg, params, inputs, lcfg = problem_from_args(args)
    t = time.time()
    res = spectrum(cfg, params, inputs, lcfg)
    from refimpl.interrupt import poll

    poll()  # Ctrl-C during the spectrum: stop before writing anything
    rate = np.mean([S.mean() for S in simulate(cfg, params, inputs).S]) * 1000 / cfg.dt
    print(spectrum_table(res.exponents, res.error, cfg.dt))
    print(
        f"λ_max = {res.exponents.max():.6f}/step  Kaplan-Yorke dim = {res.kaplan_yorke:.3f}  "
        f"entropy rate = {res.entropy_rate:.4f}/step  PR(first vector) = {res.participation_ratio:.2f}  "
        f"mean rate = {rate:.1f} Hz  ({time.time() - t:.2f} s)",
        flush=True,
    )
    if args.out:
        with atomic_h5(args.out) as f:
            f.attrs["config"] = to_json({**cfg.to_dict(), "lyapunov": asdict(lcfg)})
            f["spectrum"] = res.exponents
            f["error"] = res.error
            f["local"] = res.local
            f["Q0"] = res.Q0
            f["Q_final"] = res.Q_final
            f.attrs["kaplan_yorke"] = res.kaplan_yorke
            f.attrs["entropy_rate"] = res.entropy_rate
            f.attrs["participation_ratio"] = res.participation_ratio
        written.append(args.out)
        print(f"wrote {args.out}", flush=True)
    if args.plot:
        plot_spectra({"spectrum": res.exponents}, args.plot)
        written.append(args.plot)
        print(f"wrote {args.plot}", flush=True)


def plot_spectra(spectra: dict, path) -> None:
    """A PNG of one or more spectra λ_i against i, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from refimpl.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, lam in spectra.items():
        ax.plot(np.arange(1, len(lam) + 1), lam, "o-", ms=3, label=label)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("index i")
    ax.set_ylabel("λ_i [1/step]")
    ax.legend()
    fig.tight_layout()
    try:
        atomic_savefig(fig, path, dpi=120)
    finally:
        plt.close(fig)
