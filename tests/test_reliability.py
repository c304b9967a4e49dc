"""Regression tests of issue 15's points fixed so far (each failed before its fix)."""
import subprocess
import sys
from pathlib import Path

from refimpl import cli

ROOT = Path(__file__).resolve().parents[1]


def test_readme_gradcheck_command_fits_a_map_cell(capsys):
    """Point 6: the README's `gradcheck --cell binary …` exited 2 because the default --layers 6,4 does not
    fit a one-layer cell; defaults now follow the cell."""
    assert cli.main(["gradcheck", "--cell", "binary", "--surrogate", "arctan", "--slope", "2",
                     "--reset-grad", "attached"]) == 0
    assert "layers=(6,)" in capsys.readouterr().out
    assert cli.main(["gradcheck", "--cell", "rate", "--layers", "6,4"]) == 2   # an explicit misfit still fails
    assert "one entry" in capsys.readouterr().err


def test_demo_refuses_to_overwrite(tmp_path, capsys):
    """Point 4: a second `refimpl demo` into the same --out overwrote the first silently."""
    out = tmp_path / "d"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a demo" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (out / "summary.json").read_text() == "{}"
    assert cli.main(["demo", "--quick", "--out", str(out), "--force"]) == 0
    import json
    # point 15: summary.json recorded output.dir = "out" whatever --out was
    assert json.loads((out / "summary.json").read_text())["config"]["output"]["dir"] == str(out)


def test_pytest_prints_its_summary_line():
    """Point 14: `python -m pytest -x -q` printed no summary (a `-q` in addopts made it `-qq`)."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                        "tests/test_optim.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0
    assert any(" passed" in line for line in r.stdout.splitlines()[-2:]), r.stdout[-500:]


def test_resume_continues_in_the_checkpoints_directory(tmp_path, monkeypatch):
    """Point 5: `train runs/xor/config.toml --resume runs/xor/checkpoint.h5` continued into the preset's
    output.dir, not into runs/xor."""
    monkeypatch.chdir(tmp_path)
    args = ["train", "delayed_xor", "--out", "runs/xor", "--epochs", "1", "--quiet",
            "--set", "training.steps_per_epoch=1", "--set", "training.test_size=8", "--set", "lyapunov.every=0",
            "--set", "network.layers=[20]"]
    assert cli.main(args) == 0
    assert cli.main(["train", "runs/xor/config.toml", "--resume", "runs/xor/checkpoint.h5", "--epochs", "2",
                     "--quiet"]) == 0
    from refimpl.training import read_log
    assert read_log(tmp_path / "runs/xor/log.h5")["epochs/epoch"].tolist() == [0, 1, 2]
    assert not (tmp_path / "runs" / "delayed_xor").exists()


def test_written_files_follow_the_umask(tmp_path):
    """Point 12: logs, checkpoints, configs and tables were 0600 whatever the umask (mkstemp)."""
    import os
    from refimpl.io import atomic_h5, atomic_text
    old = os.umask(0o022)
    try:
        atomic_text(tmp_path / "a.toml", "x = 1\n")
        with atomic_h5(tmp_path / "b.h5") as f:
            f["x"] = 1
        os.umask(0o077)
        atomic_text(tmp_path / "c.toml", "x = 1\n")
    finally:
        os.umask(old)
    assert [oct((tmp_path / n).stat().st_mode & 0o777) for n in ("a.toml", "b.h5", "c.toml")] == [
        "0o644", "0o644", "0o600"]


def test_read_log_names_a_file_that_is_not_a_log(tmp_path):
    """Point 15: read_log on a non-HDF5 file raised a raw OSError."""
    import h5py
    import pytest
    from refimpl.training import read_log
    (tmp_path / "notes.txt").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        read_log(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="not a file"):
        read_log(tmp_path)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="no training log"):
        read_log(tmp_path / "other.h5")


def test_silent_no_ops_are_errors(capsys):
    """Point 9: `floss --steps -3` and `--tol -1` ran (doing nothing, or never stopping) and exited 0;
    `bench --quick --sizes abc` ignored --sizes; tau_mem = "10" was stored as a string; theta = -1 passed."""
    import pytest
    from refimpl.config import network_config
    for argv, word in ((["floss", "--steps", "-3"], "--steps"), (["floss", "--tol", "-1"], "--tol"),
                       (["floss", "--every", "0"], "--every"), (["bench", "--quick", "--sizes", "abc"], "--sizes")):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert word in err and len(err.strip().splitlines()) == 1, err
    for kw, word in ((dict(tau_mem="10"), "tau_mem"), (dict(theta=-1.0), "theta"), (dict(dt=True), "dt")):
        with pytest.raises(ValueError, match=word):
            network_config(cell="clif", layers=(4,), n_in=2, n_out=1, **kw)


def test_a_run_directory_has_one_owner(tmp_path, capsys):
    """Point 3: two `refimpl train` runs into one --out both ran, leaving config.toml of one and
    checkpoint.h5 of the other. The second now stops with exit 2 naming the holder's PID, before
    writing anything; the lock dies with its process."""
    import time as _time
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from refimpl.io import directory_lock\n"
        f"with directory_lock({str(tmp_path / 'run')!r}):\n"
        "    print('locked', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["train", "delayed_xor", "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet",
                "--set", "network.layers=[20]", "--set", "training.steps_per_epoch=1",
                "--set", "training.test_size=8", "--set", "lyapunov.every=0"]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid}" in err and len(err.strip().splitlines()) == 1, err
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]   # nothing written
    finally:
        holder.kill()
        holder.wait()
    _time.sleep(0.1)
    assert cli.main(argv) == 0          # the dead holder's lock is gone


def test_bad_output_paths_stop_before_any_work(tmp_path, capsys):
    """Point 2: --out/--plot under /proc, below a file, or naming a directory gave a traceback after
    the computation (lyapunov, floss, bench) or at the end (train, demo, golden export)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    bad = {"under /proc": "/proc/refimpl/out.h5", "below a file": str(afile / "out.h5"),
           "a directory": str(tmp_path)}
    small = ["--layers", "8", "--n-in", "4", "--T", "30", "--k", "2"]
    for why, path in bad.items():
        for argv in (["lyapunov", *small, "--out", path], ["lyapunov", *small, "--plot", path],
                     ["floss", *small, "--steps", "1", "--out", path], ["bench", "--quick", "--out", path],
                     ["golden", "export", path, "--case", "rate_state"]):
            assert cli.main(argv) == 2, (why, argv)
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (why, argv, err)
    for argv, msg in ((["train", "delayed_xor", "--out", str(afile / "run"), "--epochs", "1", "--quiet"],
                       "is a file"), (["demo", "--quick", "--out", str(afile)], "is not a directory")):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "--out" in err and len(err.strip().splitlines()) == 1, err


def test_ctrl_c_during_floss_exits_130_and_keeps_the_steps(tmp_path):
    """Point 1 (floss): Ctrl-C printed `SystemError: CPUDispatcher(floss_backward_rows) returned a result
    with an exception set`, exited 1 and saved nothing. Now: exit 130, one line, and the steps so far
    in --out (never a half-written file), at several random moments."""
    import random
    import signal
    import time as _time
    import h5py
    rng = random.Random(0)
    for trial in range(3):
        out = tmp_path / f"floss{trial}.h5"
        p = subprocess.Popen([sys.executable, "-m", "refimpl.cli", "floss", "--layers", "32", "--k", "8",
                              "--T", "200", "--steps", "100000", "--every", "1", "--out", str(out)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while True:   # wait for the first printed step (imports and compilation done)
            line = p.stdout.readline()
            assert line, p.stderr.read()
            if line.startswith("step"):
                break
        _time.sleep(rng.uniform(0.0, 1.0))
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 130, err
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("refimpl floss: interrupted after"), err
        with h5py.File(out, "r") as f:
            assert f.attrs["interrupted"] and f["exponents"].shape[0] == f["loss"].shape[0] >= 1
            assert "layer1/W_rec" in f["params"]
        assert not list(tmp_path.glob(".*.tmp"))


def test_floss_reports_the_target_and_keeps_the_best_iterate(tmp_path, capsys):
    """Point 7: the README's floss example raised the flossing loss, never met --tol and exited 0 saying
    nothing; now the end says whether the target was met and the best iterate's parameters are kept."""
    import h5py
    import numpy as np
    out = tmp_path / "f.h5"
    assert cli.main(["floss", "--layers", "64", "--k", "16", "--steps", "30", "--lr", "0.002", "--tol", "0.01",
                     "--every", "10", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "target max|λ_i - target| < 0.01: NOT met" in text and "best" in text
    first = next(ln for ln in text.splitlines() if ln.startswith("step    0"))
    assert first.endswith("ETA     -")           # no ETA from the first (compiling) step
    with h5py.File(out, "r") as f:
        loss, b = f["loss"][()], int(f.attrs["best_step"])
        assert loss[b] == loss.min() and "best_params" in f
        assert not np.array_equal(f["best_params/layer1/W_rec"][()], f["params/layer1/W_rec"][()])
