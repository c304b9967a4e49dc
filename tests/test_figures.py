"""Every figure script runs end to end on its --quick budget and writes its three outputs.

The real figures take minutes to hours (docs/results.md); here each script's
pipeline — sweep, aggregation, plotting, table — runs on a toy budget in a
temporary directory, so a change that breaks a figure is caught by the suite.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIGURES = Path(__file__).resolve().parents[1] / "figures"
SCRIPTS = ["fig_a_binary_xor", "fig_b_binary_spectrum", "fig_c_clif_xor", "fig_d_error_vs_lambda", "fig_init",
    "fig_e_slow_modes", "fig_multilayer", "fig_randman", "fig_schedules", "fig_gf_rate_xor", "fig_gf_binary_xor",
    "fig_gf_rate_schedules", "fig_gf_clif_xor", "fig_gf_clif_multilayer", "fig_gf_clif_schedules"]  # fmt: skip


@pytest.mark.parametrize("name", SCRIPTS)
def test_figure_quick(tmp_path, name):
    r = subprocess.run(
        [sys.executable, str(FIGURES / f"{name}.py"), "--quick", "--workers", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for ext in ("png", "md", "json"):
        assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    json.loads((tmp_path / f"{name}.json").read_text())
    assert "Command:" in (tmp_path / f"{name}.md").read_text()


@pytest.mark.parametrize("grid", ["ignored", "preonly"])
def test_the_other_schedule_grids_run(tmp_path, grid):
    """fig_gf_clif_schedules.py --grid: the reset_grad = ignored grid and the pre-flossing-alone grid."""
    r = subprocess.run([sys.executable, str(FIGURES / "fig_gf_clif_schedules.py"), "--grid", grid, "--quick", "--workers",
        "1", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    name = {"ignored": "fig_gf_clif_schedules_ignored", "preonly": "fig_gf_clif_preonly"}[grid]
    assert "Command:" in (tmp_path / f"{name}.md").read_text() and f"--grid {grid}" in (tmp_path / f"{name}.md").read_text()


def test_figure_rerun_skips_finished_jobs(tmp_path):
    """A second run of a sweep-backed figure reuses every finished job (nothing is lost or redone)."""
    args = [sys.executable, str(FIGURES / "fig_a_binary_xor.py"), "--quick", "--workers", "1", "--out", str(tmp_path)]
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)
    jobs = sorted((tmp_path / "runs" / "a_binary_xor" / "jobs").glob("*.h5"))
    stamps = [p.stat().st_mtime_ns for p in jobs]
    r = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)
    skipped = [ln for ln in r.stdout.splitlines() if ln.startswith("skip ")]
    assert len(skipped) == len(jobs) == 4
    assert [p.stat().st_mtime_ns for p in jobs] == stamps


def test_figure_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    """Ctrl-C during a figure's sweep: one line naming what finished, exit 130, no traceback."""
    import argparse

    monkeypatch.syspath_prepend(str(FIGURES))  # the figure modules and the sweeps' job modules
    import common

    from refimpl import sweep

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_jobs", interrupted)
    args = argparse.Namespace(quick=True, out=str(tmp_path), workers=1)
    with pytest.raises(SystemExit) as exc:
        common.run_sweep("a_binary_xor.toml", args)
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted; 0 of" in err and "run the same command again" in err
