"""Regression tests of issue 15's points fixed so far (each failed before its fix)."""

import subprocess
import sys
from pathlib import Path
import pytest

from refimpl import cli

ROOT = Path(__file__).resolve().parents[1]


def test_readme_gradcheck_command_fits_a_map_cell(capsys):
    """Point 6: the README's `gradcheck --cell binary …` exited 2 because the default --layers 6,4 does not
    fit a one-layer cell; defaults now follow the cell."""
    assert cli.main(["gradcheck", "--cell", "binary", "--surrogate", "arctan", "--slope", "2", "--reset-grad", "attached"]) == 0
    assert "layers=(6,)" in capsys.readouterr().out
    assert cli.main(["gradcheck", "--cell", "rate", "--layers", "6,4"]) == 2  # an explicit misfit still fails
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
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "tests/test_optim.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0
    assert any(" passed" in line for line in r.stdout.splitlines()[-2:]), r.stdout[-500:]


def test_resume_continues_in_the_checkpoints_directory(tmp_path, monkeypatch):
    """Point 5: `train runs/xor/config.toml --resume runs/xor/checkpoint.h5` continued into the preset's
    output.dir, not into runs/xor."""
    monkeypatch.chdir(tmp_path)
    args = ["train", "delayed_xor", "--out", "runs/xor", "--epochs", "1", "--quiet", "--set",
        "training.steps_per_epoch=1", "--set", "training.test_size=8", "--set", "lyapunov.every=0", "--set",
        "network.layers=[20]"]  # fmt: skip
    assert cli.main(args) == 0
    assert cli.main(["train", "runs/xor/config.toml", "--resume", "runs/xor/checkpoint.h5", "--epochs", "2", "--quiet"]) == 0
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
    assert [oct((tmp_path / n).stat().st_mode & 0o777) for n in ("a.toml", "b.h5", "c.toml")] == ["0o644", "0o644", "0o600"]


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
    from refimpl.model.config import network_config

    for argv, word in (
        (["floss", "--steps", "-3"], "--steps"),
        (["floss", "--tol", "-1"], "--tol"),
        (["floss", "--every", "0"], "--every"),
        (["bench", "--quick", "--sizes", "abc"], "--sizes"),
    ):
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

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from refimpl.io import directory_lock\n"
                f"with directory_lock({str(tmp_path / 'run')!r}):\n"
                "    print('locked', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["train", "delayed_xor", "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet", "--set",
            "network.layers=[20]", "--set", "training.steps_per_epoch=1", "--set", "training.test_size=8",
            "--set", "lyapunov.every=0"]  # fmt: skip
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid}" in err and len(err.strip().splitlines()) == 1, err
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    _time.sleep(0.1)
    assert cli.main(argv) == 0  # the dead holder's lock is gone


def test_bad_output_paths_stop_before_any_work(tmp_path, capsys):
    """Point 2: --out/--plot under /proc, below a file, or naming a directory gave a traceback after
    the computation (lyapunov, floss, bench) or at the end (train, demo, golden export)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    bad = {"under /proc": "/proc/refimpl/out.h5", "below a file": str(afile / "out.h5"), "a directory": str(tmp_path)}
    small = ["--layers", "8", "--n-in", "4", "--T", "30", "--k", "2"]
    for why, path in bad.items():
        for argv in (
            ["lyapunov", *small, "--out", path],
            ["lyapunov", *small, "--plot", path],
            ["floss", *small, "--steps", "1", "--out", path],
            ["bench", "--quick", "--out", path],
            ["golden", "export", path, "--case", "rate_state"],
        ):
            assert cli.main(argv) == 2, (why, argv)
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (why, argv, err)
    for argv, msg in (
        (["train", "delayed_xor", "--out", str(afile / "run"), "--epochs", "1", "--quiet"], "is a file"),
        (["demo", "--quick", "--out", str(afile)], "is not a directory"),
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "--out" in err and len(err.strip().splitlines()) == 1, err


#: the long commands, each with a budget far longer than the test waits, and the window of moments at which
#: Ctrl-C arrives: seconds after the command's first line of output (True), or after its start (False:
#: the command prints nothing before it ends), so that most moments fall while the work runs
LONG_COMMANDS = {
    "floss": (["floss", "--layers", "32", "--k", "8", "--T", "200", "--steps", "100000", "--out", "f.h5"], (0.0, 2.0), True),
    "lyapunov": (["lyapunov", "--T", "60000", "--k", "16", "--out", "l.h5", "--plot", "l.png"], (0.5, 4.0), False),
    "bench": (
        [
            "bench",
            "--no-torch",
            "--no-memory",
            "--no-startup",
            "--sizes",
            "16,32,48",
            "--ks",
            "4,8",
            "--T",
            "400",
            "--T-bptt",
            "200",
            "--batch",
            "4",
            "--out",
            "b.json",
        ],
        (0.0, 2.0),
        True,
    ),
    "golden": (["golden", "export", "g.h5"], (0.4, 1.0), False),
    "sweep": (["sweep", "s.toml", "--workers", "1"], (0.0, 3.0), True),
    "demo": (["demo", "--out", "d"], (0.0, 3.0), True),
    "train": (
        ["train", "delayed_xor", "--out", "t", "--set", "network.layers=[24]", "--set", "lyapunov.every=2"],
        (0.0, 3.0),
        True,
    ),
}

SWEEP_FILE = """
[sweep]
base = "delayed_xor"
out = "sw"
[axes]
seed = [{ "network.seed" = 1 }, { "network.seed" = 2 }, { "network.seed" = 3 }]
[set]
"network.layers" = [16]
"training.epochs" = 20
"training.steps_per_epoch" = 4
"training.test_size" = 16
"lyapunov.every" = 0
"output.progress" = false
"""


def _no_damaged_files(root: Path) -> None:
    """Every file a command left is complete: HDF5, JSON, TOML and PNG files open; no temporaries."""
    import json
    import tomllib
    import h5py

    for f in root.rglob("*"):
        if not f.is_file():
            continue
        assert ".tmp" not in f.name, f"temporary file left behind: {f}"
        if f.suffix == ".h5":
            with h5py.File(f, "r") as h:
                assert len(h.keys()) or len(h.attrs), f
        elif f.suffix == ".json":
            json.loads(f.read_text())
        elif f.suffix == ".toml":
            tomllib.loads(f.read_text())
        elif f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f


def test_ctrl_c_at_a_random_moment_of_every_long_command(tmp_path):
    """Point 1 (fault injection): SIGINT at random moments of each long command. Before the fix, floss
    printed `SystemError: CPUDispatcher(floss_backward_rows) returned a result with an exception set`, exited
    1 and saved nothing. Now every command exits 130 with one line on stderr that names it, no traceback,
    and every file it leaves is complete."""
    import random
    import signal
    import threading
    import time as _time

    rng = random.Random(15)

    def interrupt(p, delay, after_first_line, result):
        t0 = _time.time()
        first = p.stdout.readline() if after_first_line else ""
        t1 = _time.time() if after_first_line else t0
        _time.sleep(max(0.0, delay - (_time.time() - t1)))
        result["finished_before"] = p.poll() is not None
        if not result["finished_before"]:
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=180)
        result.update(out=first + out, err=err, at=_time.time() - t0)

    for name, (argv, (lo, hi), after_first_line) in LONG_COMMANDS.items():
        trials = []
        for trial in range(2):  # two moments at once (two cores)
            d = tmp_path / f"{name}{trial}"
            d.mkdir()
            (d / "s.toml").write_text(SWEEP_FILE)
            p = subprocess.Popen([sys.executable, "-m", "refimpl.cli", *argv], cwd=d, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)  # fmt: skip
            res = {}
            th = threading.Thread(target=interrupt, args=(p, rng.uniform(lo, hi), after_first_line, res))
            th.start()
            trials.append((d, p, th, res))
        for d, p, th, res in trials:
            th.join()
            out, err = res["out"], res["err"]
            why = (name, round(res["at"], 2), p.returncode, out[-300:], err)
            assert "Traceback" not in err and "Error" not in err.replace("error", ""), why
            if p.returncode in (0, -signal.SIGINT) and not err.strip() and ("wrote" in out or "done:" in out):
                # the command had finished its work (and said so) when the signal came: while it exited, the
                # signal is moot (exit 0) or kills the interpreter whose handlers are gone (-2; a shell says 130)
                pass
            elif res["finished_before"]:  # faster than the moment drawn: it must have succeeded
                assert p.returncode == 0, why
            else:
                lines = [ln for ln in err.splitlines() if ln.strip()]
                assert p.returncode == 130, why
                assert len(lines) == 1 and lines[0].startswith(f"refimpl {name}: interrupted (Ctrl-C)"), why
            _no_damaged_files(d)


def test_interrupted_floss_resumes_to_the_uninterrupted_result(tmp_path):
    """Point 1 (floss, "resumable like train"): the file an interrupted run leaves continues with --resume
    to exactly the history and parameters of a run that was never interrupted."""
    import signal
    import time as _time
    import h5py
    import numpy as np

    base = ["floss", "--layers", "16", "--k", "4", "--T", "100", "--n-in", "8", "--every", "1"]
    assert cli.main([*base, "--steps", "40", "--out", str(tmp_path / "whole.h5")]) == 0
    part = tmp_path / "part.h5"
    p = subprocess.Popen([sys.executable, "-m", "refimpl.cli", *base, "--steps", "40", "--out", str(part)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    while not p.stdout.readline().startswith("step    3"):
        assert p.poll() is None, p.stderr.read()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "--resume" in err, err
    with h5py.File(part, "r") as f:
        n = f["loss"].shape[0]
        assert f.attrs["interrupted"] and 3 < n < 41
    assert cli.main([*base, "--steps", "40", "--resume", str(part)]) == 0
    with h5py.File(part, "r") as a, h5py.File(tmp_path / "whole.h5", "r") as b:
        assert not a.attrs["interrupted"]
        np.testing.assert_array_equal(a["exponents"][()], b["exponents"][()])
        np.testing.assert_array_equal(a["params/layer1/W_rec"][()], b["params/layer1/W_rec"][()])
        assert a.attrs["best_step"] == b.attrs["best_step"]
    # other flags than the interrupted run's: refused before any work, naming the flag
    assert cli.main([*base, "--steps", "40", "--lr", "0.5", "--resume", str(part)]) == 2
    assert cli.main([*base, "--resume", str(tmp_path)]) == 2
    _time.sleep(0)


def test_floss_reports_the_target_and_keeps_the_best_iterate(tmp_path, capsys):
    """Point 7: the README's floss example raised the flossing loss, never met --tol and exited 0 saying
    nothing; now the end says whether the target was met and the best iterate's parameters are kept."""
    import h5py
    import numpy as np

    out = tmp_path / "f.h5"
    assert (
        cli.main(
            [
                "floss",
                "--layers",
                "64",
                "--k",
                "16",
                "--steps",
                "30",
                "--lr",
                "0.002",
                "--tol",
                "0.01",
                "--every",
                "10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "target max|λ_i - target| < 0.01: NOT met" in text and "best" in text
    first = next(ln for ln in text.splitlines() if ln.startswith("step    0"))
    assert first.endswith("ETA     -")  # no ETA from the first (compiling) step
    with h5py.File(out, "r") as f:
        loss, b = f["loss"][()], int(f.attrs["best_step"])
        assert loss[b] == loss.min() and "best_params" in f
        assert not np.array_equal(f["best_params/layer1/W_rec"][()], f["params/layer1/W_rec"][()])


def _ill_conditioned():
    """A binary network whose input weights nearly saturate it, with ons = 2: κ ≈ 5e11, no vanished R_ii
    (the issue's case was a binary cell, gaussian γ = 2.59, ons = 2, κ = 8.6e14)."""
    from refimpl.model.config import LyapunovConfig, network_config
    from refimpl.model.network import init_params
    from refimpl.tasks.generators import poisson_inputs

    cfg = network_config(cell="binary", layers=(32,), n_in=100, n_out=1, surrogate={"name": "gaussian", "slope": 2.59})
    params = init_params(cfg, 3, w_in=36.0, g_rec=2.0)
    inputs = poisson_inputs(T=300, batch=1, n_in=100, rate_hz=10.0, seed=1, dt=1.0)
    return cfg, params, inputs, LyapunovConfig(k=6, ons=2)


def test_ill_conditioned_spectra_are_flagged(monkeypatch, tmp_path, capsys):
    """Point 8: a spectrum with qr_condition 8.6e14 (its smallest exponents and flossing gradient set by
    rounding) raised no warning. Now: ConditioningWarning naming the exponents and suggesting ons = 1 or a
    smaller k, from the spectrum and from flossing; none for a well-conditioned case; golden export refuses."""
    import warnings
    import pytest
    from refimpl.dynamics import flossing, lyapunov
    from refimpl.check import golden

    cfg, params, inputs, lcfg = _ill_conditioned()
    with pytest.warns(lyapunov.ConditioningWarning, match=r"exponents \[\d.*6\].*ons = 1 \(now 2\).*smaller k") as rec:
        res = lyapunov.spectrum(cfg, params, inputs, lcfg)
    assert res.qr_condition > lyapunov.CONDITION_LIMIT and res.kappa.shape == (6,) and not res.degenerate
    assert all("[1," not in str(w.message) for w in rec)  # the leading exponent is well resolved
    for fused in (True, False):  # both code paths of the spectrum and of the flossing gradient
        if not fused:
            monkeypatch.setattr(flossing, "fused_ok", lambda cfg: False)
            monkeypatch.setattr(lyapunov, "fused_ok", lambda cfg: False)
            with pytest.warns(lyapunov.ConditioningWarning, match=r"6\]"):
                # the smallest R_ii are set by rounding here (κ·u ≈ 1e-4), and the two paths use different QR
                # algorithms (CholeskyQR2 with a Householder fallback, and LAPACK): equal to about κ·u
                step = lyapunov.spectrum(cfg, params, inputs, lcfg).qr_condition
                assert step == pytest.approx(res.qr_condition, rel=1e-3)
        with pytest.warns(lyapunov.ConditioningWarning, match="flossing gradient"):
            flossing.value_and_grad(cfg, params, inputs, lcfg)
    monkeypatch.undo()
    good = lyapunov.LyapunovConfig(k=3, ons=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lyapunov.spectrum(cfg, params, inputs, good).qr_condition < lyapunov.CONDITION_LIMIT
    # golden export refuses a case above the limit (here: the limit lowered below the case's κ = 2.7e5)
    monkeypatch.setattr(lyapunov, "CONDITION_LIMIT", 1e3)
    case = next(c for c in golden.CASES if c.name == "rate_activation_full_spectrum")
    with pytest.raises(ValueError, match="rate_activation_full_spectrum.*refusing"):
        golden.compute_case(case)
    assert cli.main(["golden", "export", str(tmp_path / "g.h5"), "--case", case.name]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "refusing" in err and not (tmp_path / "g.h5").exists()


def test_huge_weights_are_warned_about():
    """Point 9: weights x 1e300 gave λ ≈ 683/step without a word. Now a ScaleWarning names the parameter."""
    import pytest
    from refimpl.model.config import LyapunovConfig, network_config
    from refimpl.dynamics.lyapunov import spectrum
    from refimpl.model.network import ScaleWarning, init_params
    from refimpl.tasks.generators import poisson_inputs

    cfg = network_config(cell="clif", layers=(16,), n_in=10, n_out=1)
    params = init_params(cfg, 0)
    params["layer1/W_rec"] = params["layer1/W_rec"] * 1e300
    inputs = poisson_inputs(T=50, batch=1, n_in=10, rate_hz=10.0, seed=1, dt=1.0)
    with pytest.warns(ScaleWarning, match=r"layer1/W_rec.*9\.\de\+299"):
        spectrum(cfg, params, inputs, LyapunovConfig(k=2))


def test_messages_name_what_the_user_typed(tmp_path, capsys):
    """Point 10: `poisson_inputs: parameter 'T'` for --T and 'rate_hz' for --rate; --set errors blamed on the
    preset file; a directory given to --resume or to train reported as missing; no way to switch
    --checkpoint-every off from the CLI."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.h5").write_bytes(b"")
    (run / "config.toml").write_text("")
    cases = [
        (["lyapunov", "--T", "0"], "--T must be"),
        (["lyapunov", "--rate", "-5"], "--rate must be"),
        (["lyapunov", "--n-in", "0"], "--n-in must be"),
        (["lyapunov", "--tau-mem", "-1"], "--tau-mem must be"),
        (["lyapunov", "--k", "0"], "--k must be"),
        (["gradcheck", "--loss", "bce"], "--loss must be"),
        (["floss", "--params", "W_out"], "--params"),
        (["train", "delayed_xor", "--set", "network.layers=[0]"], "--set network.layers=[0]: network.layers[0]"),
        (["train", "delayed_xor", "--set", "training.lr=abc"], "--set training.lr=abc: training.lr"),
        (["train", "delayed_xor", "--set", "network.layers=[40]", "--set", "lyapunov.k=100"], "--set lyapunov.k=100: "),
        (
            ["train", "delayed_xor", "--set", "network.layers=[16]", "--set", "flossing.k=100"],
            "--set flossing.k=100: flossing.k must be <= M = 32",
        ),
        (["train", str(run)], f"'{run}' is a directory, not a configuration file; did you mean '{run / 'config.toml'}'"),
        (
            ["train", "delayed_xor", "--resume", str(run)],
            f"--resume {run}: is a directory, not a checkpoint file; did you mean '{run / 'checkpoint.h5'}'",
        ),
        (["floss", "--checkpoint-every", "-1"], "--checkpoint-every must be >= 0 (0: off)"),
        (["floss", "--steps", "abc"], "argument --steps: invalid int value"),
    ]
    for argv, expected in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert "poisson_inputs" not in err and "rate_hz" not in err and "presets/delayed_xor.toml" not in err, err


def test_validate_can_be_strict_and_refuses_a_damaged_reference(tmp_path, capsys):
    """Point 11: validate exited 0 when the candidate lacked a gradient or the reference lacked a dataset.
    Now the summary says how many of the reference's quantities were compared, --strict makes a missing
    one exit 1, and a damaged reference is exit 2."""
    import shutil
    import h5py
    from refimpl.check.golden import default_reference

    ref = Path(default_reference())
    cand, damaged = tmp_path / "cand.h5", tmp_path / "ref.h5"
    shutil.copy(ref, cand)
    shutil.copy(ref, damaged)
    with h5py.File(cand, "a") as f:
        del f[sorted(f)[0]]["grad"]
    with h5py.File(damaged, "a") as f:
        del f[sorted(f)[1]]["lyapunov/spectrum"]
    assert cli.main(["validate", str(cand)]) == 0
    out = capsys.readouterr().out
    assert "of the reference's" in out and "pass --strict" in out
    assert cli.main(["validate", str(cand), "--strict"]) == 1
    assert "INCOMPLETE" in capsys.readouterr().out
    assert cli.main(["validate", str(ref), "--strict"]) == 0
    capsys.readouterr()
    assert cli.main(["validate", str(ref), "--reference", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "lyapunov/spectrum" in err and len(err.strip().splitlines()) == 1


def _readme_commands() -> list:
    """The commands of the README's "Commands" block: (argv after `refimpl`, the comment)."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Commands\n\n```bash\n(.*?)```", text, re.S).group(1)
    out = []
    for line in block.strip().splitlines():
        cmd, _, comment = line.partition("#")
        words = shlex.split(cmd)
        assert words[0] == "refimpl", line
        out.append((words[1:], comment.strip()))
    return out


#: small budgets for the README's commands (the same flags, smaller numbers; appended flags win)
SMALL_TRAIN = ["--set", "training.steps_per_epoch=1", "--set", "training.test_size=8", "--set",
    "lyapunov.every=0", "--set", "network.layers=[12]", "--set", "lyapunov.k=4", "--set", "flossing.k=4", "--set",
    "training.batch_size=4"]  # fmt: skip


def _small(argv: list) -> list:
    argv = list(argv)
    cmd = argv[0]

    def replace(flag, value):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv.extend([flag, value])

    if cmd == "demo":
        return argv + ["--quick"]
    if cmd == "train":
        if "--resume" in argv:  # continues the run the line before made: same configuration
            replace("--epochs", "2")
            return argv
        extra = list(SMALL_TRAIN)
        if "flossing.schedule=none" not in argv:
            extra += ["--set", "flossing.pre_steps=2", "--set", "flossing.steps=2"]
        replace("--epochs", "1")
        return argv + extra
    if cmd == "floss":
        replace("--steps", "3")
        return argv
    if cmd == "lyapunov":
        replace("--T", "100")
        return argv
    if cmd == "bench":
        return argv + ["--no-torch", "--no-memory", "--no-startup"]
    if cmd == "validate":  # "candidate.h5" stands for another implementation's file
        return [("golden.h5" if a == "candidate.h5" else a) for a in argv]
    if cmd in ("gradcheck", "golden"):
        return argv
    if cmd == "digits":  # already --small
        return argv
    if cmd == "exact":
        replace("--T", "30")
        return argv + ["--layers", "6", "--dt", "1,0.5"]
    raise AssertionError(f"README command {argv} has no small budget in this test: add one")


def test_every_readme_command_exits_as_documented(tmp_path, monkeypatch, capsys):
    """Point 6: a README command (`gradcheck --cell binary …`) exited 2. Every command of the README's
    "Commands" block now runs (on small budgets) and exits as its comment says: 1 where it says so, 2 (one
    line) for the SHD line without the SHD files, else 0."""
    import warnings

    monkeypatch.chdir(tmp_path)
    commands = _readme_commands()
    assert len(commands) >= 10
    for argv, comment in commands:
        expected = 1 if "exit 1" in comment else 2 if "if you have the files" in comment else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings are not exits
            rc = cli.main(_small(argv))
        err = capsys.readouterr().err
        assert rc == expected, (argv, rc, err)
        if rc == 2:
            assert len(err.strip().splitlines()) == 1, err
    assert cli.main(["sweep", "example", "--dry-run"]) == 0  # the Sweeps section's listing


def test_help_documents_every_option_and_imports_nothing_numerical():
    """Point 13: many options had no help text and showed no default (--T, --batch, --loss, --steps, --lr,
    --target, --warmup, --transient, --seed, --n-in), --surrogate listed no choices, and `refimpl --help`
    took 1.5-3 s because every command's numerical modules were imported at start-up."""
    import argparse

    parser, _ = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = set()

    def walk(p, name):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for n, q in a.choices.items():
                    walk(q, f"{name} {n}")
            elif a.option_strings and a.dest != "help":
                assert a.help and a.help.strip(), f"refimpl {name} {a.option_strings[0]} has no help"
                seen.add(a.option_strings[0])
        text = p.format_help()
        for a in p._actions:
            if (
                a.option_strings
                and a.default not in (None, False, argparse.SUPPRESS)
                and a.dest != "help"
                and not isinstance(a.default, list)
            ):
                i = text.index("\n  " + a.option_strings[0])  # its entry, not the usage line
                j = text.find("\n  -", i + 3)
                assert "default" in text[i : j if j > 0 else None], f"refimpl {name} {a.option_strings[0]}: default not shown"

    for n, q in sub.choices.items():
        walk(q, n)
    assert {"--T", "--batch", "--loss", "--steps", "--lr", "--target", "--warmup", "--transient", "--seed",
        "--n-in", "--surrogate"} <= seen  # fmt: skip
    assert "gaussian" in sub.choices["lyapunov"].format_help()  # --surrogate lists its choices
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys; from refimpl.cli import main\n"
                "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                "print(sorted(m for m in ('numpy', 'numba', 'h5py', 'scipy', 'matplotlib') if m in sys.modules))"
            ),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout[-300:] + r.stderr


def test_a_ctrl_c_after_the_last_poll_is_not_lost():
    """Point 1 (found by CI's fault injection): a SIGINT that arrived after a loop's last poll was swallowed
    when the deferral ended, and `refimpl sweep` exited 0. Leaving the deferral now raises it."""
    import os
    import signal
    import pytest
    from refimpl.interrupt import DeferredInterrupt

    with pytest.raises(KeyboardInterrupt):
        with DeferredInterrupt(message=None) as sigint:
            sigint.poll()
            os.kill(os.getpid(), signal.SIGINT)  # after the last poll
            import time

            time.sleep(0.05)  # let the handler run
    with DeferredInterrupt(message=None) as sigint:  # nothing pending: leaves quietly
        sigint.poll()


@pytest.mark.parametrize(
    "env, expected",
    [({}, 1), ({"REFIMPL_THREADS": "2"}, 2), ({"OPENBLAS_NUM_THREADS": "4"}, None), ({"OMP_NUM_THREADS": "2"}, None),
        ({"REFIMPL_THREADS": "3", "OPENBLAS_NUM_THREADS": "1"}, 3)],
)  # fmt: skip
def test_blas_threads_default_to_one_unless_the_user_says(env, expected):
    """docs/performance.md, "Threads": a command uses 1 BLAS thread (a second one costs up to 50x when the other
    core is busy) unless REFIMPL_THREADS says otherwise; a user's own OPENBLAS/OMP setting is left alone."""
    from refimpl.threads import default_threads

    assert default_threads(env) == expected


@pytest.mark.parametrize("value", ["0", "two", "-1", ""])
def test_a_bad_refimpl_threads_is_one_line_and_exit_2(value, monkeypatch, capsys):
    from refimpl import cli

    monkeypatch.setenv("REFIMPL_THREADS", value)
    assert cli.main(["gradcheck"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "REFIMPL_THREADS" in err


def test_every_command_sets_the_default_threads(monkeypatch, capsys, tmp_path):
    """The command line applies the default before the command runs (here one that then stops on bad input)."""
    import refimpl.threads
    from refimpl import cli

    calls = []
    monkeypatch.delenv("REFIMPL_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(refimpl.threads, "set_threads", lambda n, torch_too=True: calls.append(n) or [])
    assert cli.main(["lyapunov", "--layers", "0", "--out", str(tmp_path / "x.h5")]) == 2
    assert calls == [1]
