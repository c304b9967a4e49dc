"""Forward mode: the directional derivative of the loss along a parameter tangent.

An independent route to the same surrogate gradient as :mod:`refimpl.grad.adjoint`:
the tangent ``ẋ_t`` of the state is propagated forward through the tangent map
(:func:`cell.jvp_step`), from the bottom layer up and from ``t = 0`` on, and
``dL = Σ_t ∂L/∂y_t · ẏ_t``. Agreement of ``⟨∇L, θ̇⟩`` (reverse) with this
(forward) is the check of docs/model.md §8 that works in surrogate mode, where finite
differences cannot (the forward pass is piecewise constant in the spikes).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.model import cell, readout
from refimpl.model.config import LossConfig, NetworkConfig
from refimpl.model.losses import check_targets, loss_and_grad
from refimpl.model.network import check_inputs, check_params, layer_params, layers_of, param_shapes, simulate


@njit(cache=True)
def layer_tangent(s, rho, c, alpha, beta, g, syn_old, W_in, W_rec, z, S, dV0, dI0, dW_in, dW_rec, db, dz):
    """Forward tangent of one layer over all steps (``K = 1``): ``dV, dI (T+1, B, N)``.

    ``dz (T, B, n_in)`` is the tangent of the layer's input (empty first axis for
    an external input).
    """
    T1, B, N = S.shape
    T = T1 - 1
    dV = np.empty((T1, B, N))
    dI = np.empty((T1, B, N))
    dm = np.empty((B, N))
    empty = np.zeros((0, 0))
    for bb in range(B):
        for i in range(N):
            dV[0, bb, i] = dV0[bb, i]
            dI[0, bb, i] = dI0[bb, i]
    for t in range(T):
        P = cell.param_tangent(z[t], S[t], dW_in, dW_rec, db)
        dzt = dz[t] if dz.shape[0] > 0 else empty
        cell.jvp_step(1, s[t], rho[t], c[t], alpha, beta, g, syn_old, W_in, W_rec, dV[t], dI[t], dzt, dV[t + 1], dI[t + 1], dm, P)
    return dV, dI


def state_tangent(cfg: NetworkConfig, params: dict, traj, dparams: dict):
    """Per layer ``(dV, dI)`` along the parameter tangent ``dparams``."""
    Ls = layers_of(cfg)
    out = []
    dz = np.zeros((0,) + traj.inputs.shape[1:])
    for l, L in enumerate(Ls):
        s, _, _, rho, c = traj.lin[l]
        W_in, W_rec, _, _, _ = layer_params(cfg, params, l)
        dW_in, dW_rec, db, dV0, dI0 = layer_params(cfg, dparams, l)
        B = traj.S[l].shape[1]
        dV, dI = layer_tangent(s, rho, c, L.alpha, L.beta, L.g, L.syn_old, W_in, W_rec, traj.layer_input(l),
            traj.S[l], cell.initial_states(dV0, B), cell.initial_states(dI0, B), dW_in, dW_rec, db, dz)  # fmt: skip
        out.append((dV, dI))
        dz = np.ascontiguousarray(s[:-1] * dV[:-1])  # tangent of S^l_t, the input of layer l+1
    return out


def output_tangent(cfg: NetworkConfig, params: dict, traj, dparams: dict) -> np.ndarray:
    """``ẏ (T, B, n_out)`` along ``dparams``."""
    dV, _ = state_tangent(cfg, params, traj, dparams)[-1]
    if cfg.readout.source in ("spikes", "activation"):
        ds = traj.lin[-1].s * dV
    else:
        ds = dV
    return readout.jvp(traj.readout_s, ds, params["readout/W_out"], dparams["readout/W_out"],
        dparams["readout/b_out"], readout.kappa(cfg))  # fmt: skip


def directional_derivative(cfg: NetworkConfig, params: dict, inputs, targets, loss: LossConfig, dparams: dict) -> float:
    """``dL = ⟨∂L/∂θ, θ̇⟩`` computed in forward mode."""
    params = check_params(cfg, params)
    dparams = check_params(cfg, dparams, name="dparams")
    inputs = check_inputs(cfg, inputs)
    targets = check_targets(loss, targets, inputs.shape[0], inputs.shape[1], cfg.n_out)
    traj = simulate(cfg, params, inputs, check=False)
    _, ybar = loss_and_grad(loss, traj.y, targets)
    return float(np.sum(ybar * output_tangent(cfg, params, traj, dparams)))


def random_direction(cfg: NetworkConfig, seed: int) -> dict:
    """A seeded standard normal parameter tangent."""
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(shape) for k, shape in param_shapes(cfg).items()}
