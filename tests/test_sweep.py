"""Sweeps (refimpl.sweep, `refimpl sweep`): expansion, the engine, restart, aggregation, Dask."""

import concurrent.futures as cf
import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from refimpl import cli, sweep
from refimpl.sweep import aggregate, expand, load_result, load_spec, run_jobs, train_job
from refimpl.training import Trainer

BASE = """
[network]
layers = [12]
dt = 5.0
slope = 2.0
g_rec = 2.0
w_in = 3.0
tau_out = 0.0

[task]
name = "delayed_xor"
T = 24
delta = 1
seed = 0

[training]
epochs = 2
batch_size = 8
steps_per_epoch = 3
test_size = 16
lr = 1e-2

[flossing]
k = 3
lr = 0.02

[lyapunov]
k = 4
every = 1

[output]
checkpoint_every = 1
progress = false
"""

SWEEP = """
[sweep]
base = "tiny.toml"
out = "out"
workers = 2

[axes]
seed = {{ "network.seed" = [0, 1], "task.seed" = [0, 1] }}

[conditions.none]
"flossing.schedule" = "none"

[conditions.floss]
"flossing.schedule" = "pre"
"flossing.pre_steps" = 2

[set]
"training.epochs" = {epochs}

[aggregate]
metric = "test_acc"
"""


def write_sweep(d: Path, text: str = None, epochs: int = 2, name: str = "sweep.toml") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "tiny.toml").write_text(BASE)
    p = d / name
    p.write_text(SWEEP.format(epochs=epochs) if text is None else text)
    return p


def same_results(a: Path, b: Path) -> None:
    """Two result files hold identical data (wall-clock entries aside) and the same spec hash."""
    ma, da = load_result(a)
    mb, db = load_result(b)
    assert ma["spec_hash"] == mb["spec_hash"]
    assert sorted(da) == sorted(db)
    for key in da:
        if "time" in key or key == "resumed_from_epoch":  # wall clock; how the run got there
            continue
        np.testing.assert_array_equal(np.asarray(da[key]), np.asarray(db[key]), err_msg=key)


def digest(path: Path) -> tuple:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory):
    """The tiny 4-job training sweep, run once on a pool of 2 spawned processes."""
    d = tmp_path_factory.mktemp("pool")
    spec = load_spec(write_sweep(d))
    jobs = expand(spec)
    res = run_jobs(train_job, jobs, d / "out", workers=2, progress=None)
    return d, spec, jobs, res


# ---------------------------------------------------------------------------
# expansion
# ---------------------------------------------------------------------------

GRID = """
[sweep]
base = "tiny.toml"

[axes]
seed = {{ "network.seed" = [0, 1, 2], "task.seed" = [5, 6, 7] }}
delta = [{{ "task.delta" = 1, "task.T" = 20 }}, {{ "task.delta" = 2, "task.T" = 30 }}]
lr = {{ "training.lr" = [1e-3, 5e-3] }}

[conditions.none]
{none}

[conditions.floss]
"flossing.schedule" = "pre"
"flossing.pre_steps" = 3

[set]
"training.epochs" = 7
"""


def test_expand_grid_names_and_overrides(tmp_path):
    p = write_sweep(tmp_path, GRID.format(none='"flossing.schedule" = "none"'))
    jobs = expand(load_spec(p))
    assert len(jobs) == 3 * 2 * 2 * 2
    names = [j.name for j in jobs]
    assert len(set(names)) == len(names)
    assert names == [j.name for j in expand(load_spec(p))]  # deterministic
    assert [j.digest for j in jobs] == [j.digest for j in expand(load_spec(p))]
    # the seed axis is outermost, the name lists the condition then the axes in file order
    assert {j.axes["seed"] for j in jobs[:8]} == {0}
    assert names[0] == "none-seed=0-delta=1-lr=0.001"
    job = next(j for j in jobs if j.name == "floss-seed=2-delta=2-lr=0.005")
    assert job.condition == "floss" and job.axes == {"seed": 2, "delta": 2, "lr": 0.005}
    assert job.overrides == ("training.epochs=7", 'flossing.schedule="pre"', "flossing.pre_steps=3",
        "network.seed=2", "task.seed=7", "task.delta=2", "task.T=30", "training.lr=0.005")  # fmt: skip
    run = job.run_config()
    assert (run.network.seed, run.task.seed, run.task.opts["delta"], run.task.opts["T"]) == (2, 7, 2, 30)
    assert (run.training.epochs, run.training.lr, run.flossing.pre_steps) == (7, 0.005, 3)
    assert run.network.layers == (12,)  # from the base
    # unquoted dotted keys are the same keys; label = [...] names the values
    p2 = write_sweep(
        tmp_path / "b",
        GRID.format(none='flossing.schedule = "none"').replace(
            'lr = { "training.lr"', 'lr = { label = ["slow", "fast"], "training.lr"'
        ),
    )
    jobs2 = expand(load_spec(p2))
    assert jobs2[0].name == "none-seed=0-delta=1-lr=slow"
    assert jobs2[0].run_config() == jobs[0].run_config()


def test_expand_without_conditions_and_with_custom_job(tmp_path):
    spec = {"sweep": {"job": f"{__name__}:flaky"}, "axes": {"x": {"param.x": [1, 2]}}}
    jobs = expand(spec)
    assert [j.name for j in jobs] == ["base-x=1", "base-x=2"]
    assert jobs[1].overrides == ("param.x=2",) and jobs[1].base is None
    assert sweep.job_function(spec) is flaky


@pytest.mark.parametrize(
    "edit, message",
    [
        (("[axes]", "[axis]"), r"unknown section \[axis\]; did you mean 'axes'"),
        (("workers = 2", "worker = 2"), r"unknown key 'worker' in \[sweep\]; did you mean 'workers'"),
        (
            ('"task.seed" = [0, 1]', '"task.seed" = [0, 1, 2]'),
            r"axes.seed: the zipped lists differ in length: 'network.seed' has 2 values, 'task.seed' has 3",
        ),
        (
            ('"flossing.schedule" = "pre"', '"flossing.sheduler" = "pre"'),
            r"\[conditions.floss\]: unknown key 'sheduler' in \[flossing\].*did you mean 'schedule'",
        ),
        (('"training.epochs"', '"trainig.epochs"'), r"\[set\]: 'trainig.epochs': unknown section \[trainig\]"),
        (('"training.epochs" = 2', '"training.lr" = -1.0'), r"job none-seed=0: training.lr must be > 0"),
        (
            ('"flossing.pre_steps" = 2', '"flossing.pre_steps" = 2\n"network.seed" = 3'),
            r"'network.seed' is set by both \[conditions\] and axes.seed",
        ),
        (
            ('metric = "test_acc"', 'metric = "test_accuracy"'),
            r"aggregate metric 'test_accuracy' is not a result of training jobs; did you mean 'test_acc'",
        ),
        (('metric = "test_acc"', 'x = "delta"'), r"aggregate.x = 'delta' must be one of the axes"),
        (("seed = {", "seed = [0, 1]\nother = {"), r"axes.seed must be a table of zipped lists"),
        (('base = "tiny.toml"', 'base = "tiny_xor"'), r"no configuration file 'tiny_xor'"),
    ],
)
def test_bad_specs_fail_before_anything_runs(tmp_path, edit, message, monkeypatch, capsys):
    p = write_sweep(tmp_path, SWEEP.format(epochs=2).replace(*edit))
    assert edit[0] in SWEEP.format(epochs=2)
    with pytest.raises(ValueError, match=message):
        expand(load_spec(p))
    # the command line: exit 2, one line naming the key, nothing written
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", str(p)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("refimpl sweep: error:")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# running, aggregating
# ---------------------------------------------------------------------------


def test_pool_writes_one_result_per_job_and_aggregates(pool_sweep):
    d, spec, jobs, res = pool_sweep
    out = d / "out"
    assert res.ok and sorted(res.ran) == sorted(j.name for j in jobs) and not res.skipped
    assert sorted(p.name for p in (out / "jobs").glob("*.h5")) == sorted(f"{j.name}.h5" for j in jobs)
    meta, data = load_result(out / "jobs" / "floss-seed=1.h5")
    assert meta["job"] == "floss-seed=1" and meta["condition"] == "floss" and meta["axes"] == {"seed": 1}
    assert meta["spec_hash"] == sweep.job_hash(jobs[-1], train_job) and meta["fn"] == "refimpl.sweep:train_job"
    assert data["epochs"] == 2 and data["floss_steps"] == 2 and data["resumed_from_epoch"] == 0
    assert data["test_acc"] == data["history/epochs/test_acc"][-1]
    assert data["history/epochs/epoch"].tolist() == [0, 1, 2]
    assert data["lambda1_preflossed"] > data["lambda1_before"]
    assert data["lambda1_after"] == data["spectrum_after"][0]

    agg = aggregate(out, spec)
    assert agg["columns"] == ["condition"] and agg["metrics"][0] == "test_acc"
    assert not agg["missing"] and not agg["failed"] and len(agg["done"]) == 4
    with open(out / "summary.csv") as fh:
        table = list(csv.DictReader(fh))
    assert (out / "summary.png").stat().st_size > 0
    md = (out / "summary.md").read_text()
    assert "| condition | n | test_acc |" in md and "4 of 4 jobs done" in md
    for cond in ("none", "floss"):
        for metric in ("test_acc", "grad_x0", "lambda1_after"):
            vals = np.array([load_result(out / "jobs" / f"{cond}-seed={s}.h5")[1][metric] for s in (0, 1)])
            want = {"n": 2, "mean": vals.mean(), "std": vals.std(ddof=1), "sem": vals.std(ddof=1) / np.sqrt(2),
                "min": vals.min(), "max": vals.max()}  # fmt: skip
            row = next(r for r in agg["rows"] if r["condition"] == cond and r["metric"] == metric)
            line = next(r for r in table if r["condition"] == cond and r["metric"] == metric)
            for k, v in want.items():
                assert row[k] == v and float(line[k]) == v, (cond, metric, k)


def test_determinism_in_process_equals_pool(pool_sweep, tmp_path):
    """The same job run again, in this process and in another directory, gives identical arrays."""
    d, spec, jobs, _ = pool_sweep
    job = jobs[-1]
    res = run_jobs(train_job, [job], tmp_path, workers=1, progress=None)
    same_results(res[0], d / "out" / "jobs" / f"{job.name}.h5")


def test_rerun_skips_finished_jobs(pool_sweep):
    d, spec, jobs, _ = pool_sweep
    files = sorted((d / "out" / "jobs").glob("*.h5"))
    before = [digest(f) for f in files]
    lines = []
    res = run_jobs(train_job, jobs, d / "out", workers=2, progress=lines.append)
    assert res.ok and not res.ran and len(res.skipped) == 4
    assert lines == [f"skip {j.name} (done)" for j in jobs]
    assert [digest(f) for f in files] == before


def flaky(job, job_dir):
    """A custom job: fails for x = 2 until the file job_dir/ok exists."""
    x = job.axes["x"]
    if x == 2 and not (Path(job_dir) / "ok").exists():
        raise RuntimeError("x = 2 is not allowed yet")
    return {"value": float(x) ** 2, "vec": np.arange(x, dtype=float), "info": {"label": f"x={x}"}, "count": x}


def test_failed_job_is_recorded_and_rerun_runs_only_it(tmp_path):
    spec = {"sweep": {"job": f"{__name__}:flaky"}, "axes": {"x": {"param.x": [1, 2, 3]}},
        "aggregate": {"metric": "value"}, "_source": str(tmp_path / "s.toml")}  # fmt: skip
    jobs = expand(spec)
    out = tmp_path / "out"
    with cf.ThreadPoolExecutor(2) as ex:
        res = run_jobs(flaky, jobs, out, executor=ex, progress=None)
    assert res.failed == ["base-x=2"] and sorted(res.ran) == ["base-x=1", "base-x=3"]
    tb = (out / "jobs" / "base-x=2.failed.txt").read_text()
    assert "RuntimeError: x = 2 is not allowed yet" in tb and "Traceback" in tb
    assert not (out / "jobs" / "base-x=2.h5").exists()
    meta, data = load_result(out / "jobs" / "base-x=3.h5")
    assert data["value"] == 9.0 and data["info/label"] == "x=3" and data["vec"].tolist() == [0, 1, 2]
    agg = aggregate(out, spec)
    assert agg["failed"] == ["base-x=2"] and agg["columns"] == ["condition", "x"]
    kept = {p: digest(p) for p in (out / "jobs").glob("*.h5")}
    (out / "work" / "base-x=2" / "ok").touch()
    res = run_jobs(flaky, jobs, out, workers=1, progress=None)
    assert res.ran == ["base-x=2"] and sorted(res.skipped) == ["base-x=1", "base-x=3"] and res.ok
    assert {p: digest(p) for p in kept} == kept
    assert not (out / "jobs" / "base-x=2.failed.txt").exists()
    rows = {r["x"]: r for r in aggregate(out, spec)["rows"] if r["metric"] == "value"}
    assert {x: r["mean"] for x, r in rows.items()} == {1: 1.0, 2: 4.0, 3: 9.0}

    # results of another spec are not silently mixed in
    spec2 = {**spec, "axes": {"x": {"param.x": [1, 2, 3], "param.y": [0, 0, 0]}}}
    with pytest.raises(ValueError, match="different sweep for 3 job"):
        run_jobs(flaky, expand(spec2), out, workers=1, progress=None)
    res = run_jobs(flaky, expand(spec2), out, workers=1, progress=None, force=True)
    # force deletes the old results and work directories (so also the file that let x = 2 pass)
    assert sorted(res.ran) == ["base-x=1", "base-x=3"] and res.failed == ["base-x=2"]


def test_interrupted_training_job_resumes_from_its_checkpoint(pool_sweep, tmp_path):
    d, spec, jobs, _ = pool_sweep
    job = jobs[-1]  # floss-seed=1: pre-flossing, 2 epochs
    jdir = tmp_path / "work" / job.name
    cut = Trainer(job.run_config().replace("training", epochs=1), jdir).fit()  # a job cut short
    assert cut.epoch == 1
    res = run_jobs(train_job, [job], tmp_path, workers=1, progress=None)
    meta, data = load_result(res[0])
    assert data["resumed_from_epoch"] == 1 and data["epochs"] == 2
    assert data["history/epochs/epoch"].tolist() == [0, 1, 2]
    assert data["history/flossing/epoch"].tolist() == [0, 0]  # pre-flossing ran once, not twice
    same_results(res[0], d / "out" / "jobs" / f"{job.name}.h5")


def test_killed_sweep_loses_nothing(tmp_path, monkeypatch, capsys):
    """SIGKILL the sweep once the first result exists; the rerun keeps every finished file as it
    was, resumes the rest from their checkpoints and ends with the results of an unbroken run."""
    p = write_sweep(tmp_path, epochs=6)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "refimpl.cli", "sweep", str(p), "--workers", "1"]

    def partial():
        """Jobs with a checkpoint but no result yet."""
        work = list((out / "work").glob("*/checkpoint.h5"))
        return [w.parent.name for w in work if not (out / "jobs" / f"{w.parent.name}.h5").exists()]

    with open(tmp_path / "log1.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.time()
        # kill when one job has finished and another is half done
        while not (list((out / "jobs").glob("*.h5")) and partial()) and proc.poll() is None and time.time() - t0 < 180:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {f: digest(f) for f in (out / "jobs").glob("*.h5")}
    cut = partial()
    assert finished and cut, (tmp_path / "log1.txt").read_text()
    monkeypatch.chdir(tmp_path)
    assert cli.main(cmd[3:]) == 0
    stdout = capsys.readouterr().out
    for f in finished:
        assert f"skip {f.stem} (done)" in stdout
    assert {f: digest(f) for f in finished} == finished
    for name in cut:  # continued from the checkpoint, not restarted
        data = load_result(out / "jobs" / f"{name}.h5")[1]
        assert data["resumed_from_epoch"] > 0 and data["history/epochs/epoch"].tolist() == list(range(7))
    jobs = expand(load_spec(p))
    ref = run_jobs(train_job, jobs, tmp_path / "ref", workers=1, progress=None)
    for j, f in zip(jobs, ref):
        same_results(out / "jobs" / f"{j.name}.h5", f)


# ---------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------


def test_dask_cluster_gives_the_pool_results(pool_sweep, tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    d, spec, jobs, _ = pool_sweep
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        lines = []
        res = run_jobs(train_job, jobs, tmp_path / "out", scheduler=cluster.scheduler_address, progress=lines.append)
    assert res.ok and len(res.ran) == 4 and "Dask cluster" in lines[0]
    for j, f in zip(jobs, res):
        same_results(f, d / "out" / "jobs" / f"{j.name}.h5")


def test_scheduler_without_dask_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    jobs = expand({"sweep": {"job": f"{__name__}:flaky"}, "axes": {"x": {"param.x": [1, 3]}}})
    with pytest.raises(ValueError, match=r'pip install -e "\.\[sweep\]"'):
        run_jobs(flaky, jobs, tmp_path / "out", scheduler="tcp://127.0.0.1:1", progress=None)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def always_fails(job, job_dir):
    raise ValueError("this job always fails")


def test_cli_exit_codes(pool_sweep, tmp_path, capsys):
    d, spec, jobs, _ = pool_sweep
    p = d / "sweep.toml"
    # everything done: a dry run lists it, a run skips it (exit 0)
    assert cli.main(["sweep", str(p), "--out", str(d / "out"), "--dry-run"]) == 0
    o = capsys.readouterr().out
    assert o.count("  done ") == 4 and "4 done" in o
    assert cli.main(["sweep", str(p), "--out", str(d / "out")]) == 0
    o = capsys.readouterr().out
    assert "4 jobs: 0 ran, 4 skipped, 0 failed" in o and "| none | 2 |" in o
    # a failing job: exit 1, the sweep goes on and says which failed
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'[sweep]\njob = "{__name__}:always_fails"\nout = "o"\n[axes]\nx = {{ "p.x" = [1, 2] }}\n'
        '[aggregate]\nmetric = "nothing"\n'
    )
    assert cli.main(["sweep", str(bad), "--out", str(tmp_path / "o"), "--workers", "1"]) == 1
    c = capsys.readouterr()
    assert "FAILED base-x=1: ValueError: this job always fails" in c.out
    assert "failed jobs" in c.err and "base-x=1, base-x=2" in c.err
    # bad input: exit 2 with one line
    assert cli.main(["sweep", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no sweep file" in err[0]
    assert cli.main(["sweep", "example", "--dry-run", "--out", str(tmp_path / "ex")]) == 0  # shipped
    assert "8 jobs" in capsys.readouterr().out
