"""The continuous-time current-based LIF neuron between events: its closed-form flow and its next
threshold crossing (docs/exact.md §1–2).

Between events a neuron obeys

    τ_s dI/dt = -I + b,        τ_m dV/dt = -V + I,

so from ``(V₀, I₀)`` at ``t = 0``

    I(t) = b + (I₀ - b) e^{-t/τ_s}
    V(t) = b + e^{-t/τ_m} [ (V₀ - b) + (I₀ - b) φ(t) ],   φ(t) = τ_s (e^{-tΔ} - 1) / (τ_s - τ_m),

with ``Δ = 1/τ_s - 1/τ_m``; ``φ(t) = t/τ`` when ``τ_m = τ_s = τ`` (its limit). ``φ`` is evaluated with
``expm1``, so nearly equal time constants lose no digits. ``V(t) - θ`` is a constant plus two decaying
exponentials: it has at most one extremum, so the first crossing is bracketed in closed form and found by
safeguarded Newton. Two ratios have closed-form crossings: ``τ_m = 2τ_s`` (a quadratic in
``x = e^{-t/τ_m}``) and ``τ_m = τ_s`` (a Lambert W). Every function is a scalar ``njit`` kernel; the event
loop (:mod:`refimpl.exact.events`) calls them per neuron.
"""

from __future__ import annotations

import math

from numba import njit

#: root-finding methods: the closed form where one exists (else bracketing), or always bracketing
AUTO, BRACKET = 0, 1
#: Newton/bisection stops at |V - θ| <= RESIDUAL·max(1, |θ|) or a bracket of a few ulp
RESIDUAL = 1e-14
INF = math.inf


@njit(cache=True)
def phi(t, tau_m, tau_s):
    """``φ(t)``: the response of ``V e^{t/τ_m}`` to a unit current offset (docs/exact.md §1)."""
    if tau_m == tau_s:
        return t / tau_m
    delta = 1.0 / tau_s - 1.0 / tau_m
    return tau_s * math.expm1(-t * delta) / (tau_s - tau_m)


@njit(cache=True)
def flow_coefficients(t, tau_m, tau_s):
    """``(e^{-t/τ_m}, e^{-t/τ_m} φ(t), e^{-t/τ_s})``: the flow is linear in ``(V₀, I₀, b)``,
    ``V(t) = c_V V₀ + c_I I₀ + (1 - c_V - c_I) b``, ``I(t) = c_s I₀ + (1 - c_s) b``."""
    em = math.exp(-t / tau_m)
    return em, em * phi(t, tau_m, tau_s), math.exp(-t / tau_s)


@njit(cache=True)
def flow_with(c_V, c_I, c_s, V0, I0, b):
    """One flow of known coefficients (:func:`flow_coefficients`). Because the flow is linear in
    ``(V₀, I₀, b)`` jointly, the same call moves a sensitivity ``(∂V/∂p, ∂I/∂p)`` with ``b = ∂b/∂p``."""
    return c_V * V0 + c_I * I0 + (1.0 - c_V - c_I) * b, c_s * I0 + (1.0 - c_s) * b


@njit(cache=True)
def flow(V0, I0, b, t, tau_m, tau_s):
    """``(V(t), I(t))`` from ``(V₀, I₀)`` after a free flow of length ``t >= 0``."""
    c_V, c_I, c_s = flow_coefficients(t, tau_m, tau_s)
    return flow_with(c_V, c_I, c_s, V0, I0, b)


@njit(cache=True)
def current(I0, b, t, tau_s):
    """``I(t)``: the current alone (a refractory neuron's membrane is held)."""
    return b + (I0 - b) * math.exp(-t / tau_s)


@njit(cache=True)
def _v_and_slope(V0, I0, b, t, tau_m, tau_s):
    V, I = flow(V0, I0, b, t, tau_m, tau_s)
    return V, (I - V) / tau_m


# ---------------------------------------------------------------------------
# the general case: bracket the first crossing, then safeguarded Newton
# ---------------------------------------------------------------------------


@njit(cache=True)
def extremum_time(V0, I0, b, tau_m, tau_s):
    """The time ``t_e > 0`` of the one extremum of ``V`` (``V' = 0``), or ``-1`` if there is none.

    ``V(t) = b + A e^{-t/τ_m} + C e^{-t/τ_s}`` with ``C = (I₀ - b) τ_s / (τ_s - τ_m)``, ``A = V₀ - b - C``;
    for ``τ_m = τ_s``: ``V = b + (a + d t/τ) e^{-t/τ}``, ``a = V₀ - b``, ``d = I₀ - b``."""
    if tau_m == tau_s:
        a, d = V0 - b, I0 - b
        if d == 0.0:
            return -1.0
        u = 1.0 - a / d  # d/du[(a + d u) e^{-u}] = (d - a - d u) e^{-u}
        return u * tau_m if u > 0.0 else -1.0
    C = (I0 - b) * tau_s / (tau_s - tau_m)
    A = V0 - b - C
    if A == 0.0 or C == 0.0:
        return -1.0
    r = -(A * tau_s) / (C * tau_m)  # e^{-tΔ} at the extremum
    if r <= 0.0:
        return -1.0
    delta = 1.0 / tau_s - 1.0 / tau_m
    t = -math.log(r) / delta
    return t if t > 0.0 else -1.0


@njit(cache=True)
def _refine(V0, I0, b, theta, tau_m, tau_s, lo, hi):
    """The root of ``V - θ`` in ``[lo, hi]`` with ``V(lo) < θ <= V(hi)``: Newton steps kept inside the bracket
    (bisection when a step leaves it or does not shrink it fast enough)."""
    tol = RESIDUAL * max(1.0, abs(theta))
    t = 0.5 * (lo + hi)
    for _ in range(200):
        V, dV = _v_and_slope(V0, I0, b, t, tau_m, tau_s)
        f = V - theta
        if abs(f) <= tol:
            return t
        if f < 0.0:
            lo = t
        else:
            hi = t
        if hi - lo <= 4e-16 * max(1.0, abs(hi)):
            return hi
        step_ok = dV != 0.0
        if step_ok:
            tn = t - f / dV
            step_ok = lo < tn < hi
        t = tn if step_ok else 0.5 * (lo + hi)
    return t


@njit(cache=True)
def crossing_bracket(V0, I0, b, theta, tau_m, tau_s):
    """The first ``t > 0`` with ``V(t) = θ`` from ``V₀ < θ`` (``inf`` if none), by bracketing: ``V`` rises
    to its maximum at ``t_e`` and falls to ``b``, or falls to its minimum and rises to ``b``, or is monotone."""
    t_e = extremum_time(V0, I0, b, tau_m, tau_s)
    rising = (I0 - V0) > 0.0  # V'(0) = (I₀ - V₀)/τ_m
    if t_e > 0.0 and rising:  # a maximum: the crossing, if any, is before it
        if flow(V0, I0, b, t_e, tau_m, tau_s)[0] < theta:
            return INF
        return _refine(V0, I0, b, theta, tau_m, tau_s, 0.0, t_e)
    if b <= theta:  # monotone, or a minimum followed by a rise to b: no crossing below the asymptote
        return INF
    lo = t_e if t_e > 0.0 else 0.0
    hi = lo + max(tau_m, tau_s)
    while flow(V0, I0, b, hi, tau_m, tau_s)[0] < theta:
        lo = hi
        hi = 2.0 * hi
    return _refine(V0, I0, b, theta, tau_m, tau_s, lo, hi)


# ---------------------------------------------------------------------------
# the closed forms
# ---------------------------------------------------------------------------


@njit(cache=True)
def crossing_quadratic(V0, I0, b, theta, tau_m):
    """``τ_m = 2τ_s``: ``e^{-t/τ_s} = x²`` with ``x = e^{-t/τ_m}``, so ``V - θ = C x² + A x + (b - θ)``,
    ``C = -(I₀ - b)``, ``A = V₀ + I₀ - 2b``; the first crossing is the largest root ``x`` in ``(0, 1)``."""
    C = -(I0 - b)
    A = V0 + I0 - 2.0 * b
    c0 = b - theta
    best = -1.0
    if C == 0.0:
        if A != 0.0:
            best = -c0 / A
    else:
        disc = A * A - 4.0 * C * c0
        if disc < 0.0:
            return INF
        q = -0.5 * (A + math.copysign(math.sqrt(disc), A))  # no cancellation (the stable quadratic formula)
        r1 = q / C
        r2 = c0 / q if q != 0.0 else -1.0
        for r in (r1, r2):
            if 0.0 < r < 1.0 and r > best:
                best = r
    if not 0.0 < best < 1.0:
        return INF
    return -tau_m * math.log(best)


@njit(cache=True)
def lambertw(z, branch):
    """Real Lambert W, ``w e^w = z``: branch 0 (``w >= -1``, ``z >= -1/e``) or -1 (``w <= -1``,
    ``-1/e <= z < 0``); NaN outside the domain. Series at the branch point, Halley's iteration after."""
    em1 = 0.36787944117144233  # 1/e
    if z < -em1 or (branch == -1 and z >= 0.0):
        if z < -em1 and z > -em1 - 1e-15:
            return -1.0  # rounding at the branch point
        return math.nan
    if z == 0.0:
        return 0.0 if branch == 0 else -math.inf
    p2 = 2.0 * (math.e * z + 1.0)
    p = math.sqrt(max(p2, 0.0))
    if branch == 0:
        if p < 0.5:
            w = -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p * p * p
        elif z < 3.0:
            w = math.log1p(z)
        else:
            L1 = math.log(z)
            w = L1 - math.log(L1)
    else:
        if p < 0.5:
            w = -1.0 - p - p * p / 3.0 - 11.0 / 72.0 * p * p * p
        else:
            L1 = math.log(-z)
            w = L1 - math.log(-L1)
    for _ in range(60):
        ew = math.exp(w)
        f = w * ew - z
        wp1 = w + 1.0
        if wp1 == 0.0:
            break
        denom = ew * wp1 - (w + 2.0) * f / (2.0 * wp1)
        if denom == 0.0:
            break
        dw = f / denom
        w -= dw
        if abs(dw) <= 1e-16 * (1.0 + abs(w)):
            break
    return w


@njit(cache=True)
def crossing_lambert(V0, I0, b, theta, tau):
    """``τ_m = τ_s = τ``: with ``u = t/τ``, ``(a + d u) e^{-u} = c`` (``a = V₀ - b``, ``d = I₀ - b``,
    ``c = θ - b``); ``w = -(u + a/d)`` solves ``w e^w = -(c/d) e^{-a/d}``, so ``u = -W_k(z) - a/d`` on the real
    branches ``k = 0, -1``; the first crossing is the smallest positive ``u``. NaN when ``e^{-a/d}`` leaves
    the floating-point range (the caller then brackets)."""
    a, d, c = V0 - b, I0 - b, theta - b
    if d == 0.0:  # a e^{-u} = c: a root only when both are negative and |a| > |c|
        if c < 0.0 and a < c:
            return tau * math.log(a / c)
        return INF
    e = -a / d
    if e > 700.0:
        return math.nan
    z = -(c / d) * math.exp(e)
    if not math.isfinite(z):
        return math.nan
    best = INF
    for k in (0, -1):
        w = lambertw(z, k)
        if math.isfinite(w):
            u = -w - a / d
            if u > 0.0 and u < best:
                best = u
    return best * tau


@njit(cache=True)
def next_crossing(V0, I0, b, theta, tau_m, tau_s, method):
    """The first ``t >= 0`` at which ``V`` reaches ``θ`` (``0`` if ``V₀ >= θ``; ``inf`` if never) from
    ``(V₀, I₀)``, with the closed form for ``τ_m = 2τ_s`` and ``τ_m = τ_s`` unless ``method == BRACKET``."""
    if V0 >= theta:
        return 0.0
    if method == AUTO:
        if tau_m == 2.0 * tau_s:
            return crossing_quadratic(V0, I0, b, theta, tau_m)
        if tau_m == tau_s:
            t = crossing_lambert(V0, I0, b, theta, tau_m)
            if not math.isnan(t):
                return t
    return crossing_bracket(V0, I0, b, theta, tau_m, tau_s)
