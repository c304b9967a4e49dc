"""Bad input gets a ValueError naming the parameter and the expected form, before any work."""

import numpy as np
import pytest

from refimpl.grad import adjoint
from refimpl.dynamics import lyapunov
from refimpl.model import network
from refimpl.model.config import FlossConfig, LossConfig, LyapunovConfig, Surrogate, network_config


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(tau_mem=0.0), "tau_mem must be > 0"),
        (dict(tau_syn=-1.0), "tau_syn must be > 0"),
        (dict(dt=0.0), "dt must be > 0"),
        (dict(dt=float("nan")), "dt must be finite"),
        (dict(theta=float("inf")), "theta must be finite"),
        (dict(layers=()), "layers"),
        (dict(layers=(4, 0)), r"layers\[1\]"),
        (dict(n_in=0), "n_in"),
        (dict(cell="lif"), "cell must be one of"),
        (dict(reset="zeroo"), "did you mean 'zero'"),
        (dict(reset_grad="detach"), "reset_grad"),
        (dict(syn_input="newest"), "syn_input"),
        (dict(surrogate={"name": "fast_sigmoid", "slope": 0.0}), "surrogate.slope"),
        (dict(surrogate={"name": "relu"}), "surrogate.name"),
        (dict(readout={"tau_out": -1.0}), "readout.tau_out"),
        (dict(readout={"source": "state"}), "readout.source"),
        (dict(cell="binary", layers=(3, 3)), "exactly one entry"),
        (dict(tau_mem=(5.0, 6.0), layers=(3,)), "per-neuron"),
        (dict(lyers=(3,)), "did you mean 'layers'"),
    ],
)
def test_bad_network_config(kw, match):
    with pytest.raises(ValueError, match=match):
        network_config(**kw)


def test_bad_dialect_and_other_configs():
    with pytest.raises(ValueError, match="dialect"):
        network_config(dialect="norse")
    with pytest.raises(ValueError, match="loss.name"):
        LossConfig("bce")
    with pytest.raises(ValueError, match="lyapunov.k"):
        LyapunovConfig(k=0)
    with pytest.raises(ValueError, match="flossing.params"):
        FlossConfig(params=("W_out",))
    with pytest.raises(ValueError, match="surrogate.name"):
        Surrogate("tanh")


def test_per_neuron_time_constants():
    cfg = network_config(layers=(3,), tau_mem=(5.0, 10.0, 20.0))
    np.testing.assert_allclose(network.layers_of(cfg)[0].beta, np.exp(-1 / np.array([5.0, 10.0, 20.0])))


@pytest.fixture
def problem():
    cfg = network_config(layers=(3,), n_in=2, n_out=2)
    params = network.init_params(cfg)
    inputs = np.zeros((5, 2, 2))
    targets = np.zeros((5, 2, 2))
    return cfg, params, inputs, targets


def test_bad_arrays_are_named(problem):
    cfg, params, inputs, targets = problem
    bad = dict(params, **{"layer1/W_rec": np.zeros((3, 4))})
    with pytest.raises(ValueError, match=r"params\['layer1/W_rec'\] must have shape \(3, 3\)"):
        adjoint.value_and_grad(cfg, bad, inputs, targets, LossConfig())
    bad = dict(params, **{"layer1/b": np.array([0.0, np.nan, 0.0])})
    with pytest.raises(ValueError, match="layer1/b.*finite"):
        adjoint.value_and_grad(cfg, bad, inputs, targets, LossConfig())
    missing = {k: v for k, v in params.items() if k != "readout/b_out"}
    with pytest.raises(ValueError, match="missing \\['readout/b_out'\\]"):
        network.simulate(cfg, missing, inputs)
    with pytest.raises(ValueError, match=r"inputs must have shape \(T, B, n_in=2\)"):
        network.simulate(cfg, params, np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match="inputs must be finite"):
        network.simulate(cfg, params, np.full((5, 2, 2), np.inf))


def test_targets_must_fit_the_loss(problem):
    cfg, params, inputs, targets = problem
    with pytest.raises(ValueError, match=r"targets for bce_per_step must have shape \(T=5, B=2, n_out=2\)"):
        adjoint.value_and_grad(cfg, params, inputs, targets[:, :1], LossConfig())
    with pytest.raises(ValueError, match="must be 0 or 1"):
        adjoint.value_and_grad(cfg, params, inputs, targets + 0.5, LossConfig())
    with pytest.raises(ValueError, match=r"integer class labels of shape \(B=2,\)"):
        adjoint.value_and_grad(cfg, params, inputs, targets, LossConfig("ce_max"))
    with pytest.raises(ValueError, match="labels in \\[0, n_out=2\\)"):
        adjoint.value_and_grad(cfg, params, inputs, np.array([0, 2]), LossConfig("ce_last"))
    with pytest.raises(ValueError, match="loss.t0 must be < T = 5"):
        adjoint.value_and_grad(cfg, params, inputs, targets, LossConfig(t0=5))


def test_errors_come_before_any_work(problem, monkeypatch):
    cfg, params, inputs, targets = problem

    def boom(*a, **k):
        raise AssertionError("simulation started before validation")

    monkeypatch.setattr(network.cell, "forward", boom)
    with pytest.raises(ValueError):
        adjoint.value_and_grad(cfg, params, inputs, targets[:, :1], LossConfig())
    with pytest.raises(ValueError):
        lyapunov.spectrum(cfg, params, inputs, LyapunovConfig(k=99))
