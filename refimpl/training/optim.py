"""Adam (Kingma & Ba 2015) and gradient-norm clipping, on dicts of arrays.

Written out here rather than imported so that the reference has no
framework dependency; the test checks one step against the closed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AdamConfig:
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip_norm: float | None = None  # clip the gradient norm before the update
    per_array: bool = False  # clip each array by its own norm (Flux's ClipNorm), not the global norm

    def __post_init__(self):
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be None or > 0, got {self.clip_norm!r}")


@dataclass
class AdamState:
    """First and second moments per parameter and the step count."""

    m: dict = field(default_factory=dict)
    v: dict = field(default_factory=dict)
    t: int = 0


def global_norm(grads: dict) -> float:
    return float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))


def clip(grads: dict, max_norm: float | None):
    """Scale ``grads`` so that their global norm is at most ``max_norm``; returns ``(grads, norm)``."""
    norm = global_norm(grads)
    if max_norm is None or norm <= max_norm or norm == 0:
        return grads, norm
    return {k: g * (max_norm / norm) for k, g in grads.items()}, norm


def clip_per_array(grads: dict, max_norm: float | None) -> dict:
    """Scale each array of ``grads`` whose own norm exceeds ``max_norm`` down to ``max_norm``.

    This is what ``Flux.Optimiser(ClipNorm(c), ADAM(…))`` does in the
    gradient-flossing reference code: Flux applies its optimisers array by array.
    """
    if max_norm is None:
        return grads
    out = {}
    for k, g in grads.items():
        n = global_norm({k: g})
        out[k] = g * (max_norm / n) if n > max_norm else g
    return out


def adam_step(params: dict, grads: dict, state: AdamState, cfg: AdamConfig) -> dict:
    """One Adam update of the parameters named in ``grads``; others are returned unchanged."""
    if cfg.per_array:
        grads = clip_per_array(grads, cfg.clip_norm)
    else:
        grads, _ = clip(grads, cfg.clip_norm)
    state.t += 1
    b1, b2 = cfg.beta1, cfg.beta2
    out = dict(params)
    for k, g in grads.items():
        m = state.m.get(k, np.zeros_like(g))
        v = state.v.get(k, np.zeros_like(g))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        state.m[k], state.v[k] = m, v
        mhat = m / (1 - b1**state.t)
        vhat = v / (1 - b2**state.t)
        out[k] = params[k] - cfg.lr * mhat / (np.sqrt(vhat) + cfg.eps)
    return out
