#!/usr/bin/env python
"""Reference files, computed by refimpl, for the peer configurations that no shipped golden case has.

    python validation/peers/references.py REFERENCE.h5 [--case NAME ...]
    python validation/peers/references.py --list

This is the reference side, so unlike the adapters it imports refimpl. Each
case is a golden-format case group (docs/golden-format.md) holding the config,
the parameters, inputs and targets, and refimpl's ``forward/…``, ``loss`` and
``grad/…``. The Jacobian, Lyapunov and flossing groups are left out: the
adapters do not compute them, and several of these configurations have
``α = 0``, whose Jacobian has zero columns.

The cases (docs/peers.md explains each mapping):

* ``spyx_rlif_superspike``, ``spyx_rlif_triangular``: the switches of spyx's
  ``LIF``/``RLIF``: clif with ``τ_syn = 1e-3`` and ``dt = 1``, so that
  ``α = exp(-1000) = 0`` exactly, (new, unit, subtract), attached, with
  ``fast_sigmoid`` (spyx ``superspike``) or ``triangle`` (spyx ``triangular``).
* ``stork_lifgroup_default``: stork's ``LIFGroup`` with its defaults, the
  ``stork`` dialect, detached, ``fast_sigmoid γ = 20`` (its ``SuperSpike``).
  The shipped ``clif_stork`` covers the attached reset with stork's sigmoid.
* ``norse_subthreshold``: the engelken switches with ``fast_sigmoid γ = 1``
  and a threshold that no membrane reaches, so that no neuron ever spikes.
  Norse's reset-then-integrate and the model's zero reset then coincide, and
  ``γ = 1`` is the slope that Norse 1.1.0's ``super`` surrogate has whatever
  its ``alpha`` (see docs/peers.md).
* ``norse_subthreshold_gamma10``: the same with ``γ = 10``. Norse 1.1.0's
  ``super`` ignores ``alpha = 10``, so this measures that defect.
* ``norse_spiking``: the engelken switches with ``fast_sigmoid γ = 1`` and
  spikes: this measures the reset-then-integrate difference alone.

Every case is checked when it is built: no membrane within ``1e-6`` of ``θ``
(a rounding difference cannot flip a spike), no pre-activation within
``1e-6`` of a kink of the triangle surrogate, no near-tie in ``ce_max``, and
no spike at all in the subthreshold cases.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field

import numpy as np

MARGIN = 1e-6


@dataclass(frozen=True)
class PeerCase:
    """A config (keyword arguments of ``refimpl.model.config.network_config``), its size and its data."""

    name: str
    covers: str
    network: dict
    loss: tuple
    T: int
    B: int
    seed: int
    w_in: float = 1.0
    g_rec: float = 0.6
    bias: float = 0.0
    drive: float = 1.0
    v0: tuple = (0.0, 1.2)  # V0 ~ θ · U(v0)
    subthreshold: bool = False  # no spike anywhere (checked)
    extra: dict = field(default_factory=dict)


def _norse_case(name: str, covers: str, theta: float, slope: float, **data) -> PeerCase:
    """One of the Norse cases, which differ only in ``θ``, the fast_sigmoid slope and their data: the
    engelken switches, detached, one 6-neuron layer, bce_per_step and a spike readout τ_out=5."""
    network = dict(layers=(6,), n_in=3, n_out=2, tau_mem=10.0, tau_syn=5.0, theta=theta, dialect="engelken",
        reset_grad="detached", surrogate={"name": "fast_sigmoid", "slope": slope},
        readout={"tau_out": 5.0, "source": "spikes"})  # fmt: skip
    return PeerCase(name, covers, network, ("bce_per_step", 0), T=24, B=2, g_rec=1.0, **data)


CASES = [
    PeerCase(
        "spyx_rlif_superspike",
        "spyx LIF/RLIF switches: clif with τ_syn=1e-3 (α=0), (new, unit, subtract), attached, "
        "fast_sigmoid γ=5 (spyx superspike(5)), 2 layers, bce_per_step, spike readout τ_out=5",
        dict(
            layers=(5, 4),
            n_in=3,
            n_out=2,
            tau_mem=10.0,
            tau_syn=1e-3,
            syn_input="new",
            input_gain="unit",
            reset="subtract",
            reset_grad="attached",
            surrogate={"name": "fast_sigmoid", "slope": 5.0},
            readout={"tau_out": 5.0, "source": "spikes"},
        ),
        ("bce_per_step", 0),
        T=20,
        B=2,
        seed=201,
        w_in=1.0,
        g_rec=0.6,
        bias=-0.1,
    ),
    PeerCase(
        "spyx_rlif_triangular",
        "spyx RLIF switches with triangle γ=1.5 (spyx triangular(1.5)), per-neuron τ_mem, θ=0.8, 1 layer, "
        "ce_max t0=1, membrane readout τ_out=0",
        dict(
            layers=(6,),
            n_in=3,
            n_out=3,
            tau_mem=[8.0, 10.0, 12.0, 15.0, 20.0, 6.0],
            tau_syn=1e-3,
            theta=0.8,
            syn_input="new",
            input_gain="unit",
            reset="subtract",
            reset_grad="attached",
            surrogate={"name": "triangle", "slope": 1.5},
            readout={"tau_out": 0.0, "source": "membrane"},
        ),
        ("ce_max", 1),
        T=20,
        B=3,
        seed=202,
        w_in=1.0,
        g_rec=0.6,
        bias=0.0,
    ),
    PeerCase(
        "stork_lifgroup_default",
        "stork dialect (old, one_minus_beta, zero), detached (LIFGroup's default diff_reset=False), "
        "fast_sigmoid γ=20 (stork's SuperSpike default), 1 layer, ce_last, spike readout τ_out=5",
        dict(
            layers=(6,),
            n_in=3,
            n_out=3,
            tau_mem=10.0,
            tau_syn=5.0,
            dialect="stork",
            reset_grad="detached",
            surrogate={"name": "fast_sigmoid", "slope": 20.0},
            readout={"tau_out": 5.0, "source": "spikes"},
        ),
        ("ce_last", 0),
        T=24,
        B=2,
        seed=205,
        w_in=2.0,
        g_rec=1.0,
        bias=0.3,
    ),
    _norse_case(
        "norse_subthreshold",
        "engelken switches (new, one_minus_beta, zero), detached, fast_sigmoid γ=1, θ=4 never reached "
        "(no spike), 1 layer, bce_per_step, spike readout τ_out=5",
        theta=4.0,
        slope=1.0,
        seed=203,
        bias=0.0,
        v0=(-0.3, 0.3),
        subthreshold=True,
    ),
    _norse_case(
        "norse_subthreshold_gamma10",
        "norse_subthreshold with fast_sigmoid γ=10",
        theta=4.0,
        slope=10.0,
        seed=203,
        bias=0.0,
        v0=(-0.3, 0.3),
        subthreshold=True,
    ),
    _norse_case(
        "norse_spiking",
        "engelken switches, detached, fast_sigmoid γ=1, θ=1 with spikes, 1 layer, bce_per_step, spike readout τ_out=5",
        theta=1.0,
        slope=1.0,
        seed=204,
        w_in=2.0,
        bias=0.3,
        v0=(0.0, 0.9),
    ),
]
CASE_NAMES = [c.name for c in CASES]
BY_NAME = {c.name: c for c in CASES}


def get_case(name: str) -> PeerCase:
    """The peer case called ``name``; a ValueError that lists the cases if there is none."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown peer case {name!r}; the cases are {CASE_NAMES}") from None


def config_dict(case: PeerCase) -> dict:
    """The docs/golden-format.md config of ``case`` (refimpl fills the defaults and checks every value)."""
    from refimpl.model.config import FlossConfig, LossConfig, LyapunovConfig, network_config
    from refimpl.check.golden import config_to_dict

    cfg = network_config(**case.network)
    return config_to_dict(cfg, LossConfig(*case.loss), LyapunovConfig(k=1, seed=case.seed), FlossConfig())


def make_problem(case: PeerCase, cfg):
    """``(params, inputs, targets)`` from the case's seed: the scheme of refimpl.check.golden.make_problem,
    with the initial membrane drawn from ``θ · U(case.v0)``."""
    rng = np.random.default_rng([case.seed, 20240])
    params = {}
    for l, N in enumerate(cfg.layers):
        p = f"layer{l + 1}/"
        n_in = cfg.layer_inputs(l)
        deep = l > 0
        params[p + "W_in"] = rng.standard_normal((N, n_in)) * case.w_in / math.sqrt(n_in) * (4.0 if deep else 1.0)
        W = rng.standard_normal((N, N)) * case.g_rec / math.sqrt(N)
        np.fill_diagonal(W, 0.0)
        params[p + "W_rec"] = W
        params[p + "b"] = case.bias + (0.5 if deep else 0.0) + 0.1 * rng.standard_normal(N)
        params[p + "V0"] = cfg.theta * rng.uniform(case.v0[0], case.v0[1], N)
        params[p + "I0"] = 0.5 * rng.standard_normal(N)
    NL = cfg.layers[-1]
    params["readout/W_out"] = rng.standard_normal((cfg.n_out, NL)) / math.sqrt(NL)
    params["readout/b_out"] = 0.1 * rng.standard_normal(cfg.n_out)
    inputs = case.drive * 1.5 * rng.standard_normal((case.T, case.B, cfg.n_in))
    name = case.loss[0]
    if name.startswith("ce_"):
        targets = rng.integers(0, cfg.n_out, size=case.B).astype(np.int64)
    elif name == "bce_per_step":
        targets = (rng.random((case.T, case.B, cfg.n_out)) < 0.5).astype(np.float64)
    else:
        targets = rng.standard_normal((case.T, case.B, cfg.n_out))
    return params, inputs, targets


def _check_robust(case: PeerCase, cfg, loss, traj) -> None:
    """Raise if a rounding difference could change a spike, a surrogate kink or the ce_max step."""
    for l in range(cfg.n_layers):
        d = traj.V[l] - cfg.theta
        if np.min(np.abs(d)) < MARGIN:
            raise RuntimeError(f"{case.name}: a layer-{l + 1} membrane is within {MARGIN} of θ")
        if cfg.surrogate.name == "triangle" and np.min(np.abs(np.abs(d) - 1.0 / cfg.surrogate.slope)) < MARGIN:
            raise RuntimeError(f"{case.name}: a layer-{l + 1} pre-activation is within {MARGIN} of a kink")
        if case.subthreshold and np.any(traj.S[l]):
            raise RuntimeError(f"{case.name}: layer {l + 1} spikes, the case must stay below θ")
    if loss.name == "ce_max":
        y = np.sort(traj.y[loss.t0 :], axis=0)
        if np.min(y[-1] - y[-2]) < MARGIN:
            raise RuntimeError(f"{case.name}: near-tie in the time maximum of ce_max")


def compute_case(case: PeerCase) -> dict:
    """Config, inputs and refimpl's forward states, loss and gradients of one case: path -> array."""
    from refimpl.grad import adjoint
    from refimpl.check.golden import config_from_dict
    from refimpl.model.network import param_shapes

    d = config_dict(case)
    cfg, loss, _, _ = config_from_dict(d)
    params, inputs, targets = make_problem(case, cfg)
    value, grads, traj = adjoint.value_and_grad(cfg, params, inputs, targets, loss, store="all")
    _check_robust(case, cfg, loss, traj)
    keys = list(param_shapes(cfg))
    out = {f"params/{k}": params[k] for k in keys}
    out["inputs"], out["targets"] = inputs, targets
    for l in range(cfg.n_layers):
        p = f"forward/layer{l + 1}/"
        out[p + "V"], out[p + "I"], out[p + "S"] = traj.V[l], traj.I[l], traj.S[l]
    out["forward/readout/y"] = traj.y
    out["loss"] = np.float64(value)
    for k in keys:
        out[f"grad/{k}"] = grads[k]
    return {"config": d, "data": out}


def export(path: str, names=None) -> list:
    """Write the reference file of ``names`` (default: every case); returns the names."""
    import h5py
    from refimpl import __version__
    from refimpl.check.golden import FORMAT, FORMAT_VERSION, as_stored  # the golden files' format and dtypes

    cases = CASES if not names else [get_case(n) for n in names]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["generator"] = f"refimpl {__version__} (validation/peers/references.py)"
        for case in cases:
            res = compute_case(case)
            g = f.create_group(case.name, track_order=True)
            g.attrs["config"] = json.dumps(res["config"])
            g.attrs["description"] = case.covers
            for key, value in res["data"].items():
                g.create_dataset(key, data=as_stored(key, value), track_times=False)
    return [c.name for c in cases]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", nargs="?")
    ap.add_argument("--case", action="append", default=None)
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    a = ap.parse_args(argv)
    if a.list or not a.path:
        for c in CASES:
            print(f"{c.name:28s} T={c.T:<3d} B={c.B}  {c.covers}")
        return 0
    for name in export(a.path, a.case):
        print(f"[{name}] written to {a.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
