"""The whole network as one map ``x_{t+1} = F(x_t, u_t)`` (docs/model.md §1.2).

Parameters are a flat ``dict`` of float64 arrays keyed like the golden-vector
paths (``layer1/W_in``, ``layer1/W_rec``, ``layer1/b``, ``layer1/V0``,
``layer1/I0`` or ``layer1/x0``, ``readout/W_out``, ``readout/b_out``), so that
gradients, parameter tangents and files all use one naming.

The tangent map ``D_t = ∂x_{t+1}/∂x_t`` of the whole stack is applied
layer by layer (:func:`apply_D`, :func:`apply_DT`) to blocks of tangent
vectors, never as a dense matrix; :func:`dense_jacobian` assembles the dense
``M×M`` matrix from the block formulas of docs/model.md §4 for tests and export only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from refimpl.model import cell
from refimpl.model.forward import forward_linearized
from refimpl.linalg.sparse import nonzeros_by_step
from refimpl.model.config import NetworkConfig
from refimpl.model.readout import kappa
from refimpl.model.surrogate import code_of

EMPTY2 = np.zeros((0, 0))
EMPTY1 = np.zeros(0)


# ---------------------------------------------------------------------------
# constants of each layer (the dialect switches as kernel arguments)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """Kernel constants of one layer; see :mod:`refimpl.model.cell`."""

    N: int
    n_in: int
    alpha: np.ndarray
    beta: np.ndarray
    g: np.ndarray
    theta: float
    syn_old: bool
    reset: int
    reset_grad: int
    act: int
    sur: int
    gamma: float
    smooth: bool

    def args(self):
        """Positional arguments shared by :func:`cell.forward` (after the weights)."""
        return (self.alpha, self.beta, self.g, self.theta, self.syn_old, self.reset, self.act, self.sur, self.gamma, self.smooth)


def layers_of(cfg: NetworkConfig) -> list[Layer]:
    """Per-layer kernel constants: the clif dialect, or the map-cell special case."""
    sur, gamma = code_of(cfg.surrogate.name), float(cfg.surrogate.slope)
    out = []
    for l, N in enumerate(cfg.layers):
        n_in = cfg.layer_inputs(l)
        if cfg.cell == "clif":
            alpha = np.broadcast_to(np.exp(-cfg.dt / np.asarray(cfg.tau_syn, float)), (N,)).copy()
            beta = np.broadcast_to(np.exp(-cfg.dt / np.asarray(cfg.tau_mem, float)), (N,)).copy()
            g = 1.0 - beta if cfg.input_gain == "one_minus_beta" else np.ones(N)
            out.append(
                Layer(
                    N,
                    n_in,
                    alpha,
                    beta,
                    g,
                    float(cfg.theta),
                    cfg.syn_input == "old",
                    ("zero", "subtract", "none").index(cfg.reset),
                    ("detached", "attached", "ignored").index(cfg.reset_grad),
                    cell.ACT_SPIKE,
                    sur,
                    gamma,
                    bool(cfg.smooth),
                )
            )
        else:
            # docs/model.md §1.3 as the clif update with α = β = 0, g = 1, θ = 0, no reset.
            act = cell.ACT_SPIKE if cfg.cell == "binary" else cell.ACT_TANH
            out.append(
                Layer(
                    N,
                    n_in,
                    np.zeros(N),
                    np.zeros(N),
                    np.ones(N),
                    0.0,
                    False,
                    cell.RESET_NONE,
                    cell.GRAD_DETACHED,
                    act,
                    sur,
                    gamma,
                    bool(cfg.smooth),
                )
            )
    return out


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------


def initial_state_names(cfg: NetworkConfig) -> tuple:
    return ("V0", "I0") if cfg.cell == "clif" else ("x0",)


def initial_state_keys(cfg: NetworkConfig) -> list:
    """``layer<l>/V0``, ``layer<l>/I0`` (or ``layer<l>/x0``) of every layer: the initial-state parameters."""
    return [f"layer{l + 1}/{nm}" for l in range(cfg.n_layers) for nm in initial_state_names(cfg)]


def param_shapes(cfg: NetworkConfig) -> dict:
    """Name → shape of every parameter (docs/golden-format.md ``params/…``)."""
    shapes = {}
    for l, N in enumerate(cfg.layers):
        p = f"layer{l + 1}/"
        shapes[p + "W_in"] = (N, cfg.layer_inputs(l))
        shapes[p + "W_rec"] = (N, N)
        shapes[p + "b"] = (N,)
        for name in initial_state_names(cfg):
            shapes[p + name] = (N,)
    shapes["readout/W_out"] = (cfg.n_out, cfg.layers[-1])
    shapes["readout/b_out"] = (cfg.n_out,)
    return shapes


def init_params(cfg: NetworkConfig, seed: int = 0, *, w_in: float = 1.0, g_rec: float = 1.0, w_out: float = 1.0,
        bias: float = 0.0, bias_spread: float = 0.0, keep_diagonal: bool = False, bias_out: float = 0.0) -> dict:  # fmt: skip
    """Gaussian initialization: ``W_in ~ N(0, w_in²/n_in)``, ``W_rec ~ N(0, g_rec²/N)``.

    ``W_rec`` has zero diagonal (no autapses) unless ``keep_diagonal``; biases
    are ``bias + bias_spread · U[0, 1)`` (the uniform part from its own random
    stream, so ``bias_spread = 0`` draws exactly the weights it always drew),
    the readout bias is ``bias_out``, the initial state is zero (docs/model.md §1.2),
    ``W_out ~ N(0, w_out²/N_L)``. The gradient-flossing reference code draws
    ``b = 0.1 · U[0, 1)``, keeps the diagonal and starts the readout bias at
    0.001 (docs/training.md, "The published protocol").
    """
    rng = np.random.default_rng(seed)
    spread_rng = np.random.default_rng([seed, 1])
    params = {}
    for name, shape in param_shapes(cfg).items():
        kind = name.split("/")[1]
        if kind == "W_in":
            params[name] = rng.standard_normal(shape) * w_in / np.sqrt(shape[1])
        elif kind == "W_rec":
            W = rng.standard_normal(shape) * g_rec / np.sqrt(shape[0])
            if not keep_diagonal:
                np.fill_diagonal(W, 0.0)
            params[name] = W
        elif kind == "W_out":
            params[name] = rng.standard_normal(shape) * w_out / np.sqrt(shape[1])
        elif kind == "b":
            params[name] = np.full(shape, float(bias))
            if bias_spread:
                params[name] = params[name] + bias_spread * spread_rng.random(shape)
        elif kind == "b_out":
            params[name] = np.full(shape, float(bias_out))
        else:
            params[name] = np.zeros(shape)
    return params


def relaxed_initial_state(cfg: NetworkConfig, params: dict, *, slots: int = 1, steps: int = 100,
        scale: float = 1.0, seed: int = 0) -> dict:  # fmt: skip
    """Initial states reached by running the network freely (no input) from a random state.

    Every layer starts from ``V ~ N(0, scale²)`` (clif: ``I = 0``) in each of
    ``slots`` independent copies, and the autonomous map ``x_{t+1} = F(x_t, 0)``
    runs for ``steps`` steps (docs/model.md §1.2): the result lies on the network's
    own attractor rather than at the origin. This is ``relaxIC`` of the
    gradient-flossing reference code (``x = randn(N, B)``; 100 steps of
    ``x = J tanh(x) + b``). Returns ``{"layer1/x0": (slots, N), …}``
    (clif: ``V0`` and ``I0``).
    """
    rng = np.random.default_rng([seed, 2])
    p = dict(params)
    names = initial_state_names(cfg)
    for l, N in enumerate(cfg.layers):
        pre = f"layer{l + 1}/"
        p[pre + names[0]] = scale * rng.standard_normal((slots, N))
        if len(names) == 2:
            p[pre + names[1]] = np.zeros((slots, N))
    if steps == 0:
        return {k: p[k] for k in p if k.split("/")[1] in names}
    traj = simulate(cfg, p, np.zeros((steps, slots, cfg.n_in)))
    out = {}
    for l in range(cfg.n_layers):
        pre = f"layer{l + 1}/"
        out[pre + names[0]] = np.ascontiguousarray(traj.V[l][-1])
        if len(names) == 2:
            out[pre + names[1]] = np.ascontiguousarray(traj.I[l][-1])
    return out


class ScaleWarning(UserWarning):
    """A parameter so large that spikes saturate and tangent products near float64's range."""


#: entries of a parameter above this raise :class:`ScaleWarning` (initializations are O(1)–O(10); at 1e6 a
#: single recurrent step multiplies tangent vectors by ~1e6, so k exponents span ~14 per step)
PARAM_SCALE_LIMIT = 1e6


def check_params(cfg: NetworkConfig, params: dict, name: str = "params") -> dict:
    """Validate names, shapes and finiteness; return float64 C-contiguous copies.

    Entries beyond :data:`PARAM_SCALE_LIMIT` in magnitude are allowed but warned about
    (:class:`ScaleWarning`), naming the parameter."""
    if not isinstance(params, dict):
        raise ValueError(f"{name} must be a dict of arrays keyed like 'layer1/W_in', got {type(params).__name__}")
    shapes = param_shapes(cfg)
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes))
    if missing or extra:
        raise ValueError(f"{name} keys do not fit the network: missing {missing}, unexpected {extra}")
    out = {}
    state_keys = set(initial_state_keys(cfg))
    for key, shape in shapes.items():
        arr = np.asarray(params[key])
        if key in state_keys and arr.ndim == 2 and arr.shape[1:] == shape:
            pass  # one initial state per trajectory (B, N); the batch is checked against the inputs
        elif arr.shape != shape:
            raise ValueError(f"{name}[{key!r}] must have shape {shape}, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}[{key!r}] must be finite numbers")
        out[key] = np.ascontiguousarray(arr, dtype=np.float64)
        big = float(np.max(np.abs(out[key]))) if out[key].size else 0.0
        if big > PARAM_SCALE_LIMIT:
            warnings.warn(
                f"{name}[{key!r}] has entries up to {big:.1e} (> {PARAM_SCALE_LIMIT:.0e}): spikes "
                f"saturate and tangent products approach float64's range, so exponents and gradients "
                f"at this scale say little about the network; check how {key} was scaled",
                ScaleWarning,
                stacklevel=3,
            )
    return out


def check_inputs(cfg: NetworkConfig, u, name: str = "inputs") -> np.ndarray:
    """Inputs must be a finite ``(T, B, n_in)`` array with ``T, B >= 1``."""
    u = np.asarray(u)
    if u.ndim != 3 or u.shape[2] != cfg.n_in or u.shape[0] < 1 or u.shape[1] < 1:
        raise ValueError(f"{name} must have shape (T, B, n_in={cfg.n_in}) with T, B >= 1, got {u.shape}")
    if not np.issubdtype(u.dtype, np.number) or not np.all(np.isfinite(u)):
        raise ValueError(f"{name} must be finite numbers")
    return np.ascontiguousarray(u, dtype=np.float64)


def layer_params(cfg: NetworkConfig, params: dict, l: int):
    """``W_in, W_rec, b, V0, I0`` of layer ``l`` (0-based); map cells get ``I0 = 0``."""
    p = f"layer{l + 1}/"
    if cfg.cell == "clif":
        V0, I0 = params[p + "V0"], params[p + "I0"]
    else:
        V0 = params[p + "x0"]
        I0 = np.zeros(V0.shape)
    return params[p + "W_in"], params[p + "W_rec"], params[p + "b"], V0, I0


# ---------------------------------------------------------------------------
# forward pass
# ---------------------------------------------------------------------------


class Linearization(NamedTuple):
    """The coefficients of a layer's tangent map along a trajectory (docs/model.md §4, ``cell``'s docstring),
    each ``(T+1, B, N)``: ``s = φ'(V - θ)``, ``s2 = φ''(V - θ)``, ``m`` the membrane before the reset,
    ``rho`` = ρ̂ (ρ, or 1 for reset_grad = ignored), ``c`` the diagonal of the reset term E_t.

    A trajectory simulated with ``store="bptt"`` has ``s2 = m = None``, ``rho = None`` (it follows from
    ``S``: :func:`refimpl.model.cell.reset_rho`) and ``c = None`` unless the reset's gradient is attached."""

    s: np.ndarray
    s2: np.ndarray
    m: np.ndarray
    rho: np.ndarray
    c: np.ndarray


@dataclass
class Trajectory:
    """A simulated batch: per layer ``V, I, S`` ``(T+1, B, N)`` and its input ``Z`` ``(T, B, n_in)``; readout
    ``U (T+1, B, n_out)``, ``y (T, B, n_out)``.

    ``lin[l]`` is layer ``l``'s :class:`Linearization` ``(s, s2, m, rho, c)``, the coefficients of its
    tangent map; ``readout_s`` is the readout's source ``s_t``.
    """

    inputs: np.ndarray
    Z: list
    V: list
    I: list
    S: list
    lin: list
    readout_s: np.ndarray
    U: np.ndarray
    y: np.ndarray
    #: per layer, the nonzeros of its input ``Z[l]`` and of its spikes ``S[l]``, step by step
    #: (:func:`refimpl.linalg.sparse.nonzeros_by_step`), as the forward pass found them; ``None``: not kept
    Z_nz: list | None = None
    S_nz: list | None = None

    @property
    def T(self) -> int:
        return self.inputs.shape[0]

    def layer_input(self, l: int) -> np.ndarray:
        """``z^l_t`` for ``t = 0 … T-1``: ``u`` for layer 1, else ``S^{l-1}_t``."""
        return self.Z[l]

    def nonzeros(self, l: int) -> tuple:
        """``((ptr, idx) of Z[l], (ptr, idx) of S[l])``: the listed nonzeros, found again if not kept."""
        if self.Z_nz is None:
            return nonzeros_by_step(self.Z[l]), nonzeros_by_step(self.S[l])
        return self.Z_nz[l], self.S_nz[l]


def readout_source(cfg: NetworkConfig, V, S) -> np.ndarray:
    """``s_t`` read by the readout (docs/model.md §1.2): spikes/activation ``S`` or membrane/state ``V``."""
    return S if cfg.readout.source in ("spikes", "activation") else V


#: what :func:`simulate` keeps over time: everything, or what BPTT reads
STORE = ("all", "bptt")


def simulate(cfg: NetworkConfig, params: dict, u, *, check: bool = True, store: str = "all") -> Trajectory:
    """Run the network on inputs ``u`` ``(T, B, n_in)``; also linearize it.

    ``store="bptt"`` keeps only what the reverse pass of BPTT reads (``V, S`` and ``s, ρ̂, c``): the
    trajectory's ``I`` and the linearization's ``s2, m`` are then ``None`` (docs/performance.md).
    """
    if store not in STORE:
        raise ValueError(f"store must be one of {list(STORE)}, got {store!r}")
    if check:
        params = check_params(cfg, params)
        u = check_inputs(cfg, u)
    from refimpl.model.readout import forward as readout_forward

    Ls = layers_of(cfg)
    Zs, Vs, Is, Ss, lins, Z_nz, S_nz = [], [], [], [], [], [], []
    z = u = np.ascontiguousarray(u)  # one kernel specialization: C-contiguous inputs
    z_nz = nonzeros_by_step(z)
    for l, L in enumerate(Ls):
        Zs.append(z)
        Z_nz.append(z_nz)
        W_in, W_rec, b, V0, I0 = layer_params(cfg, params, l)
        # the forward pass and its linearization in one pass
        B = z.shape[1]
        V0, I0 = cell.initial_states(V0, B), cell.initial_states(I0, B)
        V, I, S, *lin, S_ptr, S_idx = forward_linearized(z, *z_nz, V0, I0, W_in, W_rec, b, L.alpha, L.beta, L.g,
            L.theta, L.syn_old, L.reset, L.reset_grad, L.act, L.sur, L.gamma, L.smooth, store == "all")  # fmt: skip
        if store != "all":  # what was not kept: the kernel's scratch rows, or arrays without steps
            I, lin[1], lin[2] = None, None, None
            lin[3:] = [a if len(a) else None for a in lin[3:]]
        lins.append(Linearization(*lin))
        Vs.append(V), Is.append(I), Ss.append(S)
        # the next layer's input: S_0 … S_{T-1} (a view: S is C-contiguous) and the same list, whose last
        # step it never reads
        z, z_nz = S[:-1], (S_ptr, S_idx)
        S_nz.append(z_nz)
    rs = readout_source(cfg, Vs[-1], Ss[-1])
    U, y = readout_forward(rs, params["readout/W_out"], params["readout/b_out"], kappa(cfg))
    return Trajectory(u, Zs, Vs, Is, Ss, lins, rs, U, y, Z_nz, S_nz)


def select(traj: Trajectory, b: int) -> Trajectory:
    """The sub-trajectory of batch element ``b`` (keeps a batch axis of size 1)."""
    sl = slice(b, b + 1)

    def part(a):
        return None if a is None else np.ascontiguousarray(a[:, sl])

    return Trajectory(traj.inputs[:, sl], [part(z) for z in traj.Z], [part(v) for v in traj.V],
        [part(i) for i in traj.I], [part(s) for s in traj.S], [Linearization(*map(part, lin)) for lin in traj.lin],
        traj.readout_s[:, sl], traj.U[:, sl], traj.y[:, sl])  # fmt: skip


# ---------------------------------------------------------------------------
# state vectors: x = [V^1, I^1, V^2, I^2, …] (docs/model.md §1.2)
# ---------------------------------------------------------------------------


def state_slices(cfg: NetworkConfig) -> list:
    """Per layer, the slices of ``V`` and ``I`` (``None`` for map cells) in ``x``."""
    out, off = [], 0
    for N in cfg.layers:
        if cfg.cell == "clif":
            out.append((slice(off, off + N), slice(off + N, off + 2 * N)))
            off += 2 * N
        else:
            out.append((slice(off, off + N), None))
            off += N
    return out


def unpack(cfg: NetworkConfig, X: np.ndarray) -> list:
    """Rows ``X (K, M)`` of state vectors → per layer contiguous ``(V-part, I-part)`` blocks."""
    blocks = []
    for sv, si in state_slices(cfg):
        qV = np.ascontiguousarray(X[:, sv])
        qI = np.ascontiguousarray(X[:, si]) if si is not None else np.zeros_like(qV)
        blocks.append((qV, qI))
    return blocks


def pack(cfg: NetworkConfig, blocks: list) -> np.ndarray:
    """Inverse of :func:`unpack`: per-layer blocks → rows ``(K, M)``."""
    parts = []
    for qV, qI in blocks:
        parts.append(qV)
        if cfg.cell == "clif":
            parts.append(qI)
    return np.concatenate(parts, axis=1)


def initial_state(cfg: NetworkConfig, params: dict) -> np.ndarray:
    """``x_0`` as a vector of size ``M``."""
    return pack(cfg, [tuple(a[None] for a in layer_params(cfg, params, l)[3:5]) for l in range(cfg.n_layers)])[0]


def state_at(cfg: NetworkConfig, traj: Trajectory, t: int, b: int = 0) -> np.ndarray:
    """``x_t`` of batch element ``b`` as a vector of size ``M``."""
    return pack(cfg, [(traj.V[l][t, b][None], traj.I[l][t, b][None]) for l in range(cfg.n_layers)])[0]


# ---------------------------------------------------------------------------
# the tangent map of the whole stack at one step, on blocks of vectors
# ---------------------------------------------------------------------------


def apply_D(cfg, Ls, params, traj, t, blocks, b=0, want_dm=False, dparams=None):
    """``D_t Q`` for the rows of ``blocks`` (one trajectory ``b``, ``K`` rows).

    With ``dparams`` (a parameter tangent, ``K = 1``) the image also gets
    ``∂F/∂θ · θ̇``. Returns the image blocks, and with ``want_dm`` also the
    per-layer ``dm`` (the tangent of ``m_t``) that the flossing kernels need.
    """
    K = blocks[0][0].shape[0]
    bs = slice(b, b + 1)
    out, dms = [], []
    for l, L in enumerate(Ls):
        s, _, _, rho, c = traj.lin[l]
        W_in, W_rec = params[f"layer{l + 1}/W_in"], params[f"layer{l + 1}/W_rec"]
        qV, qI = blocks[l]
        dz = blocks[l - 1][0] * traj.lin[l - 1].s[t, b] if l > 0 else EMPTY2
        if dparams is None:
            P = EMPTY2
        else:
            z_t = traj.layer_input(l)[t, bs]
            P = cell.param_tangent(z_t, traj.S[l][t, bs], dparams[f"layer{l + 1}/W_in"],
                dparams[f"layer{l + 1}/W_rec"], dparams[f"layer{l + 1}/b"])  # fmt: skip
        aV, aI, dm = np.empty((K, L.N)), np.empty((K, L.N)), np.empty((K, L.N))
        cell.jvp_step(K, s[t, bs], rho[t, bs], c[t, bs], L.alpha, L.beta, L.g, L.syn_old, W_in, W_rec, qV, qI, dz, aV, aI, dm, P)
        out.append((aV, aI))
        dms.append(dm)
    return (out, dms) if want_dm else out


def apply_DT(cfg, Ls, params, traj, t, blocks_bar, b=0, mbar_extra=None, grads=None):
    """``D_tᵀ W`` for the rows of ``blocks_bar`` (adjoint vectors at ``t+1``).

    With ``grads`` (a dict like ``params``, ``K = 1``) the parameter gradients
    ``(∂F/∂θ)ᵀ W`` are accumulated into it; ``mbar_extra`` (per layer, rows)
    is an adjoint arriving directly at ``m_t`` (see :func:`cell.vjp_step`).
    """
    K = blocks_bar[0][0].shape[0]
    bs = slice(b, b + 1)
    Vb = [np.zeros((K, L.N)) for L in Ls]
    Ib = [np.zeros((K, L.N)) for L in Ls]
    Sb = [np.zeros((K, L.N)) for L in Ls]
    for l, L in enumerate(Ls):
        _, _, _, rho, c = traj.lin[l]
        p = f"layer{l + 1}/"
        W_in, W_rec = params[p + "W_in"], params[p + "W_rec"]
        zbar = Sb[l - 1] if l > 0 else EMPTY2  # z^l_t = S^{l-1}_t
        aV, aI = blocks_bar[l]
        extra = EMPTY2 if mbar_extra is None else mbar_extra[l]
        if grads is None:
            z_t, S_t, gW_in, gW_rec, gb = EMPTY2, EMPTY2, EMPTY2, EMPTY2, EMPTY1
        else:
            z_t, S_t = traj.layer_input(l)[t, bs], traj.S[l][t, bs]
            gW_in, gW_rec, gb = grads[p + "W_in"], grads[p + "W_rec"], grads[p + "b"]
        cell.vjp_step(K, rho[t, bs], c[t, bs], L.alpha, L.beta, L.g, L.syn_old, W_in, W_rec, aV, aI, extra, Vb[l],
            Ib[l], Sb[l], zbar, z_t, S_t, gW_in, gW_rec, gb)  # fmt: skip
    for l in range(len(Ls)):
        cell.spike_to_membrane(K, traj.lin[l].s[t, bs], Sb[l], Vb[l])
    return [(Vb[l], Ib[l]) for l in range(len(Ls))]


def dense_jacobian(cfg: NetworkConfig, params: dict, traj: Trajectory, t: int, b: int = 0) -> np.ndarray:
    """The dense ``D_t`` (``M×M``, state order of docs/model.md §1.2), for tests and export.

    Assembled block by block from the formulas of docs/model.md §4 and the forward
    values ``V_t, I_t, I_{t+1}, S_t`` alone, independently of the structured
    kernels, so that the two can check each other.
    """
    Ls = layers_of(cfg)
    M2 = 2 * sum(cfg.layers)
    D = np.zeros((M2, M2))
    offs = np.cumsum([0] + [2 * N for N in cfg.layers])
    from refimpl.model.surrogate import sigma_prime_v

    for l, L in enumerate(Ls):
        V, I, S = traj.V[l][t, b], traj.I[l][t, b], traj.S[l][t, b]
        I_next = traj.I[l][t + 1, b]
        if L.act == cell.ACT_TANH:
            s = 1.0 / np.cosh(V) ** 2
        else:
            s = sigma_prime_v(V - L.theta, L.sur, L.gamma)
        m = L.beta * V + L.g * (I if L.syn_old else I_next)
        zero_reset = L.reset == cell.RESET_ZERO
        rho = 1.0 - S if zero_reset and L.reset_grad != cell.GRAD_IGNORED else np.ones(L.N)
        if L.reset_grad == cell.GRAD_ATTACHED and zero_reset:
            E = -m * s
        elif L.reset_grad == cell.GRAD_ATTACHED and L.reset == cell.RESET_SUBTRACT:
            E = -L.theta * s
        else:
            E = np.zeros(L.N)
        W_rec = params[f"layer{l + 1}/W_rec"]
        iV, iI = slice(offs[l], offs[l] + L.N), slice(offs[l] + L.N, offs[l + 1])
        D[iI, iV] = W_rec * s[None, :]
        D[iI, iI] = np.diag(L.alpha)
        if L.syn_old:
            D[iV, iV] = np.diag(rho * L.beta + E)
            D[iV, iI] = np.diag(rho * L.g)
        else:
            D[iV, iV] = rho[:, None] * (np.diag(L.beta) + L.g[:, None] * W_rec * s[None, :]) + np.diag(E)
            D[iV, iI] = np.diag(rho * L.g * L.alpha)
        if l > 0:
            Lp = Ls[l - 1]
            Vp = traj.V[l - 1][t, b]
            sp = sigma_prime_v(Vp - Lp.theta, Lp.sur, Lp.gamma)
            W_in = params[f"layer{l + 1}/W_in"]
            jV = slice(offs[l - 1], offs[l - 1] + Lp.N)
            D[iI, jV] = W_in * sp[None, :]
            if not L.syn_old:
                D[iV, jV] = (rho * L.g)[:, None] * W_in * sp[None, :]
    if cfg.cell != "clif":
        N = cfg.layers[0]
        return D[:N, :N].copy()
    return D


def step(cfg: NetworkConfig, params: dict, x: np.ndarray, u_t: np.ndarray) -> np.ndarray:
    """One step ``x_{t+1} = F(x_t, u_t)`` from an arbitrary state vector (size ``M``).

    Used by the direct two-trajectory estimate of λ₁; the batched simulation
    is :func:`simulate`.
    """
    Ls = layers_of(cfg)
    blocks = unpack(cfg, np.asarray(x, float)[None])
    z = np.ascontiguousarray(np.asarray(u_t, float).reshape(1, 1, -1))
    out = []
    for l, L in enumerate(Ls):
        W_in, W_rec, b, _, _ = layer_params(cfg, params, l)
        V, I, S = cell.forward(z, blocks[l][0][:1], blocks[l][1][:1], W_in, W_rec, b, *L.args())
        out.append((V[1], I[1]))
        z = np.ascontiguousarray(S[:1])  # S^l at the start of the step feeds layer l+1
    return pack(cfg, out)[0]
