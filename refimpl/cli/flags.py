"""Flags shared by the commands that build one network on Poisson input (gradcheck, lyapunov, floss).

Only the parser is defined at import time (nothing numerical is imported), so help and argument
errors are immediate; the ``*_from_args`` helpers import the model when a command runs. Errors
name the flag as typed (``--T``, ``--rate``), not the library parameter behind it.
"""

from __future__ import annotations

import math

from refimpl.cli import UsageError

#: [network] keys that are flags of the commands on Poisson input, in the order --help lists them
NETWORK_FLAGS = (
    "cell",
    "dialect",
    "reset",
    "surrogate",
    "slope",
    "reset_grad",
    "smooth",
    "tau_mem",
    "tau_syn",
    "dt",
    "seed",
    "w_in",
    "g_rec",
    "bias",
)
#: where these commands' defaults differ from the [network] section's, and why: on 100 independent
#: Poisson inputs at 10 Hz a network with w_in = 1, g_rec = 1 barely spikes, so its spectrum and
#: gradients would be those of a silent network
POISSON_DEFAULTS = {"w_in": 6.0, "g_rec": 2.0}


def schema_flag(g, section: str, key: str, default=None, **kw) -> None:
    """One ``--key`` flag with the schema's type, default, help text and allowed values."""
    from refimpl.schema import setting

    s = setting(section, key)
    default = s.default if default is None else default
    allowed = f" ({s.describe()})" if s.kind == "choice" else ""
    if s.kind == "bool":
        g.add_argument("--" + key.replace("_", "-"), action="store_true", help=s.help)
        return
    typ = {"int": int, "float": float}.get(s.kind, str)
    g.add_argument("--" + key.replace("_", "-"), type=typ, default=default, help=kw.pop("help", s.help) + allowed, **kw)


def add_network_flags(p, *, layers="64", n_in=100, **defaults) -> None:
    """The network flags: the [network] settings of :mod:`refimpl.schema` (type, help, allowed values);
    defaults are the schema's, except :data:`POISSON_DEFAULTS` and what the command passes."""
    defaults = {**POISSON_DEFAULTS, **defaults}
    g = p.add_argument_group("network (docs/model.md §1)")
    for key in NETWORK_FLAGS:
        schema_flag(g, "network", key, defaults.get(key))
    g.add_argument(
        "--layers",
        default=None,
        help=f"comma-separated layer sizes, e.g. 64 or 32,16 (default {layers}; binary and rate "
        f"cells have one layer, default {layers.split(',')[0]})",
    )
    p.set_defaults(layers_default=layers)
    g.add_argument("--n-in", type=int, default=n_in, help="input channels")
    g.add_argument("--n-out", type=int, default=1, help="readout units")


#: network_config's parameter names as the flags that set them
NETWORK_KEYS = (
    "n_in",
    "n_out",
    "tau_mem",
    "tau_syn",
    "reset_grad",
    "dt",
    "layers",
    "cell",
    "dialect",
    "reset",
    ("surrogate.name", "--surrogate"),
    ("surrogate.slope", "--slope"),
)


def network_from_args(args):
    from refimpl.model.config import network_config

    given = args.layers
    if given is None:  # the default must fit the cell: map cells (binary, rate) have one layer
        given = args.layers_default if args.cell == "clif" else args.layers_default.split(",")[0]
    try:
        layers = tuple(int(x) for x in str(given).split(","))
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers, got {args.layers!r}")
    kw = dict(
        cell=args.cell,
        layers=layers,
        n_in=args.n_in,
        n_out=args.n_out,
        dt=args.dt,
        tau_mem=args.tau_mem,
        tau_syn=args.tau_syn,
        reset_grad=args.reset_grad,
        surrogate={"name": args.surrogate, "slope": args.slope},
        smooth=args.smooth,
    )
    if args.cell == "clif":
        kw["dialect"] = args.dialect
        if args.reset is not None:
            kw["reset"] = args.reset
    try:
        return network_config(**kw)
    except ValueError as exc:  # name the flag: network_config says 'n_in', the user typed --n-in
        raise UsageError(as_flags(str(exc), NETWORK_KEYS)) from None


def as_flags(message: str, keys, prefix: str = "") -> str:
    """``'tau_mem must be > 0'`` -> ``'--tau-mem must be > 0'``: the library's message under the flag's
    name. ``keys`` are parameter names (flag ``--name`` with ``-`` for ``_``) or ``(key, flag)`` pairs."""
    for key in keys:
        key, flag = key if isinstance(key, tuple) else (key, "--" + key.replace("_", "-"))
        key = prefix + key
        if message.startswith((key + " ", key + "[")):
            return flag + message[len(key) :]
    return message


def add_input_flags(p, *, T=500) -> None:
    g = p.add_argument_group("input: independent Poisson spike trains")
    g.add_argument("--T", type=int, default=T, help="number of time steps")
    g.add_argument("--rate", type=float, default=10.0, help="input rate [Hz]")
    g.add_argument("--input-seed", type=int, default=1, help="seed of the input spike trains")


def add_lyapunov_flags(p, *, k=32) -> None:
    """The spectrum flags: the [lyapunov] QR settings of :mod:`refimpl.schema` (``--q-seed`` is
    ``lyapunov.seed``)."""
    g = p.add_argument_group("spectrum (docs/model.md §6)")
    schema_flag(g, "lyapunov", "k", k, help="number of exponents")
    for key in ("ons", "warmup", "transient"):
        schema_flag(g, "lyapunov", key)
    from refimpl.schema import setting

    g.add_argument("--q-seed", type=int, default=0, help=setting("lyapunov", "seed").help)


def check_input_flags(args) -> None:
    """The Poisson-input and spectrum flags, checked and reported under their flag names."""
    if args.T < 1:
        raise UsageError(f"--T must be >= 1 (time steps), got {args.T}")
    if not (math.isfinite(args.rate) and 0 <= args.rate * args.dt <= 1000):
        raise UsageError(f"--rate must be in [0, 1000/dt] Hz (a probability per step), got {args.rate}")
    if hasattr(args, "k"):
        for flag, v, lo in (
            ("--k", args.k, 1),
            ("--ons", args.ons, 1),
            ("--warmup", args.warmup, 0),
            ("--transient", args.transient, 0),
        ):
            if v < lo:
                raise UsageError(f"{flag} must be >= {lo}, got {v}")


def problem_from_args(args):
    """The network, its parameters, the input and the spectrum settings the flags describe."""
    from refimpl.model.config import LyapunovConfig
    from refimpl.model.network import init_params
    from refimpl.tasks.generators import poisson_inputs

    check_input_flags(args)
    cfg = network_from_args(args)
    params = init_params(cfg, args.seed, w_in=args.w_in, g_rec=args.g_rec, bias=args.bias)
    inputs = poisson_inputs(T=args.T, batch=1, n_in=cfg.n_in, rate_hz=args.rate, seed=args.input_seed, dt=cfg.dt)
    try:
        lcfg = LyapunovConfig(k=args.k, ons=args.ons, warmup=args.warmup, transient=args.transient, seed=args.q_seed)
    except ValueError as exc:
        raise UsageError(as_flags(str(exc), ("k", "ons", "warmup", "transient"), "lyapunov.")) from None
    return cfg, params, inputs, lcfg
