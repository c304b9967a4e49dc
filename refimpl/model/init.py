"""Fluctuation-driven initialization (Rossbroich, Gygax & Zenke 2022) for every cell and dialect.

The weights are drawn so that the *free* membrane ``U`` of every layer (the
membrane of docs/model.md §1.1 without threshold and reset, i.e. the linear response
to the layer's inputs) has a chosen population mean ``μ_U`` and standard
deviation ``σ_U`` when the inputs are spike trains of known rates. The
formulas are exact for the discrete update of each dialect (docs/model.md §1.1,
switches ``syn_input`` and ``input_gain``) and for Bernoulli spike trains
(one independent coin per neuron and step); docs/derivations.md §5 derives
them, and tests/test_init.py simulates the layers to check them.

Units and meaning
-----------------
* ``clif``: ``μ_U, σ_U`` are in units of the threshold ``θ`` (the absolute
  targets are ``μ_U·θ`` and ``σ_U·θ``; ``θ`` must be > 0). ``U`` is the
  membrane ``V`` with the reset and the threshold removed.
* ``binary``, ``rate`` (docs/model.md §1.3): the threshold of ``H`` is at 0, so the
  targets are absolute; ``U`` is the pre-activation ``x`` itself (its kernel
  is a one-step delay, ``ε̄ = ε̂ = 1``).
* Rates ``nu_in``, ``nu_rec`` are in Hz; with ``dt`` in ms (docs/model.md) the
  per-step spike probability is ``p = ν·dt/1000`` (as in
  :func:`refimpl.tasks.poisson_inputs`).
* "Population" statistics pool neurons, time steps (at stationarity) and
  input realizations; the variance therefore contains the across-neuron
  ("quenched") variance that the random weights cause, besides the temporal
  fluctuations.

API: :func:`kernel` (the discrete kernel by running the recursion),
:func:`kernel_closed_form`, :func:`kernel_sums` (``ε̄, ε̂`` in closed form),
:func:`bernoulli_moments`, :func:`moments` (exact discrete forward formula),
:func:`moments_continuous` (Rossbroich's shot-noise formula, for comparison),
:func:`solve_weights` (its inverse), :func:`plan` (every layer's weight
moments) and :func:`fluctuation_init` (a parameter dict like
:func:`refimpl.model.network.init_params`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from refimpl.model.config import NetworkConfig
from refimpl.model.network import check_params, layers_of, param_shapes

__all__ = ["kernel", "kernel_closed_form", "kernel_sums", "bernoulli_moments", "moments", "moments_continuous",
    "solve_weights", "plan", "fluctuation_init"]  # fmt: skip


# ---------------------------------------------------------------------------
# the kernel of one layer
# ---------------------------------------------------------------------------


def _layer_constants(cfg: NetworkConfig, layer: int):
    if not isinstance(cfg, NetworkConfig):
        raise ValueError(f"cfg must be a NetworkConfig, got {type(cfg).__name__}")
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < cfg.n_layers:
        raise ValueError(f"layer must be an integer in [0, {cfg.n_layers}), got {layer!r}")
    L = layers_of(cfg)[layer]
    return L.alpha, L.beta, L.g, L.syn_old


def _uniform(*arrays) -> bool:
    return all(np.all(a == a[0]) for a in arrays)


def kernel(cfg: NetworkConfig, layer: int = 0, *, tol: float = 1e-12) -> np.ndarray:
    """``ε_t``, ``t = 0, 1, …``: the free membrane's response to a unit input at step 0 (docs/model.md §1.1).

    Computed by running the linear recursion of the dialect with ``S ≡ 0``
    (no threshold, no reset), zero initial state and ``z_0 = 1``, ``z_t = 0``
    after: ``I_{t+1} = α I_t + z_t``, ``V_{t+1} = β V_t + g Ĩ_t`` with
    ``Ĩ_t = I_{t+1}`` (``syn_input = new``) or ``I_t`` (``old``, one step
    later). For ``binary``/``rate`` cells (``α = β = 0``, ``g = 1``) this is
    the delta ``[0, 1]``: ``x_1 = W_in u_0``.

    The recursion stops once a bound on the whole remaining tail,
    ``V_t/(1-β) + g I_t/((1-α)(1-β))`` (``≥ Σ_{s≥t} ε_s``), is below ``tol``
    times the sum so far, so that ``Σ ε`` and ``Σ ε²`` of the returned array
    are exact to ``tol`` relative. Returns shape ``(L,)`` when all neurons
    share ``α, β, g``, else ``(N, L)`` (one row per neuron).
    """
    alpha, beta, g, syn_old = _layer_constants(cfg, layer)
    if not (isinstance(tol, numbers.Real) and 0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    if _uniform(alpha, beta, g):
        alpha, beta, g, squeeze = alpha[:1], beta[:1], g[:1], True
    else:
        squeeze = False
    V = np.zeros_like(alpha)
    I = np.zeros_like(alpha)
    out = [V.copy()]  # ε_0 = V_0 = 0: the input acts from step 1 on
    total = np.zeros_like(alpha)
    for t in range(10_000_000):
        z = 1.0 if t == 0 else 0.0
        I_next = alpha * I + z
        V = beta * V + g * (I if syn_old else I_next)
        I = I_next
        out.append(V.copy())
        total += V
        tail = V / (1.0 - beta) + g * I / ((1.0 - alpha) * (1.0 - beta))
        if t >= 2 and np.all(tail <= tol * total):
            break
    eps = np.stack(out, axis=-1)
    return eps[0] if squeeze else eps


def kernel_closed_form(cfg: NetworkConfig, layer: int = 0, length: int = 100) -> np.ndarray:
    """The closed form of :func:`kernel` for ``t < length`` (docs/derivations.md §5.1).

    ``syn_input = new``: ``ε_t = g (α^t − β^t)/(α − β)`` (``g t α^{t−1}`` when
    ``α = β``); ``old``: the same shifted by one step, ``ε_t → ε_{t−1}``,
    ``ε_0 = 0``. Shape as :func:`kernel`.
    """
    alpha, beta, g, syn_old = _layer_constants(cfg, layer)
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length must be an integer >= 1, got {length!r}")
    squeeze = _uniform(alpha, beta, g)
    if squeeze:
        alpha, beta, g = alpha[:1], beta[:1], g[:1]
    t = np.arange(length, dtype=float) - (1.0 if syn_old else 0.0)
    t = np.maximum(t, 0.0)
    a, b, gg = alpha[:, None], beta[:, None], g[:, None]
    same = np.isclose(a, b, rtol=1e-9, atol=0.0)
    diff = np.where(same, 1.0, a - b)
    with np.errstate(divide="ignore", invalid="ignore"):
        distinct = gg * (a**t - b**t) / diff
        # α = β: the limit g t α^{t-1} (written t α^t / α without dividing by α = 0)
        equal = gg * t * np.where(t >= 1, a ** np.maximum(t - 1, 0.0), 0.0)
    eps = np.where(same, equal, distinct)
    return eps[0] if squeeze else eps


def kernel_sums(cfg: NetworkConfig, layer: int = 0):
    """``(ε̄, ε̂) = (Σ_t ε_t, Σ_t ε_t²)`` in closed form (the same for both ``syn_input``).

    ``ε̄ = g / ((1−α)(1−β))``, ``ε̂ = g² (1+αβ) / ((1−α²)(1−β²)(1−αβ))``
    (docs/derivations.md §5.1). Scalars when all neurons share ``α, β, g``,
    else arrays of shape ``(N,)``.
    """
    alpha, beta, g, _ = _layer_constants(cfg, layer)
    eps_bar = g / ((1.0 - alpha) * (1.0 - beta))
    eps_hat = g**2 * (1.0 + alpha * beta) / ((1.0 - alpha**2) * (1.0 - beta**2) * (1.0 - alpha * beta))
    if _uniform(alpha, beta, g):
        return float(eps_bar[0]), float(eps_hat[0])
    return eps_bar, eps_hat


# ---------------------------------------------------------------------------
# input statistics and the moments of U
# ---------------------------------------------------------------------------


def _real(name, v, lo=None, hi=None, lo_open=False, hi_open=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    v = float(v)
    if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi))):
        lb = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        hb = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        rng = (
            f"in {lb}, {hb}"
            if lo is not None and hi is not None
            else (f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else f"{'<' if hi_open else '<='} {hi:g}")
        )
        raise ValueError(f"{name} must be {rng}, got {v!r}")
    return v


def bernoulli_moments(nu: float, dt: float):
    """Mean and variance ``(p, p(1−p))`` of a Bernoulli spike train of rate ``nu`` Hz, ``dt`` ms.

    ``p = ν·dt/1000`` is the spike probability per step (must be in (0, 1]).
    """
    nu = _real("nu", nu, lo=0.0, lo_open=True)
    dt = _real("dt", dt, lo=0.0, lo_open=True)
    p = nu * dt / 1000.0
    if p > 1.0:
        raise ValueError(
            f"nu must satisfy nu*dt/1000 <= 1 (a spike probability per step), got nu={nu:g} Hz with dt={dt:g} ms (p = {p:g})"
        )
    return p, p * (1.0 - p)


def moments(*, n, mu_w, sigma_w, eps_bar, eps_hat, mean, var):
    """Exact population mean and SD of ``U = Σ_j w_j (ε * x_j)`` (docs/derivations.md §5.2).

    ``n`` presynaptic trains, each i.i.d. over neurons and steps with mean
    ``mean`` and variance ``var`` per step (Bernoulli: ``p``, ``p(1−p)``);
    weights i.i.d. with mean ``mu_w`` and SD ``sigma_w``::

        μ_U  = n μ_w a ε̄
        σ_U² = n [ (σ_w² + μ_w²) v ε̂  +  σ_w² a² ε̄² ]

    (``a = mean``, ``v = var``); the second term is the across-neuron variance
    of the time-averaged membrane. Returns ``(μ_U, σ_U)`` (arrays broadcast).
    """
    n, mu_w, sigma_w = np.asarray(n, float), np.asarray(mu_w, float), np.asarray(sigma_w, float)
    a, v = np.asarray(mean, float), np.asarray(var, float)
    mu = n * mu_w * a * eps_bar
    var_U = n * ((sigma_w**2 + mu_w**2) * v * eps_hat + sigma_w**2 * a**2 * np.asarray(eps_bar) ** 2)
    return mu, np.sqrt(var_U)


def moments_continuous(*, n, nu_dt, mu_w, sigma_w, eps_bar, eps_hat):
    """Rossbroich et al.'s shot-noise formulas in per-step units, for comparison only.

    ``μ_U = n ν μ_w ε̄``, ``σ_U² = n ν (σ_w² + μ_w²) ε̂`` with ``ν`` the spikes
    per step (``nu_dt = p``). They differ from :func:`moments` in the terms of
    order ``p²``: ``−n p² (σ_w² + μ_w²) ε̂`` (Bernoulli instead of Poisson
    counts) and ``+n p² σ_w² ε̄²`` (the across-neuron variance).
    """
    n, p = np.asarray(n, float), np.asarray(nu_dt, float)
    mu = n * p * np.asarray(mu_w, float) * eps_bar
    var_U = n * p * (np.asarray(sigma_w, float) ** 2 + np.asarray(mu_w, float) ** 2) * eps_hat
    return mu, np.sqrt(var_U)


def solve_weights(*, mu_U, sigma_U, n, eps_bar, eps_hat, mean, var, what="the target"):
    """Invert :func:`moments`: ``(μ_w, σ_w)`` that give the targets ``(μ_U, σ_U)`` exactly.

    ``μ_w = μ_U/(n a ε̄)``, ``σ_w² = (σ_U²/n − μ_w² v ε̂)/(v ε̂ + a² ε̄²)``.
    ``ValueError`` when no real ``σ_w`` exists: ``σ_U² < μ_U² v ε̂/(n a² ε̄²)``
    (the mean alone, through the weights' own fluctuation-free part, already
    makes more variance than the target) or when the inputs carry no signal.
    Arrays broadcast (one solution per neuron for per-neuron time constants).
    """
    mu_U, sigma_U = np.asarray(mu_U, float), np.asarray(sigma_U, float)
    a, v = float(mean), float(var)
    eps_bar, eps_hat = np.asarray(eps_bar, float), np.asarray(eps_hat, float)
    if n < 1:
        raise ValueError(f"{what}: needs at least one presynaptic neuron, got n = {n}")
    if a == 0.0:
        if np.any(mu_U != 0.0):
            raise ValueError(f"{what}: a mean mu_U != 0 is impossible with zero-mean inputs")
        mu_w = np.zeros_like(mu_U * eps_bar)
    else:
        mu_w = mu_U / (n * a * eps_bar)
    denom = v * eps_hat + a**2 * eps_bar**2
    if np.any(denom <= 0.0):
        if np.any(sigma_U > 0):
            raise ValueError(f"{what}: the inputs never fluctuate or fire (rate and variance 0), so sigma_U > 0 is impossible")
        return mu_w, np.zeros_like(mu_w)
    num = sigma_U**2 / n - mu_w**2 * v * eps_hat
    if np.any(num < -1e-12 * sigma_U**2 / n):
        bound = np.max(np.sqrt(np.abs(mu_U) ** 2 * v * eps_hat / (n * a**2 * eps_bar**2)))
        raise ValueError(
            f"{what}: sigma_U = {float(np.max(sigma_U)):.4g} is too small for mu_U = "
            f"{float(np.max(np.abs(mu_U))):.4g} with these inputs: a weight mean that gives mu_U already "
            f"gives sigma_U >= {bound:.4g}; raise sigma_U, lower |mu_U|, or raise the number or "
            "rate of inputs"
        )
    sigma_w = np.sqrt(np.maximum(num, 0.0) / denom)
    return mu_w, sigma_w


def _gauss_moments(f, mu, sigma):
    """``E f(X)`` and ``Var f(X)`` for ``X ~ N(mu, sigma²)`` (Gauss–Hermite, 101 nodes)."""
    x, w = np.polynomial.hermite_e.hermegauss(101)
    w = w / w.sum()
    y = f(mu + sigma * x)
    m1 = float(np.dot(w, y))
    return m1, max(float(np.dot(w, y * y)) - m1**2, 0.0)


# ---------------------------------------------------------------------------
# the whole network
# ---------------------------------------------------------------------------


def _per_layer(name, value, n_layers, check):
    """A scalar or a sequence of one value per layer → a list of ``n_layers`` checked values."""
    if isinstance(value, (list, tuple, np.ndarray)):
        vals = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(vals) != n_layers:
            raise ValueError(
                f"{name} must be a number or a sequence of {n_layers} values (one per layer), got {len(vals)} values"
            )
        return [check(f"{name}[{i}]", v) for i, v in enumerate(vals)]
    return [check(name, value)] * n_layers


def plan(cfg: NetworkConfig, *, mu_U, sigma_U, nu_in=None, nu_rec=None, rec_share=0.0, rec_mean_share=0.0,
        input_moments=None) -> list:  # fmt: skip
    """Weight moments of every layer that give the targets; the arithmetic of :func:`fluctuation_init`.

    Returns one dict per layer with the absolute targets (``mu_U``,
    ``sigma_U``), ``eps_bar``, ``eps_hat``, and per pathway (``"W_in"``,
    ``"W_rec"``) a dict with ``n`` (presynaptic neurons), ``mean``, ``var``
    (per-step input statistics), ``mu_U``, ``sigma_U`` (the pathway's share
    of the targets) and the solved ``mu_w``, ``sigma_w``. Arguments as
    :func:`fluctuation_init`; every one is checked before any arithmetic.
    """
    if not isinstance(cfg, NetworkConfig):
        raise ValueError(f"cfg must be a NetworkConfig, got {type(cfg).__name__}")
    nL = cfg.n_layers
    mus = _per_layer("mu_U", mu_U, nL, lambda k, v: _real(k, v))
    sigmas = _per_layer("sigma_U", sigma_U, nL, lambda k, v: _real(k, v, lo=0.0, lo_open=True))
    shares = _per_layer("rec_share", rec_share, nL, lambda k, v: _real(k, v, lo=0.0, hi=1.0, hi_open=True))
    mshares = _per_layer("rec_mean_share", rec_mean_share, nL, lambda k, v: _real(k, v, lo=0.0, hi=1.0))
    dt = float(cfg.dt)
    if cfg.cell == "clif":
        if not cfg.theta > 0:
            raise ValueError(
                f"theta must be > 0 for a fluctuation-driven initialization of clif (targets are in "
                f"units of theta), got {cfg.theta!r}"
            )
        unit = float(cfg.theta)
    else:
        unit = 1.0
    # the statistics of layer 1's inputs
    if input_moments is not None:
        if nu_in is not None:
            raise ValueError("give either nu_in or input_moments, not both")
        if not isinstance(input_moments, (tuple, list)) or len(input_moments) != 2:
            raise ValueError(f"input_moments must be a pair (mean, variance) of the inputs per step, got {input_moments!r}")
        a_in = _real("input_moments[0] (mean)", input_moments[0])
        v_in = _real("input_moments[1] (variance)", input_moments[1], lo=0.0)
    else:
        if nu_in is None:
            raise ValueError("nu_in (Hz, the rate of the input spike trains) is required unless input_moments is given")
        nu_in = _real("nu_in", nu_in, lo=0.0, lo_open=True)
        if nu_in * dt / 1000.0 > 1.0:
            raise ValueError(
                f"nu_in must satisfy nu_in*dt/1000 <= 1 (a spike probability per step), got nu_in={nu_in:g} Hz with dt={dt:g} ms"
            )
        a_in, v_in = bernoulli_moments(nu_in, dt)
    # the statistics of each layer's own activity (recurrent input; input of the next layer)
    if nu_rec is None:
        nus = [None] * nL
    else:

        def chk(k, v):
            v = _real(k, v, lo=0.0, lo_open=True)
            if v * dt / 1000.0 > 1.0:
                raise ValueError(
                    f"{k} must satisfy {k}*dt/1000 <= 1 (a spike probability per step), got {v:g} Hz with dt={dt:g} ms"
                )
            return v

        nus = _per_layer("nu_rec", nu_rec, nL, chk)
    if cfg.cell == "rate" and nu_rec is not None:
        raise ValueError(
            "nu_rec must be None for cell='rate': its recurrent input tanh(x) is not a spike train; "
            "its statistics follow from mu_U and sigma_U (Gaussian mean field)"
        )
    if cfg.cell == "clif":
        for l in range(nL):
            need = shares[l] > 0 or l < nL - 1
            if need and nus[l] is None:
                why = "rec_share > 0" if shares[l] > 0 else "it feeds the next layer"
                raise ValueError(f"nu_rec (Hz, the target rate of layer {l + 1}) is required: {why}")
    for l, N in enumerate(cfg.layers):
        if shares[l] > 0 and N < 2:
            raise ValueError(f"rec_share > 0 needs at least 2 neurons in layer {l + 1} (W_rec has no autapses)")

    out = []
    for l, N in enumerate(cfg.layers):
        mu_abs, sigma_abs = mus[l] * unit, sigmas[l] * unit
        eb, eh = kernel_sums(cfg, l)
        if l == 0:
            a, v = a_in, v_in
        else:
            a, v = out[l - 1]["activity"]
        # this layer's own activity, as seen by W_rec and by the next layer
        if cfg.cell == "rate":
            act = _gauss_moments(np.tanh, mu_abs, sigma_abs)
        elif nus[l] is not None:
            act = bernoulli_moments(nus[l], dt)
        elif cfg.cell == "binary":
            # mean field: x ~ N(μ, σ²) gives P(H(x) = 1) = P(x > 0)
            p = 0.5 * math.erfc(-mu_abs / (sigma_abs * math.sqrt(2.0)))
            act = (p, p * (1.0 - p))
        else:
            act = None
        r, mr = shares[l], mshares[l]
        ff = dict(n=cfg.layer_inputs(l), mean=a, var=v, mu_U=(1.0 - mr) * mu_abs, sigma_U=math.sqrt(1.0 - r) * sigma_abs)
        ff["mu_w"], ff["sigma_w"] = solve_weights(mu_U=ff["mu_U"], sigma_U=ff["sigma_U"], n=ff["n"], eps_bar=eb,
            eps_hat=eh, mean=a, var=v, what=f"layer {l + 1}, W_in")  # fmt: skip
        if r > 0 or mr > 0:
            if act is None:
                raise ValueError(f"nu_rec (Hz, the target rate of layer {l + 1}) is required when rec_mean_share > 0")
            rec = dict(n=N - 1, mean=act[0], var=act[1], mu_U=mr * mu_abs, sigma_U=math.sqrt(r) * sigma_abs)
            rec["mu_w"], rec["sigma_w"] = solve_weights(mu_U=rec["mu_U"], sigma_U=rec["sigma_U"], n=rec["n"],
                eps_bar=eb, eps_hat=eh, mean=act[0], var=act[1], what=f"layer {l + 1}, W_rec")  # fmt: skip
        else:
            rec = dict(n=N - 1, mean=None if act is None else act[0], var=None if act is None else act[1],
                mu_U=0.0, sigma_U=0.0, mu_w=0.0, sigma_w=0.0)  # fmt: skip
        out.append(dict(mu_U=mu_abs, sigma_U=sigma_abs, eps_bar=eb, eps_hat=eh, W_in=ff, W_rec=rec, activity=act))
    return out


def fluctuation_init(cfg: NetworkConfig, *, mu_U, sigma_U, nu_in=None, nu_rec=None, rec_share=0.0, seed: int,
        rec_mean_share=0.0, input_moments=None, w_out: float = 1.0) -> dict:  # fmt: skip
    """Parameters like :func:`refimpl.model.network.init_params` with fluctuation-driven ``W_in``, ``W_rec``.

    Every weight of a pathway is ``μ_w + σ_w·ξ``, ``ξ ~ N(0, 1)`` i.i.d., with
    ``(μ_w, σ_w)`` from :func:`solve_weights` so that the free membrane of
    each layer has population mean ``mu_U`` and SD ``sigma_U`` (docs/derivations.md §5):

    * ``mu_U``, ``sigma_U``: targets, in units of ``θ`` for clif and absolute
      (``x``) for binary/rate; a number or one value per layer; ``sigma_U > 0``.
    * ``nu_in``: rate (Hz) of layer 1's input spike trains (Bernoulli per
      step, ``p = ν·dt/1000``); or ``input_moments = (mean, variance)`` of
      the inputs per step instead (e.g. measured from data; analog inputs).
    * ``nu_rec``: the target rate (Hz) of each layer's own spikes (a number
      or one per layer): the rate of the recurrent input and of the next
      layer's input. Required for clif when ``rec_share > 0`` or the layer
      feeds another. ``binary``: default from the mean field
      ``p = P(x > 0) = Φ(μ_U/σ_U)``; ``rate``: must be ``None`` (the
      statistics of ``tanh(x)`` for ``x ~ N(μ_U, σ_U²)`` are used).
    * ``rec_share`` ∈ [0, 1): the fraction of ``σ_U²`` that comes from the
      recurrent input (``0``: ``W_rec = 0``, a feed-forward layer).
    * ``rec_mean_share`` ∈ [0, 1]: the fraction of ``μ_U`` that comes from the
      recurrent input; default 0 (zero-mean ``W_rec``, as
      :func:`refimpl.model.network.init_params` draws it; the feed-forward weights
      carry the whole mean).

    ``W_rec`` has a zero diagonal (no autapses, so ``n_rec = N − 1``);
    biases and the initial state are 0; ``W_out ~ N(0, w_out²/N_L)``. The
    normal deviates are drawn from ``default_rng(seed)`` in the order of
    :func:`refimpl.model.network.init_params`, so ``W_out`` equals its ``W_out``
    for the same seed. All arguments are checked before anything is drawn.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    w_out = _real("w_out", w_out, lo=0.0)
    layers = plan(cfg, mu_U=mu_U, sigma_U=sigma_U, nu_in=nu_in, nu_rec=nu_rec, rec_share=rec_share,
        rec_mean_share=rec_mean_share, input_moments=input_moments)  # fmt: skip
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(cfg).items():
        head, kind = name.split("/")
        if kind in ("W_in", "W_rec"):
            pw = layers[int(head[5:]) - 1][kind]
            # drawn even for a zero pathway, so that later draws (W_out) do not depend on rec_share
            W = rng.standard_normal(shape)
            # per-neuron time constants give per-row moments: broadcast over rows
            mu_w = np.broadcast_to(np.asarray(pw["mu_w"], float), (shape[0],))[:, None]
            sigma_w = np.broadcast_to(np.asarray(pw["sigma_w"], float), (shape[0],))[:, None]
            W *= sigma_w  # in place: W_rec of a large layer is the biggest array here
            W += mu_w
            if kind == "W_rec":
                np.fill_diagonal(W, 0.0)
            params[name] = W
        elif kind == "W_out":
            params[name] = rng.standard_normal(shape) * w_out / np.sqrt(shape[1])
        else:
            params[name] = np.zeros(shape)
    return check_params(cfg, params)
