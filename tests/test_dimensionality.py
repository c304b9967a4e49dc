"""Gradient dimensionality (refimpl.dynamics.dimensionality) and its log in training."""

import math

import numpy as np
import pytest

from refimpl.grad import adjoint
from refimpl.model import network
from refimpl.model.config import LossConfig, network_config
from refimpl.training.configfile import from_dict
from refimpl.dynamics.dimensionality import GradientSamples, gradient_samples, participation_ratio, participation_ratio_gram
from refimpl.model.losses import loss_and_grad
from refimpl.training import Trainer, read_log

CASES = {"engelken2": dict(dialect="engelken", layers=(5, 4), surrogate={"name": "fast_sigmoid", "slope": 2.0}),
    "spytorch": dict(dialect="spytorch", layers=(6,), reset_grad="attached"),
    "stork_membrane": dict(dialect="stork", layers=(6,), readout={"tau_out": 0.0, "source": "membrane"}),
    "subtract_ignored": dict(dialect="engelken", layers=(5,), reset="subtract", reset_grad="ignored"),
    "binary": dict(cell="binary", layers=(6,), readout={"tau_out": 3.0, "source": "activation"}),
    "rate": dict(cell="rate", layers=(6,))}  # fmt: skip


def setup(case, T=25, B=3):
    kw = dict(CASES[case])
    dialect = kw.pop("dialect", None)
    cfg = network_config(dialect, n_in=3, n_out=2, **kw)
    params = network.init_params(cfg, 2, w_in=3.0, g_rec=1.5)
    rng = np.random.default_rng(5)
    u = (rng.random((T, B, 3)) < 0.4).astype(float)
    traj = network.simulate(cfg, params, u)
    _, ybar = loss_and_grad(LossConfig("mse_per_step", 3), traj.y, rng.standard_normal(traj.y.shape))
    return cfg, params, traj, ybar


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("case", sorted(CASES))
def test_samples_sum_to_the_bptt_gradient(case):
    cfg, params, traj, ybar = setup(case)
    grads = adjoint.backward(cfg, params, traj, ybar)
    gs = gradient_samples(cfg, params, traj, ybar, names=("W_rec", "W_in", "b"))
    assert gs.B == 3 and gs.T == 25
    for name, g in gs.sum().items():
        assert np.max(np.abs(grads[name])) > 0, name
        assert rel_err(g, grads[name]) < 1e-12, (name, rel_err(g, grads[name]))
    # the dense matrix, its Gram matrix and the factored Gram matrix agree
    G = gs.matrix()
    assert G.shape == (75, sum(grads[n].size for n in gs.names))
    np.testing.assert_allclose(gs.gram(), G @ G.T, rtol=1e-12, atol=1e-12 * np.abs(G @ G.T).max())
    assert gs.participation_ratio() == pytest.approx(participation_ratio(G), rel=1e-10)
    Gt = G.reshape(3, 25, -1).sum(axis=0)
    Gb = G.reshape(3, 25, -1).sum(axis=1)
    assert gs.participation_ratio("time") == pytest.approx(participation_ratio(Gt), rel=1e-10)
    assert gs.participation_ratio("batch") == pytest.approx(participation_ratio(Gb), rel=1e-10)
    for center in (True, False):  # the blockwise pass equals the stored Gram matrices
        pr = gs.participation_ratios(center=center)
        for over in ("all", "time", "batch"):
            assert pr[over] == pytest.approx(participation_ratio_gram(gs.gram(over), center=center), rel=1e-9)


def test_a_shifted_sample_set_fails_the_sum_test():
    """Pairing J_t with S_{t+1} (an off-by-one a reader could make) does not sum to the gradient."""
    cfg, params, traj, ybar = setup("engelken2")
    grads = adjoint.backward(cfg, params, traj, ybar)
    gs = gradient_samples(cfg, params, traj, ybar)
    assert rel_err(gs.sum()["layer1/W_rec"], grads["layer1/W_rec"]) < 1e-12
    shifted = {k: np.ascontiguousarray(np.swapaxes(traj.S[int(k[5]) - 1][1:], 0, 1)) for k in gs.pre}
    wrong = GradientSamples(gs.names, gs.J, shifted)
    assert rel_err(wrong.sum()["layer1/W_rec"], grads["layer1/W_rec"]) > 1e-2
    # and so does J one step off (the adjoint of I_{t+2} instead of I_{t+1})
    late = GradientSamples(gs.names, [np.concatenate([j[:, 1:], 0 * j[:, :1]], axis=1) for j in gs.J], gs.pre)
    assert rel_err(late.sum()["layer1/W_rec"], grads["layer1/W_rec"]) > 1e-2


def test_participation_ratio_of_known_sample_sets():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(50)
    rank1 = rng.standard_normal(200)[:, None] * v[None, :]
    assert participation_ratio(rank1) == pytest.approx(1.0, abs=1e-10)  # n > d: covariance
    assert participation_ratio(rank1[:20]) == pytest.approx(1.0, abs=1e-10)  # n < d: Gram matrix
    d = 20
    iso = rng.standard_normal((40000, d))
    assert participation_ratio(iso) == pytest.approx(d, rel=0.02)
    # anisotropic: eigenvalues 1 and 1/4 on two axes -> PR = (1.25)² / (1 + 1/16)
    aniso = rng.standard_normal((40000, 2)) * [1.0, 0.5]
    assert participation_ratio(aniso) == pytest.approx(1.25**2 / (1 + 1 / 16), rel=0.02)
    K = iso[:30] @ iso[:30].T
    assert participation_ratio_gram(K) == pytest.approx(participation_ratio(iso[:30]), rel=1e-12)
    assert math.isnan(participation_ratio(np.ones((5, 3))))  # no variation
    assert participation_ratio(np.ones((5, 3)), center=False) == pytest.approx(1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="G must be a"):
        participation_ratio(np.ones(3))
    with pytest.raises(ValueError, match="K must be a square"):
        participation_ratio_gram(np.ones((2, 3)))
    cfg, params, traj, ybar = setup("rate", T=5, B=1)
    with pytest.raises(ValueError, match="names entry must be one of"):
        gradient_samples(cfg, params, traj, ybar, names=("W_out",))
    with pytest.raises(ValueError, match="ybar must have the shape"):
        gradient_samples(cfg, params, traj, ybar[:-1])
    with pytest.raises(ValueError, match="over must be one of"):
        gradient_samples(cfg, params, traj, ybar).gram("steps")


def test_training_logs_the_gradient_dimensionality_with_the_spectrum(tmp_path):
    run = from_dict(
        {
            "network": {"layers": [10], "dt": 5.0, "slope": 2.0, "g_rec": 2.0, "w_in": 3.0, "tau_out": 0.0},
            "task": {"name": "delayed_xor", "T": 20, "delta": 1, "seed": 3},
            "training": {"epochs": 2, "batch_size": 4, "steps_per_epoch": 2, "test_size": 8},
            "lyapunov": {"k": 6, "every": 1, "dimensionality_batch": 4, "dimensionality_params": ["W_rec", "W_in"]},
        }
    )
    tr = Trainer(run, tmp_path).fit()
    log = read_log(tmp_path / "log.h5")
    assert log["dimensionality/epoch"].tolist() == [0, 1, 2]
    for key in ("grad_pr", "grad_pr_time", "grad_pr_batch"):
        assert np.all(np.isfinite(log[f"dimensionality/{key}"])) and np.all(log[f"dimensionality/{key}"] >= 1)
    ex = log["spectrum/exponents"]
    from refimpl.dynamics.lyapunov import kaplan_yorke

    np.testing.assert_array_equal(log["dimensionality/ky_dim"], [kaplan_yorke(e) for e in ex])
    thr = run.lyapunov.dimensionality_threshold
    assert log["dimensionality/n_slow"].tolist() == [int(np.sum(e > thr)) for e in ex]
    # the logged value is the participation ratio of the test-set samples of the current parameters
    d = tr.data
    cfg = tr.cfg
    traj = network.simulate(cfg, tr.params, d.test_inputs[:, :4])
    _, ybar = loss_and_grad(tr.loss_cfg, traj.y, d.test_targets[:, :4])
    gs = gradient_samples(cfg, tr.params, traj, ybar, names=("W_rec", "W_in"))
    assert log["dimensionality/grad_pr"][-1] == gs.participation_ratios()["all"]
    # off: no rows, and the old log layout stays readable
    run2 = run.replace("lyapunov", dimensionality=False)
    tr2 = Trainer(run2, tmp_path / "off").fit()
    assert read_log(tmp_path / "off" / "log.h5")["dimensionality/epoch"].size == 0
    assert tr2.history.dimensionality["epoch"] == []
