"""The testing contract of docs/model.md §8 as reusable checkers.

Each checker compares two independent computations of the same derivative
and returns :class:`Check` rows (worst error per quantity). The pairs are:

* ``fd``: reverse mode against central finite differences with Richardson
  extrapolation, in smooth mode with ``reset_grad = attached`` (where the
  surrogate gradient is the exact gradient), tolerance 1e-6;
* ``fwd_rev``: reverse mode against forward-mode directional derivatives,
  in surrogate mode, tolerance 1e-10;
* ``dense``: the structured products ``D_t V`` and ``D_tᵀ W`` against the
  dense Jacobian, tolerance 1e-12, and the dense Jacobian against finite
  differences of the one-step map in smooth mode, tolerance 1e-6.

A check that cannot fail is no check: :data:`FAULTS` holds deliberately
wrong derivatives (a flipped sign in one block, a dropped reset term, a
dropped ``σ''``) that can be switched on with :func:`inject`; the tests show
that each checker fails under them, and ``refimpl gradcheck --fault NAME``
shows it to a user.

Relative errors: ``|a - b| / max(|a|, |b|, floor)``, where ``floor`` is
1e-3 of the largest value of the same check (all parameter blocks of one
gradient), so that a block whose derivative is near zero is judged on the
scale of the whole gradient rather than on its own vanishing scale.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, replace

import numpy as np

from refimpl.grad import adjoint, qr, tangent
from refimpl.model import cell, network
from refimpl.dynamics import flossing
from refimpl.dynamics import fused
from refimpl.model.config import FlossConfig, LossConfig, LyapunovConfig, NetworkConfig

TOL = {"fd": 1e-6, "fwd_rev": 1e-10, "dense": 1e-12, "dense_fd": 1e-6}


@dataclass(frozen=True)
class Check:
    check: str
    quantity: str
    error: float
    tol: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tol)


# ---------------------------------------------------------------------------
# numerical helpers
# ---------------------------------------------------------------------------


def richardson(f, h: float = 1e-4):
    """Central difference of ``f`` at 0, extrapolated: ``(4 D(h/2) - D(h)) / 3`` (error O(h⁴))."""
    d1 = (f(h) - f(-h)) / (2 * h)
    d2 = (f(h / 2) - f(-h / 2)) / h
    return (4 * d2 - d1) / 3


def fd_derivative(f, starts=(1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)):
    """Derivative of the scalar ``f`` at 0: Ridders' method from several initial steps.

    A function can be smooth only on a scale far below the usual step (a
    flossing loss whose exponent moves fast); the run whose own error
    estimate is smallest wins.
    """
    runs = [ridders(f, h) for h in starts]
    return min(runs, key=lambda r: r[1])[0]


def ridders(f, h: float = 1e-2, shrink: float = 1.4, ntab: int = 10, safe: float = 2.0):
    """``(derivative, error estimate)`` of the scalar ``f`` at 0 by Ridders' method.

    The step shrinks by ``shrink`` at each stage; the central differences are
    extrapolated to ``h → 0`` in a Neville tableau and the entry with the
    smallest error estimate is kept; the run stops when the error grows. No
    estimate is trusted below the rounding floor ``eps·|f|/h`` of its step
    (tiny steps can give identical differences and a spurious zero error).
    """
    eps = np.finfo(float).eps

    def central(h):
        fp, fm = f(h), f(-h)
        return (fp - fm) / (2 * h), 4 * eps * max(abs(fp), abs(fm)) / h

    a = [[0.0] * ntab for _ in range(ntab)]
    a[0][0], floor = central(h)
    best, err = a[0][0], np.inf
    for i in range(1, ntab):
        h /= shrink
        a[0][i], floor = central(h)
        fac = shrink * shrink
        for j in range(1, i + 1):
            a[j][i] = (a[j - 1][i] * fac - a[j - 1][i - 1]) / (fac - 1)
            fac *= shrink * shrink
            e = max(abs(a[j][i] - a[j - 1][i]), abs(a[j][i] - a[j - 1][i - 1]), floor)
            if e <= err:
                best, err = a[j][i], e
        if abs(a[i][i] - a[i - 1][i - 1]) >= safe * err:
            break
    return best, err


def _fd_starts(cfg) -> tuple:
    """Initial FD steps: small ones where σ'' jumps (fast_sigmoid at 0, triangle at 0, ±1/γ),
    so that the stencil stays on one side of a kink that is at least 1e-2/γ away."""
    if cfg.cell != "rate" and cfg.surrogate.name in ("fast_sigmoid", "triangle"):
        return (1e-4, 1e-5, 1e-6, 1e-7)
    return (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)


def _rel_errors(a: dict, b: dict) -> dict:
    scale = max([abs(v) for v in a.values()] + [abs(v) for v in b.values()] + [1e-300])
    floor = 1e-3 * scale
    return {k: abs(a[k] - b[k]) / max(abs(a[k]), abs(b[k]), floor) for k in a}


def _directions(shapes: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def _only(key, d):
    return {k: (v if k == key else np.zeros_like(v)) for k, v in d.items()}


def _shift(params, d, h):
    return {k: params[k] + h * d[k] for k in params}


# ---------------------------------------------------------------------------
# BPTT
# ---------------------------------------------------------------------------


def check_bptt(cfg, params, inputs, targets, loss, mode: str, seed: int = 0) -> list:
    """Per parameter block: ``⟨∇L, d⟩`` by BPTT against ``fd`` or ``fwd_rev``."""
    _, grads, _ = adjoint.value_and_grad(cfg, params, inputs, targets, loss)
    d = _directions(network.param_shapes(cfg), seed)
    rev = {k: float(np.sum(grads[k] * d[k])) for k in grads}
    if mode == "fd":
        other = {
            k: fd_derivative(
                lambda h, k=k: adjoint.value_and_grad(cfg, _shift(params, _only(k, d), h), inputs, targets, loss)[0],
                _fd_starts(cfg),
            )
            for k in grads
        }
    else:
        other = {k: tangent.directional_derivative(cfg, params, inputs, targets, loss, _only(k, d)) for k in grads}
    return [Check(f"bptt {mode}", k, e, TOL[mode]) for k, e in _rel_errors(rev, other).items()]


# ---------------------------------------------------------------------------
# Jacobians
# ---------------------------------------------------------------------------


def check_jacobians(cfg, params, inputs, steps, b: int = 0, seed: int = 0, fd: bool = False) -> list:
    """Structured ``D_t V``, ``D_tᵀ W`` against the dense ``D_t``; with ``fd`` also dense vs FD."""
    traj = network.simulate(cfg, params, inputs)
    Ls = network.layers_of(cfg)
    rng = np.random.default_rng(seed)
    M = cfg.state_size
    worst = {"D V": 0.0, "D^T W": 0.0, "D vs FD": 0.0}
    for t in steps:
        D = network.dense_jacobian(cfg, params, traj, t, b)
        V = rng.standard_normal((3, M))
        DV = network.pack(cfg, network.apply_D(cfg, Ls, params, traj, t, network.unpack(cfg, V), b))
        DTV = network.pack(cfg, network.apply_DT(cfg, Ls, params, traj, t, network.unpack(cfg, V), b))
        ref, refT = V @ D.T, V @ D
        worst["D V"] = max(worst["D V"], np.max(np.abs(DV - ref)) / max(np.max(np.abs(ref)), 1e-300))
        worst["D^T W"] = max(worst["D^T W"], np.max(np.abs(DTV - refT)) / max(np.max(np.abs(refT)), 1e-300))
        if fd:
            x = network.state_at(cfg, traj, t, b)
            u_t = traj.inputs[t, b]
            h = 1e-4
            # below eps·|F|/h the difference quotient is rounding noise: a saturated σ' can make D v
            # smaller than that, and then the check is made on the scale that FD can resolve
            noise = 1e4 * np.finfo(float).eps * np.linalg.norm(network.step(cfg, params, x, u_t)) / h
            for v in V:
                num = richardson(lambda e: network.step(cfg, params, x + e * v, u_t), h)
                worst["D vs FD"] = max(worst["D vs FD"], np.linalg.norm(num - D @ v) / max(np.linalg.norm(D @ v), noise, 1e-300))
    out = [
        Check("jacobian dense", "D V", worst["D V"], TOL["dense"]),
        Check("jacobian dense", "D^T W", worst["D^T W"], TOL["dense"]),
    ]
    if fd:
        out.append(Check("jacobian fd", "D_t", worst["D vs FD"], TOL["dense_fd"]))
    return out


# ---------------------------------------------------------------------------
# flossing
# ---------------------------------------------------------------------------


def check_flossing(cfg, params, inputs, lcfg, fcfg, mode: str, seed: int = 0, checkpoint_every=None) -> list:
    """Per flossed parameter block: the reverse flossing gradient against ``fd`` or ``fwd_rev``."""
    res = flossing.value_and_grad(cfg, params, inputs, lcfg, fcfg, checkpoint_every=checkpoint_every)
    d = _directions(network.param_shapes(cfg), seed)
    rev = {k: float(np.sum(res.grads[k] * d[k])) for k in res.grads}
    if mode == "fd":
        other = {
            k: fd_derivative(
                lambda h, k=k: flossing.loss(cfg, _shift(params, _only(k, d), h), inputs, lcfg, fcfg), _fd_starts(cfg)
            )
            for k in res.grads
        }
    else:
        other = {k: flossing.directional_derivative(cfg, params, inputs, lcfg, fcfg, _only(k, d)) for k in res.grads}
    return [Check(f"flossing {mode}", k, e, TOL[mode]) for k, e in _rel_errors(rev, other).items()]


# ---------------------------------------------------------------------------
# deliberately wrong derivatives
# ---------------------------------------------------------------------------


def _zeroed(i: int, name: str):
    """A wrapper for :func:`_patch` that passes zeros for the kernel's ``i``-th argument (``name``): a term
    of the derivative that the kernel takes as an argument (``c`` = the reset term E_t, ``s2`` = σ'') dropped."""

    def wrap(orig):
        def f(*args):
            args = list(args)
            args[i] = np.zeros_like(args[i])
            return orig(*args)

        f.__name__ = f"{getattr(orig, '__name__', 'kernel')}_without_{name}"
        return f

    return wrap


def _patch(module, name, wrapper):
    @contextlib.contextmanager
    def ctx():
        original = getattr(module, name)
        setattr(module, name, wrapper(original))
        try:
            yield
        finally:
            setattr(module, name, original)

    return ctx


def _bptt_flip_rec(orig):
    def f(*args):
        Vb0, Ib0, gW_in, gW_rec, gb, zbar = orig(*args)
        return Vb0, Ib0, gW_in, -gW_rec, gb, zbar

    return f


def _bptt_rho_ignored(orig):
    def f(*args):
        # the last argument is reset_grad: as if ignored, ρ̂ = 1, unless the forward pass stored ρ̂
        return orig(*args[:-1], cell.GRAD_IGNORED)

    return f


def _dense_flip_block(orig):
    def f(cfg, params, traj, t, b=0):
        D = orig(cfg, params, traj, t, b).copy()
        N = cfg.layers[0]
        D[N : 2 * N, :N] *= -1.0 if cfg.cell == "clif" else 1.0  # ∂I/∂V of layer 1
        if cfg.cell != "clif":
            D[:N, :N] *= -1.0
        return D

    return f


def _recompiled(helper: str, bad):
    """A wrapper for :func:`_patch` that compiles the kernel again with ``helper`` replaced by ``bad``: the
    fault then sits inside the compiled kernel, where no argument of it could put it."""

    def wrap(orig):
        import types

        from numba import njit

        py = orig.py_func
        env = dict(py.__globals__)
        env[helper] = bad
        return njit(types.FunctionType(py.__code__, env, py.__name__, py.__defaults__, py.__closure__))

    return wrap


def _copyltu_diagonal_twice():
    from numba import njit

    @njit
    def copy(M, out):  # the fault: tril(M) + tril(M)ᵀ, the diagonal counted twice, instead of tril(M) + tril(M, -1)ᵀ
        qr.copyltu_into(M, out)
        for r in range(M.shape[0]):
            out[r, r] += M[r, r]

    return copy


def _both(*patches):
    """Several patches switched on together (one fault reaching every kernel that has the term)."""

    @contextlib.contextmanager
    def ctx():
        with contextlib.ExitStack() as stack:
            for p in patches:
                stack.enter_context(p())
            yield

    return ctx


def _qr_reverse_wrong_copyltu():
    """The compiled QR reverse rule with ``copyltu(M)`` replaced by ``tril(M) + tril(M)ᵀ``.

    (``tril(M)`` instead would be no fault for a loss of the exponents: it moved the flossing gradient of
    tests/test_fused.py's problem by 2e-16 of its size. The strictly lower part of ``Q̄ᵀQ`` vanishes there, as
    the exponents depend on ``Q`` only through the nested spans of its columns.)"""
    return _recompiled("copyltu_into", _copyltu_diagonal_twice())(qr.qr_reverse_rows)


#: name -> (description, context manager factory)
FAULTS = {
    "bptt_drop_reset_term": (
        "BPTT adjoint without the attached-reset term E_t",
        _patch(adjoint, "layer_backward", _zeroed(2, "c")),
    ),
    "bptt_flip_W_rec": ("BPTT gradient of W_rec with the wrong sign", _patch(adjoint, "layer_backward", _bptt_flip_rec)),
    "bptt_rho_from_S_ignored": (
        "BPTT adjoint with ρ̂ = 1 where the reverse pass derives it from the spikes (store='bptt')",
        _patch(adjoint, "layer_backward", _bptt_rho_ignored),
    ),
    "dense_flip_block": (
        "dense Jacobian with the sign of the ∂I/∂V block of layer 1 flipped",
        _patch(network, "dense_jacobian", _dense_flip_block),
    ),
    # each of the next three reaches the step kernels (networks of several layers) and the fused one-layer
    # kernels (one layer: every spectrum, flossing gradient and benchmarked number), so that a check that
    # passes is shown to be able to fail on both paths
    "structured_drop_reset_term": (
        "structured D_t V without the attached-reset term E_t",
        _both(
            _patch(cell, "jvp_step", _zeroed(3, "c")),
            _patch(fused, "floss_forward_rows", _zeroed(2, "c")),
            _patch(fused, "floss_backward_rows", _zeroed(4, "c")),
        ),
    ),
    "flossing_drop_sigma2": (
        "flossing reverse pass without σ''",
        _both(_patch(cell, "vjp2_step", _zeroed(1, "s2")), _patch(fused, "floss_backward_rows", _zeroed(1, "s2"))),
    ),
    "qr_backward_wrong_copyltu": (
        "QR reverse rule using tril(M) + tril(M)ᵀ (diagonal twice) instead of copyltu(M)",
        _both(
            # the step-by-step pass (several layers) calls the rule; the fused kernel has it compiled in
            _patch(flossing, "qr_reverse_rows", lambda orig: _qr_reverse_wrong_copyltu()),
            _patch(fused, "floss_backward_rows", lambda orig: _recompiled("qr_reverse_rows", _qr_reverse_wrong_copyltu())(orig)),
        ),
    ),
}


def inject(name: str):
    """Context manager that switches on the named deliberately wrong derivative.

    A fault replaces a compiled kernel by a Python wrapper; a kernel that calls the replaced one and is
    compiled for the first time while the fault is on (a cold JIT cache) would not compile. So every kernel
    of the checks is compiled first, by a clean run on a tiny network."""
    if name not in FAULTS:
        raise ValueError(f"fault must be one of {sorted(FAULTS)}, got {name!r}")
    _compile_kernels()
    return FAULTS[name][1]()


@functools.cache
def _compile_kernels() -> None:
    """Once per process (compiled kernels stay compiled)."""
    from refimpl.model.config import network_config

    for cell_name in ("clif", "binary", "rate"):
        cfg = network_config(cell=cell_name, layers=(3,), n_in=2, n_out=1, reset_grad="attached")
        run(cfg, T=6, B=2, loss=LossConfig("bce_per_step", t0=1))


# ---------------------------------------------------------------------------
# a whole gradcheck run (used by the CLI)
# ---------------------------------------------------------------------------


def random_problem(cfg: NetworkConfig, T: int, B: int, seed: int, loss: LossConfig):
    """Parameters (random initial state too), inputs and targets that make the network fire."""
    rng = np.random.default_rng(seed)
    params = network.init_params(cfg, seed, w_in=2.0, g_rec=1.5, bias=0.2)
    for l in range(1, cfg.n_layers):
        # deeper layers see sparse 0/1 spikes: drive them harder so that every layer fires
        params[f"layer{l + 1}/W_in"] *= 4.0
        params[f"layer{l + 1}/b"] += 0.5
    for key in params:
        if key.split("/")[1] in ("V0", "I0", "x0"):
            params[key] = 0.5 * rng.standard_normal(params[key].shape)
    inputs = rng.standard_normal((T, B, cfg.n_in)) * (1.5 if cfg.cell == "clif" else 1.0)
    if loss.name.startswith("ce_"):
        targets = rng.integers(0, cfg.n_out, size=B)
    elif loss.name == "bce_per_step":
        targets = (rng.random((T, B, cfg.n_out)) < 0.5).astype(float)
    else:
        targets = rng.standard_normal((T, B, cfg.n_out))
    return params, inputs, targets


def run(
    cfg: NetworkConfig,
    *,
    T: int = 20,
    B: int = 2,
    seed: int = 0,
    loss: LossConfig = LossConfig(),
    lcfg: LyapunovConfig | None = None,
    fcfg: FlossConfig | None = None,
) -> list:
    """All checks on ``cfg``: surrogate mode as configured, and smooth mode with attached reset."""
    if lcfg is None:
        lcfg = LyapunovConfig(k=min(3, cfg.state_size), ons=2, warmup=2, transient=1, seed=seed)
    if fcfg is None:
        fcfg = FlossConfig(params=("W_in", "W_rec", "b") + network.initial_state_names(cfg))
    params, inputs, targets = random_problem(cfg, T, B, seed, loss)
    steps = sorted({0, T // 2, T - 1})
    sur = replace(cfg, smooth=False)
    smooth = replace(cfg, smooth=True, reset_grad="attached")
    rows = []
    rows += check_bptt(sur, params, inputs, targets, loss, "fwd_rev", seed)
    rows += check_jacobians(sur, params, inputs, steps, seed=seed)
    rows += check_flossing(sur, params, inputs, lcfg, fcfg, "fwd_rev", seed)
    rows += check_bptt(smooth, params, inputs, targets, loss, "fd", seed)
    rows += check_jacobians(smooth, params, inputs, steps, seed=seed, fd=True)
    rows += check_flossing(smooth, params, inputs, lcfg, fcfg, "fd", seed)
    return rows


def format_table(rows: list) -> str:
    """Worst error per check and quantity, one row each."""
    lines = [f"{'check':<18} {'quantity':<16} {'worst error':>12} {'tol':>8}  status"]
    for r in rows:
        lines.append(f"{r.check:<18} {r.quantity:<16} {r.error:12.3e} {r.tol:8.0e}  {'ok' if r.passed else 'FAIL'}")
    return "\n".join(lines)
