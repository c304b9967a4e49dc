"""Escape-noise neurons, exactly: the expected loss and its gradient by enumeration of every spike
pattern, against the expected surrogate gradient (docs/exact.md §10; Gygax & Zenke 2025).

A small network of stochastic LIF neurons in discrete time. Neuron ``i`` has a membrane

    U_{t+1} = β U_t + Σ_j W[i, j] S_{j,t} + w_in[i] x_t + b[i] - r θ S_{i,t}          (r = 1: subtractive reset)

from ``U_0 = 0``, and spikes with probability ``p_{i,t} = f(U_{i,t} - θ)``, independently given the past
(*escape noise*): ``f`` is the sigmoid ``1/(1 + e^{-γx})`` or the exponential escape
``1 - exp(-e^{γx})``. The loss is a function of the spikes of the output neuron, ``L(S)``.

* The **expected loss** ``E[L] = Σ_S P(S) L(S)`` over all ``2^{N T}`` patterns, and its gradient by the
  score function, ``∇E[L] = Σ_S P(S) L(S) ∇ log P(S)``, with ``∇ log P = Σ_t (S_t - p_t)/(p_t(1-p_t)) f'
  ∇U_t`` along the fixed pattern: exact, up to rounding.
* The **surrogate gradient** of one pattern treats each spike as a differentiable function of its
  membrane with ``∂S_t/∂U_t := f'(U_t - θ)`` (the derivative of the escape function: the matching
  surrogate) and differentiates ``L`` through the network (``reset_grad``: the reset term ``-θ S_t``
  differentiated too, ``attached``, or not, ``detached``). Its expectation ``E[SG] = Σ_S P(S) SG(S)`` is
  what surrogate-gradient descent follows on average.

Parameters are flattened as ``(w_in (N), W (N×N) row-major, b (N))``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from refimpl.checks import check_choice, check_float, check_int

ESCAPES = ("sigmoid", "exponential")
LOSSES = ("linear", "quadratic")


@dataclass(frozen=True)
class EscapeNet:
    """``N`` escape-noise neurons (the last one is the output), ``T`` steps; ``reset`` 0 (none) or 1
    (subtractive); ``loss``: ``linear`` (``Σ_t a_t S_t``, ``a_t = 1``) or ``quadratic``
    (``(Σ_t S_t - target)²``)."""

    N: int = 1
    T: int = 8
    beta: float = 0.8
    theta: float = 1.0
    gamma: float = 2.0
    escape: str = "sigmoid"
    reset: int = 0
    reset_grad: str = "detached"
    loss: str = "linear"
    target: float = 2.0

    def __post_init__(self):
        check_int("N", self.N, lo=1, hi=3)
        check_int("T", self.T, lo=1)
        if self.N * self.T > 16:
            raise ValueError(f"N·T must be <= 16 (2^(N·T) patterns are enumerated), got N = {self.N}, T = {self.T}")
        check_float("beta", self.beta, lo=0.0, hi=1.0)
        check_float("theta", self.theta)
        check_float("gamma", self.gamma, lo=0.0, lo_open=True)
        check_choice("escape", self.escape, ESCAPES)
        check_int("reset", self.reset, lo=0, hi=1)
        check_choice("reset_grad", self.reset_grad, ("detached", "attached"))
        check_choice("loss", self.loss, LOSSES)


class Expectations(NamedTuple):
    """``E[L]``, its exact gradient ``∇E[L]`` and the expected surrogate gradient ``E[SG]`` (flat)."""

    loss: float
    grad: np.ndarray
    surrogate: np.ndarray


def escape(net: EscapeNet, x):
    """``(f(x), f'(x))`` of the escape function at ``x = U - θ``."""
    g = net.gamma
    if net.escape == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-g * x))
        return p, g * p * (1.0 - p)
    e = np.exp(np.clip(g * x, -700.0, 700.0))
    p = -np.expm1(-e)
    return p, g * e * np.exp(-e)


def n_params(net: EscapeNet) -> int:
    return 2 * net.N + net.N * net.N


def flat_params(net: EscapeNet, w_in=1.0, W=None, b=0.2) -> np.ndarray:
    """``(w_in, W, b)`` as the flat parameter vector (scalars broadcast; ``W`` defaults to zero)."""
    p, N = np.zeros(n_params(net)), net.N
    p[:N] = w_in
    p[N : N + N * N] = (np.zeros((N, N)) if W is None else np.asarray(W, float)).ravel()
    p[N + N * N :] = b
    return p


def _loss_and_dS(net: EscapeNet, S_out):
    """``L`` and ``∂L/∂S_t`` of the output spikes ``(patterns, T)``."""
    if net.loss == "linear":
        return S_out.sum(axis=1), np.ones_like(S_out)
    c = S_out.sum(axis=1) - net.target
    return c * c, 2.0 * c[:, None] * np.ones_like(S_out)


def expectations(net: EscapeNet, params, x) -> Expectations:
    """Enumerate every spike pattern of the network under the input ``x`` (length ``T``)."""
    params = np.asarray(params, float)
    x = np.asarray(x, float)
    N, T = net.N, net.T
    if params.shape != (n_params(net),) or x.shape != (T,):
        raise ValueError(f"params must have {n_params(net)} entries and x {T}, got {params.shape} and {x.shape}")
    w_in, W, b = params[:N], params[N : N + N * N].reshape(N, N), params[N + N * N :]
    P = n_params(net)
    pats = np.array(list(itertools.product((0.0, 1.0), repeat=N * T))).reshape(-1, T, N)  # S[pattern, t, i]
    M = pats.shape[0]
    U = np.zeros((M, N))
    dU_fix = np.zeros((M, N, P))  # ∂U/∂p along the fixed pattern (the score)
    dU_sg = np.zeros((M, N, P))  # ∂U/∂p with ∂S/∂U := f' (the surrogate)
    logP = np.zeros(M)
    dlogP = np.zeros((M, P))
    dS_sg = np.zeros((M, T, N, P))
    for t in range(T):
        S = pats[:, t, :]
        p, fp = escape(net, U - net.theta)
        p = np.clip(p, 1e-300, 1.0 - 1e-16)
        logP += np.sum(S * np.log(p) + (1.0 - S) * np.log1p(-p), axis=1)
        score = (S - p) / (p * (1.0 - p)) * fp  # ∂ log P_t / ∂U_t
        dlogP += np.einsum("mi,mip->mp", score, dU_fix)
        dS = fp[:, :, None] * dU_sg  # the surrogate's ∂S_t/∂p
        dS_sg[:, t] = dS
        # U_{t+1} = β U + W S + w_in x_t + b - r θ S
        U_next = net.beta * U + S @ W.T + w_in[None, :] * x[t] + b[None, :] - net.reset * net.theta * S
        direct = np.zeros((M, N, P))
        for i in range(N):
            direct[:, i, i] = x[t]  # ∂/∂w_in[i]
            direct[:, i, N + i * N : N + (i + 1) * N] = S  # ∂/∂W[i, :]
            direct[:, i, N + N * N + i] = 1.0  # ∂/∂b[i]
        dU_fix = net.beta * dU_fix + direct
        reset_sg = net.reset * net.theta * (1.0 if net.reset_grad == "attached" else 0.0)
        dU_sg = net.beta * dU_sg + np.einsum("ij,mjp->mip", W, dS) - reset_sg * dS + direct
        U = U_next
    prob = np.exp(logP)
    L, dL_dS = _loss_and_dS(net, pats[:, :, N - 1])
    EL = float(prob @ L)
    grad = (prob * L) @ dlogP
    sg = np.einsum("mt,mtp->mp", dL_dS, dS_sg[:, :, N - 1, :])
    return Expectations(EL, grad, prob @ sg)


def loop_integral(net: EscapeNet, params, x, i: int, j: int, radius: float = 0.1, n: int = 64):
    """``∮ g · dp`` around a circle of ``radius`` in the plane of parameters ``i, j`` (midpoint rule,
    ``n`` points), for ``g = E[SG]`` and for ``g = ∇E[L]``: zero for a gradient field."""
    params = np.asarray(params, float)
    out = np.zeros(2)
    for k in range(n):
        phi = 2.0 * math.pi * (k + 0.5) / n
        q = params.copy()
        q[i] += radius * math.cos(phi)
        q[j] += radius * math.sin(phi)
        e = expectations(net, q, x)
        tangent = np.array([-math.sin(phi), math.cos(phi)]) * radius * 2.0 * math.pi / n
        out[0] += e.surrogate[[i, j]] @ tangent
        out[1] += e.grad[[i, j]] @ tangent
    return {"surrogate": float(out[0]), "gradient": float(out[1])}
