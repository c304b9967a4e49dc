"""`refimpl demo --quick`: the whole pipeline end to end on a toy size."""

import json

from refimpl import cli
from refimpl.demo import DEMO, demo_config


def test_demo_quick_writes_report_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert (out / "report.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    for key in ("no_flossing", "flossing"):
        assert 0.0 <= summary["accuracy"][key] <= 1.0
    lam = summary["lambda1_per_step"]
    assert set(lam) == {"initial", "after_preflossing", "after_training_no_flossing", "after_training_flossing"}
    assert summary["timings_s"]["total"] > 0 and summary["quick"] is True
    assert len(summary["spectra_per_step"]["initial"]) == summary["config"]["lyapunov"]["k"]
    for run in ("no_flossing", "flossing"):
        assert (out / run / "log.h5").is_file() and (out / run / "checkpoint.h5").is_file()
    assert "accuracy" in text and "λ₁" in text and "wall time" in text
    # the report's context line and the published-budget findings it shows beside the run (issue 13, point 5)
    assert summary["context"].startswith("recurrent cLIF, N = ")
    studies = summary["findings"]
    assert studies and all("no flossing" in st["series"] and len(st["series"]) > 1 for st in studies)
    assert any(st["network"].startswith("rate") for st in studies)


def test_demo_runs_share_seeds_and_differ_only_in_flossing():
    plain, floss = demo_config()
    assert plain.to_dict()["network"] == floss.to_dict()["network"] == {**plain.to_dict()["network"], **DEMO["network"]}
    assert plain.task == floss.task and plain.training == floss.training
    assert plain.flossing.schedule == "none" and floss.flossing.schedule == "pre"
    assert floss.network_config().cell == "clif" and floss.network.dialect == "engelken"
