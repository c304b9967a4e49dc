"""The leaky linear readout of docs/model.md §1.2 and its derivatives.

``U_{t+1} = κ U_t + (1-κ)(W_out s_{t+1} + b_out)``, ``y_t = U_{t+1}``, ``U_0 = 0``.
The readout is not part of the state ``x``: it never feeds back, so it does
not enter the Lyapunov spectrum, only the loss.
"""

from __future__ import annotations

import math

import numpy as np


def kappa(cfg) -> float:
    """``κ = exp(-dt/τ_out)``; ``τ_out = 0`` is an instantaneous readout (``κ = 0``)."""
    tau = cfg.readout.tau_out
    return 0.0 if tau == 0 else math.exp(-cfg.dt / tau)


def forward(s, W_out, b_out, k):
    """``s (T+1, B, N)`` → ``U (T+1, B, n_out)`` and ``y = U[1:]``."""
    T, B, N = s.shape[0] - 1, s.shape[1], s.shape[2]
    U = np.zeros((T + 1, B, W_out.shape[0]))
    # one (T·B, N) product, not T small ones
    drive = (1.0 - k) * ((s[1:].reshape(T * B, N) @ W_out.T).reshape(T, B, -1) + b_out)
    if k == 0.0:
        U[1:] = drive  # instantaneous readout: the recursion is the identity
        return U, U[1:]
    for t in range(T):
        U[t + 1] = k * U[t] + drive[t]
    return U, U[1:]


def jvp(s, ds, W_out, dW_out, db_out, k):
    """Tangent of ``y`` for a tangent ``ds`` of the source and ``(dW_out, db_out)``."""
    T = s.shape[0] - 1
    dU = np.zeros((T + 1, s.shape[1], W_out.shape[0]))
    drive = (1.0 - k) * (ds[1:] @ W_out.T + s[1:] @ dW_out.T + db_out)
    for t in range(T):
        dU[t + 1] = k * dU[t] + drive[t]
    return dU[1:]


def vjp(s, ybar, W_out, k):
    """Pull ``ȳ (T, B, n_out)`` back: returns ``s̄ (T+1, B, N)``, ``W̄_out``, ``b̄_out``."""
    T, B, n_out = ybar.shape
    if k == 0.0:
        Ubar = ybar  # instantaneous readout
    else:
        Ubar = np.zeros_like(ybar)  # adjoint of U_{t+1}
        acc = np.zeros(ybar.shape[1:])
        for t in range(T - 1, -1, -1):
            acc = ybar[t] + k * acc
            Ubar[t] = acc
    drive_bar = (1.0 - k) * Ubar
    sbar = np.zeros(s.shape)
    sbar[1:] = (drive_bar.reshape(T * B, n_out) @ W_out).reshape(T, B, -1)
    gW_out = np.einsum("tbo,tbn->on", drive_bar, s[1:])
    gb_out = drive_bar.sum(axis=(0, 1))
    return sbar, gW_out, gb_out
