"""The instruments of analysis/ that numbers in docs/results.md come from, checked like the library's."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "analysis" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("preset", ["gf_rate_xor", "gf_binary_xor", "gf_clif_xor"])
def test_lag_decomposition_sums_to_the_bptt_gradient(preset, monkeypatch):
    """The lag profile of analysis/gf_gradient_use.py splits the W_rec gradient of the task loss by the lag
    its error travelled; the bins must add up to BPTT's gradient, and a wrong pairing of adjoint and
    presynaptic activity (φ(x_{s+1}) for φ(x_s)) must not."""
    from refimpl.grad.adjoint import value_and_grad
    from refimpl.training.configfile import load_preset
    from refimpl.training import Trainer

    gu = _module("gf_gradient_use")
    run = load_preset(
        preset,
        [
            "task.delta=4",
            "task.T=40",
            "output.progress=false",
            "lyapunov.every=0",
            "training.epochs=1",
            "network.layers=[12]",
            "flossing.k=4",
            "lyapunov.k=4",
            "flossing.T=20",
            "training.test_size=4",
        ],
    )
    tr = Trainer(run, None)
    u, y = tr.data.test_inputs[:, :2], tr.data.test_targets[:, :2]
    params = tr.params_for(2)
    _, grads, _ = value_and_grad(tr.cfg, params, u, y, tr.loss_cfg)
    total = sum(gu.lag_profile(tr.cfg, params, u, y, tr.loss_cfg, b, return_total=True)[1] for b in range(2))
    ref = grads["layer1/W_rec"]
    assert np.abs(total - ref).max() <= 1e-12 * np.abs(ref).max()
    shares = gu.lag_profile(tr.cfg, params, u, y, tr.loss_cfg, 0)
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)
    # a deliberately wrong decomposition fails the same check
    import refimpl.model.network as network

    real = network.simulate

    def shifted(*a, **k):
        traj = real(*a, **k)
        traj.S[0][:-1] = traj.S[0][1:].copy()
        return traj

    monkeypatch.setattr(network, "simulate", shifted)
    wrong = sum(gu.lag_profile(tr.cfg, params, u, y, tr.loss_cfg, b, return_total=True)[1] for b in range(2))
    assert np.abs(wrong - ref).max() > 1e-3 * np.abs(ref).max()


def test_block_spectra_of_a_layer_stack(monkeypatch):
    """analysis/gf_multilayer_layers.py reads each layer of a stack alone, driven by the spikes of the layer
    below. D_t is block lower-triangular, so the tangent vectors of the top layer's coordinates stay there:
    the whole network's spectrum started from them is the top block's, exactly (to rounding), and driving the
    block with the wrong spikes breaks that. The per-layer error norms add up to the whole adjoint's norm."""
    from refimpl.dynamics.lyapunov import initial_Q, spectrum
    from refimpl.grad.measures import error_norm_vs_lag
    from refimpl.model.network import state_slices
    from refimpl.training import Trainer
    from refimpl.training.configfile import load_preset

    ml = _module("gf_multilayer_layers")
    run = load_preset("gf_clif_xor", ["network.layers=[6, 5]", "task.T=40", "task.delta=2", "output.progress=false",
        "lyapunov.every=0", "training.epochs=1", "training.test_size=4", "lyapunov.T=40", "lyapunov.transient=5",
        "lyapunov.k=4", "flossing.k=4", "flossing.T=20", "network.w_in=3.0", "network.g_rec=2.0"])  # fmt: skip
    tr = Trainer(run, None)
    cfg, params, u = tr.cfg, tr.single_params(), tr.spectrum_input()
    lcfg = run.lyapunov.config(5)  # well-conditioned here (the 6th of 10 passes a near-singular step)
    sV, sI = state_slices(cfg)[1]
    Q0 = np.zeros((cfg.state_size, 5))
    Q0[sV.start : sI.stop] = initial_Q(10, 5, lcfg.seed)  # layer 2's block: [V², I²]
    whole = spectrum(cfg, params, u, lcfg, Q0).exponents
    blocks = ml.block_spectra(cfg, params, u, lcfg)
    assert [b.size for b in blocks] == [5, 5]
    np.testing.assert_allclose(blocks[1], whole, rtol=1e-10, atol=1e-12)
    assert np.ptp(whole) > 0.05  # not a degenerate spectrum
    # the wrong drive: layer 2 fed layer 1's spikes in reverse time
    import refimpl.model.network as network

    real = network.simulate

    def wrong(*a, **k):
        traj = real(*a, **k)
        if len(traj.S) == 2:
            traj.S[0][:] = traj.S[0][::-1].copy()
        return traj

    monkeypatch.setattr(network, "simulate", wrong)
    bad = ml.block_spectra(cfg, params, u, lcfg)
    monkeypatch.undo()
    assert np.abs(bad[1] - whole).max() > 1e-3
    # per-layer error curves: their squares add up to the whole adjoint's squared norm
    x, y = tr.data.test_inputs[:, :1], tr.data.test_targets[:, :1]
    curves = ml.layer_error_curves(cfg, tr.params_for(1), x, y, tr.loss_cfg)
    _, norms = error_norm_vs_lag(cfg, tr.params_for(1), x, y, tr.loss_cfg)
    assert curves.shape == (2, 41)
    np.testing.assert_allclose(0.5 * np.log(np.exp(2 * curves[0]) + np.exp(2 * curves[1])), np.log(norms[0]), rtol=1e-10)


def test_surrogate_gradient_is_the_exact_gradient_when_nothing_spikes(monkeypatch):
    """analysis/exact_vs_surrogate.py maps the continuous network onto the discrete model. Where no neuron
    spikes (and a narrow surrogate sees nothing), BPTT of the discrete model must converge to the exact
    gradient as dt → 0: at dt = 0.01 ms the cosine is 1 to 1e-6 and the norms agree to 1%. A wrong
    mapping of the bias (b per step instead of (1 - α) b) fails."""
    from refimpl.exact.events import ExactConfig

    evs = _module("exact_vs_surrogate")
    cfg = ExactConfig(layers=(20,), n_in=10, tau_mem=10.0, tau_syn=5.0)
    params, in_t, in_u, W_out, ts, targets = evs.network(1)
    params["layer1/W_in"] *= 0.3
    params["layer1/b"][:] = 0.1
    L, g_ex, res = evs.exact_gradient(cfg, params, in_t, in_u, 200.0, W_out, ts, targets)
    assert res.spike_times.size == 0
    _, g = evs.surrogate_gradient(cfg, params, in_t, in_u, 200.0, W_out, ts, targets, 0.01, ("gaussian", 20.0), "detached")
    c = evs.compare(g, g_ex)
    for k in ("W_in", "b"):
        assert c[k]["cos"] > 1 - 1e-6 and abs(c[k]["norm_ratio"] - 1) < 0.01, (k, c[k])
    import refimpl.exact.surrogate as surrogate

    real = surrogate.stepped_network

    def unscaled_bias(cfg, params, dt, **kw):
        net, p = real(cfg, params, dt, **kw)
        p["layer1/b"] = np.asarray(params["layer1/b"], float)
        return net, p

    monkeypatch.setattr(surrogate, "stepped_network", unscaled_bias)
    _, g = evs.surrogate_gradient(cfg, params, in_t, in_u, 200.0, W_out, ts, targets, 0.01, ("gaussian", 20.0), "detached")
    assert abs(evs.compare(g, g_ex)["b"]["norm_ratio"] - 1) > 0.1


def test_the_schedule_table_pairs_runs_by_seed(tmp_path):
    """analysis/gf_clif_schedules_table.py: the difference to the run without flossing is taken seed by seed
    (a schedule that gains on every seed by a little shows it, although the two spreads overlap)."""
    tab = _module("gf_clif_schedules_table")

    def runs(accs, floss=0):
        return [{"test_acc": a, "epochs_to_solved": None, "floss_steps": floss, "lambda1_after": -0.1} for a in accs]

    base = [0.60, 0.70, 0.80, 0.65, 0.75]
    (tmp_path / "fig_gf_clif_xor.json").write_text(json.dumps({"none/detached": {"8": runs(base)}}))
    better = [a + 0.01 for a in base]
    (tmp_path / "fig_gf_clif_schedules.json").write_text(json.dumps({"adaptive_grad": {"8": runs(better, 500)},
        "term_w1": {"8": runs(base[::-1], 3001)}}))  # fmt: skip
    _, rows = tab.table(tmp_path)
    by = {r["key"]: r for r in rows}
    assert by["none/detached"]["paired"] is None
    pr = by["adaptive_grad"]["paired"]
    assert pr["gained"] == 5 and pr["mean"] == pytest.approx(0.01) and pr["sem"] == pytest.approx(0.0, abs=1e-12)
    assert by["adaptive_grad"]["flossing_gradients"] == 500 and by["term_w1"]["flossing_gradients"] == 3001
    assert by["term_w1"]["paired"]["gained"] == 2 and by["term_w1"]["paired"]["mean"] == pytest.approx(0.0)


def test_scaling_study_fits_exponents_and_resumes(tmp_path, capsys):
    """analysis/scaling.py --quick: every axis timed, an exponent fitted per series, memory measured; a second
    run keeps the points it finds (resumable). No time is asserted."""
    sc = _module("scaling")
    out = tmp_path / "scaling.json"
    assert sc.main(["--quick", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["exponents"]) == set(sc.axes(True))
    for name, pts in data["points"].items():
        assert len(pts) == 2 and all(p["seconds"] > 0 and 0 <= p["qr_share"] for p in pts), name
        assert np.isfinite(data["exponents"][name]["exponent"])
    assert {m["checkpoint"] > 0 for m in data["memory"]} == {False, True}
    first = {name: [p["runs"] for p in pts] for name, pts in data["points"].items()}
    assert sc.main(["--quick", "--out", str(out), "--no-memory"]) == 0
    again = json.loads(out.read_text())
    assert {name: [p["runs"] for p in pts] for name, pts in again["points"].items()} == first
    # the exponent of a series that grows as x² is 2
    pts = [{"N": n, "seconds": 3e-6 * n**2} for n in (64, 256, 1024)]
    assert sc.fit(pts, "N", 256) == pytest.approx(2.0)


def test_bench_bounds_reads_a_bench_file(tmp_path):
    """analysis/bench_bounds.py: for every spectrum and flossing row, the least time is T times the QR (and its
    reverse rule) plus the other FLOPs at the dgemm rate; for BPTT, T dense products J W_rec timed at their
    shape plus a least forward and a least reverse pass (and, for comparison, the products with one array copy,
    and at the dgemm rate); the largest ratio is the bench's ratio times refimpl's time over the least time,
    both measured in rounds."""
    bb = _module("bench_bounds")
    rows = [{"kind": kind, "N": 8, "k": 4, "T": 10, "B": 2, "checkpoint": 0, "label": kind, "refimpl_s": 1e-3,
        "torch_s": 1e-2, "jax_s": 2e-3, "ratio": 10.0, "jax_ratio": 2.0}
        for kind in ("bptt", "spectrum", "flossing")]  # fmt: skip
    # a checkpointed row (its peers checkpoint too) with the storing peers' times of the row above
    rows.append({**rows[2], "checkpoint": 3, "label": "flossing c", "torch_storing_s": 5e-3, "jax_storing_s": 1.5e-3})
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"info": {"dgemm_gflops": 10.0}, "rows": rows}))
    out = tmp_path / "bounds.json"
    assert bb.main([str(bench), "--out", str(out), "--rounds", "2"]) == 0
    got = json.loads(out.read_text())["rows"]
    assert [r["label"] for r in got] == ["bptt", "spectrum", "flossing", "flossing c"]
    for peer, storing in (("torch", 5.0), ("jax", 1.5)):  # the storing peer over refimpl, and its bound
        assert got[3][f"ratio_{peer}_storing"] == pytest.approx(storing)
        assert got[3][f"max_ratio_{peer}_storing"] == pytest.approx(storing * got[3]["refimpl_over_least"])
        assert f"max_ratio_{peer}_storing" not in got[2]
    for r in got:  # the bench's ratio times refimpl's time over the least, paired in rounds
        assert r["max_ratio_torch"] == pytest.approx(10.0 * r["refimpl_over_least"])
        assert r["max_ratio_jax"] == pytest.approx(2.0 * r["refimpl_over_least"])
        assert r["refimpl_over_least"] > 0 and r["rounds"] == 2
    assert got[0]["product_s"] == pytest.approx(10 * 2.0 * 2 * 8 * 8 / 10e9)
    assert got[0]["product_measured_s"] > 0
    assert got[0]["least_s"] == pytest.approx(
        got[0]["product_measured_s"] + got[0]["forward_least_s"] + got[0]["reverse_least_s"]
    )
    assert got[0]["least_copy_s"] == pytest.approx(got[0]["product_measured_s"] + got[0]["memory_s"])
    assert got[0]["forward_least_s"] > 0 and got[0]["reverse_least_s"] > 0
    assert got[0]["least_at_dgemm_rate_s"] == pytest.approx(got[0]["product_s"] + got[0]["memory_s"])
    assert got[1]["least_s"] > 10 * got[1]["cholqr2_diag"] > 0  # the spectrum needs diag R alone
    assert got[2]["least_s"] > 10 * (got[2]["cholqr2"] + got[2]["reverse"])


def test_least_bptt_forward_is_the_bench_networks_forward():
    """The least forward pass that bounds BPTT (analysis/bench_bounds.py) computes what refimpl's forward pass
    computes for the bench's network: the same spikes and surrogate derivatives, bit for bit, and the same
    spike lists; so its time bounds a pass that does the method's work."""
    from refimpl.bench import Case, problem
    from refimpl.model.network import simulate

    bb = _module("bench_bounds")
    case = Case("bptt", 12, T=30, B=3)
    a, (cfg, params) = bb._bptt_args(case)
    bb._forward_least(*a)
    traj = simulate(cfg, params, problem(case)[2], store="bptt")
    np.testing.assert_array_equal(a.S, traj.S[0])
    np.testing.assert_array_equal(a.s, traj.lin[0].s)
    S_ptr, S_idx = traj.nonzeros(0)[1]
    assert len(S_idx) > 0  # the network spikes
    np.testing.assert_array_equal(a.S_ptr[: len(S_ptr)], S_ptr)
    np.testing.assert_array_equal(a.S_idx[: len(S_idx)], S_idx)
