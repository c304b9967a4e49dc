"""Gradient dimensionality: how many directions the gradient's per-step contributions span.

BPTT (docs/model.md §5) writes the gradient of a weight as a sum over batch elements
``b`` and steps ``t`` of rank-one terms: for layer ``l``,

    ∂L/∂W_rec = Σ_b Σ_t J_{b,t} ⊗ S_{b,t},    ∂L/∂W_in = Σ_b Σ_t J_{b,t} ⊗ z_{b,t},    ∂L/∂b = Σ_b Σ_t J_{b,t}

where ``J_{b,t} = ∂L/∂I_{t+1}`` is the adjoint of the synaptic current after
step ``t`` (the quantity :func:`refimpl.grad.adjoint.layer_backward` accumulates):
``J_t = Ī_{t+1} + g ⊙ ρ̂_t ⊙ V̄_{t+1}`` for ``syn_input = new`` and
``J_t = Ī_{t+1}`` for ``old`` (docs/derivations.md §3), with ``V̄, Ī`` the full
state adjoints of :func:`refimpl.grad.measures.state_adjoints`. For binary/rate
cells ``J_t = x̄_{t+1}``. Each ``(b, t)`` term, flattened, is one *sample*;
their participation ratio

    PR = (Σ λ)² / Σ λ²        (λ: eigenvalues of the samples' covariance)

is the effective number of dimensions the gradient is built from (1 if all
steps push the same direction, ``d`` for isotropic samples in ``d``
dimensions). Related to the Lyapunov spectrum (docs/model.md §6): error signals that
travel back through the tangent map only survive along its slow directions,
so a spectrum with few exponents near zero leaves the gradient few
directions. Training logs both (docs/training.md, "Gradient dimensionality").

The participation ratio is computed from the Gram matrix of the samples when
there are fewer samples than parameters: ``PR = (tr K)² / ‖K‖_F²`` for the
centred Gram matrix ``K = H G Gᵀ H`` (its nonzero eigenvalues are those of
the covariance), and for rank-one samples ``K`` is a Hadamard product,
``(J Jᵀ) ⊙ (S Sᵀ)``, so no ``(samples × N²)`` matrix is ever formed (and
:meth:`GradientSamples.participation_ratios` never stores the whole Gram
matrix either).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.model.config import NetworkConfig
from refimpl.grad.measures import state_adjoints
from refimpl.model.network import layers_of, state_slices
from refimpl.schema import SAMPLE_PARAMS

__all__ = ["participation_ratio", "participation_ratio_gram", "GradientSamples", "gradient_samples", "SAMPLE_PARAMS"]


def participation_ratio_gram(K, *, center: bool = True) -> float:
    """``(tr K)² / ‖K‖_F²`` of a Gram matrix ``K = G Gᵀ`` (``n × n``), centred first by default.

    Equals :func:`participation_ratio` of ``G``. NaN if the samples do not
    vary (zero covariance).
    """
    K = np.asarray(K, dtype=float)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] < 1:
        raise ValueError(f"K must be a square (n, n) Gram matrix with n >= 1, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("K must be finite")
    if center:
        K = K - K.mean(axis=0, keepdims=True)
        K = K - K.mean(axis=1, keepdims=True)
    tr = float(np.trace(K))
    fro2 = float(np.sum(K * K))
    if fro2 == 0.0 or tr <= 0.0:
        return float("nan")
    return tr * tr / fro2


def participation_ratio(G, *, center: bool = True) -> float:
    """Participation ratio ``(Σλ)²/Σλ²`` of the covariance of the rows of ``G`` (samples × dims).

    Uses the ``n × n`` Gram matrix when there are fewer samples ``n`` than
    dimensions, else the ``d × d`` covariance; both give the same value.
    ``center=False`` uses the second-moment matrix instead of the covariance.
    """
    G = np.asarray(G, dtype=float)
    if G.ndim != 2 or G.shape[0] < 1 or G.shape[1] < 1:
        raise ValueError(f"G must be a (n_samples, n_dims) array with both >= 1, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError("G must be finite")
    if center:
        G = G - G.mean(axis=0, keepdims=True)
    n, d = G.shape
    C = G @ G.T if n < d else G.T @ G
    tr = float(np.trace(C))
    fro2 = float(np.sum(C * C))
    if fro2 == 0.0 or tr <= 0.0:
        return float("nan")
    return tr * tr / fro2


@dataclass
class GradientSamples:
    """Per-sample, per-step gradient terms, kept factored: term ``(b, t)`` of parameter ``name`` is
    ``J[l][b, t] ⊗ pre[name][b, t]`` (``l`` the layer of ``name``; for ``b`` the term is ``J`` itself).

    ``J[l]``: ``(B, T, N_l)`` adjoints of ``I^l_{t+1}``; ``pre[name]``: ``(B, T, n)``
    presynaptic factors (``S^l_t`` for ``W_rec``, ``z^l_t`` for ``W_in``, ones
    for ``b``). Samples are ordered ``b``-major: row ``b·T + t``.
    """

    names: tuple
    J: list
    pre: dict

    @property
    def B(self) -> int:
        return self.J[0].shape[0]

    @property
    def T(self) -> int:
        return self.J[0].shape[1]

    @staticmethod
    def layer_of(name: str) -> int:
        return int(name.split("/")[0][5:]) - 1

    def sum(self) -> dict:
        """``Σ_b Σ_t`` of the terms: the BPTT gradient of each parameter (a dict keyed by name)."""
        out = {}
        for name in self.names:
            J, P = self.J[self.layer_of(name)], self.pre[name]
            g = np.einsum("bti,btj->ij", J, P)
            out[name] = g[:, 0] if name.endswith("/b") else g
        return out

    def matrix(self) -> np.ndarray:
        """The samples as a dense ``(B·T, P)`` matrix (parameters concatenated in ``names`` order)."""
        cols = []
        for name in self.names:
            J, P = self.J[self.layer_of(name)], self.pre[name]
            cols.append(np.einsum("bti,btj->btij", J, P).reshape(self.B * self.T, -1))
        return np.concatenate(cols, axis=1)

    def gram(self, over: str = "all") -> np.ndarray:
        """Gram matrix of the samples: ``over = "all"`` (the ``B·T`` terms), ``"time"`` (``T`` samples,
        each summed over the batch) or ``"batch"`` (``B`` samples, each summed over time).

        Uses ``⟨a⊗p, a'⊗p'⟩ = (a·a')(p·p')``: a Hadamard product of two small Gram matrices.
        """
        if over not in ("all", "time", "batch"):
            raise ValueError(f"over must be one of ['all', 'time', 'batch'], got {over!r}")
        n = self.B * self.T
        K = np.zeros((n, n))
        by_layer = {}
        for name in self.names:
            by_layer.setdefault(self.layer_of(name), []).append(name)
        for l, names in by_layer.items():
            Jf = self.J[l].reshape(n, -1)
            PP = sum(self.pre[nm].reshape(n, -1) @ self.pre[nm].reshape(n, -1).T for nm in names)
            K += (Jf @ Jf.T) * PP
        if over == "all":
            return K
        K4 = K.reshape(self.B, self.T, self.B, self.T)
        return K4.sum(axis=(0, 2)) if over == "time" else K4.sum(axis=(1, 3))

    def participation_ratio(self, over: str = "all", *, center: bool = True) -> float:
        """PR of the covariance of the samples (see :meth:`gram` for ``over``)."""
        if over not in ("all", "time", "batch"):
            raise ValueError(f"over must be one of ['all', 'time', 'batch'], got {over!r}")
        return self.participation_ratios(center=center)[over]

    def participation_ratios(self, *, center: bool = True) -> dict:
        """The PR over ``"all"``, ``"time"`` and ``"batch"`` samples in one pass (a dict).

        The ``(B·T)²`` Gram matrix is never stored: it is visited in ``T × T``
        blocks (one per pair of batch elements), accumulating ``tr K``,
        ``‖K‖_F²`` and the row sums ``k = K 1``, from which the centred values
        follow, ``tr HKH = tr K − 1ᵀk/n`` and
        ``‖HKH‖_F² = ‖K‖_F² − 2 kᵀk/n + (1ᵀk)²/n²`` (``H = I − 11ᵀ/n``); the
        ``T × T`` (time) and ``B × B`` (batch) Gram matrices are sums of the blocks.
        Memory ``O(T² + B·T)``, time ``O(B² T² (N + n_pre))``.
        """
        B, T = self.B, self.T
        n = B * T
        by_layer = {}
        for name in self.names:
            by_layer.setdefault(self.layer_of(name), []).append(name)
        tr = fro = 0.0
        k = np.zeros(n)
        Kt = np.zeros((T, T))
        Kb = np.zeros((B, B))
        for b in range(B):
            for b2 in range(b, B):
                blk = np.zeros((T, T))
                for l, names in by_layer.items():
                    PP = sum(self.pre[nm][b] @ self.pre[nm][b2].T for nm in names)
                    blk += (self.J[l][b] @ self.J[l][b2].T) * PP
                s = float(blk.sum())
                if b == b2:
                    tr += float(np.trace(blk))
                    fro += float(np.sum(blk * blk))
                    k[b * T : (b + 1) * T] += blk.sum(axis=1)
                    Kt += blk
                    Kb[b, b] = s
                else:
                    fro += 2.0 * float(np.sum(blk * blk))
                    k[b * T : (b + 1) * T] += blk.sum(axis=1)
                    k[b2 * T : (b2 + 1) * T] += blk.sum(axis=0)
                    Kt += blk + blk.T
                    Kb[b, b2] = Kb[b2, b] = s
        if center:
            one_k = float(k.sum())
            tr_c = tr - one_k / n
            fro_c = fro - 2.0 * float(k @ k) / n + one_k * one_k / (n * n)
        else:
            tr_c, fro_c = tr, fro
        pr_all = tr_c * tr_c / fro_c if fro_c > 0 and tr_c > 0 else float("nan")
        return {"all": pr_all, "time": participation_ratio_gram(Kt, center=center),
            "batch": participation_ratio_gram(Kb, center=center) if B > 1 else float("nan")}  # fmt: skip


def gradient_samples(cfg: NetworkConfig, params: dict, traj, ybar, *, names=("W_rec",), layers=None) -> GradientSamples:
    """The ``(b, t)`` terms of the BPTT gradient of ``Σ_t ȳ_t·y_t`` (docs/model.md §5) with respect to ``names``.

    ``traj`` is :func:`refimpl.model.network.simulate`'s trajectory and ``ybar``
    (``(T, B, n_out)``) the loss's gradient with respect to the outputs
    (:func:`refimpl.model.losses.loss_and_grad`). ``names`` lists parameter kinds
    from ``("W_rec", "W_in", "b")``; ``layers`` the 0-based layers (default
    all). The state adjoints come from :func:`refimpl.grad.measures.state_adjoints`
    (the existing reverse pass, one trajectory at a time), so that
    ``gradient_samples(...).sum()`` equals :func:`refimpl.grad.adjoint.backward`'s
    gradients (tests/test_dimensionality.py).
    """
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f"names must be a non-empty list of parameter kinds from {list(SAMPLE_PARAMS)}, got {names!r}")
    for nm in names:
        if nm not in SAMPLE_PARAMS:
            raise ValueError(f"names entry must be one of {list(SAMPLE_PARAMS)}, got {nm!r}")
    if layers is None:
        layers = tuple(range(cfg.n_layers))
    for l in layers:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 0 <= l < cfg.n_layers:
            raise ValueError(f"layers entries must be integers in [0, {cfg.n_layers}), got {l!r}")
    ybar = np.asarray(ybar, dtype=float)
    if ybar.shape != traj.y.shape:
        raise ValueError(f"ybar must have the shape of the outputs {traj.y.shape}, got {ybar.shape}")
    T, B = traj.T, traj.inputs.shape[1]
    Ls = layers_of(cfg)
    sl = state_slices(cfg)
    J = [np.zeros((B, T, N)) for N in cfg.layers]
    for b in range(B):
        xbar = state_adjoints(cfg, params, traj, ybar, b)  # (T+1, M): x̄_0 … x̄_T
        for l in layers:
            sV, sI = sl[l]
            Vb = xbar[1:, sV]  # V̄_{t+1}, t = 0 … T-1
            Ib = xbar[1:, sI] if sI is not None else 0.0  # map cells: I is no state (α = 0)
            L = Ls[l]
            if L.syn_old:
                J[l][b] = Ib
            else:
                rho_hat = traj.lin[l].rho[:, b]  # ρ̂_t (1 for reset_grad = ignored)
                J[l][b] = Ib + L.g * rho_hat * Vb
    pre, full = {}, []
    for l in layers:
        for nm in names:
            key = f"layer{l + 1}/{nm}"
            if nm == "W_rec":
                pre[key] = np.ascontiguousarray(np.swapaxes(traj.S[l][:-1], 0, 1))  # S_t
            elif nm == "W_in":
                pre[key] = np.ascontiguousarray(np.swapaxes(traj.layer_input(l), 0, 1))  # z_t
            else:
                pre[key] = np.ones((B, T, 1))
            full.append(key)
    return GradientSamples(tuple(full), J, pre)
