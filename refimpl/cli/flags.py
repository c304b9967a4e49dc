"""Flags shared by the commands that build one network on Poisson input (gradcheck, lyapunov, floss).

Only the parser is defined at import time (nothing numerical is imported), so help and argument
errors are immediate; the ``*_from_args`` helpers import the model when a command runs. Errors
name the flag as typed (``--T``, ``--rate``), not the library parameter behind it.
"""
from __future__ import annotations

import math

from . import UsageError

CELLS = "clif, binary or rate"
SURROGATES = "fast_sigmoid, sigmoid, arctan, gaussian or triangle"


def add_network_flags(p, *, layers="64", n_in=100, w_in=6.0, g_rec=2.0) -> None:
    g = p.add_argument_group("network (docs/model.md §1)")
    g.add_argument("--cell", default="clif", help=f"neuron model: {CELLS}")
    g.add_argument("--dialect", default="engelken", help="cLIF dialect: engelken, spytorch or stork")
    g.add_argument("--reset", default=None,
                   help="override the dialect's reset: zero, subtract or none (default: the dialect's)")
    g.add_argument("--surrogate", default="fast_sigmoid", help=f"surrogate derivative σ': {SURROGATES}")
    g.add_argument("--slope", type=float, default=10.0, help="surrogate slope γ")
    g.add_argument("--reset-grad", default="detached",
                   help="what the surrogate sees of the reset: detached, attached or ignored (§3)")
    g.add_argument("--smooth", action="store_true", help="smooth mode: σ instead of the spike (§2)")
    g.add_argument("--layers", default=None,
                   help=f"comma-separated layer sizes, e.g. 64 or 32,16 (default {layers}; binary and rate "
                        f"cells have one layer, default {layers.split(',')[0]})")
    p.set_defaults(layers_default=layers)
    g.add_argument("--n-in", type=int, default=n_in, help="input channels")
    g.add_argument("--n-out", type=int, default=1, help="readout units")
    g.add_argument("--tau-mem", type=float, default=10.0, help="membrane time constant τ_mem [ms]")
    g.add_argument("--tau-syn", type=float, default=5.0, help="synaptic time constant τ_syn [ms]")
    g.add_argument("--dt", type=float, default=1.0, help="time step [ms]")
    g.add_argument("--seed", type=int, default=0, help="seed of the weights")
    g.add_argument("--w-in", type=float, default=w_in, help="input weights W_in ~ N(0, w_in²/n_in)")
    g.add_argument("--g-rec", type=float, default=g_rec, help="recurrent weights W_rec ~ N(0, g_rec²/N)")
    g.add_argument("--bias", type=float, default=0.0, help="bias b of every neuron")


#: network_config's parameter names as the flags that set them
NETWORK_KEYS = ("n_in", "n_out", "tau_mem", "tau_syn", "reset_grad", "dt", "layers", "cell", "dialect", "reset",
                ("surrogate.name", "--surrogate"), ("surrogate.slope", "--slope"))


def network_from_args(args):
    from ..config import network_config
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
    try:
        return network_config(**kw)
    except ValueError as exc:   # name the flag: network_config says 'n_in', the user typed --n-in
        raise UsageError(as_flags(str(exc), NETWORK_KEYS)) from None


def as_flags(message: str, keys, prefix: str = "") -> str:
    """``'tau_mem must be > 0'`` -> ``'--tau-mem must be > 0'``: the library's message under the flag's
    name. ``keys`` are parameter names (flag ``--name`` with ``-`` for ``_``) or ``(key, flag)`` pairs."""
    for key in keys:
        key, flag = key if isinstance(key, tuple) else (key, "--" + key.replace("_", "-"))
        key = prefix + key
        if message.startswith((key + " ", key + "[")):
            return flag + message[len(key):]
    return message


def add_input_flags(p, *, T=500) -> None:
    g = p.add_argument_group("input: independent Poisson spike trains")
    g.add_argument("--T", type=int, default=T, help="number of time steps")
    g.add_argument("--rate", type=float, default=10.0, help="input rate [Hz]")
    g.add_argument("--input-seed", type=int, default=1, help="seed of the input spike trains")


def add_lyapunov_flags(p, *, k=32) -> None:
    g = p.add_argument_group("spectrum (docs/model.md §6)")
    g.add_argument("--k", type=int, default=k, help="number of exponents")
    g.add_argument("--ons", type=int, default=1, help="steps between QR re-orthonormalizations")
    g.add_argument("--warmup", type=int, default=0, help="steps run before the tangent vectors start")
    g.add_argument("--transient", type=int, default=0,
                   help="QR steps whose growth is not counted in the exponents")
    g.add_argument("--q-seed", type=int, default=0, help="seed of the initial orthonormal Q_0")


def check_input_flags(args) -> None:
    """The Poisson-input and spectrum flags, checked and reported under their flag names."""
    if args.T < 1:
        raise UsageError(f"--T must be >= 1 (time steps), got {args.T}")
    if not (math.isfinite(args.rate) and 0 <= args.rate * args.dt <= 1000):
        raise UsageError(f"--rate must be in [0, 1000/dt] Hz (a probability per step), got {args.rate}")
    if hasattr(args, "k"):
        for flag, v, lo in (("--k", args.k, 1), ("--ons", args.ons, 1), ("--warmup", args.warmup, 0),
                            ("--transient", args.transient, 0)):
            if v < lo:
                raise UsageError(f"{flag} must be >= {lo}, got {v}")


def problem_from_args(args):
    """The network, its parameters, the input and the spectrum settings the flags describe."""
    from ..config import LyapunovConfig
    from ..network import init_params
    from ..tasks import poisson_inputs
    check_input_flags(args)
    cfg = network_from_args(args)
    params = init_params(cfg, args.seed, w_in=args.w_in, g_rec=args.g_rec, bias=args.bias)
    inputs = poisson_inputs(T=args.T, batch=1, n_in=cfg.n_in, rate_hz=args.rate, seed=args.input_seed,
                            dt=cfg.dt)
    try:
        lcfg = LyapunovConfig(k=args.k, ons=args.ons, warmup=args.warmup, transient=args.transient,
                              seed=args.q_seed)
    except ValueError as exc:
        raise UsageError(as_flags(str(exc), ("k", "ons", "warmup", "transient"), "lyapunov.")) from None
    return cfg, params, inputs, lcfg
