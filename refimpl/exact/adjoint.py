"""The adjoint (EventProp) pass of an exact simulation (docs/exact.md §7): the gradient of a loss of the
spike times and sampled membranes with respect to every entry of the stacked ``(W_in, W, b)`` and to the
initial state, by one sweep backwards over the :class:`~refimpl.exact.events.EventLog`.

Between events the adjoint ``(λ_V, λ_I)`` of each neuron moves with the transpose of the flow,
``λ_V ← c_V λ_V``, ``λ_I ← c_I λ_V + c_s λ_I`` (the coefficients of
:func:`refimpl.exact.flow.flow_coefficients` for the interval), and the bias collects
``(1 - c_V - c_I) λ_V + (1 - c_s) λ_I``. At an input spike of channel ``u`` nothing jumps and
``∂L/∂W_in[:, u] += λ_I``. At a spike of neuron ``i`` (time ``t_k``) with ``V'`` = ``v⁻`` before and
``v⁺`` after it, the adjoint of the spike time is

    μ_k = ∂L/∂t_k - v⁺ λ_V,i + Σ_{j ≠ i} W[j, i] (λ_I,j / τ_s - λ_V,j / τ_m) + W[i, i] λ_I,i / τ_s,

``∂L/∂W[:, i] += λ_I``, and the membrane adjoint of the spiking neuron jumps to ``λ_V,i = -μ_k / v⁻``
(its value after the spike does not pass through the reset). This is EventProp's jump condition written
for this model; it is the exact transpose of the forward-sensitivity rules of
:mod:`refimpl.exact.events`, and the two are held to each other and to finite differences in
``tests/test_exact.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.exact.flow import flow_coefficients


@njit(cache=True)
def _backward_flow(lV, lI, gb, dt, tau_m, tau_s):
    if dt <= 0.0:
        return
    c_V, c_I, c_s = flow_coefficients(dt, tau_m, tau_s)
    for i in range(lV.shape[0]):
        gb[i] += (1.0 - c_V - c_I) * lV[i] + (1.0 - c_s) * lI[i]
        lI[i] = c_I * lV[i] + c_s * lI[i]
        lV[i] = c_V * lV[i]


@njit(cache=True)
def backward_kernel(kind, idx, ev_t, v_minus, v_plus, sp_u, W, n_chan, dL_dt, dL_dV, t_end, tau_m, tau_s, fault):
    """One sweep from ``t_end`` back to 0; returns ``(gW_in, gW, gb, λ_V(0), λ_I(0))``. ``fault`` (tests
    only): 1 drops the targets' time-shift terms of ``μ``, 2 the reset's (``-v⁺ λ_V,i``)."""
    N = W.shape[0]
    lV = np.zeros(N)
    lI = np.zeros(N)
    gW_in = np.zeros((N, n_chan))
    gW = np.zeros((N, N))
    gb = np.zeros(N)
    mu = np.zeros(N)
    t_cur = t_end
    e = kind.shape[0] - 1
    while e >= 0:
        t = ev_t[e]
        _backward_flow(lV, lI, gb, t_cur - t, tau_m, tau_s)
        t_cur = t
        if kind[e] == 2:  # a sample: the loss's membrane adjoint enters
            for i in range(N):
                lV[i] += dL_dV[idx[e], i]
            e -= 1
        elif kind[e] == 1:  # an input spike: I_k += W_in[k, u]
            u = idx[e]
            for k in range(N):
                gW_in[k, u] += lI[k]
            e -= 1
        else:  # the group of network spikes at this time (recorded consecutively)
            e0 = e
            while e0 - 1 >= 0 and kind[e0 - 1] == 0 and ev_t[e0 - 1] == t:
                e0 -= 1
            # the reset's transpose first (it was applied last): the spiking neurons' λ_V feeds μ only
            for e1 in range(e0, e + 1):
                r = idx[e1]
                i = sp_u[r]
                mu[i] = dL_dt[r] - (v_plus[r] * lV[i] if fault != 2 else 0.0)
                lV[i] = 0.0
            for e1 in range(e0, e + 1):  # the jumps I_j += W[j, i] and their time shifts
                r = idx[e1]
                i = sp_u[r]
                for j in range(N):
                    gW[j, i] += lI[j]
                    if fault != 1:
                        mu[i] += W[j, i] * (lI[j] / tau_s - lV[j] / tau_m)
            for e1 in range(e0, e + 1):  # the crossing: dt_k/dp = -(∂V_i/∂p) / v⁻
                r = idx[e1]
                i = sp_u[r]
                lV[i] += -mu[i] / v_minus[r]
            e = e0 - 1
    _backward_flow(lV, lI, gb, t_cur, tau_m, tau_s)
    return gW_in, gW, gb, lV, lI
