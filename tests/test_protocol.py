"""The pieces that make the published gradient-flossing protocol expressible (docs/training.md,
"The published protocol"): bit inputs and the reference's scoring window, the reference's
initialization, relaxed and per-slot initial states, per-array clipping, the phase of periodic
flossing, separate flossing QR settings, sparse evaluation, and the presets themselves."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.grad import adjoint
from refimpl.model import network
from refimpl.training import schedules
from refimpl.model.config import LossConfig, network_config
from refimpl.training.configfile import from_dict, load_preset
from refimpl.training.optim import AdamConfig, AdamState, adam_step, clip_per_array
from refimpl.training.schedules import ScheduleConfig, ScheduleState
from refimpl.tasks.generators import delayed_xor
from refimpl.training import Trainer, read_log


# ---------------------------------------------------------------------------
# the task
# ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(delta=st.integers(1, 6), h=st.integers(0, 2), shift=st.integers(0, 4), seed=st.integers(0, 50))
def test_hidden_past_targets_are_the_parity_of_the_whole_stream(delta, h, shift, seed):
    d = delta * 2**h
    shift = -min(shift, d)
    T = d + 12
    b = delayed_xor(T=T, batch=3, delta=delta, h=h, seed=seed, encoding="bits", t0_shift=shift)
    assert b.t0 == d + shift and b.inputs.shape == (T, 3, 1)
    np.testing.assert_array_equal(b.inputs[:, :, 0], b.bits)  # bits: u_t = x_t in {0, 1}
    lags = [delta * 2**k for k in range(h + 1)]
    for t in range(max(b.t0, d), T):  # visible part: the usual parity
        want = np.bitwise_xor.reduce([b.bits[t - lag] for lag in lags], axis=0)
        np.testing.assert_array_equal(b.targets[t, :, 0], want)
    assert np.all(b.targets[: b.t0] == 0)


def test_reference_window_and_default_unchanged():
    ref = delayed_xor(T=40, batch=4, delta=5, seed=7)
    same = delayed_xor(T=40, batch=4, delta=5, seed=7, t0_shift=0)
    np.testing.assert_array_equal(ref.inputs, same.inputs)
    b = delayed_xor(T=40, batch=2000, delta=5, seed=7, encoding="bits", t0_shift=-1)
    assert b.t0 == 9
    # the first scored step combines a visible bit with a hidden one: independent of what was shown
    assert abs(np.mean(b.targets[9, :, 0] == b.bits[4]) - 0.5) < 0.05
    with pytest.raises(ValueError, match="t0_shift"):
        delayed_xor(T=40, batch=1, delta=5, seed=0, t0_shift=1)
    with pytest.raises(ValueError, match="t0_shift"):
        delayed_xor(T=40, batch=1, delta=5, seed=0, t0_shift=-11)


# ---------------------------------------------------------------------------
# initialization and initial states
# ---------------------------------------------------------------------------


def _rate(N=6, **kw):
    return network_config(cell="rate", layers=(N,), n_in=1, n_out=1, readout={"tau_out": 0.0, "source": "state"}, **kw)


def test_reference_initialization_options():
    cfg = _rate(N=50)
    base = network.init_params(cfg, 3)
    p = network.init_params(cfg, 3, bias=0.2, bias_spread=0.1, keep_diagonal=True, bias_out=0.001)
    np.testing.assert_array_equal(base["layer1/W_in"], p["layer1/W_in"])  # the same weight draws
    off = ~np.eye(50, dtype=bool)
    np.testing.assert_array_equal(base["layer1/W_rec"][off], p["layer1/W_rec"][off])
    assert np.all(np.diag(base["layer1/W_rec"]) == 0) and np.all(np.diag(p["layer1/W_rec"]) != 0)
    b = p["layer1/b"]
    assert np.all((b >= 0.2) & (b < 0.3)) and b.std() > 0.01
    assert p["readout/b_out"].tolist() == [0.001]


def test_relaxed_state_is_the_free_running_map_per_slot():
    cfg = _rate()
    p = network.init_params(cfg, 1, bias_spread=0.1)
    x0 = network.relaxed_initial_state(cfg, p, slots=4, steps=7, scale=1.0, seed=5)["layer1/x0"]
    x = np.random.default_rng([5, 2]).standard_normal((4, 6))
    for _ in range(7):
        x = np.tanh(x) @ p["layer1/W_rec"].T + p["layer1/b"]
    np.testing.assert_allclose(x0, x, rtol=1e-13, atol=1e-14)


def test_per_slot_initial_state_gradient():
    """A (B, N) initial state: each slot gets its own adjoint (checked by central differences), and
    equal slots sum to the gradient of a shared one."""
    cfg = _rate()
    rng = np.random.default_rng(0)
    p = network.init_params(cfg, 2, bias_spread=0.1)
    u = rng.integers(0, 2, (15, 3, 1)).astype(float)
    y = rng.integers(0, 2, (15, 3, 1)).astype(float)
    loss = LossConfig("bce_per_step", 4)
    X = rng.standard_normal((3, 6))
    ps = dict(p, **{"layer1/x0": X})
    L, g, _ = adjoint.value_and_grad(cfg, ps, u, y, loss)
    assert g["layer1/x0"].shape == (3, 6)
    eps = 1e-6
    for bb, i in [(0, 0), (1, 3), (2, 5)]:
        Xp, Xm = X.copy(), X.copy()
        Xp[bb, i] += eps
        Xm[bb, i] -= eps
        fd = (
            adjoint.value_and_grad(cfg, dict(p, **{"layer1/x0": Xp}), u, y, loss)[0]
            - adjoint.value_and_grad(cfg, dict(p, **{"layer1/x0": Xm}), u, y, loss)[0]
        ) / (2 * eps)
        assert abs(fd - g["layer1/x0"][bb, i]) < 1e-7 * max(1.0, abs(fd))
    shared = dict(p, **{"layer1/x0": X[0]})
    g1 = adjoint.value_and_grad(cfg, shared, u, y, loss)[1]
    gt = adjoint.value_and_grad(cfg, dict(p, **{"layer1/x0": np.tile(X[0], (3, 1))}), u, y, loss)[1]
    np.testing.assert_allclose(gt["layer1/x0"].sum(axis=0), g1["layer1/x0"], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="rows"):
        network.simulate(cfg, dict(p, **{"layer1/x0": X[:2]}), u)


def test_a_wrong_per_slot_gradient_fails_the_check():
    """The check above can fail: summing the slots' adjoints (the shared-state rule) is caught."""
    cfg = _rate()
    rng = np.random.default_rng(1)
    p = network.init_params(cfg, 2)
    u = rng.integers(0, 2, (10, 3, 1)).astype(float)
    y = rng.integers(0, 2, (10, 3, 1)).astype(float)
    loss = LossConfig("bce_per_step", 2)
    X = rng.standard_normal((3, 6))
    g = adjoint.value_and_grad(cfg, dict(p, **{"layer1/x0": X}), u, y, loss)[1]["layer1/x0"]
    wrong = np.broadcast_to(g.sum(axis=0), g.shape)
    Xp, Xm = X.copy(), X.copy()
    Xp[1, 2] += 1e-6
    Xm[1, 2] -= 1e-6
    fd = (
        adjoint.value_and_grad(cfg, dict(p, **{"layer1/x0": Xp}), u, y, loss)[0]
        - adjoint.value_and_grad(cfg, dict(p, **{"layer1/x0": Xm}), u, y, loss)[0]
    ) / 2e-6
    assert abs(fd - g[1, 2]) < 1e-7 and abs(fd - wrong[1, 2]) > 1e-4


# ---------------------------------------------------------------------------
# optimizer and schedule
# ---------------------------------------------------------------------------


def test_per_array_clipping():
    g = {"a": np.array([3.0, 4.0]), "b": np.array([0.01]), "c": np.zeros(3)}
    c = clip_per_array(g, 0.5)
    assert np.linalg.norm(c["a"]) == pytest.approx(0.5) and c["b"][0] == 0.01 and np.all(c["c"] == 0)
    p = {k: np.zeros_like(v) for k, v in g.items()}
    s1, s2 = AdamState(), AdamState()
    a = adam_step(p, g, s1, AdamConfig(1e-3, clip_norm=0.5, per_array=True))
    b = adam_step(p, c, s2, AdamConfig(1e-3))
    for k in g:
        np.testing.assert_array_equal(a[k], b[k])


def test_periodic_phase_matches_the_reference_epochs():
    cfg = ScheduleConfig("periodic", pre_steps=500, every=100, steps=500, max_sessions=2, phase=1)
    st_ = ScheduleState()
    runs = {}
    for e in range(1000):
        n = schedules.pre_steps(cfg, st_, e) + schedules.decide(cfg, st_, e)[0]
        if n:
            runs[e] = n
    # the reference: pre-flossing before epoch 1, inter-flossing before 1-based epochs 100 and 200
    assert runs == {0: 500, 99: 500, 199: 500}


# ---------------------------------------------------------------------------
# the trainer
# ---------------------------------------------------------------------------


def _proto(**sections):
    d = {
        "network": {
            "cell": "rate",
            "layers": [10],
            "tau_out": 0.0,
            "readout": "state",
            "keep_diagonal": True,
            "bias_spread": 0.1,
            "bias_out": 0.001,
            "x0_init": "relaxed",
            "x0_relax_steps": 5,
            "x0_per_slot": True,
            "w_out": 3.0,
        },
        "task": {"name": "delayed_xor", "T": 30, "delta": 3, "encoding": "bits", "t0_shift": -1, "seed": 2},
        "training": {
            "epochs": 6,
            "batch_size": 4,
            "steps_per_epoch": 1,
            "test_size": 10,
            "clip_norm": 0.03,
            "clip": "per_array",
            "params": ["W_in", "W_rec", "b", "W_out", "b_out", "x0"],
            "eval_every": 2,
        },
        "flossing": {
            "schedule": "periodic",
            "pre_steps": 2,
            "every": 2,
            "phase": 1,
            "steps": 2,
            "max_sessions": 2,
            "k": 3,
            "lr": 1e-3,
            "T": 15,
            "warmup": 0,
            "transient": 4,
        },
        "lyapunov": {"k": 3, "every": 2, "T": 30, "transient": 2, "dimensionality": False},
        "output": {"checkpoint_every": 2, "progress": False},
    }
    for sec, kv in sections.items():
        d.setdefault(sec, {}).update(kv)
    return from_dict(d)


def test_protocol_run_rows_sessions_and_slots(tmp_path):
    run = _proto()
    assert run.floss_T == 15 and run.spectrum_T == 30
    assert run.lyapunov.config(3, flossing=run.flossing).transient == 4 and run.lyapunov.config().transient == 2
    tr = Trainer(run, tmp_path / "a").fit()
    assert tr.params["layer1/x0"].shape == (4, 10)
    assert len({tuple(r) for r in tr.params["layer1/x0"]}) == 4  # the slots differ
    log = read_log(tmp_path / "a" / "log.h5")
    assert log["epochs/epoch"].tolist() == [0, 2, 4, 6]  # eval_every = 2
    assert log["flossing/events"][:, :2].tolist() == [[0, 2], [1, 2], [3, 2]]  # phase 1: before epochs 2, 4
    assert log["epochs/floss_steps"].tolist() == [0, 4, 2, 0]
    # evaluation does not touch the parameters: evaluating every epoch gives the same network
    every = Trainer(run.replace("training", eval_every=1)).fit()
    for k in tr.params:
        np.testing.assert_array_equal(tr.params[k], every.params[k])


def test_protocol_run_resumes_bit_identically(tmp_path):
    run = _proto()
    straight = Trainer(run, tmp_path / "a").fit()
    Trainer(run.replace("training", epochs=4), tmp_path / "b").fit()
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.h5", run, tmp_path / "b").fit()
    for k in straight.params:
        np.testing.assert_array_equal(straight.params[k], resumed.params[k])


def test_protocol_config_errors():
    with pytest.raises(ValueError, match="x0_per_slot"):
        _proto(network={"x0_init": "zero"})
    with pytest.raises(ValueError, match="training.clip"):
        _proto(training={"clip": "per_param"})
    with pytest.raises(ValueError, match=r"\[flossing\]"):
        _proto(flossing={"transient": 20})
    with pytest.raises(ValueError, match="initial state"):
        _proto(flossing={"params": ["W_rec", "x0"]})


@pytest.mark.parametrize("name,cell", [("gf_rate_xor", "rate"), ("gf_binary_xor", "binary")])
def test_presets_state_the_published_protocol(name, cell):
    run = load_preset(name)
    n, t, tr, fl = run.network, run.task.opts, run.training, run.flossing
    assert (n.cell, n.layers, n.keep_diagonal, n.bias_spread, n.bias_out, n.x0_init, n.x0_per_slot) == (cell,
        (80,), True, 0.1, 0.001, "relaxed", True)  # fmt: skip
    assert n.w_out**2 / 80 == pytest.approx(1.0) and (n.w_in, n.g_rec) == (1.0, 1.0)
    assert (t["T"], t["encoding"], t["t0_shift"], run.n_in) == (300, "bits", -1, 1)
    assert (tr.epochs, tr.batch_size, tr.steps_per_epoch, tr.lr, tr.clip_norm, tr.clip) == (3001, 16, 1, 1e-3, 0.03, "per_array")
    assert "x0" in tr.params
    assert (fl.schedule, fl.pre_steps, fl.every, fl.phase, fl.steps, fl.max_sessions, fl.k, fl.T, fl.transient,
        fl.lr, fl.clip_norm) == ("periodic", 500, 100, 1, 500, 2, 75, 55, 16, 1e-3, 0.0)  # fmt: skip
    assert run.loss_config().t0 == 2 * t["delta"] - 1


def test_flossing_inputs_shorter_than_the_delay():
    """Flossing sequences (55 steps in the reference) may be shorter than the task's delay d: they are
    the first steps of a task-length sequence, as the reference cuts its 300-step sequences."""
    run = _proto(task={"delta": 9, "T": 40})
    from refimpl.training import TaskData

    data = TaskData(run)
    u = data.floss_input(0)
    assert u.shape == (15, 1, 1) and set(np.unique(u)) <= {0.0, 1.0}
    full = run.task.generate(1, data.derive(3, 0), run.network.dt, T=40).inputs
    np.testing.assert_array_equal(u, full[:15])
    Trainer(run.replace("training", epochs=2)).fit()
