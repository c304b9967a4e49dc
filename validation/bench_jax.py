"""JAX peers of the computations that ``refimpl bench`` times (issue 16, point 1).

Written the way a JAX user who cares about speed would write them, from ``docs/model.md`` alone and
importing nothing from ``refimpl``: float64 (``jax_enable_x64``), one ``lax.scan`` over time, every
function compiled ahead of time (``jax.jit(...).lower(...).compile()``, so that compile time is
reported separately), the spike a ``jax.custom_jvp`` whose tangent is the surrogate derivative written
with differentiable ops (so that a second differentiation brings in ``σ''``), and the tangent map
applied to the ``k`` columns of ``Q`` by ``jax.jvp`` under ``vmap`` — a structured product, never a
dense ``M×M`` Jacobian. One clif layer of the ``engelken`` dialect (``syn_input = new``,
``input_gain = one_minus_beta``, ``reset = zero``, ``reset_grad = detached``), ``fast_sigmoid``
surrogate, as ``validation/bench_torch.py``:

* :func:`bptt` — the ``bce_per_step`` loss and its gradient (``jax.value_and_grad`` through the scan);
* :func:`spectrum` — the ``k`` exponents (``ons = 1``, no warm-up), 1/step;
* :func:`flossing` — ``mean(λ²)`` and its gradient for ``W_in, W_rec, b`` through every tangent
  product and every QR (``jnp.linalg.qr``'s own derivative rules); with ``every = c``, each segment of
  ``c`` steps under ``jax.checkpoint`` (rematerialized in the reverse pass).

Each returns NumPy arrays and, with ``timing=True``, ``(result, compile_seconds)``. Parameters use the
golden-vector names (``layer1/W_in`` …).
"""

from __future__ import annotations

import math
import time
from functools import partial

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

KEYS = ("layer1/W_in", "layer1/W_rec", "layer1/b", "readout/W_out", "readout/b_out")
FLOSSED = ("layer1/W_in", "layer1/W_rec", "layer1/b")
CONST = {"tau_mem": 10.0, "tau_syn": 5.0, "tau_out": 5.0, "theta": 1.0, "dt": 1.0, "gamma": 10.0}


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def spike(x, gamma):
    return (x > 0).astype(x.dtype)


@spike.defjvp
def _spike_jvp(gamma, primals, tangents):
    (x,), (dx,) = primals, tangents
    return spike(x, gamma), dx / (1.0 + gamma * jnp.abs(x)) ** 2


def _consts(c):
    alpha, beta = math.exp(-c["dt"] / c["tau_syn"]), math.exp(-c["dt"] / c["tau_mem"])
    kappa = 0.0 if c["tau_out"] == 0 else math.exp(-c["dt"] / c["tau_out"])
    return alpha, beta, 1.0 - beta, kappa


def _step(p, V, I, u, c):
    """``(V_t, I_t, u_t) -> (V_{t+1}, I_{t+1})`` with ``S_t = H(V_t - θ)`` (docs/model.md §1.1)."""
    alpha, beta, g, _ = _consts(c)
    S = spike(V - c["theta"], c["gamma"])
    I_new = alpha * I + u @ p["layer1/W_in"].T + S @ p["layer1/W_rec"].T + p["layer1/b"]
    m = beta * V + g * I_new
    return (1.0 - lax.stop_gradient(S)) * m, I_new  # zero reset, reset_grad = detached


def _bptt_loss(p, u, tg, c):
    _, _, _, kappa = _consts(c)
    B, N = u.shape[1], p["layer1/W_rec"].shape[0]
    n_out = p["readout/W_out"].shape[0]

    def body(carry, ut):
        V, I, U = carry
        V, I = _step(p, V, I, ut, c)
        S = spike(V - c["theta"], c["gamma"])
        U = kappa * U + (1.0 - kappa) * (S @ p["readout/W_out"].T + p["readout/b_out"])
        return (V, I, U), U

    z = jnp.zeros((B, N))
    _, y = lax.scan(body, (z, z, jnp.zeros((B, n_out))), u)
    return jnp.mean(jnp.logaddexp(y, 0.0) - tg * y)


def _qr_positive(A):
    Q, R = jnp.linalg.qr(A, mode="reduced")
    sgn = lax.stop_gradient(jnp.where(jnp.diagonal(R) < 0, -1.0, 1.0))
    return Q * sgn, R * sgn[:, None]


def _exponents(p, u, Q0, c, every=0):
    """The exponents along ``u (T, n_in)`` from ``Q0`` (the state starts at zero).

    ``every > 0``: under differentiation only the carry at every ``every``-th step is kept, and each segment
    runs again in the reverse pass (``jax.checkpoint`` of the segment's scan, the rematerialization a JAX
    user writes to bound the memory of a long scan) — what refimpl's ``checkpoint_every`` does."""
    N = p["layer1/W_rec"].shape[0]

    def F(x, ut):
        V, I = _step(p, x[:N], x[N:], ut, c)
        return jnp.concatenate([V, I])

    def body(carry, ut):
        x, Q, logsum = carry
        tangent = jax.vmap(lambda q: jax.jvp(lambda y: F(y, ut), (x,), (q,))[1], in_axes=1, out_axes=1)
        Q, R = _qr_positive(tangent(Q))
        return (F(x, ut), Q, logsum + jnp.log(jnp.diagonal(R))), None

    carry = (jnp.zeros(2 * N), Q0, jnp.zeros(Q0.shape[1]))
    if not every:
        (_, _, logsum), _ = lax.scan(body, carry, u)
        return logsum / u.shape[0]
    segment = jax.checkpoint(lambda carry, us: lax.scan(body, carry, us)[0])
    T = u.shape[0]
    cut = T - T % every
    carry, _ = lax.scan(lambda carry, us: (segment(carry, us), None), carry, u[:cut].reshape(T // every, every, -1))
    if cut < T:  # the last, shorter segment
        carry = segment(carry, u[cut:])
    return carry[2] / T


def _floss_loss(pf, p_rest, u, Q0, c, every=0):
    lam = _exponents({**p_rest, **pf}, u, Q0, c, every)
    return jnp.mean(lam**2), lam


def _as_jax(params, keys):
    return {k: jnp.asarray(np.asarray(params[k], dtype=np.float64)) for k in keys if k in params}


def _compiled(fn, *args):
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t


def bptt(params: dict, inputs: np.ndarray, targets: np.ndarray, timing: bool = False, **kw):
    """``(loss, grads)`` of ``bce_per_step`` (every parameter)."""
    c = {**CONST, **kw}
    p = _as_jax(params, KEYS)
    u, tg = jnp.asarray(inputs, dtype=jnp.float64), jnp.asarray(targets, dtype=jnp.float64)
    f, secs = _compiled(jax.value_and_grad(partial(_bptt_loss, c=c)), p, u, tg)
    value, grads = f(p, u, tg)
    out = (float(value), {k: np.asarray(v) for k, v in grads.items()})
    return (out, secs) if timing else out


def spectrum(params: dict, inputs: np.ndarray, Q0: np.ndarray, timing: bool = False, **kw):
    """The ``k = Q0.shape[1]`` exponents along ``inputs (T, n_in)``, 1/step."""
    c = {**CONST, **kw}
    p = _as_jax(params, KEYS)
    u, Q = jnp.asarray(inputs, dtype=jnp.float64), jnp.asarray(Q0, dtype=jnp.float64)
    f, secs = _compiled(partial(_exponents, c=c), p, u, Q)
    out = np.asarray(f(p, u, Q))
    return (out, secs) if timing else out


def _floss_compiled(params, inputs, Q0, every, kw):
    """The compiled flossing value and gradient, its arguments and its compile time (trajectory ``inputs (T, n_in)``)."""
    pf = _as_jax(params, FLOSSED)
    rest = _as_jax(params, [k for k in KEYS if k not in FLOSSED])
    u, Q = jnp.asarray(inputs, dtype=jnp.float64), jnp.asarray(Q0, dtype=jnp.float64)
    loss = partial(_floss_loss, c={**CONST, **kw}, every=every)
    f, secs = _compiled(jax.value_and_grad(loss, has_aux=True), pf, rest, u, Q)
    return f, (pf, rest, u, Q), secs


def flossing(params: dict, inputs: np.ndarray, Q0: np.ndarray, timing: bool = False, every: int = 0, **kw):
    """``(loss, λ, grads)``: ``mean(λ²)`` and its gradient for ``W_in, W_rec, b`` (``every > 0``: segments of
    ``every`` steps rematerialized in the reverse pass, :func:`_exponents`)."""
    f, args, secs = _floss_compiled(params, inputs, Q0, every, kw)
    (value, lam), grads = f(*args)
    out = (float(value), np.asarray(lam), {k: np.asarray(v) for k, v in grads.items()})
    return (out, secs) if timing else out


def flossing_temp_bytes(params: dict, inputs: np.ndarray, Q0: np.ndarray, every: int = 0, **kw) -> int:
    """The working memory XLA plans for :func:`flossing`'s compiled gradient (``memory_analysis()``'s
    temporaries, bytes): what storing every step costs against ``every > 0``."""
    f, _, _ = _floss_compiled(params, inputs, Q0, every, kw)
    return int(f.memory_analysis().temp_size_in_bytes)


def version() -> str:
    return jax.__version__


def prepare(kind: str, params: dict, inputs: np.ndarray, targets: np.ndarray, Q0, every: int = 0, **kw):
    """``(run, compile_seconds)`` for ``refimpl bench``: ``run()`` evaluates the compiled computation
    (``bptt``: ``inputs (T, B, n_in)``; ``spectrum``, ``flossing``: trajectory 0) and returns the
    comparable results as NumPy arrays (``loss``, ``spectrum``, ``grad/<param>``). ``every > 0``
    (flossing): segments rematerialized in the reverse pass (:func:`_exponents`)."""
    c = {**CONST, **kw}
    if kind == "bptt":
        p = _as_jax(params, KEYS)
        u, tg = jnp.asarray(inputs, dtype=jnp.float64), jnp.asarray(targets, dtype=jnp.float64)
        f, secs = _compiled(jax.value_and_grad(partial(_bptt_loss, c=c)), p, u, tg)

        def run():
            value, grads = f(p, u, tg)
            return {"loss": float(value), **{f"grad/{k}": np.asarray(v) for k, v in grads.items()}}

        return run, secs
    u, Q = jnp.asarray(inputs[:, 0], dtype=jnp.float64), jnp.asarray(Q0, dtype=jnp.float64)
    if kind == "spectrum":
        p = _as_jax(params, KEYS)
        f, secs = _compiled(partial(_exponents, c=c), p, u, Q)
        return (lambda: {"spectrum": np.asarray(f(p, u, Q))}), secs
    f, args, secs = _floss_compiled(params, inputs[:, 0], Q0, every, kw)

    def run():
        (value, lam), grads = f(*args)
        return {"loss": float(value), "spectrum": np.asarray(lam), **{f"grad/{k}": np.asarray(v) for k, v in grads.items()}}

    return run, secs
