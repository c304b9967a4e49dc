"""The curated golden cases, how each is computed, and the export of the golden file (docs/golden.md)."""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from refimpl.model.config import DIALECTS, FlossConfig, LossConfig, LyapunovConfig, network_config
from refimpl.interrupt import poll
from refimpl.check.golden.schema import FORMAT, FORMAT_VERSION, GENERATOR, config_from_dict, config_to_dict

# ---------------------------------------------------------------------------
# the curated cases
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One golden case: a config, the problem size and the seed of its random data.

    ``drive`` scales the random inputs, ``w_in``/``g_rec``/``bias`` the
    weights (see :func:`make_problem`); ``steps`` are the Jacobian steps.
    """

    name: str
    covers: str
    config: dict
    T: int
    B: int
    seed: int
    steps: tuple = ()
    drive: float = 1.0
    w_in: float = 2.0
    g_rec: float = 1.5
    bias: float = 0.2

    def jacobian_steps(self) -> tuple:
        return self.steps or (1, self.T // 2, self.T - 1)


def _case_config(cell="clif", layers=(6,), n_in=3, n_out=2, dialect="engelken", reset=None, reset_grad="detached",
        surrogate=("fast_sigmoid", 10.0), smooth=False, readout=(5.0, None), loss=("bce_per_step", 0), k=4, ons=1,
        warmup=0, transient=0, batch_index=0, seed=0, target=0.0, floss=("W_in", "W_rec", "b"), **extra) -> dict:  # fmt: skip
    kw = dict(cell=cell, layers=tuple(layers), n_in=n_in, n_out=n_out, reset_grad=reset_grad,
        surrogate={"name": surrogate[0], "slope": surrogate[1]}, smooth=smooth,
        readout={"tau_out": readout[0], "source": readout[1] or ("spikes" if cell == "clif" else "state")},
        **extra)  # fmt: skip
    if cell == "clif":
        kw["dialect"] = dialect
        if reset is not None:
            kw["reset"] = reset
    cfg = network_config(**kw)
    return config_to_dict(cfg, LossConfig(*loss),
        LyapunovConfig(k=k, ons=ons, warmup=warmup, transient=transient, batch_index=batch_index, seed=seed),
        FlossConfig(target=target, params=floss))  # fmt: skip


#: The shipped cases. Every one is small (N ≤ 8 per layer, T ≤ 30, B ≤ 3) and
#: was chosen so that its spikes are robust: no membrane within 1e-6 of θ (a
#: rounding difference cannot flip a spike), no pre-activation within 1e-6 of
#: a kink of σ' and no near-tie in ce_max (tests/test_golden.py checks this).
CASES: list[Case] = [
    Case("clif_engelken",
        "engelken dialect (new, one_minus_beta, zero), detached, fast_sigmoid γ=10, 1 layer, bce_per_step, spike readout τ_out=5",
        _case_config(layers=(6,), k=4, seed=101), T=24, B=2, seed=1),
    Case("clif_spytorch", "spytorch dialect (old, unit, zero), detached, fast_sigmoid γ=5, 1 layer, ce_max t0=2, "
        "membrane readout τ_out=5, ons=2 warmup=3 transient=1, batch_index=1",
        _case_config(dialect="spytorch", layers=(5,), surrogate=("fast_sigmoid", 5.0), readout=(5.0, "membrane"),
        loss=("ce_max", 2), k=3, ons=2, warmup=3, transient=1, batch_index=1, seed=102, n_out=3), T=25, B=3, seed=2,
        w_in=1.0, g_rec=0.6, bias=0.0),
    Case("clif_stork",
        "stork dialect (old, one_minus_beta, zero), attached, sigmoid γ=5, 2 layers, ce_mean t0=2, membrane readout τ_out=0",
        _case_config(dialect="stork", layers=(6, 4), reset_grad="attached", surrogate=("sigmoid", 5.0),
        readout=(0.0, "membrane"), loss=("ce_mean", 2), k=4, seed=103), T=20, B=2, seed=3),
    Case("clif_subtract_attached",
        "engelken with subtract reset, attached, arctan γ=2, 2 layers, mse_per_step, spike "
        "readout τ_out=0, ons=3 warmup=2 transient=1",
        _case_config(layers=(5, 4), reset="subtract", reset_grad="attached", surrogate=("arctan", 2.0),
        readout=(0.0, "spikes"), loss=("mse_per_step", 0), k=5, ons=3, warmup=2, transient=1, seed=104), T=21, B=2,
        seed=4),
    Case("clif_no_reset_per_neuron_tau",
        "reset none, detached, gaussian γ=2, 1 layer, ce_last, spike readout τ_out=3, per-neuron τ_mem and τ_syn, dt=0.5, θ=0.8",
        _case_config(layers=(6,), reset="none", surrogate=("gaussian", 2.0), readout=(3.0, "spikes"),
        loss=("ce_last", 0), k=6, seed=105, n_out=3, dt=0.5, theta=0.8, tau_mem=(8.0, 10.0, 12.0, 15.0, 20.0, 6.0),
        tau_syn=(3.0, 5.0, 5.0, 4.0, 6.0, 2.0)), T=30, B=2, seed=5, g_rec=1.5, bias=-0.3),
    Case("clif_ignored_3layers", "zero reset with reset_grad ignored, triangle γ=1.5, 3 layers, (new, unit) gain, "
        "bce_per_step t0=3, spike readout τ_out=5, ons=2, flossing of V0 and I0 too",
        _case_config(layers=(4, 4, 3), reset="zero", input_gain="unit", reset_grad="ignored",
        surrogate=("triangle", 1.5), loss=("bce_per_step", 3), k=4, ons=2, seed=106,
        floss=("W_in", "W_rec", "b", "V0", "I0")), T=20, B=2, seed=6, w_in=1.0, g_rec=0.5, bias=0.0),
    Case("clif_smooth_sigmoid", "smooth mode, engelken, attached, sigmoid γ=4, 2 layers, mse_per_step t0=1, membrane "
        "readout τ_out=5, warmup=4, flossing target -0.05",
        _case_config(layers=(5, 4), reset_grad="attached", surrogate=("sigmoid", 4.0), smooth=True,
        readout=(5.0, "membrane"), loss=("mse_per_step", 1), k=4, warmup=4, seed=107, target=-0.05), T=22, B=2,
        seed=7),
    Case("clif_smooth_triangle_subtract",
        "smooth mode, spytorch switches with subtract reset, detached, triangle γ=1, 1 layer, ce_max, membrane readout τ_out=2",
        _case_config(dialect="spytorch", layers=(6,), reset="subtract", surrogate=("triangle", 1.0), smooth=True,
        readout=(2.0, "membrane"), loss=("ce_max", 0), k=3, seed=108), T=20, B=2, seed=8, w_in=1.0, g_rec=0.6,
        bias=0.0),
    Case("clif_smooth_fast_sigmoid_ignored",
        "smooth mode, stork switches, subtract reset with reset_grad ignored, fast_sigmoid γ=10, "
        "2 layers, bce_per_step, spike readout τ_out=5, ons=2 transient=2",
        _case_config(dialect="stork", layers=(4, 3), reset="subtract", reset_grad="ignored", smooth=True,
        loss=("bce_per_step", 0), k=4, ons=2, transient=2, seed=109), T=24, B=2, seed=9),
    Case("clif_snntorch_synaptic",
        "the switches of snnTorch's Synaptic neuron: (new, unit, subtract), detached, arctan γ=2 "
        "(snnTorch's default atan), 1 layer, mse_per_step, spike readout τ_out=4; "
        "validation/peers/snntorch_adapter.py runs snnTorch itself on it",
        _case_config(layers=(6,), input_gain="unit", reset="subtract", surrogate=("arctan", 2.0),
        readout=(4.0, "spikes"), loss=("mse_per_step", 0), k=4, seed=114), T=24, B=2, seed=15, w_in=1.0, g_rec=0.6,
        bias=-0.2),
    Case("binary_surrogate", "binary cell, fast_sigmoid γ=5, state readout τ_out=0, bce_per_step",
        _case_config(cell="binary", layers=(8,), n_in=2, surrogate=("fast_sigmoid", 5.0), readout=(0.0, "state"),
        loss=("bce_per_step", 0), k=4, seed=110), T=25, B=2, seed=10, w_in=1.0, g_rec=2.0, bias=0.0),
    Case("binary_smooth", "binary cell in smooth mode, arctan γ=2, activation readout τ_out=5, ce_mean, ons=2 "
        "warmup=3 transient=2, flossing of x0 too",
        _case_config(cell="binary", layers=(7,), n_in=2, surrogate=("arctan", 2.0), smooth=True,
        readout=(5.0, "activation"), loss=("ce_mean", 1), k=3, ons=2, warmup=3, transient=2, seed=111,
        floss=("W_in", "W_rec", "b", "x0")), T=26, B=2, seed=11, w_in=1.0, g_rec=2.0, bias=0.0),
    Case("rate_state", "rate cell (tanh), state readout τ_out=5, mse_per_step, flossing of x0 too",
        _case_config(cell="rate", layers=(8,), n_in=2, readout=(5.0, "state"), loss=("mse_per_step", 0), k=5,
        seed=112, floss=("W_in", "W_rec", "b", "x0")), T=25, B=2, seed=12, w_in=1.0, g_rec=2.0, bias=0.0),
    Case("rate_activation_full_spectrum",
        "rate cell, activation readout τ_out=0, ce_last, full spectrum k=M=6, ons=3 warmup=2 "
        "transient=1, batch_index=2, flossing target 0.1",
        _case_config(cell="rate", layers=(6,), n_in=2, n_out=3, readout=(0.0, "activation"), loss=("ce_last", 0), k=6,
        ons=3, warmup=2, transient=1, batch_index=2, seed=113, target=0.1), T=29, B=3, seed=13, w_in=1.0, g_rec=2.0,
        bias=0.0),
]  # fmt: skip

CASE_NAMES = [c.name for c in CASES]


def get_case(name: str) -> Case:
    for c in CASES:
        if c.name == name:
            return c
    raise ValueError(f"unknown case {name!r}; the cases are {CASE_NAMES}")


def make_problem(case: Case):
    """``(params, inputs, targets)`` of a case, from its own seed alone.

    ``W_in ~ N(0, w_in²/n_in)``, ``W_rec ~ N(0, g_rec²/N)`` (zero diagonal),
    ``b = bias`` plus ``N(0, 0.1²)``; deeper clif layers, which see sparse 0/1
    spikes, get ``W_in`` four times stronger and ``0.5`` more bias; initial
    states ``N(0, 0.5²)`` (``V0`` uniform in ``[0, 1.2 θ)`` so that some
    neurons start above threshold), ``W_out ~ N(0, 1/N_L)``,
    ``b_out ~ N(0, 0.1²)``; inputs ``drive · N(0, 1.5²)`` (clif) or
    ``drive · N(0, 1)``; targets: bits, normals or class labels.
    Written out here rather than borrowed, so that the golden data do not
    change when other code's random choices do.
    """
    cfg, loss, _, _ = config_from_dict(case.config)
    rng = np.random.default_rng([case.seed, 20240])
    theta = cfg.theta if cfg.cell == "clif" else 0.0
    params = {}
    for l, N in enumerate(cfg.layers):
        p = f"layer{l + 1}/"
        n_in = cfg.layer_inputs(l)
        deep = l > 0 and cfg.cell == "clif"
        params[p + "W_in"] = rng.standard_normal((N, n_in)) * case.w_in / math.sqrt(n_in) * (4.0 if deep else 1.0)
        W = rng.standard_normal((N, N)) * case.g_rec / math.sqrt(N)
        np.fill_diagonal(W, 0.0)
        params[p + "W_rec"] = W
        params[p + "b"] = case.bias + (0.5 if deep else 0.0) + 0.1 * rng.standard_normal(N)
        if cfg.cell == "clif":
            params[p + "V0"] = theta * rng.uniform(0.0, 1.2, N)
            params[p + "I0"] = 0.5 * rng.standard_normal(N)
        else:
            params[p + "x0"] = 0.5 * rng.standard_normal(N)
    NL = cfg.layers[-1]
    params["readout/W_out"] = rng.standard_normal((cfg.n_out, NL)) / math.sqrt(NL)
    params["readout/b_out"] = 0.1 * rng.standard_normal(cfg.n_out)
    scale = 1.5 if cfg.cell == "clif" else 1.0
    inputs = case.drive * scale * rng.standard_normal((case.T, case.B, cfg.n_in))
    if loss.name.startswith("ce_"):
        targets = rng.integers(0, cfg.n_out, size=case.B).astype(np.int64)
    elif loss.name == "bce_per_step":
        targets = (rng.random((case.T, case.B, cfg.n_out)) < 0.5).astype(np.float64)
    else:
        targets = rng.standard_normal((case.T, case.B, cfg.n_out))
    return params, inputs, targets


def compute_case(case: Case) -> dict:
    """Every quantity of docs/golden-format.md for one case: golden path → array (in file order).

    A case whose spectrum is degenerate, lost precision or is ill-conditioned
    (:class:`refimpl.dynamics.lyapunov.ConditioningWarning`) is refused with ``ValueError``: a
    reference whose smallest exponents are set by rounding cannot be reproduced."""
    from refimpl.dynamics import lyapunov

    suspect = (lyapunov.DegenerateSpectrumWarning, lyapunov.PrecisionWarning, lyapunov.ConditioningWarning)
    with warnings.catch_warnings():
        for w in suspect:
            warnings.simplefilter("error", w)
        try:
            return _compute_case(case)
        except suspect as exc:
            raise ValueError(f"case {case.name}: {exc}; refusing to export it") from None


def _compute_case(case: Case) -> dict:
    from refimpl.grad import adjoint
    from refimpl.dynamics import flossing, lyapunov
    from refimpl.model.network import dense_jacobian, param_shapes, simulate

    cfg, loss, lcfg, fcfg = config_from_dict(case.config)
    params, inputs, targets = make_problem(case)
    out = {}
    keys = list(param_shapes(cfg))
    for key in keys:
        out[f"params/{key}"] = params[key]
    out["inputs"] = inputs
    out["targets"] = targets
    value, grads, traj = adjoint.value_and_grad(cfg, params, inputs, targets, loss, store="all")
    for l in range(cfg.n_layers):
        p = f"forward/layer{l + 1}/"
        if cfg.cell == "clif":
            out[p + "V"], out[p + "I"], out[p + "S"] = traj.V[l], traj.I[l], traj.S[l]
        else:
            out[p + "x"] = traj.V[l]
    out["forward/readout/y"] = traj.y
    out["loss"] = np.float64(value)
    for key in keys:
        out[f"grad/{key}"] = grads[key]
    b = lcfg.batch_index
    ltraj = simulate(cfg, params, inputs[:, b : b + 1])
    steps = np.asarray(case.jacobian_steps(), dtype=np.int64)
    out["jacobian/steps"] = steps
    out["jacobian/D"] = np.stack([dense_jacobian(cfg, params, ltraj, int(t), 0) for t in steps])
    res = lyapunov.spectrum(cfg, params, inputs, lcfg)
    out["lyapunov/Q0"] = res.Q0
    out["lyapunov/spectrum"] = res.exponents
    fres = flossing.value_and_grad(cfg, params, inputs, lcfg, fcfg, Q0=res.Q0)
    out["flossing/loss"] = np.float64(fres.loss)
    for key in keys:
        if key in fres.grads:
            out[f"flossing/grad/{key}"] = fres.grads[key]
    return {k: as_stored(k, v) for k, v in out.items()}


def as_stored(path: str, value) -> np.ndarray:
    """float64, except the integer datasets: ``jacobian/steps`` and class-label ``targets``."""
    value = np.asarray(value)
    integer = path == "jacobian/steps" or (path == "targets" and np.issubdtype(value.dtype, np.integer))
    return value.astype(np.int64 if integer else np.float64)


def export(path, names: Sequence[str] | None = None) -> list:
    """Write the golden file of ``names`` (default: all of :data:`CASES`) to ``path``, atomically.

    Deterministic: fixed seeds, fixed order, no time stamps in the HDF5
    objects, so that a re-export holds identical datasets. Returns the names.
    """
    from refimpl.io import atomic_h5

    cases = CASES if names is None else [get_case(n) for n in names]
    with atomic_h5(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["generator"] = GENERATOR
        for case in cases:
            poll()  # Ctrl-C between cases (the file is written only at the end)
            data = compute_case(case)
            g = f.create_group(case.name, track_order=True)
            g.attrs["config"] = json.dumps(case.config)
            g.attrs["description"] = case.covers
            for key, value in data.items():
                g.create_dataset(key, data=value, track_times=False)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # the temporary file of atomic_h5 is private (0600)
    return [c.name for c in cases]


def coverage(cases: Sequence[Case] = None) -> dict:
    """Which value of each switch the cases use: switch → {value: [case names]}."""
    cases = CASES if cases is None else cases
    cov: dict = {}

    def add(key, value, name):
        cov.setdefault(key, {}).setdefault(value, []).append(name)

    for c in cases:
        d = c.config
        add("cell", d["cell"], c.name)
        add("surrogate", d["surrogate"]["name"], c.name)
        add("loss", d["loss"]["name"], c.name)
        add("readout.source", d["readout"]["source"], c.name)
        add("readout.tau_out", "0" if d["readout"]["tau_out"] == 0 else ">0", c.name)
        add("mode", "smooth" if d["smooth"] else "surrogate", c.name)
        ly = d["lyapunov"]
        add("lyapunov", "ons>1" if ly["ons"] > 1 else "ons=1", c.name)
        if ly["warmup"]:
            add("lyapunov", "warmup>0", c.name)
        if ly["transient"]:
            add("lyapunov", "transient>0", c.name)
        if d["cell"] == "clif":
            add("layers", "1" if len(d["layers"]) == 1 else "2-3", c.name)
            add("reset", d["reset"], c.name)
            add("reset_grad", d["reset_grad"], c.name)
            add("syn_input", d["syn_input"], c.name)
            add("input_gain", d["input_gain"], c.name)
            for name, (syn, gain, reset) in DIALECTS.items():
                if (d["syn_input"], d["input_gain"]) == (syn, gain):
                    add("dialect" if d["reset"] == reset else "dialect switches, other reset", name, c.name)
    return cov
