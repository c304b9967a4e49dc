#!/usr/bin/env python
"""Run stork's own ``LIFGroup`` neuron on the golden cases it can express; write a candidate file.

    python validation/peers/stork_adapter.py GOLDEN.h5 CANDIDATE.h5 [--case NAME ...]
    refimpl validate CANDIDATE.h5 --reference GOLDEN.h5

stork is fmi-basel/stork (the Zenke lab's library), which is not on PyPI:
the PyPI package called "stork" is an unrelated Databricks tool. See
docs/peers.md for how it was installed. Like the other adapters this imports
nothing from refimpl; it reads the file with h5py and the config keys of
docs/golden-format.md.

What ``stork.nodes.LIFGroup.forward`` computes, in docs/model.md's notation
(docs/peers.md has the reading of the source):

    S_t     = H(V_t - 1)                                  out, with the group's activation
    reset   = S_t, detached unless diff_reset=True        -> reset_grad detached | attached
    I_{t+1} = α I_t + input                               α = exp(-dt/τ_syn)
    V_{t+1} = (β V_t + (1-β) I_t)(1 - reset)              β = exp(-dt/τ_mem)

which is the ``stork`` dialect (old, one_minus_beta, zero). So a case is
runnable when it is a clif network with those switches, reset_grad detached
or attached, ``θ = 1`` (stork's threshold is fixed), scalar time constants
(``LIFGroup.configure`` takes ``float(exp(-dt/τ))``), surrogate mode, and
fast_sigmoid (stork's ``SuperSpike`` with ``SuperSpike.beta = γ``) or sigmoid
(stork's ``CustomSpike`` with ``surrogate_type = "sigmoid"`` and
``surrogate_params["beta"] = γ``). Both are class attributes in stork; the
adapter sets them for a case and restores them afterwards. Their forward is
``zeros_like(x)`` set to 1 where ``x > 0``, so the dtype stays float64.

Wiring, ours (docs/model.md §1.2), not stork's ``RecurrentSpikingModel``, in which
every connection adds a step of delay (docs/peers.md): each call the adapter
first asks the group for ``S_t`` with its own ``get_spike_and_reset`` on the
current membrane, sets the group's ``input`` to ``W_in z_t + W_rec S_t + b``
(``z_t`` is the input, or the spikes ``S_t`` of the layer below), and then
calls the group's ``evolve()``. The initial state is ``mem = V0``,
``syn = I0``. The readout is the model's first-order leaky readout in plain torch
(stork's ``ReadoutGroup`` is second order and has no counterpart); it reads
``S_{t+1}`` (again from ``get_spike_and_reset``) or the membrane ``V_{t+1}``.

Only forward states, ``y``, the loss and its gradients are written.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import torch

try:
    from . import common
except ImportError:  # run as a script
    import common

DT = torch.float64


def incompatibility(c: dict) -> str | None:
    """Why stork's LIFGroup cannot run this case, or None."""
    return common.skip_reasons(
        [
            (c["cell"] == "clif", f"cell {c['cell']!r} (LIFGroup is a spiking LIF)"),
            (c["syn_input"] == "old", "syn_input 'new' (LIFGroup integrates the current of the previous step)"),
            (c["input_gain"] == "one_minus_beta", "input_gain 'unit' (LIFGroup scales the current by 1-β)"),
            (c["reset"] == "zero", f"reset {c['reset']!r} (LIFGroup's reset is multiplicative)"),
            (
                c["reset_grad"] in ("detached", "attached"),
                "reset_grad 'ignored' (LIFGroup detaches the reset, or differentiates it with diff_reset=True)",
            ),
            (float(c["theta"]) == 1.0, f"theta {c['theta']} (LIFGroup's threshold is fixed at 1)"),
            (
                not isinstance(c["tau_mem"], list) and not isinstance(c["tau_syn"], list),
                "per-neuron time constants (LIFGroup takes one τ_mem and one τ_syn)",
            ),
            (not c["smooth"], "smooth mode (stork's forward is H)"),
            (
                c["surrogate"]["name"] in ("fast_sigmoid", "sigmoid"),
                f"surrogate {c['surrogate']['name']!r} (stork has SuperSpike = fast_sigmoid and CustomSpike's sigmoid surrogate)",
            ),
        ]
    )


@contextlib.contextmanager
def activation(name: str, gamma: float):
    """stork's own surrogate for our ``name`` with slope ``gamma`` (its class attributes set, then restored)."""
    from stork import activations as A

    if name == "fast_sigmoid":
        saved = A.SuperSpike.beta
        A.SuperSpike.beta = gamma
        try:
            yield A.SuperSpike
        finally:
            A.SuperSpike.beta = saved
    else:
        saved = (A.CustomSpike.escape_noise_type, A.CustomSpike.surrogate_type, A.CustomSpike.surrogate_params)
        A.CustomSpike.escape_noise_type = "step"
        A.CustomSpike.surrogate_type = "sigmoid"
        A.CustomSpike.surrogate_params = dict(saved[2], beta=gamma)
        try:
            yield A.CustomSpike
        finally:
            (A.CustomSpike.escape_noise_type, A.CustomSpike.surrogate_type, A.CustomSpike.surrogate_params) = saved


def run_case(c: dict, params: dict, inputs: np.ndarray, targets: np.ndarray) -> dict:
    """Forward pass through stork's LIFGroup, loss and autograd gradients: golden path -> array.

    The loop is not :func:`common.torch_network`: a LIFGroup does not return its spikes from a
    step; they are read off its membrane with ``get_spike_and_reset``, ``S_t`` at the start of a
    call and again ``S_{t+1}`` for the readout, while ``g.out`` after ``evolve()`` is ``S_t``.
    """
    from stork.nodes import LIFGroup

    p = common.torch_params(params)
    u = torch.tensor(inputs, dtype=DT)
    T, B, _ = u.shape
    dt = float(c["dt"])
    sizes = [int(n) for n in c["layers"]]
    with activation(c["surrogate"]["name"], float(c["surrogate"]["slope"])) as act:
        groups = []
        for l, N in enumerate(sizes):
            g = LIFGroup(N, tau_mem=float(c["tau_mem"]), tau_syn=float(c["tau_syn"]),
                diff_reset=c["reset_grad"] == "attached", activation=act, name=f"layer{l + 1}")  # fmt: skip
            g.configure(batch_size=B, nb_steps=T, time_step=dt, device=torch.device("cpu"), dtype=DT)
            g.mem = p[f"layer{l + 1}/V0"].expand(B, -1)
            g.syn = p[f"layer{l + 1}/I0"].expand(B, -1)
            groups.append(g)
        rec = [([g.mem], [g.syn], []) for g in groups]
        readout = common.leaky_readout(common.readout_decay(c))
        ys, U = [], torch.zeros(B, c["n_out"], dtype=DT)
        for t in range(T):
            S = [g.get_spike_and_reset(g.mem)[0] for g in groups]  # S_t of every layer
            for l, g in enumerate(groups):
                g.input = common.layer_drive(p, l, u[t] if l == 0 else S[l - 1], S[l])
                g.evolve()
                rec[l][0].append(g.mem), rec[l][1].append(g.syn), rec[l][2].append(g.out)
            last = groups[-1]
            src = last.get_spike_and_reset(last.mem)[0] if c["readout"]["source"] == "spikes" else last.mem
            U = readout(src @ p["readout/W_out"].T + p["readout/b_out"], U)
            ys.append(U)
        for l, g in enumerate(groups):  # S_T, for the record
            rec[l][2].append(g.get_spike_and_reset(g.mem)[0])
        # inside the with: the surrogate's class attributes must still be set when autograd runs backward
        return common.torch_outputs(c, p, params, targets, torch.stack(ys), rec)


def process(golden: str, candidate: str, cases=None, verbose=True) -> list:
    """Write a candidate with every runnable case; returns ``[(case, reason)]`` of the skipped ones."""
    import stork

    return common.process(
        golden,
        candidate,
        cases,
        incompatibility,
        run_case,
        f"validation/peers/stork_adapter.py (stork {stork.__version__} (fmi-basel/stork), torch {torch.__version__})",
        verbose,
    )


def main(argv=None) -> int:
    """The command line of the module docstring."""
    return common.main(argv, __doc__, process)


if __name__ == "__main__":
    sys.exit(main())
