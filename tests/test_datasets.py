"""The SHD loader (refimpl.tasks.datasets) on small files of the real layout, and the `shd` training task."""

import math

import h5py
import numpy as np
import pytest

from refimpl import cli
from refimpl.tasks import datasets
from refimpl.training.configfile import load_preset
from refimpl.tasks.datasets import SHD_URL, bin_spikes, load_shd, read_shd, write_shd_like
from refimpl.training import Trainer, read_log


def random_samples(n, seed, n_units=700, n_classes=20, duration=0.3, max_spikes=60):
    rng = np.random.default_rng(seed)
    times, units = [], []
    for _ in range(n):
        k = int(rng.integers(0, max_spikes))
        times.append(np.sort(rng.random(k) * duration))
        units.append(rng.integers(0, n_units, k))
    labels = np.arange(n) % n_classes
    return times, units, labels


def shd_file(path, n=12, seed=0, **kw):
    times, units, labels = random_samples(n, seed, **kw)
    write_shd_like(path, times, units, labels, speaker=np.arange(n) % 3, keys=[f"digit-{i}" for i in range(20)])
    return times, units, labels


def loop_binning(times, units, dt, T, n_ch, factor, binary):
    """The reference: one spike at a time, the rule of the module docstring."""
    out = np.zeros((T, len(times), n_ch))
    for b, (ts, us) in enumerate(zip(times, units)):
        for t, u in zip(ts, us):
            k = math.floor(float(t) * 1000.0 / dt + 1e-9)
            if k < T:
                out[k, b, int(u) // factor] += 1.0
    return np.minimum(out, 1.0) if binary else out


# ---------------------------------------------------------------------------
# reading and binning
# ---------------------------------------------------------------------------


def test_round_trip_of_the_layout(tmp_path):
    p = tmp_path / "s.h5"
    times, units, labels = shd_file(p)
    with h5py.File(p) as f:  # the real layout: ragged (vlen) spikes, uint16 labels, extra/
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float32
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint16 and "extra/speaker" in f and "extra/keys" in f
    d = read_shd(p)
    assert len(d) == 12 and d.labels.tolist() == labels.tolist()
    for a, b in zip(d.times, times):
        np.testing.assert_array_equal(a, b.astype(np.float32))
    for a, b in zip(d.units, units):
        np.testing.assert_array_equal(a, b)
    assert d.extra["speaker"].tolist() == (np.arange(12) % 3).tolist()
    assert d.extra["keys"][3] == b"digit-3"
    sub = read_shd(p, max_samples=5, seed=4)
    assert len(sub) == 5 and np.all(np.diff(sub.indices) > 0)
    assert sub.labels.tolist() == labels[sub.indices].tolist()
    assert sub.extra["speaker"].tolist() == (sub.indices % 3).tolist()
    assert read_shd(p, max_samples=5, seed=4).indices.tolist() == sub.indices.tolist()  # deterministic


@pytest.mark.parametrize(
    "dt,T,factor,binary,time_dtype",
    [
        (1.0, 300, 1, True, np.float32),
        (2.5, 100, 3, False, np.float32),
        (0.7, 500, 7, False, np.float16),
        (14.0, 20, 2, True, np.float64),
    ],
)
def test_binning_equals_a_per_spike_loop(tmp_path, dt, T, factor, binary, time_dtype):
    times, units, labels = random_samples(9, 1, duration=0.4, max_spikes=400)
    p = write_shd_like(tmp_path / "s.h5", times, units, labels, time_dtype=time_dtype)
    d = read_shd(p)
    n_ch = -(-700 // factor)
    u = bin_spikes(d.times, d.units, dt=dt, T=T, channel_factor=factor, binary=binary)
    ref = loop_binning(d.times, d.units, dt, T, n_ch, factor, binary)
    assert u.shape == (T, 9, n_ch) and u.dtype == np.float64
    np.testing.assert_array_equal(u, ref)
    assert binary or u.max() > 1  # counts are kept when binary = False
    tb = load_shd(p, dt=dt, T=T, channel_factor=factor, binary=binary)
    np.testing.assert_array_equal(tb.inputs, ref)
    assert tb.targets.dtype == np.int64 and tb.n_classes == 20 and tb.loss == "ce_max"


def test_spikes_on_bin_edges_and_truncation_at_T():
    # 3 ms, 0.003 s: on the edge of bin 3 (float64 gives 3.0000000000000004 or 2.9999999999999996
    # for such decimals; both belong to bin 3); just below the edge: bin 2
    edge = [0.0, 0.003, 0.0029999, 1.005, 0.007]
    u = bin_spikes([np.array(edge)], [np.arange(5)], dt=1.0, T=1200, n_units=5)
    assert [int(np.nonzero(u[:, 0, c])[0][0]) for c in range(5)] == [0, 3, 2, 1005, 7]
    u = bin_spikes([np.array(edge)], [np.arange(5)], dt=5.0, T=400, n_units=5)
    assert 1.005 * 1000.0 / 5.0 < 201  # 200.99999999999997: the case the tolerance exists for
    assert [int(np.nonzero(u[:, 0, c])[0][0]) for c in range(5)] == [0, 0, 0, 201, 1]
    # truncation: step T-1 covers [(T-1) dt, T dt); T dt itself and later are dropped
    t = np.array([0.0995, 0.09999, 0.1, 0.25])
    u = bin_spikes([t], [np.zeros(4, int)], dt=1.0, T=100, n_units=1, binary=False)
    assert u[99, 0, 0] == 2 and u.sum() == 2
    u = bin_spikes([t], [np.zeros(4, int)], dt=1.0, T=100, n_units=1, binary=False, max_time=0.0996)
    assert u.sum() == 1


# ---------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------


def _vlen(f, name, arrays, dtype):
    ds = f.create_dataset(name, (len(arrays),), dtype=h5py.vlen_dtype(np.dtype(dtype)))
    for i, a in enumerate(arrays):
        ds[i] = np.asarray(a, dtype=dtype)


def _write(path, times=None, units=None, labels=None, skip=(), time_dtype=np.float32, unit_dtype=np.uint16,
        label_dtype=np.uint16):  # fmt: skip
    t0, u0, l0 = random_samples(4, 2, n_units=700)
    times = t0 if times is None else times
    units = u0 if units is None else units
    labels = l0 if labels is None else labels
    with h5py.File(path, "w") as f:
        if "times" not in skip:
            _vlen(f, "spikes/times", times, time_dtype)
        if "units" not in skip:
            _vlen(f, "spikes/units", units, unit_dtype)
        if "labels" not in skip:
            f.create_dataset("labels", data=np.asarray(labels, dtype=label_dtype))
    return path


MALFORMED = {
    "no_times": (dict(skip=("times",)), "dataset 'spikes/times' is missing"),
    "no_units": (dict(skip=("units",)), "dataset 'spikes/units' is missing"),
    "no_labels": (dict(skip=("labels",)), "dataset 'labels' is missing"),
    "int_times": (dict(time_dtype=np.int32), "'spikes/times' must be a 1-d ragged .*floats"),
    "float_units": (dict(unit_dtype=np.float32), "'spikes/units' must be a 1-d ragged .*integers"),
    "float_labels": (dict(label_dtype=np.float32), "'labels' must be a 1-d integer dataset"),
    "short_labels": (dict(labels=[0, 1, 2]), "ragged length mismatch: spikes/times has 4 samples"),
    "ragged_sample": (
        dict(times=[[0.1, 0.2], [0.1], [], [0.3]], units=[[1, 2], [3, 4], [], [5]]),
        "ragged length mismatch in sample 1: 1 spike times but 2 units",
    ),
    "unit_range": (
        dict(units=[[700], [1], [], [2]], times=[[0.1], [0.1], [], [0.2]]),
        r"spikes/units of sample 0 must lie in \[0, n_units = 700\)",
    ),
    "label_range": (dict(labels=[0, 1, 20, 3]), r"labels must lie in \[0, n_classes = 20\)"),
    "negative_time": (
        dict(times=[[-0.1], [0.1], [], [0.2]], units=[[1], [1], [], [2]]),
        "spikes/times of sample 0 must be finite and >= 0",
    ),
    "nan_time": (
        dict(times=[[0.1], [np.nan], [], [0.2]], units=[[1], [1], [], [2]]),
        "spikes/times of sample 1 must be finite and >= 0",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_raise_the_named_error(tmp_path, case):
    kw, match = MALFORMED[case]
    p = _write(tmp_path / f"{case}.h5", **kw)
    with pytest.raises(ValueError, match=match):
        read_shd(p)


def test_missing_and_unreadable_files_and_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="does not exist. refimpl never downloads") as ei:
        read_shd(tmp_path / "shd_train.h5")
    assert SHD_URL in str(ei.value) and "data/shd_train.h5" in str(ei.value)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="cannot read .* as an HDF5 file"):
        read_shd(tmp_path / "text.h5")
    p = tmp_path / "s.h5"
    shd_file(p)
    for kw, match in [
        (dict(max_samples=0), "max_samples must be an integer >= 1"),
        (dict(n_units=0), "n_units must be an integer >= 1"),
        (dict(seed=-1), "seed must be an integer >= 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            read_shd(p, **kw)
    for kw, match in [
        (dict(dt=0.0), "dt must be > 0"),
        (dict(T=0), "T must be an integer >= 1"),
        (dict(channel_factor=0), "channel_factor must be an integer >= 1"),
        (dict(loss="bce_per_step"), "loss must be one of"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_shd(p, **{"dt": 1.0, "T": 10, **kw})
    with pytest.raises(ValueError, match="binary must be True or False"):
        bin_spikes([[0.1]], [[1]], dt=1.0, T=5, binary=1)


# ---------------------------------------------------------------------------
# the training task `shd` and its preset
# ---------------------------------------------------------------------------

TINY_SHD = ["network.layers=[8]", "task.T=20", "task.channel_factor=50", "training.batch_size=4", "lyapunov.k=4",
    "lyapunov.every=1", "lyapunov.dimensionality_batch=3", "output.checkpoint_every=1"]  # fmt: skip


def test_refimpl_train_shd_on_small_files(tmp_path, capsys):
    shd_file(tmp_path / "train.h5", n=16, seed=1, duration=0.25, max_spikes=300)
    shd_file(tmp_path / "test.h5", n=6, seed=2, duration=0.25, max_spikes=300)
    out = tmp_path / "run"
    argv = ["train", "shd", "--epochs", "1", "--out", str(out), "--quiet", "--set",
        f"task.train_path={tmp_path / 'train.h5'}", "--set", f"task.test_path={tmp_path / 'test.h5'}"]  # fmt: skip
    for s in TINY_SHD:
        argv += ["--set", s]
    code = cli.main(argv)
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "done: 1 epochs" in cap.out
    log = read_log(out / "log.h5")
    assert log["epochs/epoch"].tolist() == [0, 1]
    assert np.all(np.isfinite(log["epochs/test_loss"])) and np.isfinite(log["epochs/train_loss"][1])
    assert log["dimensionality/epoch"].tolist() == [0, 1]
    assert (out / "checkpoint.h5").is_file()
    # the files are missing: exit 2 with where to get them
    code = cli.main(
        ["train", "shd", "--out", str(tmp_path / "x"), "--quiet", "--set", f"task.train_path={tmp_path / 'nope.h5'}"]
        + [a for s in TINY_SHD for a in ("--set", s)]
    )
    err = capsys.readouterr().err
    assert code == 2 and SHD_URL in err and "nope.h5" in err


def test_shd_task_split_subsets_and_fluctuation_init(tmp_path):
    shd_file(tmp_path / "all.h5", n=30, seed=3, duration=0.25, max_spikes=300)
    run = load_preset(
        "shd",
        overrides=[
            f"task.train_path={tmp_path / 'all.h5'}",
            'task.test_path=""',
            "task.test_fraction=0.25",
            "task.max_samples=16",
        ]
        + TINY_SHD,
    )
    assert run.n_in == 14 and run.n_out == 20 and run.data_mode == "fixed"
    tr = Trainer(run)
    d = tr.data
    assert d.train_inputs.dtype == np.uint8 and d.train_inputs.shape == (20, 16, 14)
    assert d.test_inputs.shape == (20, 8, 14)  # round(0.25 * 30) test samples
    u, y = d.train_batch(0, 0)
    assert u.dtype == np.float64 and u.shape == (20, 4, 14) and y.shape == (4,)
    # fluctuation-driven initialization from the measured input statistics
    from refimpl.model import init

    mean, var = d.input_moments()
    ref = init.fluctuation_init(tr.cfg, mu_U=0.0, sigma_U=1.0, input_moments=(mean, var), nu_rec=10.0, rec_share=0.3, seed=0)
    for k in ref:
        np.testing.assert_array_equal(tr.params[k], ref[k])
    ev = tr.evaluate()  # chunked evaluation path
    assert math.isfinite(ev["test_loss"]) and 0 <= ev["test_acc"] <= 1
    # the same split for the same seed, another for another seed
    again = Trainer(run).data
    np.testing.assert_array_equal(again.test_inputs, d.test_inputs)
    other = Trainer(run.replace("task", seed=1)).data
    assert not np.array_equal(other.test_targets, d.test_targets) or not np.array_equal(other.test_inputs, d.test_inputs)


def test_shd_config_errors():
    with pytest.raises(ValueError, match="task.test_fraction must be a number in"):
        load_preset("shd", overrides=["task.test_fraction=1.5"])
    with pytest.raises(ValueError, match="unknown key 'path' in \\[task\\]"):
        load_preset("shd", overrides=["task.path=x.h5"])
    with pytest.raises(ValueError, match="training.data = 'fresh' is impossible for shd"):
        load_preset("shd", overrides=["training.data=fresh"])
    with pytest.raises(ValueError, match="task.loss must be one of"):
        load_preset("shd", overrides=["task.loss=bce_per_step"])
    assert datasets.shd_probe({}).inputs.shape == (100, 1, 700)
