#!/usr/bin/env python
"""Run Norse's own LIF step on the golden cases it comes closest to; write a candidate file.

    python validation/peers/norse_adapter.py GOLDEN.h5 CANDIDATE.h5 [--case NAME ...]
                                             [--step recurrent|feed_forward]
    refimpl validate CANDIDATE.h5 --reference GOLDEN.h5

Imports nothing from refimpl; reads the golden file with h5py and the config
keys of docs/golden-format.md.

What Norse's ``lif_step`` and ``lif_feed_forward_step`` (norse 1.1.0,
``norse/torch/functional/lif.py``) compute, with ``v_leak = v_reset = 0`` and
in docs/model.md's notation (docs/peers.md has the reading of the source):

    I_{t+1} = α_E I_t + x_t                       α_E = 1 - dt/τ_syn  (Norse stores α_E I_{t+1})
    V_{t+1} = β_E (1 - S_t) V_t + (1 - β_E) I_{t+1}   β_E = 1 - dt/τ_mem  (Norse stores (1 - S_{t+1}) V_{t+1})
    S_{t+1} = H(V_{t+1} - θ)                      returned by the call

That is (new, one_minus_beta) with a reset-then-integrate zero reset, which
docs/model.md does not have: the model's zero reset also discards the input of the
reset step. The adapter gives Norse the decay factors of the golden config,
``tau_mem_inv = (1 - exp(-dt/τ_mem))/dt`` (likewise ``tau_syn_inv``), so that
the forward-Euler factors equal our ``α`` and ``β``; what is left is the
reset. So a case is runnable when it is a clif network with syn_input = new,
input_gain = one_minus_beta, reset = zero (Norse always resets to
``v_reset``), reset_grad = detached, surrogate mode, and a surrogate Norse
has: ``fast_sigmoid`` (Norse ``super`` with ``alpha = γ``) or ``triangle``
with ``γ = 1`` (Norse ``triangle`` with ``alpha = 1``). On a case in which no
neuron ever spikes, the reset never acts and Norse agrees exactly. Note that
norse 1.1.0's ``super`` ignores ``alpha``: its σ' is ``1/(|x|+1)²``, our
fast_sigmoid with γ = 1, whatever ``alpha`` (fixed in Norse's repository
after the release), so with 1.1.0 the gradients agree only for γ = 1.

``--step recurrent`` (default) runs ``lif_step``: Norse applies ``W_in`` and
``W_rec`` itself (our ``b`` enters as an extra input column of ones) and
feeds back the spikes of its previous call, ``S_t``, as docs/model.md §1.1 does; its
reset is detached, like reset_grad = detached. ``--step feed_forward`` runs
``lif_feed_forward_step`` on ``W_in z_t + W_rec S_t + b`` computed here; that
step differentiates through its reset (attached, in the reset-then-integrate
form), which no reset_grad of ours reproduces.

Wiring, ours: a layer above receives the spikes the layer below returned one
call earlier (docs/model.md §1.2); the initial state is ``z = H(V0 - θ)`` (Norse's
own threshold function), ``v = (1 - z) V0``, ``i = α_E I0``; the readout is
the model's leaky readout in plain torch. Norse keeps only the membrane after the
reset and the decayed current, so our ``V_{t+1}`` (the membrane before the
reset) and ``I_{t+1}`` (the jumped current ``i + x``) are read from a second
call of the same step on the same state and input with ``v_th = +inf`` and
``tau_syn_inv = 0``: it never fires and does not decay the current.

Norse's surrogates keep the dtype of the membrane, so everything is float64.
Only forward states, ``y``, the loss and its gradients are written.
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np
import torch

try:
    from . import common
except ImportError:  # run as a script
    import common

DT = torch.float64
STEPS = ("recurrent", "feed_forward")


def incompatibility(c: dict) -> str | None:
    """Why Norse's LIF step has no counterpart of this case, or None."""
    sg = c["surrogate"]
    return common.skip_reasons(
        [
            (c["cell"] == "clif", f"cell {c['cell']!r} (Norse's LIF is a spiking LIF)"),
            (c["syn_input"] == "new", "syn_input 'old' (Norse integrates the jumped current)"),
            (c["input_gain"] == "one_minus_beta", "input_gain 'unit' (Norse's gain is dt/τ_mem = 1-β)"),
            (c["reset"] == "zero", f"reset {c['reset']!r} (Norse always resets to v_reset)"),
            (
                c["reset_grad"] == "detached",
                f"reset_grad {c['reset_grad']!r} (lif_step detaches the reset; "
                "lif_feed_forward_step differentiates a reset-then-integrate reset)",
            ),
            (not c["smooth"], "smooth mode (Norse's forward is always H)"),
            (
                sg["name"] == "fast_sigmoid" or (sg["name"] == "triangle" and float(sg["slope"]) == 1.0),
                f"surrogate {sg['name']!r} with γ={sg['slope']} (Norse has super = fast_sigmoid, and triangle "
                "equal to ours only for γ = 1)",
            ),
        ]
    )


def run_case(c: dict, params: dict, inputs: np.ndarray, targets: np.ndarray, step: str = "recurrent") -> dict:
    """Forward pass through Norse's LIF step, loss and autograd gradients: golden path -> array."""
    from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters, LIFState, lif_feed_forward_step, lif_step
    from norse.torch.functional.threshold import threshold

    if step not in STEPS:
        raise ValueError(f"step must be one of {STEPS}, got {step!r}")
    p = common.torch_params(params)
    u = torch.tensor(inputs, dtype=DT)
    B = u.shape[1]
    dt, theta = float(c["dt"]), float(c["theta"])
    sizes = [int(n) for n in c["layers"]]
    method = "super" if c["surrogate"]["name"] == "fast_sigmoid" else "triangle"
    gamma = float(c["surrogate"]["slope"])
    zero = torch.tensor(0.0, dtype=DT)
    pars, probes, alpha_E = [], [], []
    for l in range(len(sizes)):
        beta = np.exp(-dt / common.per_neuron(c["tau_mem"], sizes, l))
        alpha = np.exp(-dt / common.per_neuron(c["tau_syn"], sizes, l))
        tau_mem_inv = torch.tensor((1.0 - beta) / dt, dtype=DT)
        tau_syn_inv = torch.tensor((1.0 - alpha) / dt, dtype=DT)
        pars.append(
            LIFParameters(
                tau_syn_inv=tau_syn_inv,
                tau_mem_inv=tau_mem_inv,
                v_leak=zero,
                v_th=torch.tensor(theta, dtype=DT),
                v_reset=zero,
                method=method,
                alpha=gamma,
            )
        )
        # the probe: never fires (v_th = inf) and does not decay the current (tau_syn_inv = 0), so it
        # returns Norse's membrane before the reset and its jumped current i + x, our V_{t+1}, I_{t+1}
        probes.append(
            LIFParameters(
                tau_syn_inv=zero,
                tau_mem_inv=tau_mem_inv,
                v_leak=zero,
                v_th=torch.tensor(math.inf, dtype=DT),
                v_reset=zero,
                method=method,
                alpha=gamma,
            )
        )
        alpha_E.append(1.0 - dt * tau_syn_inv)  # Norse's current decay factor
    ones = torch.ones(B, 1, dtype=DT)
    states, start = [], []
    for l in range(len(sizes)):
        q = f"layer{l + 1}/"
        V0, I0 = p[q + "V0"].expand(B, -1), p[q + "I0"].expand(B, -1)
        z0 = threshold(V0 - theta, method, gamma)
        v0 = (1 - z0.detach()) * V0 if step == "recurrent" else (1 - z0) * V0
        i0 = alpha_E[l] * I0
        states.append(LIFState(z=z0, v=v0, i=i0) if step == "recurrent" else LIFFeedForwardState(v=v0, i=i0))
        start.append((V0, I0, z0))

    def call(l, z_in, s):
        """One call of layer ``l``'s Norse step, and of its probe on the same state and input."""
        q = f"layer{l + 1}/"
        if step == "recurrent":  # lif_step feeds back its own state's spikes, which are s
            w_in = torch.cat([p[q + "W_in"], p[q + "b"][:, None]], 1)  # b: the weight of a ones column
            x_in = torch.cat([z_in, ones], 1)
            z, new = lif_step(x_in, states[l], w_in, p[q + "W_rec"], pars[l], dt=dt)
            _, probe = lif_step(x_in, states[l], w_in, p[q + "W_rec"], probes[l], dt=dt)
        else:
            drive = common.layer_drive(p, l, z_in, s)
            z, new = lif_feed_forward_step(drive, states[l], pars[l], dt=dt)
            _, probe = lif_feed_forward_step(drive, states[l], probes[l], dt=dt)
        states[l] = new
        return probe.v, probe.i, z

    y, rec = common.torch_network(c, p, u, start, call, common.leaky_readout(common.readout_decay(c)))
    return common.torch_outputs(c, p, params, targets, y, rec)


def process(golden: str, candidate: str, cases=None, step: str = "recurrent", verbose=True) -> list:
    """Write a candidate with every runnable case; returns ``[(case, reason)]`` of the skipped ones."""
    import norse

    return common.process(golden, candidate, cases, incompatibility, functools.partial(run_case, step=step),
        f"validation/peers/norse_adapter.py (norse {norse.__version__}, torch {torch.__version__}, step={step})",
        verbose)  # fmt: skip


def main(argv=None) -> int:
    """The command line of the module docstring."""
    return common.main(argv, __doc__, process, {"--step": dict(choices=STEPS, default="recurrent")})


if __name__ == "__main__":
    sys.exit(main())
