#!/usr/bin/env python
"""Run snnTorch's own ``Synaptic`` neuron on the golden cases it can express; write a candidate file.

    python validation/peers/snntorch_adapter.py GOLDEN.h5 CANDIDATE.h5 [--case NAME ...]
                                                [--surrogate snntorch|float64]
    refimpl validate CANDIDATE.h5 --reference GOLDEN.h5

Like ``validation/torch_reference.py`` this imports nothing from refimpl; it
reads the golden file with h5py and the config keys of docs/golden-format.md.

What snnTorch's ``snntorch.Synaptic`` (1.0.0) computes, in docs/model.md's notation
(see docs/peers.md for the reading of its source):

    reset  = H(V_t - θ), detached           -> reset_grad = detached
    I_{t+1} = α I_t + input_t               -> the input is W_in z_t + W_rec S_t + b (we wire it)
    V_{t+1} = β V_t + I_{t+1} - θ·reset     -> syn_input = new, input_gain = unit, reset = subtract
            = (1 - reset)(β V_t + I_{t+1})  -> reset = zero
            = β V_t + I_{t+1}               -> reset = none
    spk     = H(V_{t+1} - θ)                -> our S_{t+1}

so a golden case is runnable when it is a clif network with syn_input = new,
input_gain = unit, reset_grad = detached, surrogate mode, and a surrogate that
snnTorch has with our σ' (``atan(alpha=γ)`` = arctan, ``fast_sigmoid(slope=γ)``,
``sigmoid(slope=γ)``). The shipped case ``clif_snntorch_synaptic`` is such a
case. The wiring around the neuron is ours: the recurrent input uses the
previous call's spikes (``S_t``), a layer above receives the spikes a layer
emitted one call earlier (docs/model.md §1.2: ``z^l_t = S^{l-1}_t``; snnTorch's usual
wiring feeds ``S^{l-1}_{t+1}`` in the same step), and the leaky readout is
snnTorch's ``Leaky`` with ``reset_mechanism="none"``, ``β = κ`` and its
input scaled by ``1-κ`` (a plain linear map when ``τ_out = 0``).

``--surrogate snntorch`` (default) uses snnTorch's own surrogate functions.
Their forward returns ``(x > 0).float()``, i.e. float32 spikes, so autograd
rounds every gradient that passes through a spike to float32; gradients then
agree with the golden vectors only to ~1e-7 relative. ``--surrogate float64``
passes snnTorch's neuron a float64 spike function with the same σ', which
isolates the neuron dynamics from that rounding.

Only forward states, ``y``, the loss and its gradients are written; the
Jacobian, spectrum and flossing groups are left out (docs/golden-format.md allows it).
"""

from __future__ import annotations

import functools
import math
import sys

import torch

try:
    from . import common
except ImportError:  # run as a script
    import common

DT = torch.float64
MODES = ("snntorch", "float64")


class _Spike64(torch.autograd.Function):
    """H(x) in float64 with the surrogate derivative σ'(x) (float64 throughout)."""

    @staticmethod
    def forward(ctx, x, name, gamma):
        ctx.save_for_backward(x)
        ctx.name, ctx.gamma = name, gamma
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        k = ctx.gamma
        if ctx.name == "arctan":
            d = (k / 2) / (1 + (math.pi / 2 * k * x) ** 2)
        elif ctx.name == "fast_sigmoid":
            d = 1 / (k * x.abs() + 1) ** 2
        else:  # sigmoid
            d = k * torch.sigmoid(k * x) * torch.sigmoid(-k * x)
        return g * d, None, None


def spike_function(name: str, gamma: float, mode: str):
    """snnTorch's surrogate with our σ' (``mode='snntorch'``), or the float64 equivalent."""
    if mode == "float64":
        return lambda x: _Spike64.apply(x, name, gamma)
    from snntorch import surrogate

    if name == "arctan":
        return surrogate.atan(alpha=gamma)  # (α/2)/(1+(πα x/2)²)
    if name == "fast_sigmoid":
        return surrogate.fast_sigmoid(slope=gamma)  # 1/(1+k|x|)²
    if name == "sigmoid":
        return surrogate.sigmoid(slope=gamma)  # k e^{-kx}/(1+e^{-kx})²
    raise ValueError(f"no snnTorch surrogate with σ' = our {name!r}")


def incompatibility(c: dict) -> str | None:
    """Why snnTorch's Synaptic cannot run this case, or None."""
    return common.skip_reasons(
        [
            (c["cell"] == "clif", f"cell {c['cell']!r} (Synaptic is a spiking LIF)"),
            (c["syn_input"] == "new", "syn_input 'old' (Synaptic integrates the updated current)"),
            (c["input_gain"] == "unit", "input_gain 'one_minus_beta' (Synaptic adds the current with gain 1)"),
            (c["reset_grad"] == "detached", f"reset_grad {c['reset_grad']!r} (Synaptic detaches the reset)"),
            (not c["smooth"], "smooth mode (snnTorch's forward is always H)"),
            (
                c["surrogate"]["name"] in ("arctan", "fast_sigmoid", "sigmoid"),
                f"surrogate {c['surrogate']['name']!r} (snnTorch has no surrogate with this σ')",
            ),
        ]
    )


def run_case(c: dict, params: dict, inputs, targets, mode: str = "snntorch") -> dict:
    """Forward pass through snnTorch neurons, loss and autograd gradients: golden path -> array."""
    import snntorch as snn

    p = common.torch_params(params)
    u = torch.tensor(inputs, dtype=DT)
    B = u.shape[1]
    dt, theta = float(c["dt"]), float(c["theta"])
    sg = spike_function(c["surrogate"]["name"], float(c["surrogate"]["slope"]), mode)
    layers = []
    for l, N in enumerate(c["layers"]):
        alpha = torch.exp(-dt / torch.as_tensor(c["tau_syn"], dtype=DT)) * torch.ones(N, dtype=DT)
        beta = torch.exp(-dt / torch.as_tensor(c["tau_mem"], dtype=DT)) * torch.ones(N, dtype=DT)
        layers.append(
            snn.Synaptic(
                alpha=alpha,
                beta=beta,
                threshold=torch.tensor(theta, dtype=DT),
                spike_grad=sg,
                reset_mechanism=c["reset"],
                reset_delay=True,
            )
        )
    kappa = common.readout_decay(c)
    if kappa > 0:
        leaky = snn.Leaky(beta=torch.tensor(kappa, dtype=DT), threshold=torch.tensor(1.0, dtype=DT),
            spike_grad=sg, reset_mechanism="none")  # fmt: skip

        def readout(lin, U):
            return leaky((1.0 - kappa) * lin, U)[1]
    else:

        def readout(lin, U):
            return lin

    # states: V, I as returned by the neurons; S_t = H(V_t - θ) from the neuron's own fire()
    V = [p[f"layer{l + 1}/V0"].expand(B, -1) for l in range(len(layers))]
    I = [p[f"layer{l + 1}/I0"].expand(B, -1) for l in range(len(layers))]
    S0 = [layers[l].fire(V[l]).to(DT) for l in range(len(layers))]

    def step(l, z, s):
        # Synaptic's state (syn, mem) is our (I, V): the neuron's own return values are the records
        spk, I[l], V[l] = layers[l](common.layer_drive(p, l, z, s), I[l], V[l])
        return V[l], I[l], spk.to(DT)

    y, rec = common.torch_network(c, p, u, list(zip(V, I, S0)), step, readout)
    return common.torch_outputs(c, p, params, targets, y, rec)


def process(golden: str, candidate: str, cases=None, mode: str = "snntorch", verbose=True) -> list:
    """Write a candidate with every runnable case; returns ``[(case, reason)]`` of the skipped ones."""
    import snntorch

    return common.process(
        golden,
        candidate,
        cases,
        incompatibility,
        functools.partial(run_case, mode=mode),
        f"validation/peers/snntorch_adapter.py (snntorch {snntorch.__version__}, torch {torch.__version__}, surrogate={mode})",
        verbose,
    )


def main(argv=None) -> int:
    """The command line of the module docstring."""
    return common.main(argv, __doc__, process, {"--surrogate": dict(choices=MODES, default="snntorch", dest="mode")})


if __name__ == "__main__":
    sys.exit(main())
