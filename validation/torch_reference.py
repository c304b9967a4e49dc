#!/usr/bin/env python
"""Independent PyTorch reference of the spiking-network model (float64, CPU).

Written from ``docs/model.md``, ``docs/golden-format.md`` and
``docs/conventions.md`` only; it imports nothing from ``refimpl``.  Every
derivative is taken by torch autograd:

* the spike ``H`` is a custom ``torch.autograd.Function`` (``Spike``) whose
  backward returns ``grad * sigma'(x)`` computed with differentiable torch ops,
  so that a second differentiation (flossing gradients) brings in ``sigma''``;
  in smooth mode its forward is the primitive ``Phi`` instead of ``H``;
* the reset linearisation (``reset_grad``) is expressed with ``detach``;
* the one-step Jacobians ``D_t = dx_{t+1}/dx_t`` are taken by reverse-mode
  autograd of the one-step map (optionally with ``create_graph=True``);
* the flossing gradient is autograd through ``torch.linalg.qr`` (signs fixed
  so that ``diag R > 0``), through every ``D_t`` and through the states.

Script use::

    python validation/torch_reference.py GOLDEN.h5 CANDIDATE.h5 [--case NAME ...]

reads every case group of a golden file and writes a candidate file in the
same layout (see ``process_file``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import traceback
import warnings
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

DTYPE = torch.float64

FORMAT = "refimpl-golden"
FORMAT_VERSION = 1

SURROGATES = ("fast_sigmoid", "sigmoid", "arctan", "gaussian", "triangle")
LOSSES = ("bce_per_step", "mse_per_step", "ce_max", "ce_mean", "ce_last")
CELLS = ("clif", "binary", "rate")
DIALECTS = {"engelken": {"syn_input": "new", "input_gain": "one_minus_beta", "reset": "zero"},
    "spytorch": {"syn_input": "old", "input_gain": "unit", "reset": "zero"},
    "stork": {"syn_input": "old", "input_gain": "one_minus_beta", "reset": "zero"}}  # fmt: skip
CLIF_PARAMS = ("W_in", "W_rec", "b", "V0", "I0")
RATE_PARAMS = ("W_in", "W_rec", "b", "x0")
READOUT_PARAMS = ("W_out", "b_out")


def generator_string() -> str:
    return f"torch-reference {torch.__version__}"


# ---------------------------------------------------------------------------
# Surrogates (docs/model.md §2)
# ---------------------------------------------------------------------------


def sigma_prime(x: torch.Tensor, name: str, slope: float) -> torch.Tensor:
    """sigma'(x; gamma), written with differentiable torch ops (so sigma'' is
    its autograd derivative, with sign(0) = 0 as torch's ``abs`` gives)."""
    g = slope
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + g * torch.abs(x)) ** 2
    if name == "sigmoid":
        return g * torch.sigmoid(g * x) * torch.sigmoid(-g * x)
    if name == "arctan":
        return (g / 2.0) / (1.0 + (math.pi * g * x / 2.0) ** 2)
    if name == "gaussian":
        return torch.exp(-0.5 * (g * x) ** 2)
    if name == "triangle":
        return torch.relu(1.0 - g * torch.abs(x))
    raise ValueError(f"unknown surrogate {name!r}")


def sigma_primitive(x: torch.Tensor, name: str, slope: float) -> torch.Tensor:
    """Phi(x; gamma), the primitive of sigma' with Phi(-inf) = 0."""
    g = slope
    if name == "fast_sigmoid":
        return x / (1.0 + g * torch.abs(x)) + 1.0 / g
    if name == "sigmoid":
        return torch.sigmoid(g * x)
    if name == "arctan":
        return 0.5 + torch.atan(math.pi * g * x / 2.0) / math.pi
    if name == "gaussian":
        return (math.sqrt(math.pi / 2.0) / g) * (1.0 + torch.erf(g * x / math.sqrt(2.0)))
    if name == "triangle":
        a = 1.0 / g
        left = 0.5 * g * (x + a) ** 2  # -1/g < x <= 0
        right = a - 0.5 * g * (a - x) ** 2  # 0 < x < 1/g
        out = torch.where(x <= 0, left, right)
        out = torch.where(x <= -a, torch.zeros_like(x), out)
        out = torch.where(x >= a, torch.full_like(x, a), out)
        return out
    raise ValueError(f"unknown surrogate {name!r}")


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """H(x) = 1 if x > 0 else 0 (strict)."""
    return (x > 0).to(x.dtype)


class Spike(torch.autograd.Function):
    """Forward ``H(x)`` (or ``Phi(x)`` in smooth mode); backward ``grad * sigma'(x)``.

    The backward is built from differentiable torch ops of the saved input, so
    the function is twice differentiable: the derivative of its backward is
    ``grad * sigma''(x)`` (this is where sigma'' enters flossing gradients).
    """

    @staticmethod
    def forward(ctx, x, name, slope, smooth):  # noqa: D401 - torch API
        ctx.save_for_backward(x)
        ctx.name = name
        ctx.slope = slope
        if smooth:
            return sigma_primitive(x, name, slope)
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * sigma_prime(x, ctx.name, ctx.slope), None, None, None


def spike(x: torch.Tensor, name: str = "fast_sigmoid", slope: float = 10.0, smooth: bool = False) -> torch.Tensor:
    return Spike.apply(x, name, float(slope), bool(smooth))


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


def normalize_config(config: Mapping) -> dict:
    """A copy of ``config`` with the defaults of docs/model.md/conventions filled in
    and every switch validated.  Unknown extra keys are kept."""
    c = copy.deepcopy(dict(config))
    cell = c.setdefault("cell", "clif")
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}")
    if "layers" not in c:
        raise KeyError("config needs 'layers'")
    c["layers"] = [int(n) for n in c["layers"]]
    for key in ("n_in", "n_out"):
        if key not in c:
            raise KeyError(f"config needs {key!r}")
        c[key] = int(c[key])
    if cell != "clif" and len(c["layers"]) != 1:
        raise ValueError(f"{cell} networks have one layer, got {c['layers']}")
    dialect = c.get("dialect")
    if dialect is not None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}")
        for k, v in DIALECTS[dialect].items():  # explicit switches win
            c.setdefault(k, v)
    c.setdefault("dt", 1.0)
    c.setdefault("tau_mem", 10.0)
    c.setdefault("tau_syn", 5.0)
    c.setdefault("theta", 1.0)
    c.setdefault("syn_input", "new")
    c.setdefault("input_gain", "one_minus_beta")
    c.setdefault("reset", "zero")
    c.setdefault("reset_grad", "detached")
    for key, allowed in (
        ("syn_input", ("new", "old")),
        ("input_gain", ("one_minus_beta", "unit")),
        ("reset", ("zero", "subtract", "none")),
        ("reset_grad", ("detached", "attached", "ignored")),
    ):
        if c[key] not in allowed:
            raise ValueError(f"{key} must be one of {allowed}, got {c[key]!r}")
    sur = c.get("surrogate", {})
    if isinstance(sur, str):
        sur = {"name": sur}
    sur = dict(sur)
    sur.setdefault("name", "fast_sigmoid")
    sur.setdefault("slope", 10.0)
    if sur["name"] not in SURROGATES:
        raise ValueError(f"unknown surrogate {sur['name']!r}")
    c["surrogate"] = sur
    c["smooth"] = bool(c.get("smooth", False))
    ro = dict(c.get("readout", {}))
    if "tau_out" not in ro:
        raise KeyError("config needs readout.tau_out (docs/model.md gives no default)")
    ro.setdefault("source", "spikes" if cell == "clif" else "state")
    allowed = ("spikes", "membrane") if cell == "clif" else ("state", "activation")
    if ro["source"] not in allowed:
        raise ValueError(f"readout.source for {cell} must be one of {allowed}")
    c["readout"] = ro
    loss = c.get("loss", {})
    if isinstance(loss, str):
        loss = {"name": loss}
    loss = dict(loss)
    if "name" not in loss:
        raise KeyError("config needs loss.name")
    if loss["name"] not in LOSSES:
        raise ValueError(f"unknown loss {loss['name']!r}")
    loss.setdefault("t0", 0)
    loss["t0"] = int(loss["t0"])
    c["loss"] = loss
    ly = dict(c.get("lyapunov", {}))
    for key, default in (("ons", 1), ("warmup", 0), ("transient", 0), ("batch_index", 0)):
        ly[key] = int(ly.get(key, default))
    if ly["ons"] < 1:
        raise ValueError("lyapunov.ons must be >= 1")
    c["lyapunov"] = ly
    fl = dict(c.get("flossing", {}))
    fl.setdefault("target", 0.0)
    fl.setdefault("params", ["W_in", "W_rec", "b"])
    c["flossing"] = fl
    return c


def state_size(config: Mapping) -> int:
    """M: 2 * sum(N_l) for clif, N for binary/rate."""
    layers = [int(n) for n in config["layers"]]
    return 2 * sum(layers) if config.get("cell", "clif") == "clif" else layers[0]


def _per_layer(value, sizes: Sequence[int], what: str) -> List:
    """Resolve a scalar or per-neuron time constant for every layer.

    scalar -> the same scalar everywhere; a list of lists (one per layer) ->
    per layer; a flat list of length N_l -> used for every layer of that size;
    a flat list of length sum(N_l) -> split into the layers in order.
    """
    if isinstance(value, (int, float)):
        return [float(value)] * len(sizes)
    arr = list(value)
    if len(arr) == len(sizes) and all(isinstance(v, (list, tuple)) for v in arr):
        out = []
        for v, n in zip(arr, sizes):
            if len(v) != n:
                raise ValueError(f"{what}: layer list of length {len(v)} for {n} neurons")
            out.append(torch.tensor(v, dtype=DTYPE))
        return out
    flat = np.asarray(arr, dtype=np.float64).ravel()
    if all(n == flat.size for n in sizes):
        return [torch.tensor(flat, dtype=DTYPE) for _ in sizes]
    if flat.size == sum(sizes):
        out, i = [], 0
        for n in sizes:
            out.append(torch.tensor(flat[i : i + n], dtype=DTYPE))
            i += n
        return out
    raise ValueError(f"{what}: list of length {flat.size} does not fit layers {list(sizes)}")


def _exp_decay(dt: float, tau):
    if isinstance(tau, float):
        return math.exp(-dt / tau)
    return torch.exp(-dt / tau)


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------


def to_tensor_params(params: Mapping[str, np.ndarray], requires_grad: bool = True) -> Dict[str, torch.Tensor]:
    """numpy arrays (keys like 'layer1/W_in') -> float64 leaf tensors."""
    out = {}
    for k, v in params.items():
        t = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=DTYPE).clone()
        out[k] = t.requires_grad_(requires_grad)
    return out


class Network:
    """The state map x_{t+1} = F(x_t, u_t) and the readout of docs/model.md §1.

    ``params`` maps golden paths ('layer1/W_in', ..., 'readout/W_out') to
    tensors.  Missing ``b``, ``V0``, ``I0``, ``x0``, ``b_out`` are zeros.
    States are lists of tensors with any leading batch shape:
    clif ``[V1, I1, V2, I2, ...]``, binary/rate ``[x]``.
    """

    def __init__(self, config: Mapping, params: Mapping[str, torch.Tensor]):
        self.cfg = c = normalize_config(config)
        self.cell = c["cell"]
        self.sizes = list(c["layers"])
        self.L = len(self.sizes)
        self.n_in, self.n_out = c["n_in"], c["n_out"]
        self.dt = float(c["dt"])
        self.sur_name = c["surrogate"]["name"]
        self.slope = float(c["surrogate"]["slope"])
        self.smooth = c["smooth"]
        self.p = dict(params)
        zeros = lambda n: torch.zeros(n, dtype=DTYPE)  # noqa: E731
        for l, n in enumerate(self.sizes, start=1):
            for name in ("b", "V0", "I0") if self.cell == "clif" else ("b", "x0"):
                self.p.setdefault(f"layer{l}/{name}", zeros(n))
            for name in ("W_in", "W_rec"):
                if f"layer{l}/{name}" not in self.p:
                    raise KeyError(f"params need layer{l}/{name}")
        if "readout/W_out" not in self.p:
            raise KeyError("params need readout/W_out")
        self.p.setdefault("readout/b_out", zeros(self.n_out))
        self._check_shapes()
        if self.cell == "clif":
            self.theta = float(c["theta"])
            tm = _per_layer(c["tau_mem"], self.sizes, "tau_mem")
            ts = _per_layer(c["tau_syn"], self.sizes, "tau_syn")
            self.beta = [_exp_decay(self.dt, t) for t in tm]
            self.alpha = [_exp_decay(self.dt, t) for t in ts]
            if c["input_gain"] == "one_minus_beta":
                self.gain = [1.0 - b for b in self.beta]
            else:
                self.gain = [1.0 for _ in self.beta]
        tau_out = float(c["readout"]["tau_out"])
        self.kappa = 0.0 if tau_out == 0.0 else math.exp(-self.dt / tau_out)
        self.M = state_size(c)

    def _check_shapes(self):
        n_prev = self.n_in
        for l, n in enumerate(self.sizes, start=1):
            want = {"W_in": (n, n_prev), "W_rec": (n, n), "b": (n,)}
            want.update({"V0": (n,), "I0": (n,)} if self.cell == "clif" else {"x0": (n,)})
            for name, shape in want.items():
                got = tuple(self.p[f"layer{l}/{name}"].shape)
                if got != shape:
                    raise ValueError(f"layer{l}/{name} has shape {got}, expected {shape}")
            n_prev = n
        for name, shape in (("W_out", (self.n_out, self.sizes[-1])), ("b_out", (self.n_out,))):
            got = tuple(self.p[f"readout/{name}"].shape)
            if got != shape:
                raise ValueError(f"readout/{name} has shape {got}, expected {shape}")

    # -- elementary pieces ------------------------------------------------
    def H(self, x: torch.Tensor) -> torch.Tensor:
        """The spike nonlinearity with the surrogate derivative (Phi in smooth mode)."""
        return spike(x, self.sur_name, self.slope, self.smooth)

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """binary/rate activation: H(x) (threshold 0) or tanh."""
        return self.H(x) if self.cell == "binary" else torch.tanh(x)

    def initial_state(self, batch_shape: Tuple[int, ...] = ()) -> List[torch.Tensor]:
        names = ("V0", "I0") if self.cell == "clif" else ("x0",)
        out = []
        for l, n in enumerate(self.sizes, start=1):
            for name in names:
                out.append(self.p[f"layer{l}/{name}"].expand(*batch_shape, n))
        return out

    def spikes(self, state: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """S^l = H(V^l - theta) for every clif layer."""
        return [self.H(state[2 * l] - self.theta) for l in range(self.L)]

    def _reset(self, m: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        reset, rg = c["reset"], c["reset_grad"]
        if reset == "none":
            return m
        if rg == "ignored":
            # forward value with the reset; derivative as if reset = none
            value = (1.0 - S) * m if reset == "zero" else m - self.theta * S
            return value.detach() + (m - m.detach())
        Sr = S if rg == "attached" else S.detach()
        if reset == "zero":
            return (1.0 - Sr) * m  # rho = 1 - S, r = 0
        return m - self.theta * Sr  # rho = 1, r = S

    def step(self, state: Sequence[torch.Tensor], u: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """One step of every layer from the same x_t.  Returns (x_{t+1}, S_t)."""
        p = self.p
        if self.cell != "clif":
            x = state[0]
            xn = self.phi(x) @ p["layer1/W_rec"].T + p["layer1/b"] + u @ p["layer1/W_in"].T
            return [xn], []
        S = self.spikes(state)  # spikes at the START of step t
        new = []
        for l in range(self.L):
            V, I = state[2 * l], state[2 * l + 1]
            z = u if l == 0 else S[l - 1]
            pre = f"layer{l + 1}/"
            In = self.alpha[l] * I + z @ p[pre + "W_in"].T + S[l] @ p[pre + "W_rec"].T + p[pre + "b"]
            It = In if self.cfg["syn_input"] == "new" else I
            m = self.beta[l] * V + self.gain[l] * It
            new += [self._reset(m, S[l]), In]
        return new, S

    def readout_input(self, state: Sequence[torch.Tensor]) -> torch.Tensor:
        src = self.cfg["readout"]["source"]
        if self.cell == "clif":
            V = state[2 * (self.L - 1)]
            return self.H(V - self.theta) if src == "spikes" else V
        x = state[0]
        return self.phi(x) if src == "activation" else x

    # -- flat state map ---------------------------------------------------
    def flatten(self, state: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(state), dim=-1)

    def unflatten(self, x: torch.Tensor) -> List[torch.Tensor]:
        parts = [n for n in self.sizes for _ in range(2 if self.cell == "clif" else 1)]
        return list(torch.split(x, parts, dim=-1))

    def F(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """x_{t+1} = F(x_t, u_t) on the flat state [V1, I1, V2, I2, ...] (or x)."""
        new, _ = self.step(self.unflatten(x), u)
        return self.flatten(new)

    def jacobian(self, x: torch.Tensor, u: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """Dense D = dF/dx at (x, u), by reverse-mode autograd.

        F is evaluated on M copies of x at once and the sum of the diagonal
        output entries is differentiated with respect to the copies; row i of
        the result is d F_i / d x (one reverse pass for the whole matrix).
        With ``create_graph`` the result stays differentiable with respect to
        the parameters and to x (hence to everything x depends on).
        """
        M = x.shape[-1]
        if create_graph and x.requires_grad:
            xs = x.unsqueeze(0).repeat(M, 1)
        else:
            xs = x.detach().unsqueeze(0).repeat(M, 1).requires_grad_(True)
        with torch.enable_grad():
            ys = self.F(xs, u)
            (D,) = torch.autograd.grad(ys.diagonal().sum(), xs, create_graph=create_graph)
        return D


# ---------------------------------------------------------------------------
# Forward pass, losses
# ---------------------------------------------------------------------------


def simulate(net: Network, inputs: torch.Tensor) -> dict:
    """Run the network on inputs (T, B, n_in).

    Returns ``{"states": [x_0 .. x_T] (lists per layer), "S": [S_0 .. S_T]``
    (clif), ``"y": (T, B, n_out)}``.
    """
    T, B = inputs.shape[0], inputs.shape[1]
    state = net.initial_state((B,))
    states, spikes_t, ys = [state], [], []
    U = torch.zeros(B, net.n_out, dtype=DTYPE)
    W_out, b_out = net.p["readout/W_out"], net.p["readout/b_out"]
    for t in range(T):
        state, S = net.step(state, inputs[t])
        spikes_t.append(S)
        lin = net.readout_input(state) @ W_out.T + b_out
        U = lin if net.kappa == 0.0 else net.kappa * U + (1.0 - net.kappa) * lin
        ys.append(U)
        states.append(state)
    if net.cell == "clif":
        spikes_t.append(net.spikes(state))
    return {"states": states, "S": spikes_t, "y": torch.stack(ys)}


def loss_fn(config: Mapping, y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Losses of docs/conventions.md; y (T, B, n_out)."""
    c = normalize_config(config)
    name, t0 = c["loss"]["name"], int(c["loss"]["t0"])
    T = y.shape[0]
    if not 0 <= t0 < T:
        raise ValueError(f"loss.t0 = {t0} outside 0..{T - 1}")
    if name in ("bce_per_step", "mse_per_step"):
        ys, tg = y[t0:], targets[t0:].to(DTYPE)
        if name == "bce_per_step":
            # softplus(y) - target*y, softplus as logaddexp(y, 0): exact and
            # with derivative 1/2 at y = 0
            return (torch.logaddexp(ys, torch.zeros_like(ys)) - tg * ys).mean()
        return ((ys - tg) ** 2).mean()
    labels = targets.to(torch.long).reshape(-1)
    if name == "ce_last":
        z = y[T - 1]
    elif name == "ce_mean":
        z = y[t0:].mean(dim=0)
    else:  # ce_max; the gradient goes to the FIRST step attaining the maximum
        ys = y[t0:]
        yd = ys.detach()
        steps = torch.arange(ys.shape[0]).view(-1, 1, 1).expand_as(yd)
        first = (
            torch.where(yd == yd.max(dim=0, keepdim=True).values, steps, torch.full_like(steps, ys.shape[0])).min(dim=0).values
        )
        z = torch.gather(ys, 0, first.unsqueeze(0)).squeeze(0)
    picked = z.gather(1, labels.view(-1, 1)).squeeze(1)
    return (torch.logsumexp(z, dim=1) - picked).mean()


# ---------------------------------------------------------------------------
# Lyapunov spectrum and flossing
# ---------------------------------------------------------------------------


def qr_positive(A: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Thin QR with diag R >= 0 (columns of Q signed; the signs are constants)."""
    Q, R = torch.linalg.qr(A, mode="reduced")
    s = torch.where(torch.diagonal(R) < 0, -1.0, 1.0).to(A.dtype).detach()
    return Q * s, R * s.unsqueeze(1)


def lyapunov_spectrum(net: Network, u_seq: torch.Tensor, Q0: torch.Tensor, lyap: Optional[Mapping] = None,
        jacobian_steps: Iterable[int] = (), create_graph: bool = False) -> dict:  # fmt: skip
    """Surrogate Lyapunov spectrum (docs/model.md §6) along one input sequence u_seq (T, n_in).

    Returns ``{"spectrum": (k,) [1/step], "D": {t: D_t (detached)},
    "n_counted": ..., "steps_covered": ..., "local": [log diag R per counted QR]}``.
    With ``create_graph`` the spectrum is differentiable (flossing).
    """
    ly = dict(net.cfg["lyapunov"] if lyap is None else lyap)
    warmup, ons = int(ly.get("warmup", 0)), int(ly.get("ons", 1))
    transient = int(ly.get("transient", 0))
    T = u_seq.shape[0]
    M, k = Q0.shape
    if M != net.M:
        raise ValueError(f"Q0 has {M} rows, state size is {net.M}")
    if k > M:
        raise ValueError(f"k = {k} > M = {M}")
    want = sorted({int(t) for t in jacobian_steps})
    if want and (want[0] < 0 or want[-1] >= T):
        raise ValueError(f"jacobian steps {want} outside 0..{T - 1}")
    # the QR steps: t >= warmup with (t + 1 - warmup) % ons == 0, t < T
    qr_steps = [t for t in range(warmup, T) if (t + 1 - warmup) % ons == 0]
    last_q = qr_steps[-1] if qr_steps else -1  # trailing steps are not counted
    last_needed = max([last_q] + want)

    x = net.flatten(net.initial_state(()))
    Q = Q0
    logsum = torch.zeros(k, dtype=DTYPE)
    n_qr = n_counted = 0
    D_store, local = {}, []
    for t in range(last_needed + 1):
        evolve = warmup <= t <= last_q
        if evolve or t in want:
            D = net.jacobian(x, u_seq[t], create_graph=create_graph)
            if t in want:
                D_store[t] = D.detach().clone()
        if evolve:
            A = D @ Q
            if (t + 1 - warmup) % ons == 0:
                Q, R = qr_positive(A)
                n_qr += 1
                if n_qr > transient:
                    diag = torch.diagonal(R)
                    if bool((diag == 0).any()):
                        warnings.warn(
                            f"R_ii = 0 at step {t} (rank-deficient D_t Q_t, e.g. "
                            "zero-reset rows or k above the rank): exponent -inf"
                        )
                    lr = torch.log(diag)
                    logsum = logsum + lr
                    local.append(lr.detach())
                    n_counted += 1
            else:
                Q = A
        if t < last_needed:
            x = net.F(x, u_seq[t])
    if n_counted == 0:
        raise ValueError(f"no counted QR step (T={T}, warmup={warmup}, ons={ons}, transient={transient})")
    covered = n_counted * ons
    return {"spectrum": logsum / covered, "D": D_store, "n_counted": n_counted, "steps_covered": covered, "local": local}


def flossing_loss(spectrum: torch.Tensor, target=0.0) -> torch.Tensor:
    """L_floss = (1/k) sum_i (lambda_i - target_i)^2."""
    tgt = torch.as_tensor(np.asarray(target, dtype=np.float64), dtype=DTYPE)
    return ((spectrum - tgt) ** 2).mean()


def flossed_paths(config: Mapping, param_keys: Iterable[str]) -> List[str]:
    """Golden paths of the flossed parameters: each bare name of
    config.flossing.params applied to every layer; 'layer<l>/name' or
    'readout/name' taken as given."""
    c = normalize_config(config)
    keys = list(param_keys)
    out = []
    for name in c["flossing"]["params"]:
        if "/" in name:
            cand = [name]
        elif name in READOUT_PARAMS:
            cand = [f"readout/{name}"]
        else:
            cand = [f"layer{l}/{name}" for l in range(1, len(c["layers"]) + 1)]
        hits = [k for k in cand if k in keys]
        if not hits:
            raise ValueError(f"flossed parameter {name!r} matches no parameter of {keys}")
        out += [k for k in hits if k not in out]
    return out


# ---------------------------------------------------------------------------
# One golden case
# ---------------------------------------------------------------------------


def evaluate(config: Mapping, params: Mapping[str, torch.Tensor], inputs, targets=None, Q0=None,
        what: Sequence[str] = ("loss", "flossing"), jacobian_steps=(), create_graph: bool = False) -> dict:  # fmt: skip
    """Evaluate a network on tensors (no gradients unless the caller takes them).

    ``what`` among 'loss' and 'flossing'.  Returns a dict with 'net', 'sim',
    'loss' and/or 'lyap', 'flossing_loss'.
    """
    net = Network(config, params)
    inputs = torch.as_tensor(np.asarray(inputs, dtype=np.float64), dtype=DTYPE) if not torch.is_tensor(inputs) else inputs
    out = {"net": net}
    if "loss" in what or "forward" in what:
        sim = simulate(net, inputs)
        out["sim"] = sim
        if "loss" in what:
            tg = torch.as_tensor(np.asarray(targets)) if not torch.is_tensor(targets) else targets
            out["loss"] = loss_fn(net.cfg, sim["y"], tg)
    if "flossing" in what:
        Q0t = torch.as_tensor(np.asarray(Q0, dtype=np.float64), dtype=DTYPE) if not torch.is_tensor(Q0) else Q0
        bi = net.cfg["lyapunov"]["batch_index"]
        ly = lyapunov_spectrum(net, inputs[:, bi], Q0t, jacobian_steps=jacobian_steps, create_graph=create_graph)
        out["lyap"] = ly
        out["flossing_loss"] = flossing_loss(ly["spectrum"], net.cfg["flossing"]["target"])
    return out


def _grads(value: torch.Tensor, params: Mapping[str, torch.Tensor], keys: Sequence[str]) -> Dict[str, np.ndarray]:
    ts = [params[k] for k in keys]
    gs = torch.autograd.grad(value, ts, allow_unused=True)
    return {k: (torch.zeros_like(t) if g is None else g).detach().numpy().copy() for k, t, g in zip(keys, ts, gs)}


def compute_case(case: Mapping, errors: Optional[list] = None) -> Dict[str, np.ndarray]:
    """Compute every candidate quantity of one case.

    ``case`` holds 'config' (dict or JSON string), 'params' (path -> array),
    'inputs', 'targets', optionally 'jacobian/steps' and 'lyapunov/Q0'.
    Returns golden path -> numpy array (forward/..., loss, grad/...,
    jacobian/D, lyapunov/spectrum, flossing/loss, flossing/grad/...).
    A failing section is skipped and its message appended to ``errors``
    (raised when ``errors`` is None).
    """
    cfg_raw = case["config"]
    config = json.loads(cfg_raw) if isinstance(cfg_raw, (str, bytes)) else dict(cfg_raw)
    config = normalize_config(config)
    keys = list(case["params"].keys())
    inputs = torch.as_tensor(np.asarray(case["inputs"], dtype=np.float64), dtype=DTYPE)
    targets = torch.as_tensor(np.asarray(case["targets"]))
    res: Dict[str, np.ndarray] = {}

    def section(fn, label):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            if errors is None:
                raise
            errors.append(f"{label}: {type(exc).__name__}: {exc}")

    def forward_and_grad():
        params = to_tensor_params(case["params"])
        ev = evaluate(config, params, inputs, targets, what=("loss",))
        net, sim = ev["net"], ev["sim"]
        for l, n in enumerate(net.sizes, start=1):
            if net.cell == "clif":
                res[f"forward/layer{l}/V"] = torch.stack([s[2 * l - 2] for s in sim["states"]]).detach().numpy().copy()
                res[f"forward/layer{l}/I"] = torch.stack([s[2 * l - 1] for s in sim["states"]]).detach().numpy().copy()
                res[f"forward/layer{l}/S"] = torch.stack([S[l - 1] for S in sim["S"]]).detach().numpy().copy()
            else:
                res[f"forward/layer{l}/x"] = torch.stack([s[0] for s in sim["states"]]).detach().numpy().copy()
        res["forward/readout/y"] = sim["y"].detach().numpy().copy()
        res["loss"] = np.asarray(ev["loss"].item(), dtype=np.float64)
        for k, g in _grads(ev["loss"], params, keys).items():
            res[f"grad/{k}"] = g

    def lyapunov_and_flossing():
        if "lyapunov/Q0" not in case or case["lyapunov/Q0"] is None:
            raise KeyError("no lyapunov/Q0 in the case")
        params = to_tensor_params(case["params"])
        steps = np.asarray(case.get("jacobian/steps", np.zeros(0, dtype=np.int64)))
        steps = [int(s) for s in steps.ravel()]
        fkeys = flossed_paths(config, keys)
        k_cfg = config["lyapunov"].get("k")
        k_q0 = np.shape(case["lyapunov/Q0"])[1]
        if k_cfg is not None and int(k_cfg) != k_q0:
            warnings.warn(f"config lyapunov.k = {k_cfg} but Q0 has {k_q0} columns; using Q0 as given")
        ev = evaluate(config, params, inputs, Q0=case["lyapunov/Q0"], what=("flossing",), jacobian_steps=steps, create_graph=True)
        ly, net = ev["lyap"], ev["net"]
        if "jacobian/steps" in case:
            res["jacobian/D"] = np.stack([ly["D"][s].numpy() for s in steps]) if steps else np.zeros((0, net.M, net.M))
        res["lyapunov/spectrum"] = ly["spectrum"].detach().numpy().copy()
        res["flossing/loss"] = np.asarray(ev["flossing_loss"].item(), dtype=np.float64)
        for k, g in _grads(ev["flossing_loss"], params, fkeys).items():
            res[f"flossing/grad/{k}"] = g

    section(forward_and_grad, "forward/loss/grad")
    section(lyapunov_and_flossing, "jacobian/lyapunov/flossing")
    return res


# ---------------------------------------------------------------------------
# HDF5 I/O
# ---------------------------------------------------------------------------


def _attr_str(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v.item())
    return str(v)


def read_case(group) -> dict:
    """A golden case group -> the dict ``compute_case`` takes (arrays as numpy)."""
    case = {"config": _attr_str(group.attrs["config"]), "params": {}}
    if "params" in group:

        def visit(name, obj):
            if hasattr(obj, "shape"):
                case["params"][name] = np.asarray(obj[()], dtype=np.float64)

        group["params"].visititems(visit)
    case["inputs"] = np.asarray(group["inputs"][()], dtype=np.float64)
    case["targets"] = np.asarray(group["targets"][()])
    if "jacobian/steps" in group:
        case["jacobian/steps"] = np.asarray(group["jacobian/steps"][()])
    if "lyapunov/Q0" in group:
        case["lyapunov/Q0"] = np.asarray(group["lyapunov/Q0"][()], dtype=np.float64)
    return case


def process_file(golden_path: str, candidate_path: str, cases: Optional[Sequence[str]] = None, verbose: bool = True) -> int:
    """Read every case of a golden file and write the candidate file.

    Returns 0 if every quantity of every case was computed, 1 if some section
    of some case failed (its datasets are then missing from the candidate).
    """
    import h5py

    failures = 0
    with h5py.File(golden_path, "r") as src, h5py.File(candidate_path, "w") as dst:
        fmt = _attr_str(src.attrs.get("format", ""))
        if fmt != FORMAT:
            raise ValueError(f"{golden_path}: format attribute {fmt!r}, expected {FORMAT!r}")
        version = src.attrs.get("format_version", None)
        if version is not None and int(version) != FORMAT_VERSION:
            warnings.warn(f"{golden_path}: format_version {version}, this reader knows {FORMAT_VERSION}")
        dst.attrs["format"] = FORMAT
        dst.attrs["format_version"] = np.int64(FORMAT_VERSION)
        dst.attrs["generator"] = generator_string()
        names = [n for n in src.keys() if isinstance(src[n], h5py.Group)]
        if cases:
            missing = [n for n in cases if n not in names]
            if missing:
                raise KeyError(f"cases not in {golden_path}: {missing}")
            names = [n for n in names if n in cases]
        for name in names:
            g = src[name]
            case = read_case(g)
            out = dst.create_group(name)
            out.attrs["config"] = case["config"]
            for k, v in case["params"].items():
                out.create_dataset(f"params/{k}", data=v)
            out.create_dataset("inputs", data=g["inputs"][()])
            out.create_dataset("targets", data=g["targets"][()])
            if "jacobian/steps" in g:
                out.create_dataset("jacobian/steps", data=g["jacobian/steps"][()])
            if "lyapunov/Q0" in g:
                out.create_dataset("lyapunov/Q0", data=g["lyapunov/Q0"][()])
            errors: list = []
            try:
                res = compute_case(case, errors)
            except Exception as exc:  # noqa: BLE001
                res = {}
                errors.append(f"{type(exc).__name__}: {exc}")
            for k, v in res.items():
                out.create_dataset(k, data=np.asarray(v, dtype=np.float64))
            if errors:
                failures += 1
                for e in errors:
                    print(f"[{name}] FAILED {e}", file=sys.stderr)
            elif verbose:
                msg = f"[{name}] loss={float(res['loss']):.12g}"
                if "lyapunov/spectrum" in res:
                    lam = res["lyapunov/spectrum"]
                    msg += f" lambda_1={lam[0]:.6g} floss={float(res['flossing/loss']):.6g}"
                print(msg)
    return 1 if failures else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("golden", help="golden HDF5 file (input)")
    ap.add_argument("candidate", help="candidate HDF5 file (output, overwritten)")
    ap.add_argument("--case", action="append", default=None, help="only this case (repeatable)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        return process_file(a.golden, a.candidate, cases=a.case, verbose=not a.quiet)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 2


if __name__ == "__main__":
    sys.exit(main())
