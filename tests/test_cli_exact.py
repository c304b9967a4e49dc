"""``refimpl exact``: each action runs, its failures exit 1, bad input exits 2 with one line."""

import json
import subprocess
import sys

import pytest


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "refimpl.cli", "exact", *args], capture_output=True, text=True,
        timeout=600, cwd=cwd)  # fmt: skip


@pytest.mark.parametrize("action", ["simulate", "spectrum", "gradcheck", "compare-surrogate"])
def test_every_action_runs_and_writes_its_result(action, tmp_path):
    out = tmp_path / f"{action}.json"
    r = _run(action, "--T", "40", "--layers", "8", "--dt", "1,0.5", "--k", "3", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"exact {action}: layers=(8,)")
    assert json.loads(out.read_text())
    if action == "gradcheck":
        assert "4 passed, 0 failed" in r.stdout


def test_gradcheck_with_a_fault_exits_1():
    r = _run("gradcheck", "--T", "40", "--layers", "8", "--fault", "2")
    assert r.returncode == 1 and "FAILED" in r.stdout


@pytest.mark.parametrize("args, flag", [(["simulate", "--tau-mem", "0"], "--tau-mem"),
    (["simulate", "--layers", "4,0"], "--layers"), (["simulate", "--reset", "zeros"], "--reset"),
    (["spectrum", "--k", "0"], "--k"), (["simulate", "--T", "0"], "--T"),
    (["compare-surrogate", "--dt", "0.3"], "--dt"), (["compare-surrogate", "--layers", "4,4"], "one layer"),
    (["gradcheck", "--t-ref", "1"], "--t-ref"), (["simulate", "--out", "/proc/x.json"], "--out")])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args, flag):
    r = _run(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1 and flag in r.stderr and "Traceback" not in r.stderr
