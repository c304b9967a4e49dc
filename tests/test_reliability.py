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


def test_pytest_prints_its_summary_line():
    """Point 14: `python -m pytest -x -q` printed no summary (a `-q` in addopts made it `-qq`)."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                        "tests/test_optim.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0
    assert any(" passed" in line for line in r.stdout.splitlines()[-2:]), r.stdout[-500:]
