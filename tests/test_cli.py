"""The command line: exit codes 0 (ok), 1 (a failed check), 2 (bad input, one line)."""

import h5py
import numpy as np

from refimpl.cli import main


def test_gradcheck_passes_and_fails(capsys):
    assert main(["gradcheck", "--T", "10", "--layers", "4,3"]) == 0
    out = capsys.readouterr().out
    assert "bptt fwd_rev" in out and "0 failed" in out
    assert main(["gradcheck", "--T", "10", "--layers", "4,3", "--reset-grad", "attached", "--fault", "bptt_drop_reset_term"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_gradcheck_bad_input(capsys):
    assert main(["gradcheck", "--surrogate", "sigmod"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--surrogate" in err and "did you mean 'sigmoid'" in err and len(err.splitlines()) == 1
    assert main(["gradcheck", "--layers", "4,x"]) == 2
    assert main(["gradcheck", "--fault", "nope"]) == 2


def test_lyapunov_and_floss_write_files(tmp_path, capsys):
    spec = tmp_path / "spec.h5"
    assert (
        main(
            [
                "lyapunov",
                "--layers",
                "8",
                "--n-in",
                "10",
                "--T",
                "60",
                "--k",
                "4",
                "--out",
                str(spec),
                "--plot",
                str(tmp_path / "spec.png"),
            ]
        )
        == 0
    )
    with h5py.File(spec) as f:
        assert f["spectrum"].shape == (4,) and np.all(np.isfinite(f["spectrum"][()]))
    assert (tmp_path / "spec.png").stat().st_size > 0
    hist = tmp_path / "floss.h5"
    assert main(["floss", "--layers", "8", "--n-in", "10", "--T", "60", "--k", "2", "--steps", "3", "--out", str(hist)]) == 0
    with h5py.File(hist) as f:
        assert f["exponents"].shape == (4, 2)
    assert main(["lyapunov", "--layers", "8", "--k", "17"]) == 2
    assert "lyapunov.k" in capsys.readouterr().err


def test_the_package_docstring_example_runs():
    """The public API example of refimpl/__init__.py is what it says."""
    import doctest

    import refimpl

    res = doctest.testmod(refimpl, verbose=False)
    assert res.attempted >= 8 and res.failed == 0
