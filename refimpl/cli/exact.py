"""``refimpl exact``: the exact event-based network (docs/exact.md) — simulate, gradcheck, spectrum,
compare-surrogate — on a random network driven by Poisson input spikes."""

from __future__ import annotations

from refimpl.cli.flags import schema_flag

ACTIONS = ("simulate", "gradcheck", "spectrum", "compare-surrogate")
HEAVY = ("numpy", "numba", "refimpl.exact.gradients", "refimpl.exact.lyapunov")


def add_parser(sub) -> list:
    p = sub.add_parser(
        "exact",
        help="exact event-based simulation, gradients and spectra (docs/exact.md)",
        description="The continuous-time current-based LIF network of docs/exact.md, simulated exactly from "
        "event to event, on random weights and Poisson input spikes. simulate: spike counts and rates; gradcheck: "
        "the exact gradient two ways (forward sensitivities, EventProp adjoint) and against central differences "
        "(exit 1 on a failure); spectrum: the exact Lyapunov spectrum (1/s); compare-surrogate: the surrogate "
        "gradient of the time-stepped model against the exact one, for a list of dt.",
    )
    p.add_argument("action", choices=ACTIONS, help="what to do")
    g = p.add_argument_group("network ([exact] settings, docs/exact.md §1)")
    for key in ("n_in", "tau_mem", "tau_syn", "theta", "reset", "t_ref", "root"):
        schema_flag(g, "exact", key, 10 if key == "n_in" else None)
    g.add_argument("--layers", default="20", help="comma-separated layer sizes, e.g. 20 or 10,5")
    g.add_argument("--seed", type=int, default=1, help="seed of the weights, inputs and targets")
    g.add_argument("--w-in", type=float, default=1.5, help="input weights W_in ~ U(0, w_in)")
    g.add_argument("--g-rec", type=float, default=0.8, help="recurrent (and feed-forward) weights ~ N(0, g_rec²/N)")
    g.add_argument("--bias", type=float, default=0.6, help="bias current b of every neuron")
    g.add_argument("--rate", type=float, default=20.0, help="Poisson rate of each input channel, Hz")
    g.add_argument("--T", type=float, default=200.0, help="simulated time, ms")
    a = p.add_argument_group("actions")
    a.add_argument("--k", type=int, default=5, help="spectrum: exponents")
    a.add_argument("--qr-every", type=float, default=1.0, help="spectrum: ms between QR steps")
    a.add_argument("--transient", type=float, default=20.0, help="spectrum: ms not counted")
    a.add_argument("--fault", type=int, default=0, choices=(0, 1, 2),
        help="gradcheck: drop a saltation term (1: the targets' time shifts, 2: the reset's) to see the check fail")  # fmt: skip
    a.add_argument("--dt", default="1,0.5,0.2,0.1,0.05,0.01", help="compare-surrogate: comma-separated steps, ms")
    a.add_argument("--surrogate", default="fast_sigmoid", help="compare-surrogate: surrogate of the time-stepped model")
    a.add_argument("--slope", type=float, default=10.0, help="compare-surrogate: its slope")
    a.add_argument("--out", default=None, help="write the result as JSON to this file")
    return ["exact"]


def _network(args):
    """The config, parameters, input spikes, readout and targets the flags describe."""
    import math

    import numpy as np

    from refimpl.cli import UsageError
    from refimpl.checks import check_float
    from refimpl.exact.events import ExactConfig

    try:
        layers = tuple(int(x) for x in args.layers.split(","))
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers, got {args.layers!r}") from None
    for name in ("w_in", "g_rec", "rate", "T"):
        try:
            check_float("--" + name.replace("_", "-"), getattr(args, name), lo=0.0, lo_open=name == "T")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    try:
        cfg = ExactConfig(layers=layers, n_in=args.n_in, tau_mem=args.tau_mem, tau_syn=args.tau_syn, theta=args.theta,
            reset=args.reset, t_ref=args.t_ref, root=args.root)  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc).replace("exact.", "--").replace("_", "-")) from None
    rng = np.random.default_rng(args.seed)
    p, below = {}, cfg.n_in
    for l, n in enumerate(cfg.layers):
        if l == 0:
            p["layer1/W_in"] = rng.uniform(0.0, args.w_in, (n, below))
        else:
            p[f"layer{l + 1}/W_in"] = args.g_rec * rng.standard_normal((n, below)) / math.sqrt(below)
        p[f"layer{l + 1}/W_rec"] = args.g_rec * rng.standard_normal((n, n)) / math.sqrt(n)
        p[f"layer{l + 1}/b"] = np.full(n, args.bias)
        below = n
    n_ev = rng.poisson(args.rate / 1000.0 * args.T * cfg.n_in)
    in_t, in_u = np.sort(rng.uniform(0.0, args.T, n_ev)), rng.integers(0, cfg.n_in, n_ev)
    W_out = rng.standard_normal((2, cfg.layers[-1])) / math.sqrt(cfg.layers[-1])
    ts = np.arange(1.0, args.T + 1e-9, 1.0)
    targets = rng.standard_normal((ts.size, 2))
    return cfg, p, in_t, in_u, W_out, ts, targets


def _write(args, result) -> None:
    if args.out:
        import json

        from refimpl.io import atomic_text

        atomic_text(args.out, json.dumps(result, indent=1))
        print(f"wrote {args.out}")


def run(args) -> int:
    import numpy as np

    from refimpl.cli import UsageError

    if args.T < 2.0 and args.action in ("compare-surrogate", "gradcheck"):
        raise UsageError(f"--T must be >= 2 ms for {args.action} (its samples are whole ms), got {args.T}")
    if args.out:
        from refimpl.io import check_writable

        try:
            check_writable(args.out, "--out")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    cfg, p, in_t, in_u, W_out, ts, targets = _network(args)
    _check_action_flags(args, cfg)
    head = (f"exact {args.action}: layers={cfg.layers} n_in={cfg.n_in} tau_mem={cfg.tau_mem:g} tau_syn={cfg.tau_syn:g} "
        f"theta={cfg.theta:g} reset={cfg.reset} root={cfg.root} T={args.T:g} ms, {in_t.size} input spikes, "
        f"seed {args.seed}")  # fmt: skip
    print(head)
    if args.action == "simulate":
        from refimpl.exact.events import simulate

        r = simulate(cfg, p, in_t, in_u, args.T)
        rates = [float(np.sum(r.spike_units == i)) / (args.T / 1000.0) for i in range(cfg.n_neurons)]
        print(f"{r.spike_times.size} spikes, {np.mean(rates):.1f} Hz mean rate, {r.n_grazing} grazing crossings, "
            f"smallest crossing slope (I - θ)/θ = {r.min_slope:.3g}")  # fmt: skip
        _write(args, {"spike_times": r.spike_times.tolist(), "spike_units": r.spike_units.tolist(), "rates_hz": rates})
        return 0
    if args.action == "spectrum":
        from refimpl.exact.lyapunov import spectrum

        s = spectrum(cfg, p, in_t, in_u, args.T, k=args.k, qr_every=args.qr_every, transient=args.transient)
        for i, (lam, err) in enumerate(zip(s.exponents, s.error)):
            print(f"λ_{i + 1} = {lam:+10.3f} ± {err:.3f} 1/s" + ("   (largest)" if i == 0 else ""))
        print(f"{s.n_spikes} spikes in {s.T_counted:g} ms counted; time average of log|det| {s.log_det_rate:+.3f} 1/s")
        _write(args, {"exponents": s.exponents.tolist(), "error": s.error.tolist(), "log_det_rate": s.log_det_rate})
        return 0
    if args.action == "gradcheck":
        return _gradcheck(args, cfg, p, in_t, in_u, W_out, ts, targets)
    return _compare(args, cfg, p, in_t, in_u, W_out, ts, targets)


def _check_action_flags(args, cfg) -> None:
    """The flags of the chosen action, checked before any work starts."""
    from refimpl.cli import UsageError
    from refimpl.schema import SURROGATES

    if args.action == "spectrum":
        if not 1 <= args.k <= 2 * cfg.n_neurons:
            raise UsageError(f"--k must be in [1, {2 * cfg.n_neurons}] (2N), got {args.k}")
        if not 0 <= args.transient < args.T:
            raise UsageError(f"--transient must be in [0, --T = {args.T:g}), got {args.transient}")
        if not args.qr_every > 0:
            raise UsageError(f"--qr-every must be > 0, got {args.qr_every}")
    if args.action == "compare-surrogate":
        if len(cfg.layers) != 1:
            raise UsageError(f"compare-surrogate needs one layer, got --layers {args.layers}")
        if args.surrogate not in SURROGATES:
            raise UsageError(f"--surrogate must be one of {list(SURROGATES)}, got {args.surrogate!r}")
        if not args.slope > 0:
            raise UsageError(f"--slope must be > 0, got {args.slope}")
        try:
            dts = [float(x) for x in args.dt.split(",")]
        except ValueError:
            raise UsageError(f"--dt must be comma-separated numbers, got {args.dt!r}") from None
        if any(d <= 0 or abs(round(1.0 / d) * d - 1.0) > 1e-9 for d in dts):
            raise UsageError(f"--dt entries must divide 1 ms (the sample times are whole ms), got {args.dt}")
    if args.action in ("gradcheck", "spectrum") and args.t_ref != 0.0:
        raise UsageError(f"{args.action} needs --t-ref 0 (refractoriness is simulated, not differentiated), got {args.t_ref}")


def _gradcheck(args, cfg, p, in_t, in_u, W_out, ts, targets) -> int:
    import numpy as np

    from refimpl.exact.events import simulate
    from refimpl.exact.gradients import membrane_readout_loss, spike_readout_loss, value_and_grad

    losses = {"spike readout": spike_readout_loss(W_out, np.zeros(2), 5.0, targets),
        "membrane readout": membrane_readout_loss(W_out, np.zeros(2), targets)}  # fmt: skip
    rng = np.random.default_rng(args.seed + 1)
    failed, rows = 0, []
    print(f"{'loss':<18} {'check':<22} {'worst relative error':>22}  {'tol':>7}")
    for name, loss in losses.items():
        _, gf, _ = value_and_grad(cfg, p, in_t, in_u, args.T, loss, sample_times=ts, method="forward", fault=args.fault)
        _, ga, _ = value_and_grad(cfg, p, in_t, in_u, args.T, loss, sample_times=ts, method="adjoint", fault=args.fault)
        two = max(float(np.abs(ga[k] - gf[k]).max() / max(np.abs(gf[k]).max(), 1e-300)) for k in gf if k in ga)
        fd_err, h = 0.0, 1e-6
        for key in sorted(k for k in p):
            for _ in range(3):
                idx = tuple(int(rng.integers(0, s)) for s in p[key].shape)
                vals = []
                for sgn in (1, -1):
                    q = {k: v.copy() for k, v in p.items()}
                    q[key][idx] += sgn * h
                    r = simulate(cfg, q, in_t, in_u, args.T, sample_times=ts, warn=False)
                    vals.append(loss(cfg, r, args.T, ts).value)
                fd = (vals[0] - vals[1]) / (2 * h)
                fd_err = max(fd_err, abs(fd - ga[key][idx]) / max(abs(fd), abs(ga[key][idx]), 1e-6))
        for check, err, tol in (("forward vs adjoint", two, 1e-8), ("adjoint vs central FD", fd_err, 1e-5)):
            ok = bool(err <= tol)
            failed += not ok
            rows.append({"loss": name, "check": check, "error": float(err), "tol": tol, "ok": ok})
            print(f"{name:<18} {check:<22} {err:>22.3e}  {tol:>7.0e}  {'ok' if ok else 'FAILED'}")
    print(f"{len(rows) - failed} passed, {failed} failed" + (f" (fault {args.fault})" if args.fault else ""))
    _write(args, {"rows": rows})
    return 1 if failed else 0


def _compare(args, cfg, p, in_t, in_u, W_out, ts, targets) -> int:
    from refimpl.exact.surrogate import compare_blocks, exact_gradient, surrogate_gradient

    dts = [float(x) for x in args.dt.split(",")]
    _, g_ex, res = exact_gradient(cfg, p, in_t, in_u, args.T, W_out, ts, targets)
    print(f"exact: {res.spike_times.size} spikes; surrogate {args.surrogate} slope {args.slope:g}, reset_grad detached")
    print(f"{'dt (ms)':>8}  " + "  ".join(f"{'cos ' + k:>10} {'‖sg‖/‖ex‖ ' + k:>16}" for k in ("W_in", "W_rec", "b")))
    out = []
    for dt in dts:
        _, g = surrogate_gradient(cfg, p, in_t, in_u, args.T, W_out, ts, targets, dt, (args.surrogate, args.slope))
        c = compare_blocks(g, g_ex)
        print(f"{dt:>8g}  " + "  ".join(f"{c[k]['cos']:>+10.3f} {c[k]['norm_ratio']:>16.3g}" for k in ("W_in", "W_rec", "b")))
        out.append({"dt": dt, **c})
    _write(args, {"comparisons": out})
    return 0
