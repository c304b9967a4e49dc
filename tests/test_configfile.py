"""TOML configurations, presets and the `refimpl train` command (exit codes, messages, files)."""

import json

import h5py
import pytest

from refimpl import cli
from refimpl.training.configfile import load, load_preset, loads, preset_names, resolve_path, to_toml
from refimpl.training import RunConfig

#: overrides that make any bit-task preset tiny
TINY = ["network.layers=[6]", "training.batch_size=4", "training.steps_per_epoch=2", "training.test_size=4",
    "flossing.k=2", "flossing.pre_steps=1", "flossing.steps=1", "flossing.every=1", "lyapunov.k=2",
    "lyapunov.every=1", "task.T=24", "output.checkpoint_every=1"]  # fmt: skip
TINY_PRESET = {
    "delayed_xor": TINY + ["task.delta=2"],
    "delayed_copy": TINY + ["task.delay=3"],
    "binary_delayed_xor": TINY + ["task.delta=2"],
    "randman": [s for s in TINY if not s.startswith(("task.T", "training.steps", "training.test"))]
    + [
        "task.n_steps=20",
        "task.n_units=5",
        "task.samples_per_class=4",
        "task.test_samples_per_class=2",
        "flossing.check_every=1",
        "flossing.lo=0.5",
        "flossing.hi=1.0",
    ],
}

MINI = """
[network]
layers = [6]
dt = 5.0
slope = 2.0
[task]
name = "delayed_xor"
T = 20
delta = 1
[training]
epochs = 2
batch_size = 4
steps_per_epoch = 2
test_size = 4
[lyapunov]
k = 2
every = 1
"""


def write(tmp_path, text, name="run.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def main_err(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err
    return code, err


def test_every_preset_is_shipped_and_parses():
    assert set(preset_names()) >= {"delayed_xor", "delayed_copy", "randman", "binary_delayed_xor"}
    for name in preset_names():
        run = load_preset(name)
        assert isinstance(run, RunConfig)
        assert loads(to_toml(run)) == run  # the canonical TOML reads back to the same run
        assert resolve_path(name + ".toml") == resolve_path(name)


@pytest.mark.parametrize("name", ["delayed_xor", "delayed_copy", "randman", "binary_delayed_xor"])
def test_every_preset_trains_one_tiny_epoch(tmp_path, capsys, name):
    out = tmp_path / name
    argv = ["train", name, "--epochs", "1", "--out", str(out), "--quiet"]
    for s in TINY_PRESET[name]:
        argv += ["--set", s]
    code = cli.main(argv)
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "done: 1 epochs" in cap.out
    assert (out / "log.h5").is_file() and (out / "checkpoint.h5").is_file() and (out / "config.toml").is_file()
    assert load(out / "config.toml").training.epochs == 1


def test_train_cli_progress_and_resume(tmp_path, capsys):
    cfg = write(tmp_path, MINI)
    out = tmp_path / "o"
    assert cli.main(["train", cfg, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "epoch   2/2" in text and "ETA" in text and "[####" in text
    # a second fresh start into the same directory would overwrite the run
    code, err = main_err(capsys, ["train", cfg, "--out", str(out)])
    assert code == 2 and "--resume" in err
    assert cli.main(["train", cfg, "--out", str(out), "--resume", str(out / "checkpoint.h5"), "--epochs", "3", "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().out
    with h5py.File(out / "log.h5") as f:
        assert f["epochs/epoch"][()].tolist() == [0, 1, 2, 3]


def test_unknown_key_suggests_the_closest(tmp_path, capsys):
    cfg = write(tmp_path, MINI.replace("batch_size = 4", "batchsize = 4"))
    code, err = main_err(capsys, ["train", cfg, "--out", str(tmp_path / "o")])
    assert code == 2
    assert "unknown key 'batchsize' in [training]" in err and "did you mean 'batch_size'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    code, err = main_err(capsys, ["train", cfg.replace("run.toml", "x.toml")])
    assert code == 2 and "no configuration file" in err
    code, err = main_err(capsys, ["train", write(tmp_path, MINI + "\n[trainig]\nlr = 1.0\n", "b.toml")])
    assert code == 2 and "unknown section [trainig]" in err and "did you mean 'training'" in err
    code, err = main_err(capsys, ["train", write(tmp_path, MINI.replace("delta = 1", "delta = 1\nlr = 0.1"), "c.toml")])
    assert code == 2 and "'lr' belongs in [training]" in err
    code, err = main_err(capsys, ["train", cfg, "--set", "network.tau_mem_=3"])
    assert code == 2 and "did you mean 'tau_mem'" in err


@pytest.mark.parametrize(
    "override,message",
    [
        ("training.lr=-0.1", "training.lr must be > 0, got -0.1"),
        ("training.beta2=1.0", "training.beta2 must be in [0, 1)"),
        ("training.epochs=2.5", "training.epochs must be an integer >= 0"),
        ("network.tau_mem=0", "tau_mem must be > 0"),
        ('network.reset="zeros"', "did you mean 'zero'"),
        ("task.delta=0", "'delta' must be an integer >= 1"),
        ("task.T=2", "'T' must be an int > d"),
        ('flossing.schedule="periodc"', "did you mean 'periodic'"),
        ('flossing.schedule="periodic"', "flossing.every must be >= 1"),
        ("lyapunov.k=100", "lyapunov.k must be <= M = 12"),
        ('training.params=["W_rec", "x0"]', "'x0' does not exist for cell = 'clif'"),
        ("output.checkpoint_every=-1", "output.checkpoint_every must be an integer >= 0"),
    ],
)
def test_values_out_of_range(tmp_path, capsys, override, message):
    cfg = write(tmp_path, MINI)
    code, err = main_err(capsys, ["train", cfg, "--set", override, "--out", str(tmp_path / "o")])
    assert code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_malformed_toml(tmp_path, capsys):
    cfg = write(tmp_path, "[network]\nlayers = [6\ndt = 5.0\n")
    code, err = main_err(capsys, ["train", cfg])
    assert code == 2
    assert "malformed TOML" in err and "line" in err
    assert len(err.strip().splitlines()) == 1
    code, err = main_err(capsys, ["train", write(tmp_path, "network = 3\n", "b.toml")])
    assert code == 2 and "must be a section [network]" in err


def test_checkpoint_of_another_configuration(tmp_path, capsys):
    cfg = write(tmp_path, MINI)
    out = tmp_path / "o"
    assert cli.main(["train", cfg, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    other = write(tmp_path, MINI.replace("layers = [6]", "layers = [7]"), "other.toml")
    code, err = main_err(capsys, ["train", other, "--out", str(out), "--resume", str(out / "checkpoint.h5"), "--epochs", "4"])
    assert code == 2
    assert "different configuration" in err and "network.layers: [6] in the checkpoint, [7] here" in err
    assert len(err.strip().splitlines()) == 1
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    assert after == before  # nothing overwritten, nothing added
    code, err = main_err(capsys, ["train", cfg, "--resume", str(tmp_path / "nope.h5")])
    assert code == 2 and "--resume" in err and "no such file" in err
    code, err = main_err(capsys, ["train", cfg, "--resume", cfg])
    assert code == 2 and "cannot read checkpoint" in err


def test_set_parses_toml_values(tmp_path):
    run = load(write(tmp_path, MINI),
        overrides=["network.layers=[5, 4]", "network.reset=subtract", "flossing.lo=-inf", "training.clip_norm=0"])  # fmt: skip
    assert run.network.layers == (5, 4) and run.network.reset == "subtract"
    assert run.training.adam().clip_norm is None
    with pytest.raises(ValueError, match="SECTION.KEY=VALUE"):
        load(write(tmp_path, MINI), overrides=["layers=3"])


def test_integers_and_floats_compare_equal_on_resume(tmp_path):
    """``slope = 2`` and ``slope = 2.0`` are the same configuration."""
    a = loads(MINI)
    b = loads(MINI.replace("slope = 2.0", "slope = 2"))
    assert a == b and json.dumps(a.to_dict()) == json.dumps(b.to_dict())
