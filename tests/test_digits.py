"""Synthetic spoken digits (refimpl/tasks/digits.py, docs/digits.md): a tiny set in seconds, read by the
SHD loader, with held-out speakers, identical for any number of workers."""

import dataclasses

import h5py
import numpy as np
import pytest

from refimpl import cli
from refimpl.tasks import digits

pytestmark = pytest.mark.skipif(not digits.espeak_available(), reason="needs the optional extra 'digits' (espeakng-loader)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return out, digits.make(out, digits.SMALL, workers=1, progress=False)


def test_the_set_is_in_the_shd_layout_and_the_loader_reads_it(tiny):
    from refimpl.tasks.datasets import read_shd

    out, summary = tiny
    for split, n in (("train", 60), ("test", 20)):
        d = read_shd(out / f"{split}.h5", n_units=16)
        assert len(d.labels) == n and sorted(set(d.labels.tolist())) == list(range(20))
        with h5py.File(out / f"{split}.h5", "r") as f:
            assert f["spikes/times"].dtype.metadata["vlen"] == np.float32
            assert f["spikes/units"].dtype.metadata["vlen"] == np.uint16
            keys = [k.decode() if isinstance(k, bytes) else k for k in f["extra/keys"][()]]
            assert keys[0] == "english-zero" and keys[15] == "german-fünf"
            times = f["spikes/times"][()]
            assert all(t.size > 0 for t in times) and all(np.all(np.diff(t) >= 0) for t in times)
    assert summary["splits"]["train"]["duration_s"][0] > 0.2


def test_test_speakers_are_held_out(tiny):
    out, summary = tiny
    man = summary["manifest"]
    train_voices = {m["voice"] for m in man["train"]}
    test_voices = {m["voice"] for m in man["test"]}
    assert not train_voices & test_voices
    assert all(any(m["voice"].endswith(v) for v in digits.TEST_VARIANTS) for m in man["test"])
    assert not {m["speaker"] for m in man["train"]} & {m["speaker"] for m in man["test"]}


def test_the_set_does_not_depend_on_the_number_of_workers(tiny, tmp_path):
    out, _ = tiny
    cfg = dataclasses.replace(digits.SMALL, train_speakers=1, test_speakers=1)
    a = digits.make(tmp_path / "a", cfg, workers=1, progress=False)
    b = digits.make(tmp_path / "b", cfg, workers=2, progress=False)
    assert a["manifest"] == b["manifest"]
    for split in ("train", "test"):
        with h5py.File(tmp_path / "a" / f"{split}.h5") as fa, h5py.File(tmp_path / "b" / f"{split}.h5") as fb:
            for key in ("spikes/times", "spikes/units"):
                assert all(np.array_equal(x, y) for x, y in zip(fa[key][()], fb[key][()]))
            assert np.array_equal(fa["labels"][()], fb["labels"][()])


def _same_sets(a, b):
    for split in ("train", "test"):
        with h5py.File(a / f"{split}.h5") as fa, h5py.File(b / f"{split}.h5") as fb:
            for key in ("spikes/times", "spikes/units"):
                assert all(np.array_equal(x, y) for x, y in zip(fa[key][()], fb[key][()]))
            for key in ("labels", "extra/speaker"):
                assert np.array_equal(fa[key][()], fb[key][()])


def test_ctrl_c_keeps_the_finished_utterances_and_the_same_command_continues(tiny, tmp_path, monkeypatch, capsys):
    """Ctrl-C during ``refimpl digits make`` (a poll raising at the 30th finished utterance): exit 130 with one
    line, the 30 utterances kept in the partial file; the same command again continues from there, and the
    set is the uninterrupted one, array for array."""
    import refimpl.interrupt

    out, _ = tiny
    calls = {"n": 0}
    real_poll = refimpl.interrupt.poll

    def poll():
        calls["n"] += 1
        if calls["n"] == 30:
            raise KeyboardInterrupt
        real_poll()

    monkeypatch.setattr(refimpl.interrupt, "poll", poll)
    d = tmp_path / "set"
    assert cli.main(["digits", "make", str(d), "--small", "--workers", "1"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run the same command again" in err
    assert not (d / "train.h5").exists() and not (d / "manifest.json").exists()
    with h5py.File(d / ".train.partial.h5") as f:
        assert int(f.attrs["done"]) == 30 and f["times"].shape == (30,)
    monkeypatch.setattr(refimpl.interrupt, "poll", real_poll)
    assert cli.main(["digits", "make", str(d), "--small", "--workers", "1"]) == 0
    assert not list(d.glob(".*.partial.h5"))
    _same_sets(out, d)


def test_the_filter_bank_is_scipys():
    from scipy.signal import sosfilt

    S = digits.filter_bank(16, 50.0, 8000.0)
    x = np.random.default_rng(0).standard_normal(2000)
    out = digits.sos_bank(S, x)
    assert all(np.array_equal(out[c], sosfilt(S[c], x)) for c in range(16))


@pytest.mark.parametrize("args, words", [(["--channels", "0"], "--channels"), (["--workers", "0"], "--workers")])
def test_bad_flags_exit_2(tmp_path, capsys, args, words):
    assert cli.main(["digits", "make", str(tmp_path / "x"), "--small", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_short_training_run_learns_above_chance(tiny, tmp_path):
    """The synth_digits preset on the tiny set (16 channels, 60 training samples of 20 classes): 30 epochs
    reach training accuracy far above chance (1/20), and above chance on the held-out speaker."""
    out, _ = tiny
    rc = cli.main(["train", "synth_digits", "--set", f"task.train_path={out / 'train.h5'}", "--set",
        f"task.test_path={out / 'test.h5'}", "--set", "task.n_units=16", "--set", "training.epochs=30", "--set",
        "training.batch_size=20", "--set", "lyapunov.every=0", "--set", "output.progress=false", "--out",
        str(tmp_path / "run")])  # fmt: skip
    assert rc == 0
    from refimpl.training import read_log

    log = read_log(tmp_path / "run" / "log.h5")
    assert log["epochs/train_acc"][-1] > 0.3 and log["epochs/test_acc"][-1] > 0.05


def test_linear_baselines_run_on_the_set(tiny):
    """analysis/digits_baselines.py (issue 18, point 2) on the tiny set: both linear classifiers fit the
    training set, the class balance and durations are reported."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "analysis" / "digits_baselines.py"
    spec = importlib.util.spec_from_file_location("digits_baselines", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out, _ = tiny
    r = mod.baselines(out / "train.h5", out / "test.h5", n_bins=5, group=1)
    assert r["class_counts_train"] == [3] * 20 and r["chance"] == pytest.approx(0.05)
    assert r["counts"]["train_acc"] > 0.9 and r["time_binned"]["features"] == 5 * 16
    assert 0.2 < r["duration_s"]["train"][2] < 1.0


def test_the_digits_figure_runs_on_the_tiny_set(tiny, tmp_path):
    """figures/fig_synth_digits.py (issue 18, point 3) end to end on its --quick budget, reading the set from
    --data; a missing set is one line and exit 2."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "figures" / "fig_synth_digits.py"
    out, _ = tiny
    r = subprocess.run([sys.executable, str(script), "--quick", "--workers", "1", "--data", str(out), "--out",
        str(tmp_path)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    table = (tmp_path / "fig_synth_digits.md").read_text()
    assert "Command:" in table and "| 2 | floss |" in table
    assert set(json.loads((tmp_path / "fig_synth_digits.json").read_text())) >= {"spectrum/floss/1/final", "errors/none/2"}
    r = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "refimpl digits make" in r.stderr


def test_a_directory_in_use_is_refused(tmp_path, capsys):
    """Two ``refimpl digits make`` into one directory: the second exits 2 with one line naming the holder."""
    import os

    from refimpl.io import directory_lock

    with directory_lock(tmp_path / "set"):
        assert cli.main(["digits", "make", str(tmp_path / "set"), "--small", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in use by another run" in err and str(os.getpid()) in err
