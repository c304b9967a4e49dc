#!/usr/bin/env python
"""Run snnTorch's own ``Synaptic`` neuron on the golden cases it can express; write a candidate file.

    python validation/peers/snntorch_adapter.py GOLDEN.h5 CANDIDATE.h5 [--case NAME ...]
                                                [--surrogate snntorch|float64]
    refimpl validate CANDIDATE.h5 --reference GOLDEN.h5

Like ``validation/torch_reference.py`` this imports nothing from refimpl; it
reads the golden file with h5py and the config keys of shared/spec/GOLDEN.md.

What snnTorch's ``snntorch.Synaptic`` (1.0.0) computes, in MODEL.md's notation
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
emitted one call earlier (MODEL §1.2: ``z^l_t = S^{l-1}_t``; snnTorch's usual
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
Jacobian, spectrum and flossing groups are left out (GOLDEN.md allows it).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import h5py
import numpy as np
import torch

DT = torch.float64
FORMAT, FORMAT_VERSION = "refimpl-golden", 1


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
        return surrogate.atan(alpha=gamma)          # (α/2)/(1+(πα x/2)²)
    if name == "fast_sigmoid":
        return surrogate.fast_sigmoid(slope=gamma)  # 1/(1+k|x|)²
    if name == "sigmoid":
        return surrogate.sigmoid(slope=gamma)       # k e^{-kx}/(1+e^{-kx})²
    raise ValueError(f"no snnTorch surrogate with σ' = our {name!r}")


def incompatibility(c: dict) -> str | None:
    """Why snnTorch's Synaptic cannot run this case, or None."""
    checks = [
        (c["cell"] == "clif", f"cell {c['cell']!r} (Synaptic is a spiking LIF)"),
        (c["syn_input"] == "new", "syn_input 'old' (Synaptic integrates the updated current)"),
        (c["input_gain"] == "unit", "input_gain 'one_minus_beta' (Synaptic adds the current with gain 1)"),
        (c["reset_grad"] == "detached", f"reset_grad {c['reset_grad']!r} (Synaptic detaches the reset)"),
        (not c["smooth"], "smooth mode (snnTorch's forward is always H)"),
        (c["surrogate"]["name"] in ("arctan", "fast_sigmoid", "sigmoid"),
         f"surrogate {c['surrogate']['name']!r} (snnTorch has no surrogate with this σ')"),
    ]
    bad = [why for ok, why in checks if not ok]
    return "; ".join(bad) if bad else None


def _loss(name: str, t0: int, y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The losses of docs/conventions.md."""
    T = y.shape[0]
    if name == "mse_per_step":
        return ((y[t0:] - targets[t0:]) ** 2).mean()
    if name == "bce_per_step":
        ys = y[t0:]
        return (torch.logaddexp(ys, torch.zeros_like(ys)) - targets[t0:] * ys).mean()
    labels = targets.long()
    if name == "ce_last":
        z = y[T - 1]
    elif name == "ce_mean":
        z = y[t0:].mean(0)
    else:  # ce_max: the first maximizing step gets the gradient (torch.max returns it)
        idx = torch.argmax(y[t0:].detach(), dim=0)
        z = torch.gather(y[t0:], 0, idx[None])[0]
    return (torch.logsumexp(z, 1) - z.gather(1, labels[:, None])[:, 0]).mean()


def run_case(c: dict, params: dict, inputs: np.ndarray, targets: np.ndarray, mode: str) -> dict:
    """Forward pass through snnTorch neurons, loss and autograd gradients: golden path -> array."""
    import snntorch as snn
    p = {k: torch.tensor(v, dtype=DT, requires_grad=True) for k, v in params.items()}
    u = torch.tensor(inputs, dtype=DT)
    T, B, _ = u.shape
    dt, theta = float(c["dt"]), float(c["theta"])
    sg = spike_function(c["surrogate"]["name"], float(c["surrogate"]["slope"]), mode)
    layers = []
    for l, N in enumerate(c["layers"]):
        alpha = torch.exp(-dt / torch.as_tensor(c["tau_syn"], dtype=DT)) * torch.ones(N, dtype=DT)
        beta = torch.exp(-dt / torch.as_tensor(c["tau_mem"], dtype=DT)) * torch.ones(N, dtype=DT)
        layers.append(snn.Synaptic(alpha=alpha, beta=beta, threshold=torch.tensor(theta, dtype=DT),
                                   spike_grad=sg, reset_mechanism=c["reset"], reset_delay=True))
    tau_out = float(c["readout"]["tau_out"])
    kappa = 0.0 if tau_out == 0 else math.exp(-dt / tau_out)
    readout = None
    if kappa > 0:
        readout = snn.Leaky(beta=torch.tensor(kappa, dtype=DT), threshold=torch.tensor(1.0, dtype=DT),
                            spike_grad=sg, reset_mechanism="none")
    # states: V, I as returned by the neurons; S_t = H(V_t - θ) from the neuron's own fire()
    V = [p[f"layer{l + 1}/V0"].expand(B, -1) for l in range(len(layers))]
    I = [p[f"layer{l + 1}/I0"].expand(B, -1) for l in range(len(layers))]
    S = [layers[l].fire(V[l]).to(DT) for l in range(len(layers))]
    rec = {l: ([V[l]], [I[l]], [S[l]]) for l in range(len(layers))}
    ys, U = [], torch.zeros(B, c["n_out"], dtype=DT)
    for t in range(T):
        S_prev = list(S)
        for l, neuron in enumerate(layers):
            q = f"layer{l + 1}/"
            z_in = u[t] if l == 0 else S_prev[l - 1]
            drive = z_in @ p[q + "W_in"].T + S_prev[l] @ p[q + "W_rec"].T + p[q + "b"]
            spk, syn, mem = neuron(drive, I[l], V[l])
            V[l], I[l], S[l] = mem, syn, spk.to(DT)
            rec[l][0].append(mem), rec[l][1].append(syn), rec[l][2].append(S[l])
        src = S[-1] if c["readout"]["source"] == "spikes" else V[-1]
        lin = src @ p["readout/W_out"].T + p["readout/b_out"]
        if readout is None:
            y = lin
        else:
            _, U = readout((1.0 - kappa) * lin, U)
            y = U
        ys.append(y)
    y = torch.stack(ys)
    tg = torch.tensor(targets)
    if not c["loss"]["name"].startswith("ce_"):
        tg = tg.to(DT)
    loss = _loss(c["loss"]["name"], int(c["loss"]["t0"]), y, tg)
    keys = list(p)
    grads = torch.autograd.grad(loss, [p[k] for k in keys], allow_unused=True)
    out = {}
    for l in range(len(layers)):
        for name, seq in zip("VIS", rec[l]):
            out[f"forward/layer{l + 1}/{name}"] = torch.stack(seq).detach().numpy()
    out["forward/readout/y"] = y.detach().numpy()
    out["loss"] = np.asarray(loss.item())
    for k, g in zip(keys, grads):
        out[f"grad/{k}"] = np.zeros(params[k].shape) if g is None else g.detach().numpy()
    return out


def process(golden: str, candidate: str, cases=None, mode: str = "snntorch", verbose=True) -> list:
    """Write a candidate with every runnable case; returns ``[(case, reason)]`` of the skipped ones."""
    import snntorch
    skipped = []
    with h5py.File(golden, "r") as src, h5py.File(candidate, "w") as dst:
        if src.attrs.get("format") not in (FORMAT, FORMAT.encode()):
            raise ValueError(f"{golden} is not a golden file")
        dst.attrs["format"] = FORMAT
        dst.attrs["format_version"] = np.int64(FORMAT_VERSION)
        dst.attrs["generator"] = (f"validation/peers/snntorch_adapter.py (snntorch {snntorch.__version__}, "
                                  f"torch {torch.__version__}, surrogate={mode})")
        for name in src:
            if cases and name not in cases:
                continue
            g = src[name]
            c = json.loads(g.attrs["config"])
            why = incompatibility(c)
            if why:
                skipped.append((name, why))
                continue
            params = {}
            g["params"].visititems(lambda k, o: params.__setitem__(k, o[()]) if isinstance(o, h5py.Dataset) else None)
            res = run_case(c, params, g["inputs"][()], g["targets"][()], mode)
            out = dst.create_group(name)
            out.attrs["config"] = g.attrs["config"]
            for k, v in params.items():             # the inputs it ran on, for the validator
                out.create_dataset(f"params/{k}", data=v)
            for k in ("inputs", "targets"):
                out.create_dataset(k, data=g[k][()])
            for k, v in res.items():
                out.create_dataset(k, data=np.asarray(v, dtype=np.float64))
            if verbose:
                print(f"[{name}] loss={float(res['loss']):.12g}")
    if verbose:
        for name, why in skipped:
            print(f"[{name}] skipped: {why}")
    return skipped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("golden")
    ap.add_argument("candidate")
    ap.add_argument("--case", action="append", default=None)
    ap.add_argument("--surrogate", choices=("snntorch", "float64"), default="snntorch")
    a = ap.parse_args(argv)
    process(a.golden, a.candidate, a.case, a.surrogate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
