"""What the peer adapters share, so that each keeps only its library's neuron and the cases it can express.

* the golden file in and the candidate file out (:func:`iter_cases`, :func:`write_candidate`),
  the case loop (:func:`process`) and the command line (:func:`main`);
* reading a config (:func:`per_neuron`, :func:`readout_decay`, :func:`skip_reasons`);
* the losses of docs/conventions.md, once for any array library (:func:`loss`, with
  :func:`torch_ops` or the adapter's own operations);
* for the torch adapters: the parameters as leaf tensors, the layer drive, the model's leaky
  readout, the network of docs/model.md §1.2 wired around a per-step neuron (:func:`torch_network`)
  and the loss, gradients and records of a run (:func:`torch_outputs`).

Needs only numpy and h5py (torch is imported by the torch helpers when they run, so that the
JAX adapter does not need it); it imports nothing from refimpl. The file layout and the config
keys are those of docs/golden-format.md.
"""

from __future__ import annotations

import argparse
import json
import math
import types

import numpy as np

FORMAT, FORMAT_VERSION = "refimpl-golden", 1


# --- golden file in, candidate file out -----------------------------------------------------------------


def iter_cases(golden: str, cases=None):
    """Yield ``(name, config, params, inputs, targets, raw_config)`` for every case of a golden file."""
    import h5py

    with h5py.File(golden, "r") as src:
        if src.attrs.get("format") not in (FORMAT, FORMAT.encode()):
            raise ValueError(f"{golden} is not a golden file")
        for name in src:
            if cases and name not in cases:
                continue
            g = src[name]
            raw = g.attrs["config"]
            params = {}
            g["params"].visititems(lambda k, o: params.__setitem__(k, o[()]) if isinstance(o, h5py.Dataset) else None)
            yield name, json.loads(raw), params, g["inputs"][()], g["targets"][()], raw


def write_candidate(candidate: str, generator: str, results: dict) -> None:
    """Write ``{name: (raw_config, params, inputs, targets, {path: array})}`` as a candidate file."""
    import h5py

    with h5py.File(candidate, "w") as dst:
        dst.attrs["format"] = FORMAT
        dst.attrs["format_version"] = np.int64(FORMAT_VERSION)
        dst.attrs["generator"] = generator
        for name, (raw, params, inputs, targets, res) in results.items():
            out = dst.create_group(name)
            out.attrs["config"] = raw
            for k, v in params.items():  # the inputs it ran on, for the validator
                out.create_dataset(f"params/{k}", data=v)
            out.create_dataset("inputs", data=inputs)
            out.create_dataset("targets", data=targets)
            for k, v in res.items():
                out.create_dataset(k, data=np.asarray(v, dtype=np.float64))


def process(golden: str, candidate: str, cases, incompatibility, run_case, generator: str, verbose: bool = True) -> list:
    """Run an adapter on a golden file and write its candidate file; returns ``[(case, reason)]`` of the skipped.

    ``incompatibility(config)`` says why the library cannot express a case (None: it can);
    ``run_case(config, params, inputs, targets)`` runs one case and returns ``{golden path: array}``;
    ``generator`` is the candidate's root attribute (the adapter, its library and versions).
    ``cases``: the names to run (None: every case of the file).
    """
    skipped, results = [], {}
    for name, c, params, inputs, targets, raw in iter_cases(golden, cases):
        why = incompatibility(c)
        if why:
            skipped.append((name, why))
            continue
        res = run_case(c, params, inputs, targets)
        results[name] = (raw, params, inputs, targets, res)
        if verbose:
            print(f"[{name}] loss={float(res['loss']):.12g}")
    write_candidate(candidate, generator, results)
    if verbose:
        for name, why in skipped:
            print(f"[{name}] skipped: {why}")
    return skipped


def main(argv, doc: str, process, options: dict | None = None) -> int:
    """The command line of every adapter: ``GOLDEN CANDIDATE [--case NAME ...]`` and its own options.

    ``doc``: the adapter's module docstring (its first paragraph is the description);
    ``options``: ``{flag: keywords of add_argument}``, each handed to
    ``process(golden, candidate, cases, **options)`` under its ``dest``.
    """
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("golden")
    ap.add_argument("candidate")
    ap.add_argument("--case", action="append", default=None)
    for flag, kwargs in (options or {}).items():
        ap.add_argument(flag, **kwargs)
    a = vars(ap.parse_args(argv))
    process(a.pop("golden"), a.pop("candidate"), a.pop("case"), **a)
    return 0


# --- reading a config -----------------------------------------------------------------------------------


def per_neuron(value, sizes, layer: int) -> np.ndarray:
    """``tau_mem``/``tau_syn`` of a config for one layer, as a vector (the four forms of validation/README.md)."""
    N = sizes[layer]
    if not isinstance(value, (list, tuple)):
        return np.full(N, float(value))
    if isinstance(value[0], (list, tuple)):
        return np.asarray(value[layer], dtype=np.float64)
    if len(value) == N and all(n == N for n in sizes):
        return np.asarray(value, dtype=np.float64)
    if len(value) == sum(sizes):
        start = sum(sizes[:layer])
        return np.asarray(value[start : start + N], dtype=np.float64)
    raise ValueError(f"cannot read per-neuron time constants {value!r} for layers {sizes}")


def readout_decay(c: dict) -> float:
    """The readout's ``κ = exp(-dt/τ_out)``; 0 when ``τ_out = 0`` (a plain linear readout)."""
    tau_out = float(c["readout"]["tau_out"])
    return 0.0 if tau_out == 0 else math.exp(-float(c["dt"]) / tau_out)


def skip_reasons(checks) -> str | None:
    """``"; "``-joined reasons of the failed ``(ok, why)`` checks, or None."""
    bad = [why for ok, why in checks if not ok]
    return "; ".join(bad) if bad else None


# --- the losses -----------------------------------------------------------------------------------------


def loss(name: str, t0: int, y, targets, ops):
    """The losses of docs/conventions.md on ``y`` (T, B, n_out), with the array operations ``ops``.

    ``ops`` (see :func:`torch_ops`) supplies what differs between array libraries:
    ``softplus(x) = log(1 + e^x)``, ``labels(targets)`` (class labels as integers),
    ``at_first_max(x)`` (``x`` at its first maximum over time, the step that gets the
    gradient of ce_max), ``logsumexp(z)`` and ``pick(z, labels)`` over the class axis.
    """
    T = y.shape[0]
    if name == "mse_per_step":
        return ((y[t0:] - targets[t0:]) ** 2).mean()
    if name == "bce_per_step":
        ys = y[t0:]
        return (ops.softplus(ys) - targets[t0:] * ys).mean()
    labels = ops.labels(targets)
    if name == "ce_last":
        z = y[T - 1]
    elif name == "ce_mean":
        z = y[t0:].mean(0)
    else:  # ce_max
        z = ops.at_first_max(y[t0:])
    return (ops.logsumexp(z) - ops.pick(z, labels)).mean()


def torch_ops():
    """The operations of :func:`loss` on torch tensors."""
    import torch

    return types.SimpleNamespace(
        softplus=lambda x: torch.logaddexp(x, torch.zeros_like(x)),
        labels=lambda targets: targets.long(),
        # argmax on detached values: the index is a constant, the gradient flows through gather
        at_first_max=lambda x: torch.gather(x, 0, torch.argmax(x.detach(), dim=0)[None])[0],
        logsumexp=lambda z: torch.logsumexp(z, 1),
        pick=lambda z, labels: z.gather(1, labels[:, None])[:, 0],
    )


# --- torch networks -------------------------------------------------------------------------------------


def torch_params(params: dict) -> dict:
    """The golden parameters as float64 leaf tensors that autograd differentiates."""
    import torch

    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}


def layer_drive(p: dict, l: int, z, s):
    """``W_in z_t + W_rec S_t + b`` of layer ``l`` (0-based), from its input ``z`` and its own spikes ``s``."""
    q = f"layer{l + 1}/"
    return z @ p[q + "W_in"].T + s @ p[q + "W_rec"].T + p[q + "b"]


def leaky_readout(kappa: float):
    """the model's first-order leaky readout in plain torch, as ``readout(lin, U) -> U`` for :func:`torch_network`."""
    return lambda lin, U: kappa * U + (1.0 - kappa) * lin if kappa > 0 else lin


def torch_network(c: dict, p: dict, u, start, step, readout):
    """docs/model.md §1.2's network wired around another library's per-step neuron: returns ``(y, rec)``.

    ``start``: ``(V_0, I_0, S_0)`` of every layer. ``step(l, z, s)``: one call of layer ``l``'s
    neuron (0-based) on its input ``z = z_t`` (the network input, or the spikes ``S_t`` of the
    layer below) and its own spikes ``s = S_t``; returns ``(V_{t+1}, I_{t+1}, S_{t+1})``.
    ``readout(lin, U)``: the readout's next state, which is ``y_t``, from ``lin = W_out s + b_out``
    (``s``: the last layer's ``S_{t+1}`` or ``V_{t+1}``). ``y``: (T, B, n_out); ``rec[l]``: the
    lists of ``V``, ``I`` and ``S`` of layer ``l`` over steps 0 … T.
    """
    import torch

    T, B, _ = u.shape
    rec = [([V0], [I0], [S0]) for V0, I0, S0 in start]
    ys, U = [], torch.zeros(B, c["n_out"], dtype=torch.float64)
    for t in range(T):
        # every layer's S_t, taken before any layer steps: a layer above receives the spikes
        # the layer below emitted one call earlier (z^l_t = S^{l-1}_t)
        before = [S[-1] for _, _, S in rec]
        for l, layer_rec in enumerate(rec):
            z = u[t] if l == 0 else before[l - 1]
            for seq, x in zip(layer_rec, step(l, z, before[l])):
                seq.append(x)
        V, _, S = rec[-1]
        src = S[-1] if c["readout"]["source"] == "spikes" else V[-1]
        U = readout(src @ p["readout/W_out"].T + p["readout/b_out"], U)
        ys.append(U)
    return torch.stack(ys), rec


def torch_outputs(c: dict, p: dict, params: dict, targets: np.ndarray, y, rec) -> dict:
    """The loss of a torch run, its autograd gradients and the recorded states: golden path -> array.

    ``p``: the leaf tensors of :func:`torch_params` (``params``: the arrays they came from, for the
    shape of a gradient that is not used); ``y``: (T, B, n_out); ``rec[l]``: sequences of ``V``,
    ``I``, ``S`` of layer ``l``. Only forward states, ``y``, the loss and its gradients are
    written: the Jacobian, spectrum and flossing groups are left out (docs/golden-format.md allows it).
    """
    import torch

    tg = torch.tensor(targets)
    if not c["loss"]["name"].startswith("ce_"):
        tg = tg.to(torch.float64)
    value = loss(c["loss"]["name"], int(c["loss"]["t0"]), y, tg, torch_ops())
    keys = list(p)
    grads = torch.autograd.grad(value, [p[k] for k in keys], allow_unused=True)
    out = {}
    for l, seqs in enumerate(rec):
        for name, seq in zip("VIS", seqs):
            out[f"forward/layer{l + 1}/{name}"] = torch.stack(seq).detach().numpy()
    out["forward/readout/y"] = y.detach().numpy()
    out["loss"] = np.asarray(value.item())
    for k, g in zip(keys, grads):
        out[f"grad/{k}"] = np.zeros(params[k].shape) if g is None else g.detach().numpy()
    return out
