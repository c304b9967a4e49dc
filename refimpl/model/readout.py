"""The leaky linear readout of docs/model.md §1.2 and its derivatives.

``U_{t+1} = κ U_t + (1-κ)(W_out s_{t+1} + b_out)``, ``y_t = U_{t+1}``, ``U_0 = 0``.
The readout is not part of the state ``x``: it never feeds back, so it does
not enter the Lyapunov spectrum, only the loss.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def kappa(cfg) -> float:
    """``κ = exp(-dt/τ_out)``; ``τ_out = 0`` is an instantaneous readout (``κ = 0``)."""
    tau = cfg.readout.tau_out
    return 0.0 if tau == 0 else math.exp(-cfg.dt / tau)


@njit(cache=True)
def _leak(drive, k):
    """``U_0 = 0``, ``U_{t+1} = κ U_t + drive_t``."""
    U = np.zeros((drive.shape[0] + 1,) + drive.shape[1:])
    for t in range(drive.shape[0]):
        U[t + 1] = k * U[t] + drive[t]
    return U


@njit(cache=True)
def _leak_reverse(ybar, k):
    """The transpose of :func:`_leak`: ``Ū_t = ȳ_t + κ Ū_{t+1}`` (``Ū`` the adjoint of ``U_{t+1}``)."""
    Ubar = np.empty_like(ybar)
    acc = np.zeros(ybar.shape[1:])
    for t in range(ybar.shape[0] - 1, -1, -1):
        acc = ybar[t] + k * acc
        Ubar[t] = acc
    return Ubar


def forward(s, W_out, b_out, k):
    """``s (T+1, B, N)`` → ``U (T+1, B, n_out)`` and ``y = U[1:]``."""
    T, B, N = s.shape[0] - 1, s.shape[1], s.shape[2]
    # one (T·B, N) product, not T small ones
    drive = (1.0 - k) * ((s[1:].reshape(T * B, N) @ W_out.T).reshape(T, B, -1) + b_out)
    if k == 0.0:
        U = np.zeros((T + 1, B, W_out.shape[0]))
        U[1:] = drive  # instantaneous readout: the recursion is the identity
        return U, U[1:]
    U = _leak(np.ascontiguousarray(drive), k)
    return U, U[1:]


def jvp(s, ds, W_out, dW_out, db_out, k):
    """Tangent of ``y`` for a tangent ``ds`` of the source and ``(dW_out, db_out)``."""
    drive = (1.0 - k) * (ds[1:] @ W_out.T + s[1:] @ dW_out.T + db_out)
    return _leak(np.ascontiguousarray(drive, dtype=float), k)[1:]  # the readout is linear: the same recursion


def drive_adjoint(ybar, k):
    """``ȳ (T, B, n_out)`` → the adjoint of the drive ``W_out s_{t+1} + b_out`` at each step, ``(T, B, n_out)``."""
    ybar = np.ascontiguousarray(ybar, dtype=float)
    Ubar = ybar if k == 0.0 else _leak_reverse(ybar, k)  # k = 0: instantaneous readout
    return (1.0 - k) * Ubar


def param_grads(s, dbar):
    """``(W̄_out, b̄_out)`` from the source ``s (T+1, B, N)`` and the drive's adjoint ``dbar`` (:func:`drive_adjoint`)."""
    return np.einsum("tbo,tbn->on", dbar, s[1:]), dbar.sum(axis=(0, 1))


def vjp(s, ybar, W_out, k):
    """Pull ``ȳ (T, B, n_out)`` back: returns ``s̄ (T+1, B, N)``, ``W̄_out``, ``b̄_out``."""
    T, B, n_out = ybar.shape
    drive_bar = drive_adjoint(ybar, k)
    sbar = np.zeros(s.shape)
    sbar[1:] = (drive_bar.reshape(T * B, n_out) @ W_out).reshape(T, B, -1)
    return (sbar, *param_grads(s, drive_bar))
