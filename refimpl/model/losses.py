"""Losses of docs/model.md §5 with their gradient with respect to the outputs ``y``.

Conventions (docs/conventions.md): means over batch, outputs and the scored
steps ``t0 ≤ t < T``; ``bce_per_step`` is the binary cross-entropy with
logits; ``mse_per_step`` has no factor 1/2; the ``ce_*`` losses reduce the
per-class logits over time (max, mean, last) and apply softmax cross-entropy
to integer labels.
"""

from __future__ import annotations

import numpy as np

from refimpl.model.config import LossConfig


def check_targets(loss: LossConfig, targets, T: int, B: int, n_out: int) -> np.ndarray:
    """Targets must fit the loss: per-step ``(T, B, n_out)`` or labels ``(B,)``."""
    t = np.asarray(targets)
    if loss.t0 >= T:
        raise ValueError(f"loss.t0 must be < T = {T} so that some step is scored, got {loss.t0}")
    if loss.name.startswith("ce_"):
        if t.shape != (B,) or not np.issubdtype(t.dtype, np.integer):
            raise ValueError(
                f"targets for {loss.name} must be integer class labels of shape (B={B},), got {t.dtype} array of shape {t.shape}"
            )
        if n_out < 2 or np.any(t < 0) or np.any(t >= n_out):
            raise ValueError(f"targets for {loss.name} must be labels in [0, n_out={n_out}) with n_out >= 2")
        return t.astype(np.int64)
    if t.shape != (T, B, n_out):
        raise ValueError(f"targets for {loss.name} must have shape (T={T}, B={B}, n_out={n_out}), got {t.shape}")
    if not np.issubdtype(t.dtype, np.number) or not np.all(np.isfinite(t)):
        raise ValueError(f"targets for {loss.name} must be finite numbers")
    if loss.name == "bce_per_step" and not np.all((t == 0) | (t == 1)):
        raise ValueError("targets for bce_per_step must be 0 or 1")
    return t.astype(np.float64)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def loss_and_grad(loss: LossConfig, y: np.ndarray, targets: np.ndarray):
    """Value of the loss and ``∂L/∂y`` (same shape as ``y``)."""
    T = y.shape[0]
    t0 = loss.t0
    ybar = np.zeros_like(y)
    if loss.name in ("bce_per_step", "mse_per_step"):
        ys, ts = y[t0:], targets[t0:]
        n = ys.size
        if loss.name == "bce_per_step":
            value = np.sum(_softplus(ys) - ts * ys) / n
            ybar[t0:] = (_sigmoid(ys) - ts) / n
        else:
            value = np.sum((ys - ts) ** 2) / n
            ybar[t0:] = 2.0 * (ys - ts) / n
        return float(value), ybar
    B = y.shape[1]
    scored = y[t0:]
    if loss.name == "ce_max":
        idx = np.argmax(scored, axis=0)  # first maximizing step
        z = np.take_along_axis(scored, idx[None], axis=0)[0]
    elif loss.name == "ce_mean":
        z = scored.mean(axis=0)
    else:
        z = y[T - 1]
    lse = np.logaddexp.reduce(z, axis=1)
    value = np.mean(lse - z[np.arange(B), targets])
    zbar = np.exp(z - lse[:, None])
    zbar[np.arange(B), targets] -= 1.0
    zbar /= B
    if loss.name == "ce_max":
        part = np.zeros_like(scored)
        np.put_along_axis(part, idx[None], zbar[None], axis=0)
        ybar[t0:] = part
    elif loss.name == "ce_mean":
        ybar[t0:] = zbar[None] / scored.shape[0]
    else:
        ybar[T - 1] = zbar
    return float(value), ybar
