"""The instruments of analysis/ that numbers in docs/results.md come from, checked like the library's."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "analysis" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("preset", ["gf_rate_xor", "gf_binary_xor"])
def test_lag_decomposition_sums_to_the_bptt_gradient(preset, monkeypatch):
    """The lag profile of analysis/gf_gradient_use.py splits the W_rec gradient of the task loss by the lag
    its error travelled; the bins must add up to BPTT's gradient, and a wrong pairing of adjoint and
    presynaptic activity (φ(x_{s+1}) for φ(x_s)) must not."""
    from refimpl.grad.adjoint import value_and_grad
    from refimpl.training.configfile import load_preset
    from refimpl.training import Trainer

    gu = _module("gf_gradient_use")
    run = load_preset(
        preset,
        [
            "task.delta=4",
            "task.T=40",
            "output.progress=false",
            "lyapunov.every=0",
            "training.epochs=1",
            "network.layers=[12]",
            "flossing.k=4",
            "lyapunov.k=4",
            "flossing.T=20",
            "training.test_size=4",
        ],
    )
    tr = Trainer(run, None)
    u, y = tr.data.test_inputs[:, :2], tr.data.test_targets[:, :2]
    params = tr.params_for(2)
    _, grads, _ = value_and_grad(tr.cfg, params, u, y, tr.loss_cfg)
    total = sum(gu.lag_profile(tr.cfg, params, u, y, tr.loss_cfg, b, return_total=True)[1] for b in range(2))
    ref = grads["layer1/W_rec"]
    assert np.abs(total - ref).max() <= 1e-12 * np.abs(ref).max()
    shares = gu.lag_profile(tr.cfg, params, u, y, tr.loss_cfg, 0)
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)
    # a deliberately wrong decomposition fails the same check
    import refimpl.model.network as network

    real = network.simulate

    def shifted(*a, **k):
        traj = real(*a, **k)
        traj.S[0][:-1] = traj.S[0][1:].copy()
        return traj

    monkeypatch.setattr(network, "simulate", shifted)
    wrong = sum(gu.lag_profile(tr.cfg, params, u, y, tr.loss_cfg, b, return_total=True)[1] for b in range(2))
    assert np.abs(wrong - ref).max() > 1e-3 * np.abs(ref).max()
