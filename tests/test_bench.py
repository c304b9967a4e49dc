"""``refimpl bench`` (tiny sizes): both sides agree, the report is complete. No timing is asserted."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from refimpl import bench, bench_report  # noqa: E402
from refimpl.cli import main  # noqa: E402


def test_quick_bench_agrees_and_reports(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "--quick",
            "--repeats",
            "1",
            "--no-memory",
            "--no-startup",
            "--threads",
            "1",
            "--torch-jacobian",
            "rows",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "max relative difference" in text and "ratio" in text
    data = json.loads(out.read_text())
    kinds = {(r["kind"], r["checkpoint"] > 0) for r in data["rows"]}
    assert kinds == {("bptt", False), ("spectrum", False), ("flossing", False), ("flossing", True)}
    for r in data["rows"]:
        assert r["rel_diff"] < 1e-10, r
        assert r["refimpl_s"] > 0 and r["torch_s"] > 0 and r["flops"] > 0
    assert data["info"]["dgemm_gflops"] > 0
    # the targets, line by line: one per peer and case (N = 16: no dgemm-fraction target)
    assert "targets met:" in text
    # a checkpointed row is judged against the checkpointing peer; the storing peer's time is reported beside it
    assert {t["target"] for t in data["targets"]} == {"10x faster than pytorch", "10x faster than pytorch (checkpointing)"}
    assert len(data["targets"]) == len(data["rows"])
    for r in data["rows"]:
        assert (r["torch_storing_s"] > 0) == (r["checkpoint"] > 0), r
    # the checkpointed row builds PyTorch's Jacobian as the stored row above it does
    floss = {r["checkpoint"] > 0: r["torch_method"] for r in data["rows"] if r["kind"] == "flossing"}
    assert floss[True] == floss[False] == "rows", floss
    assert "the peers storing every step" in text


def test_targets_are_judged_per_case_and_peer():
    peak = 50.0
    fast = bench.Row(bench.Case("spectrum", 256, 64, T=10), refimpl_s=1.0, torch_s=20.0, jax_s=1.5, one_thread_s=2.0)
    fast.flops = 30e9  # 30 GFLOP/s: 60% of the dgemm rate
    slow = bench.Row(bench.Case("bptt", 64, T=10, B=4), refimpl_s=1.0, torch_s=5.0, jax_s=3.0, one_thread_s=0.5)
    ck = bench.Row(bench.Case("flossing", 64, 16, T=10, checkpoint=3), refimpl_s=1.0, torch_s=12.0, jax_s=1.9)
    ck.flops = 1.0
    got = {(c, t): ok for c, t, _, ok in bench_report.targets([fast, slow, ck], peak)}
    assert got == {
        (ck.case.label, "10x faster than pytorch (checkpointing)"): True,
        (ck.case.label, "2x faster than jax (checkpointing)"): False,
        (fast.case.label, "10x faster than pytorch"): True,
        (fast.case.label, "2x faster than jax"): False,
        (fast.case.label, ">= 50% of the dgemm rate"): True,
        (fast.case.label, "no slower than 1 thread"): True,
        (slow.case.label, "10x faster than pytorch"): False,
        (slow.case.label, "2x faster than jax"): True,
        (slow.case.label, "no slower than 1 thread"): False,
    }
    assert "targets met: 4 of 7" in bench_report.format_targets([fast, slow], peak)


def test_memory_child_and_required_bytes():
    case = bench.Case("flossing", N=8, k=3, T=30)
    m = bench.measure_memory(case, "refimpl", threads=1)
    assert "peak_bytes" in m and m["peak_bytes"] >= 0, m
    stored = bench.required_bytes(case)
    ckpt = bench.required_bytes(bench.Case("flossing", N=8, k=3, T=30, checkpoint=5))
    assert 0 < ckpt < stored
    assert bench.flops(bench.Case("flossing", 8, 3, 30, checkpoint=5)) > bench.flops(case)


def test_peer_error_is_one_line(monkeypatch, capsys):
    def missing():
        raise RuntimeError("refimpl bench needs PyTorch for its peer")

    monkeypatch.setattr(bench, "torch_peer", missing)
    assert main(["bench", "--quick", "--no-memory", "--no-startup"]) == 2
    assert "needs PyTorch" in capsys.readouterr().err


def test_rel_diff_is_relative():
    assert bench.max_rel_diff({"a": np.array([1.0, 2.0])}, {"a": np.array([1.0, 2.0 + 2e-9])}) == pytest.approx(1e-9)


def test_the_jax_peer_agrees_with_refimpl():
    """validation/bench_jax.py (lax.scan, AOT jit, custom_jvp spike, jvp-under-vmap tangents) computes the
    three bench quantities to 1e-12 of refimpl's; skipped when JAX is not installed. In a child process:
    JAX starts threads, and a later os.fork() in this process (the digits generator) must not inherit them."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed (pip install jax==0.10.2 jaxlib==0.10.2)")
    code = """
from refimpl import bench
bj = bench.jax_peer()
for case in (bench.Case("bptt", 8, T=20, B=2), bench.Case("spectrum", 8, 3, T=20), bench.Case("flossing", 8, 3, T=20)):
    prob = bench.problem(case)
    _, params, inputs, targets, _, Q0 = prob
    run, compile_s = bj.prepare(case.kind, params, inputs, targets, Q0)
    d = bench.max_rel_diff(bench.run_refimpl(case, prob), run())
    assert compile_s > 0 and d <= 1e-12, (case, d)
# rematerialized segments (analysis/checkpointed_peers.py), the last one shorter: the same gradient
case = bench.Case("flossing", 8, 3, T=20, checkpoint=6)
prob = bench.problem(case)
_, params, inputs, targets, _, Q0 = prob
run, _ = bj.prepare("flossing", params, inputs, targets, Q0, every=6)
d = bench.max_rel_diff(bench.run_refimpl(case, prob), run())
assert d <= 1e-12, d
assert bj.flossing_temp_bytes(params, inputs[:, 0], Q0, every=6) > 0
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


@pytest.mark.parametrize("method", ["jacrev", "rows"])
def test_the_checkpointed_torch_peer_agrees_with_refimpl(method):
    """The PyTorch peer with each segment under torch.utils.checkpoint (analysis/checkpointed_peers.py; the
    last segment shorter) computes refimpl's checkpointed flossing gradient to 1e-12."""
    case = bench.Case("flossing", 8, 3, T=20, checkpoint=6)
    prob = bench.problem(case)
    d = bench.max_rel_diff(bench.run_refimpl(case, prob), bench.run_torch(case, prob, method, every=6))
    assert d <= 1e-12, d


def test_more_threads_are_judged_against_one(tmp_path, capsys):
    """With --threads 2 every case is also timed on one BLAS thread, and a target line says whether two were
    faster (no timing is asserted: only that the comparison is made and reported)."""
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--repeats", "1", "--no-memory", "--no-startup", "--no-torch", "--threads", "2",
        "--what", "spectrum", "--out", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "on 1 thread (2 threads:" in text
    data = json.loads(out.read_text())
    assert data["rows"][0]["one_thread_s"] > 0
    assert [t["target"] for t in data["targets"]] == ["no slower than 1 thread"]
