"""Training loop, flossing schedules, logs, checkpoints and resume (refimpl.training, refimpl.training.schedules)."""

import math

import h5py
import numpy as np
import pytest

from refimpl.grad import adjoint
from refimpl.model import network
from refimpl.training import schedules
from refimpl.model.config import LossConfig, network_config
from refimpl.training.configfile import from_dict
from refimpl.training.schedules import ScheduleConfig, ScheduleState
from refimpl.training import TaskData, Trainer, accuracy, error_norm_vs_lag, read_log, state_adjoints


def tiny(**sections):
    """A run that trains in well under a second per epoch."""
    d = {"network": {"layers": [12], "dt": 5.0, "slope": 2.0, "g_rec": 2.0, "w_in": 3.0, "tau_out": 0.0},
        "task": {"name": "delayed_xor", "T": 24, "delta": 1, "seed": 3},
        "training": {"epochs": 4, "batch_size": 8, "steps_per_epoch": 3, "test_size": 16, "lr": 1e-2},
        "flossing": {"k": 3, "lr": 0.02}, "lyapunov": {"k": 4, "every": 1}, "output": {"checkpoint_every": 1}}  # fmt: skip
    for sec, kv in sections.items():
        d.setdefault(sec, {}).update(kv)
    return from_dict(d)


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------


def test_accuracy_bits_and_classes():
    y = np.array([[[1.0]], [[-1.0]], [[2.0]], [[-0.5]]])  # (T=4, B=1, 1)
    t = np.array([[[0.0]], [[0.0]], [[1.0]], [[1.0]]])
    assert accuracy(LossConfig("bce_per_step", 0), y, t) == 0.5  # y>0 at t=0 wrong, t=3 wrong
    assert accuracy(LossConfig("bce_per_step", 1), y, t) == pytest.approx(2 / 3)
    assert accuracy(LossConfig("mse_per_step", 2), np.full((4, 1, 1), 0.6), t) == 1.0
    yc = np.zeros((3, 2, 3))
    yc[1, 0, 2] = 5.0  # sample 0: class 2 by max
    yc[:, 1, 1] = 1.0  # sample 1: class 1 everywhere
    labels = np.array([2, 0])
    assert accuracy(LossConfig("ce_max", 0), yc, labels) == 0.5
    assert accuracy(LossConfig("ce_last", 0), yc, labels) == 0.0


@pytest.mark.parametrize("kind", ["clif2", "clif_membrane", "binary", "rate"])
def test_state_adjoints_end_in_initial_state_gradient(kind):
    """x̄_0 of the per-step adjoint recursion is ∂L/∂x_0 from BPTT (batch of one)."""
    if kind == "clif2":
        cfg = network_config("engelken", layers=(5, 4), n_in=2, n_out=2, surrogate={"name": "fast_sigmoid", "slope": 2.0})
    elif kind == "clif_membrane":
        cfg = network_config("stork", layers=(6,), n_in=2, n_out=1, readout={"tau_out": 0.0, "source": "membrane"})
    else:
        cfg = network_config(cell=kind, layers=(6,), n_in=2, n_out=2, readout={"tau_out": 3.0, "source": "activation"})
    params = network.init_params(cfg, 1, w_in=3.0, g_rec=1.5)
    u = np.random.default_rng(0).random((15, 1, 2)) < 0.5
    traj = network.simulate(cfg, params, u.astype(float))
    ybar = np.random.default_rng(1).standard_normal(traj.y.shape)
    grads = adjoint.backward(cfg, params, traj, ybar)
    xbar = state_adjoints(cfg, params, traj, ybar)
    expect = network.initial_state(cfg, {k: grads[k] if k.split("/")[1] in ("V0", "I0", "x0") else v for k, v in params.items()})
    np.testing.assert_allclose(xbar[0], expect, rtol=1e-12, atol=1e-14)
    assert xbar.shape == (16, cfg.state_size)


def test_error_norm_vs_lag_shape_and_origin():
    run = tiny()
    tr = Trainer(run)
    d = tr.data
    lags, norms = error_norm_vs_lag(tr.cfg, tr.params, d.test_inputs, d.test_targets, tr.loss_cfg, batch=3)
    T = d.test_inputs.shape[0]
    assert lags.tolist() == list(range(T + 1)) and norms.shape == (3, T + 1)
    assert np.all(np.isfinite(norms)) and np.all(norms[:, 1] > 0)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def test_data_is_a_function_of_seed_and_counters():
    a, b = TaskData(tiny()), TaskData(tiny())
    np.testing.assert_array_equal(a.train_batch(2, 1)[0], b.train_batch(2, 1)[0])
    assert not np.array_equal(a.train_batch(2, 1)[0], a.train_batch(2, 0)[0])
    assert not np.array_equal(a.train_batch(1, 1)[0], a.train_batch(2, 1)[0])
    np.testing.assert_array_equal(a.floss_input(5), b.floss_input(5))
    assert a.floss_input(5).shape == (24, 1, 2)
    c = TaskData(tiny(task={"seed": 4}))
    assert not np.array_equal(a.test_inputs, c.test_inputs)
    # the test set is never a training batch
    assert not any(np.array_equal(a.test_inputs[:, :8], a.train_batch(e, s)[0]) for e in range(3) for s in range(3))


def test_fixed_data_reshuffles_each_epoch():
    run = tiny(training={"data": "fixed", "train_size": 20})
    d = TaskData(run)
    assert d.steps_per_epoch() == 2  # 20 // 8, the last 4 are dropped
    x0, x1 = d.train_batch(0, 0)[0], d.train_batch(1, 0)[0]
    assert x0.shape == (24, 8, 2) and not np.array_equal(x0, x1)
    with pytest.raises(ValueError, match="train_size"):
        tiny(training={"data": "fixed", "train_size": 4})


def test_randman_split_is_stratified():
    run = from_dict(
        {
            "network": {"layers": [8]},
            "task": {
                "name": "randman",
                "n_classes": 3,
                "n_units": 5,
                "n_steps": 12,
                "dim_manifold": 1,
                "alpha": 2.0,
                "samples_per_class": 4,
                "test_samples_per_class": 2,
                "seed": 1,
            },
            "training": {"batch_size": 4},
            "lyapunov": {"k": 2},
        }
    )
    d = TaskData(run)
    assert np.bincount(d.train_targets).tolist() == [4, 4, 4]
    assert np.bincount(d.test_targets).tolist() == [2, 2, 2]
    assert d.steps_per_epoch() == 3
    assert run.n_in == 5 and run.n_out == 3


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------


def test_training_reduces_the_loss():
    run = tiny(network={"layers": [24]},
        training={"epochs": 15, "steps_per_epoch": 5, "test_size": 32, "lr": 2e-2}, lyapunov={"every": 0})  # fmt: skip
    tr = Trainer(run).fit()
    loss = tr.history.rows["test_loss"]
    acc = tr.history.rows["test_acc"]
    assert len(loss) == 16
    assert loss[-1] < loss[0] - 0.2, loss
    assert acc[-1] > 0.75, acc


def _compare_logs(a, b):
    assert set(a) == set(b)
    for key in a:
        if key.endswith(("wall_time", "epoch_time")):
            continue
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _compare_checkpoints(pa, pb):
    with h5py.File(pa) as fa, h5py.File(pb) as fb:
        for grp in ("params", "adam/train/m", "adam/train/v", "adam/floss/m", "adam/floss/v"):
            ka = sorted(fa[grp].keys()) if grp == "params" else None
            if ka is not None:
                assert ka == sorted(fb[grp].keys())
        da = {}
        fa.visititems(lambda n, o: da.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        db = {}
        fb.visititems(lambda n, o: db.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        assert set(da) == set(db)
        for key in da:
            if key.endswith(("wall_time", "epoch_time")):
                continue
            np.testing.assert_array_equal(da[key], db[key], err_msg=key)
        for attr in ("epoch", "floss_counter", "schedule_state"):
            assert fa.attrs[attr] == fb.attrs[attr]
        assert fa["adam/train"].attrs["t"] == fb["adam/train"].attrs["t"]
        assert fa["adam/floss"].attrs["t"] == fb["adam/floss"].attrs["t"]


FLOSSING = {"schedule": "periodic", "pre_steps": 1, "every": 1, "steps": 1, "max_sessions": 2}


def test_resume_is_bit_identical(tmp_path):
    run = tiny(flossing=FLOSSING)
    straight = Trainer(run, tmp_path / "a").fit()
    first = Trainer(run.replace("training", epochs=2), tmp_path / "b").fit()
    assert first.epoch == 2
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.h5", run, tmp_path / "b").fit()
    assert resumed.epoch == 4
    for key in straight.params:
        np.testing.assert_array_equal(straight.params[key], resumed.params[key])
    _compare_logs(read_log(tmp_path / "a" / "log.h5"), read_log(tmp_path / "b" / "log.h5"))
    _compare_checkpoints(tmp_path / "a" / "checkpoint.h5", tmp_path / "b" / "checkpoint.h5")
    # the logs hold what the loop did: rows 0..4; pre-flossing at boundary 0, sessions at 1 and 2
    log = read_log(tmp_path / "a" / "log.h5")
    assert log["epochs/epoch"].tolist() == [0, 1, 2, 3, 4]
    assert log["epochs/floss_steps"].tolist() == [0, 1, 1, 1, 0]
    assert log["flossing/events"].tolist() == [[0, 1, 0], [1, 1, 1], [2, 1, 1]]
    assert log["spectrum/stage"].tolist().count(1) == 3 and log["spectrum/exponents"].shape[1] == 4


def test_keyboard_interrupt_checkpoints_the_last_complete_epoch(tmp_path):
    run = tiny(flossing=FLOSSING, output={"checkpoint_every": 0})
    straight = Trainer(run, tmp_path / "a").fit()

    def interrupt(ev):
        if ev["kind"] == "step" and ev["epoch"] == 2 and ev["step"] == 1:
            raise KeyboardInterrupt

    tr = Trainer(run, tmp_path / "b", progress=interrupt)
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    with h5py.File(tmp_path / "b" / "checkpoint.h5") as f:
        assert f.attrs["epoch"] == 2
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.h5", run, tmp_path / "b").fit()
    for key in straight.params:
        np.testing.assert_array_equal(straight.params[key], resumed.params[key])
    _compare_logs(read_log(tmp_path / "a" / "log.h5"), read_log(tmp_path / "b" / "log.h5"))


def test_resume_refuses_another_configuration(tmp_path):
    Trainer(tiny(training={"epochs": 1}), tmp_path / "a").fit()
    with pytest.raises(ValueError, match=r"network.layers: \[12\] in the checkpoint, \[10\] here"):
        Trainer.resume(tmp_path / "a" / "checkpoint.h5", tiny(network={"layers": [10]}))
    # training.epochs and [output] may differ
    Trainer.resume(tmp_path / "a" / "checkpoint.h5", tiny(training={"epochs": 3}, output={"dir": "x"}))
    with pytest.raises(ValueError, match="not a refimpl training checkpoint"):
        Trainer.resume(tmp_path / "a" / "log.h5", tiny())


def test_flossing_raises_lambda1():
    """Pre-flossing moves the top exponents toward the target 0 (they start near log β = -0.5)."""
    run = tiny(network={"layers": [16]}, task={"T": 40},
        flossing={"schedule": "pre", "pre_steps": 12, "lr": 0.05}, lyapunov={"k": 3, "every": 0})  # fmt: skip
    tr = Trainer(run)
    before = tr.spectrum().exponents
    tr.floss(12, 0)
    after = tr.spectrum().exponents
    assert after[0] > before[0] + 0.05, (before, after)
    assert np.mean((after - 0) ** 2) < np.mean((before - 0) ** 2)


# ---------------------------------------------------------------------------
# schedules: exact triggering rules with fake measurements
# ---------------------------------------------------------------------------


def _simulate(cfg, epochs, lam=None, gx0=None):
    """Boundaries e = 0..epochs-1: the steps run at each (pre + session) and the measurement calls."""
    st = ScheduleState()
    out, measured = [], []
    for e in range(epochs):
        n = schedules.pre_steps(cfg, st, e)
        if schedules.needs_measurement(cfg, st, e):
            measured.append(e)
            m, _ = schedules.decide(cfg, st, e, lam(e), gx0(e))
        else:
            m, _ = schedules.decide(cfg, st, e)
        out.append(n + m)
    return out, measured, st


def test_schedule_none_and_pre():
    assert _simulate(ScheduleConfig("none"), 5)[0] == [0] * 5
    steps, measured, st = _simulate(ScheduleConfig("pre", pre_steps=7), 5)
    assert steps == [7, 0, 0, 0, 0] and measured == [] and st.sessions == 0
    assert st.events == [(0, 7, schedules.REASONS["pre"])]
    with pytest.raises(ValueError, match="pre_steps"):
        ScheduleConfig("pre")
    with pytest.raises(ValueError, match="pre_steps"):
        ScheduleConfig("none", pre_steps=2)


def test_schedule_periodic():
    cfg = ScheduleConfig("periodic", every=3, steps=4, max_sessions=2)
    steps, measured, st = _simulate(cfg, 12)
    assert steps == [0, 0, 0, 4, 0, 0, 4, 0, 0, 0, 0, 0]  # after epochs 3 and 6, then N_i = 2 reached
    assert st.sessions == 2 and measured == []
    steps, _, _ = _simulate(ScheduleConfig("periodic", pre_steps=5, every=1, steps=1, max_sessions=3), 6)
    assert steps == [5, 1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="every"):
        ScheduleConfig("periodic", steps=1, max_sessions=1)


def test_schedule_adaptive_band():
    cfg = ScheduleConfig("adaptive", steps=2, lo=-0.2, hi=0.05, check_every=2, max_sessions=3)
    lam = {0: -0.5, 2: 0.0, 4: 0.1, 6: -0.1, 8: -0.3, 10: -0.9}.__getitem__
    steps, measured, st = _simulate(cfg, 12, lam, lambda e: 1.0)
    assert measured == [0, 2, 4, 6, 8]  # no checks once max_sessions sessions ran
    assert steps == [2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0]
    R = schedules.REASONS
    assert [r for _, _, r in st.events] == [R["lambda_low"], R["lambda_high"], R["lambda_low"]]
    # edges of the band do not trigger
    st = ScheduleState()
    assert schedules.decide(cfg, st, 0, -0.2, 1.0) == (0, None)
    assert schedules.decide(cfg, st, 0, 0.05, 1.0) == (0, None)
    assert schedules.decide(cfg, st, 0, math.nextafter(0.05, 1), 1.0) == (2, "lambda_high")


def test_schedule_adaptive_gradient_threshold_and_unlimited():
    cfg = ScheduleConfig("adaptive", steps=1, grad_threshold=1e-3)  # max_sessions = 0: no limit
    g = [1e-2, 5e-4, 1e-3, 1e-5, 1e-4]
    steps, measured, st = _simulate(cfg, 5, lambda e: 0.0, lambda e: g[e])
    assert measured == [0, 1, 2, 3, 4]
    assert steps == [0, 1, 0, 1, 1] and st.sessions == 3
    assert all(r == schedules.REASONS["grad_x0"] for _, _, r in st.events)
    with pytest.raises(ValueError, match="criterion"):
        ScheduleConfig("adaptive", steps=1)
    with pytest.raises(ValueError, match="lo must be < "):
        ScheduleConfig("adaptive", steps=1, lo=0.1, hi=0.0)


def test_adaptive_schedule_in_the_trainer():
    """The trainer measures λ₁ at the documented boundaries and logs the checks."""
    run = tiny(training={"epochs": 3},
        flossing={"schedule": "adaptive", "steps": 1, "lo": -0.05, "hi": 1.0, "check_every": 2},
        lyapunov={"every": 0})  # fmt: skip
    tr = Trainer(run).fit()
    assert tr.history.checks["epoch"] == [0, 2]
    lam = tr.history.checks["lambda1"]
    assert lam[0] < -0.05  # the initial network contracts: flossing ran
    assert tr.history.rows["floss_steps"][1] == 1
    assert tr.history.rows["floss_steps"][3] == (1 if lam[1] < -0.05 else 0)


def test_ctrl_c_stops_at_the_next_step_and_checkpoints(tmp_path):
    """A real SIGINT: the handler sets a flag, the loop stops at the next step, the checkpoint
    holds the last complete epoch and the previous SIGINT handler is back afterwards."""
    import os
    import signal

    run = tiny(output={"checkpoint_every": 0}, lyapunov={"every": 0})

    def ctrl_c(ev):
        if ev["kind"] == "step" and ev["epoch"] == 1 and ev["step"] == 0:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    tr = Trainer(run, tmp_path, progress=ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert signal.getsignal(signal.SIGINT) is before
    with h5py.File(tmp_path / "checkpoint.h5") as f:
        assert f.attrs["epoch"] == 1
        assert f["log/epochs/epoch"][()].tolist() == [0, 1]


# ---------------------------------------------------------------------------
# flossing as an added loss term (flossing.weight)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_floss_weight_adds_the_flossing_gradient_to_each_training_step(weight):
    """One training step with ``flossing.weight = w`` is Adam on ∇L_task + w ∇L_floss (flossed parameters),
    the flossing gradient on the first fresh flossing input; w = 0 is plain training."""
    from refimpl.dynamics import flossing
    from refimpl.training.optim import AdamState, adam_step

    run = tiny(training={"epochs": 1, "steps_per_epoch": 1, "clip_norm": 0.0}, flossing={"weight": weight})
    tr = Trainer(run)
    p0 = {k: v.copy() for k, v in tr.params.items()}
    u, y = tr.data.train_batch(0, 0)
    _, grads, _ = adjoint.value_and_grad(tr.cfg, p0, u, y, tr.loss_cfg)
    g = {k: grads[k] for k in tr.trained_keys}
    if weight:
        fl = run.flossing
        res = flossing.value_and_grad(tr.cfg, tr.single_params(), tr.data.floss_input(0),
            run.lyapunov.config(fl.k, flossing=fl), fl.floss_config())  # fmt: skip
        for k in flossing.flossed_keys(tr.cfg, fl.floss_config()):
            g[k] = g[k] + weight * res.grads[k]
    want = adam_step(p0, g, AdamState(), run.training.adam())
    tr.fit()
    for k in tr.trained_keys:
        np.testing.assert_array_equal(tr.params[k], want[k], err_msg=k)
    assert tr.history.rows["floss_steps"][-1] == (1 if weight else 0)
    assert len(tr.history.floss["loss"]) == (1 if weight else 0)


def test_floss_weight_needs_trained_flossed_parameters():
    with pytest.raises(ValueError, match="flossing.weight > 0 adds the flossing gradient"):
        tiny(flossing={"weight": 1.0}, training={"params": ["W_out", "b_out"]})
