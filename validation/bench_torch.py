"""PyTorch autograd peers of the computations that ``refimpl bench`` times.

This is the way the field computes these quantities today: float64 PyTorch on
the CPU, every derivative by autograd, the spike a ``torch.autograd.Function``
whose backward is the surrogate derivative written with differentiable torch
ops (so that a second differentiation brings in ``σ''``). It is written from
``docs/model.md`` for one clif layer of the ``engelken`` dialect
(``syn_input = new``, ``input_gain = one_minus_beta``, ``reset = zero``,
``reset_grad = detached``) with the ``fast_sigmoid`` surrogate, and imports
nothing from ``refimpl``:

* :func:`bptt` — the loss (``bce_per_step``) and its gradient by ``backward()``
  through the whole simulation;
* :func:`spectrum` — the dense one-step Jacobian ``D_t`` by autograd
  (``torch.func.jacrev`` of the one-step map, or the ``M``-row trick: one
  reverse pass through ``M`` copies of the state), ``A = D_t Q_t`` and
  ``torch.linalg.qr`` every step (docs/model.md §6, ``ons = 1``, no warm-up);
* :func:`flossing` — the same with ``create_graph=True``, the loss
  ``mean(λ²)`` and one ``backward()`` through every Jacobian, every product
  and every QR (docs/model.md §7); with ``every = c``, each segment of ``c``
  steps under ``torch.utils.checkpoint`` (recomputed in the backward pass).

Inputs and outputs are NumPy arrays; parameters use the golden-vector names
(``layer1/W_in``, ``layer1/W_rec``, ``layer1/b``, ``readout/W_out``,
``readout/b_out``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.utils.checkpoint

DTYPE = torch.float64
KEYS = ("layer1/W_in", "layer1/W_rec", "layer1/b", "readout/W_out", "readout/b_out")


class FastSigmoidSpike(torch.autograd.Function):
    """``H(x)`` forward, ``grad · 1/(1+γ|x|)²`` backward (twice differentiable, vmap-able)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, gamma):
        return (x > 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gamma = inputs
        ctx.save_for_backward(x)
        ctx.gamma = gamma

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1.0 + ctx.gamma * torch.abs(x)) ** 2, None


def spike(x, gamma):
    return FastSigmoidSpike.apply(x, gamma)


class Layer:
    """One clif layer of the engelken dialect (docs/model.md §1.1) with its readout (§1.2)."""

    def __init__(self, params: dict, *, tau_mem=10.0, tau_syn=5.0, tau_out=5.0, theta=1.0, dt=1.0, gamma=10.0,
            requires_grad=True):  # fmt: skip
        self.p = {
            k: torch.tensor(np.asarray(params[k], dtype=np.float64), dtype=DTYPE).requires_grad_(requires_grad)
            for k in KEYS
            if k in params
        }
        self.W_in, self.W_rec, self.b = self.p["layer1/W_in"], self.p["layer1/W_rec"], self.p["layer1/b"]
        self.N = self.W_rec.shape[0]
        self.alpha = math.exp(-dt / tau_syn)
        self.beta = math.exp(-dt / tau_mem)
        self.g = 1.0 - self.beta
        self.kappa = 0.0 if tau_out == 0 else math.exp(-dt / tau_out)
        self.theta, self.gamma = theta, gamma

    def step(self, V, I, S, u):
        """``(V_t, I_t, S_t, u_t) -> (V_{t+1}, I_{t+1})``; ``S_t = H(V_t - θ)`` is passed in."""
        I_new = self.alpha * I + u @ self.W_in.T + S @ self.W_rec.T + self.b
        m = self.beta * V + self.g * I_new
        return (1.0 - S.detach()) * m, I_new  # zero reset, reset_grad = detached

    def F(self, x, u):
        """The one-step map on the flat state ``x = [V, I]`` (any leading batch shape)."""
        V, I = x[..., : self.N], x[..., self.N :]
        Vn, In = self.step(V, I, spike(V - self.theta, self.gamma), u)
        return torch.cat([Vn, In], dim=-1)

    def jacobian(self, x, u, create_graph=False, method="jacrev"):
        """Dense ``D = ∂F/∂x`` at ``(x, u)`` by autograd."""
        if method == "jacrev":
            if not create_graph:
                x = x.detach()
            return torch.func.jacrev(self.F)(x, u)
        # the M-row trick: F on M copies of x, one reverse pass of the sum of the diagonal
        M = x.shape[-1]
        with torch.enable_grad():  # also inside the no-grad first pass of a reentrant checkpoint
            xs = (
                x.unsqueeze(0).repeat(M, 1)
                if create_graph and x.requires_grad
                else x.detach().unsqueeze(0).repeat(M, 1).requires_grad_(True)
            )
            ys = self.F(xs, u)
            (D,) = torch.autograd.grad(ys.diagonal().sum(), xs, create_graph=create_graph)
        return D


def _qr_positive(A):
    Q, R = torch.linalg.qr(A, mode="reduced")
    sgn = torch.where(torch.diagonal(R) < 0, -1.0, 1.0).to(A.dtype).detach()
    return Q * sgn, R * sgn.unsqueeze(1)


def bptt(params: dict, inputs: np.ndarray, targets: np.ndarray, **kw):
    """``bce_per_step`` loss and its gradient (every parameter) by autograd. Returns ``(loss, grads)``."""
    net = Layer(params, **kw)
    u = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float64))
    tg = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float64))
    T, B, _ = u.shape
    V = torch.zeros(B, net.N, dtype=DTYPE)
    I = torch.zeros(B, net.N, dtype=DTYPE)
    U = torch.zeros(B, net.p["readout/W_out"].shape[0], dtype=DTYPE)
    S = spike(V - net.theta, net.gamma)
    ys = []
    W_out, b_out = net.p["readout/W_out"], net.p["readout/b_out"]
    for t in range(T):
        V, I = net.step(V, I, S, u[t])
        S = spike(V - net.theta, net.gamma)  # S_{t+1}: read out, and fed back at t+1
        U = net.kappa * U + (1.0 - net.kappa) * (S @ W_out.T + b_out)
        ys.append(U)
    y = torch.stack(ys)
    loss = (torch.logaddexp(y, torch.zeros_like(y)) - tg * y).mean()
    loss.backward()
    return loss.item(), {k: v.grad.numpy().copy() for k, v in net.p.items()}


def _steps(net, x, Q, logsum, us, create_graph, method):
    for ut in us:
        D = net.jacobian(x, ut, create_graph=create_graph, method=method)
        Q, R = _qr_positive(D @ Q)
        logsum = logsum + torch.log(torch.diagonal(R))
        x = net.F(x, ut)
    return x, Q, logsum


def _lyapunov(net, u, Q0, create_graph, method, every=0):
    """The exponents along ``u``. ``every > 0`` (with ``create_graph``): ``torch.utils.checkpoint`` of each
    segment of ``every`` steps, so that autograd keeps only the segments' inputs and runs each segment again
    in the backward pass, as refimpl's ``checkpoint_every`` does."""
    T = u.shape[0]
    x = torch.zeros(2 * net.N, dtype=DTYPE)
    Q = torch.from_numpy(np.ascontiguousarray(Q0, dtype=np.float64))
    logsum = torch.zeros(Q.shape[1], dtype=DTYPE)
    if not (every and create_graph):
        return _steps(net, x, Q, logsum, u, create_graph, method)[2] / T
    # the reentrant variant: torch.func.jacrev refuses the saved-tensor hooks of the other one; it needs an
    # input that requires grad (the initial state here) and a loss.backward() (flossing, below)
    x.requires_grad_(True)
    for t0 in range(0, T, every):
        x, Q, logsum = torch.utils.checkpoint.checkpoint(_steps, net, x, Q, logsum, u[t0 : t0 + every], True, method,
            use_reentrant=True)  # fmt: skip
    return logsum / T


def spectrum(params: dict, inputs: np.ndarray, Q0: np.ndarray, method="jacrev", **kw):
    """The ``k = Q0.shape[1]`` exponents along ``inputs (T, n_in)`` (one trajectory), 1/step."""
    net = Layer(params, requires_grad=False, **kw)
    u = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float64))
    with torch.no_grad():
        return _lyapunov(net, u, Q0, False, method).numpy().copy()


def flossing(params: dict, inputs: np.ndarray, Q0: np.ndarray, method="jacrev", every=0, **kw):
    """Flossing loss ``mean(λ²)`` and its gradient for ``W_in, W_rec, b``. Returns ``(loss, λ, grads)``.
    ``every > 0``: segments of ``every`` steps recomputed in the backward pass (:func:`_lyapunov`)."""
    net = Layer(params, **kw)
    u = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float64))
    lam = _lyapunov(net, u, Q0, True, method, every)
    loss = (lam**2).mean()
    keys = ("layer1/W_in", "layer1/W_rec", "layer1/b")
    if every:  # reentrant checkpoints support backward() only
        loss.backward()
        grads = [net.p[k].grad for k in keys]
    else:
        grads = torch.autograd.grad(loss, [net.p[k] for k in keys])
    return loss.item(), lam.detach().numpy().copy(), {k: g.numpy().copy() for k, g in zip(keys, grads)}


def set_threads(n: int) -> None:
    """Intra-op threads of PyTorch (MKL/OpenMP)."""
    torch.set_num_threads(int(n))


def version() -> str:
    return torch.__version__
