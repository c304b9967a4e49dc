"""Measurements of a network on data: accuracy, firing rates, ‖∂L/∂x₀‖, and the backpropagated state
adjoints and error norms against lag (docs/model.md §5; the error decay that λ₁ predicts)."""

from __future__ import annotations


import numpy as np

from refimpl.model import readout
from refimpl.model.config import LossConfig
from refimpl.model.network import apply_DT, initial_state_keys, layers_of, pack, simulate
from refimpl.tasks.generators import CLASS_LOSSES


def accuracy(loss: LossConfig, y: np.ndarray, targets: np.ndarray) -> float:
    """Fraction correct: per-step bits (``y > 0`` for bce, ``y > 0.5`` for mse) at ``t ≥ t0``, or argmax class.

    For class losses the per-class score is the loss's own reduction over
    ``t0 ≤ t < T`` (max, mean or last step).
    """
    t0 = loss.t0
    if loss.name in CLASS_LOSSES:
        scored = y[t0:]
        z = {"ce_max": lambda: scored.max(axis=0), "ce_mean": lambda: scored.mean(axis=0), "ce_last": lambda: y[-1]}[loss.name]()
        return float(np.mean(np.argmax(z, axis=1) == targets))
    thr = 0.0 if loss.name == "bce_per_step" else 0.5
    return float(np.mean((y[t0:] > thr) == (targets[t0:] > 0.5)))


def firing_rates(cfg, traj) -> np.ndarray:
    """Mean firing rate per layer in Hz (spikes/activations ``S_t``, ``t = 1 … T``)."""
    return np.array([float(S[1:].mean()) * 1000.0 / cfg.dt for S in traj.S])


def initial_state_grad_norm(cfg, grads: dict) -> float:
    """``‖∂L/∂x₀‖`` over all layers (the gradient of the shared initial state)."""
    return float(np.sqrt(sum(np.sum(grads[k] ** 2) for k in initial_state_keys(cfg))))


def state_adjoints(cfg, params: dict, traj, ybar: np.ndarray, b: int = 0) -> np.ndarray:
    """``x̄_t = ∂(Σ_s ȳ_s·y_s)/∂x_t`` for ``t = 0 … T`` along trajectory ``b``: shape ``(T+1, M)``.

    ``x̄_t`` is the full adjoint of the state ``x_t`` (all layers, docs/model.md §1.2
    ordering) of batch element ``b``: ``x̄_T`` receives the readout's adjoint
    of ``s_T``, then ``x̄_t = D_tᵀ x̄_{t+1} + (readout adjoint at s_t)``.
    ``x̄_0`` equals the batch-``b`` part of ``∂/∂x_0`` of
    :func:`refimpl.grad.adjoint.backward`.
    """
    Ls = layers_of(cfg)
    sl = slice(b, b + 1)
    k = readout.kappa(cfg)
    sbar, _, _ = readout.vjp(traj.readout_s[:, sl], ybar[:, sl], params["readout/W_out"], k)
    top = len(Ls) - 1
    via_s = cfg.readout.source in ("spikes", "activation")
    T = traj.T

    def inject(blocks, t):
        g = sbar[t]  # (1, N_L)
        if via_s:
            g = g * traj.lin[top].s[t, sl]
        blocks[top][0][:] += g

    blocks = [(np.zeros((1, L.N)), np.zeros((1, L.N))) for L in Ls]
    inject(blocks, T)
    out = np.zeros((T + 1, cfg.state_size))
    out[T] = pack(cfg, blocks)[0]
    for t in range(T - 1, -1, -1):
        blocks = apply_DT(cfg, Ls, params, traj, t, blocks, b)
        inject(blocks, t)
        out[t] = pack(cfg, blocks)[0]
    return out


def error_norms(cfg, params: dict, traj, ybar: np.ndarray, b: int = 0) -> np.ndarray:
    """``‖x̄_t‖`` for ``t = 0 … T`` (see :func:`state_adjoints`)."""
    return np.linalg.norm(state_adjoints(cfg, params, traj, ybar, b), axis=1)


def error_norm_vs_lag(cfg, params: dict, inputs, targets, loss: LossConfig, t_err: int | None = None, batch: int | None = None):
    """Backpropagated error norm against lag, for the loss of a single step.

    The loss is scored at the single step ``t_err`` (default ``T - 1``), so
    that every state adjoint comes from one error signal; for each batch
    element ``b``, ``‖∂L/∂x_t‖`` is computed for ``t = 0 … t_err + 1`` and
    indexed by ``lag = t_err + 1 - t`` (lag 0: the state the output ``y_{t_err}``
    reads). Returns ``(lags, norms)`` with ``norms`` of shape ``(B, t_err + 2)``;
    averaging ``log norms`` over ``b`` gives the curve to compare with
    ``exp(λ₁·lag)``.
    """
    from refimpl.model.losses import loss_and_grad

    inputs = np.ascontiguousarray(inputs, dtype=float)
    T = inputs.shape[0]
    t_err = T - 1 if t_err is None else int(t_err)
    if not 0 <= t_err < T:
        raise ValueError(f"t_err must be in [0, T = {T}), got {t_err}")
    B = inputs.shape[1] if batch is None else min(batch, inputs.shape[1])
    traj = simulate(cfg, params, inputs[:, :B])
    if loss.name in CLASS_LOSSES:
        lcfg = LossConfig("ce_last", 0)
        _, ybar = loss_and_grad(lcfg, traj.y[: t_err + 1], np.asarray(targets)[:B])
        ybar = np.concatenate([ybar, np.zeros((T - t_err - 1,) + ybar.shape[1:])])
    else:
        lcfg = LossConfig(loss.name, t_err)
        _, ybar = loss_and_grad(lcfg, traj.y, np.asarray(targets)[:, :B])
        ybar[t_err + 1 :] = 0.0
    norms = np.array([error_norms(cfg, params, traj, ybar, b)[: t_err + 2][::-1] for b in range(B)])
    return np.arange(t_err + 2), norms
