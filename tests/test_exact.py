"""Exact event-based simulation (refimpl/exact, docs/exact.md): the closed-form flow against an ODE
solver, every crossing method against the others and against its residual, the event loop against the
time-stepped model as dt → 0, and its determinism, resets, refractoriness, stacking and warnings."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.special import lambertw as scipy_lambertw

from refimpl.exact import flow as F
from refimpl.exact.events import ExactConfig, GrazingCrossingWarning, simulate
from refimpl.exact.reference import stepped

TAUS = st.sampled_from([(10.0, 5.0), (10.0, 10.0), (10.0, 3.0), (20.0, 5.0), (5.0, 10.0), (10.0, 10.0 * (1 + 1e-9))])
STATE = st.floats(-3.0, 3.0, allow_nan=False)


def _ode(V0, I0, b, t, tau_m, tau_s):
    rhs = lambda _, y: [(-y[0] + y[1]) / tau_m, (-y[1] + b) / tau_s]  # noqa: E731
    return solve_ivp(rhs, (0.0, t), [V0, I0], rtol=1e-12, atol=1e-13, method="DOP853").y[:, -1]


@settings(max_examples=60, deadline=None)
@given(TAUS, STATE, STATE, STATE, st.floats(0.0, 40.0))
def test_flow_is_the_solution_of_the_ode(taus, V0, I0, b, t):
    tau_m, tau_s = taus
    np.testing.assert_allclose(F.flow(V0, I0, b, t, tau_m, tau_s), _ode(V0, I0, b, t, tau_m, tau_s), atol=1e-9)


def test_a_wrong_flow_fails_the_ode_check():
    """The check above can fail: τ_m and τ_s swapped in φ."""
    V0, I0, b, t, tau_m, tau_s = 0.2, 1.5, 0.1, 7.0, 10.0, 5.0
    em = math.exp(-t / tau_m)
    wrong = b + em * ((V0 - b) + (I0 - b) * F.phi(t, tau_s, tau_m))
    assert abs(wrong - _ode(V0, I0, b, t, tau_m, tau_s)[0]) > 1e-3


@pytest.mark.parametrize("branch", [0, -1])
def test_lambertw_matches_scipy(branch):
    zs = np.concatenate([-np.exp(-1) + np.logspace(-12, -1, 12), np.linspace(-0.36, -1e-6, 40)])
    if branch == 0:
        zs = np.concatenate([zs, np.logspace(-8, 200, 40)])
    for z in zs:
        w, ref = F.lambertw(z, branch), scipy_lambertw(z, branch).real
        if z > -0.3678:  # within 1e-5 of the branch point scipy's own residual reaches 1e-9 (ours stays at 1e-16)
            assert abs(w - ref) <= 1e-13 * max(1.0, abs(ref))
        assert (w >= -1.0) if branch == 0 else (w <= -1.0)
        assert abs(w * math.exp(w) - z) <= 1e-14 * (1.0 + abs(w)) * max(1.0, abs(z))  # exp amplifies by |w|


@settings(max_examples=200, deadline=None)
@given(TAUS, st.floats(-2.0, 0.999), st.floats(-3.0, 6.0), st.floats(-1.0, 3.0))
def test_every_crossing_method_finds_the_first_crossing(taus, V0, I0, b):
    """Residual |V(t*) - θ| <= 1e-12, no crossing before t* (V < θ on a fine grid), and the closed forms
    (τ_m = 2τ_s: quadratic; τ_m = τ_s: Lambert W) agree with bracketing, an independent computation."""
    tau_m, tau_s = taus
    theta = 1.0
    t_br = F.crossing_bracket(V0, I0, b, theta, tau_m, tau_s)
    t_auto = F.next_crossing(V0, I0, b, theta, tau_m, tau_s, F.AUTO)
    if math.isinf(t_br):
        assert math.isinf(t_auto) or abs(F.flow(V0, I0, b, t_auto, tau_m, tau_s)[0] - theta) < 1e-9
        grid = np.linspace(0, 20 * max(taus), 2001)
        assert max(F.flow(V0, I0, b, t, tau_m, tau_s)[0] for t in grid) < theta + 1e-9
        return
    for t in (t_br, t_auto):
        assert abs(F.flow(V0, I0, b, t, tau_m, tau_s)[0] - theta) <= 1e-12
        grid = np.linspace(0, t, 400)[:-1]
        assert max(F.flow(V0, I0, b, s, tau_m, tau_s)[0] for s in grid) < theta
    slope = (F.flow(V0, I0, b, t_br, tau_m, tau_s)[1] - theta) / tau_m
    assert abs(t_auto - t_br) <= 1e-12 * max(1.0, t_br) / max(abs(slope), 1e-3)


def test_the_closed_forms_are_used_and_a_wrong_one_is_caught():
    """For τ_m = 2τ_s and τ_m = τ_s the closed forms return the root bracketing finds; a perturbed root
    (the closed-form answer moved by 1e-9 relative) fails the residual check."""
    V0, I0, b, theta = 0.0, 6.0, 0.0, 1.0
    for tau_m, tau_s, closed in ((10.0, 5.0, F.crossing_quadratic(V0, I0, b, theta, 10.0)),
            (10.0, 10.0, F.crossing_lambert(V0, I0, b, theta, 10.0))):  # fmt: skip
        br = F.crossing_bracket(V0, I0, b, theta, tau_m, tau_s)
        assert math.isfinite(br) and abs(closed - br) <= 1e-13 * br
        assert abs(F.flow(V0, I0, b, closed * (1 + 1e-9), tau_m, tau_s)[0] - theta) > 1e-12


def test_constant_drive_fires_at_the_analytic_period():
    """An uncoupled neuron with I = b > θ from V = 0: V = b(1 - e^{-t/τ_m}), so it fires every
    τ_m ln(b / (b - θ)) (zero reset, no refractoriness), and t_ref adds to the period."""
    b, tau_m = 1.5, 10.0
    period = tau_m * math.log(b / (b - 1.0))
    p = {"layer1/W_in": np.zeros((1, 1)), "layer1/W_rec": np.zeros((1, 1)), "layer1/b": np.array([b])}
    for t_ref in (0.0, 2.0):
        r = simulate(ExactConfig(layers=(1,), tau_mem=tau_m, tau_syn=5.0, t_ref=t_ref), p, [], [], 100.0, I0=[b])
        np.testing.assert_allclose(np.diff(r.spike_times), period + t_ref, rtol=1e-12)
        np.testing.assert_allclose(r.spike_times[0], period, rtol=1e-12)


def _net(seed, N=6, n_in=4, g=0.3, bias=0.3):
    rng = np.random.default_rng(seed)
    params = {"layer1/W_in": rng.uniform(0.8, 2.0, (N, n_in)), "layer1/W_rec": g * rng.standard_normal((N, N)),
        "layer1/b": np.full(N, bias)}  # fmt: skip
    in_t = np.sort(rng.uniform(0, 200.0, 80))
    return params, in_t, rng.integers(0, n_in, 80)


def _per_unit(times, units, N):
    return [np.sort(times[units == i]) for i in range(N)]


@pytest.mark.parametrize("taus", [(10.0, 3.0), (20.0, 5.0)])
def test_spike_times_converge_to_the_time_stepped_model(taus):
    """The discrete model at dt = 0.01, 0.003, 0.001 ms fires the same spikes per neuron, and the largest
    spike-time error falls with every refinement, to below 0.05 ms."""
    N = 6
    params, in_t, in_u = _net(1, N)
    cfg = ExactConfig(layers=(N,), n_in=4, tau_mem=taus[0], tau_syn=taus[1])
    ex = simulate(cfg, params, in_t, in_u, 200.0)
    assert ex.spike_times.size > 100
    errs = []
    for dt in (0.01, 0.003, 0.001):
        ts, us = stepped(cfg, params, in_t, in_u, 200.0, dt)
        a, b = _per_unit(ex.spike_times, ex.spike_units, N), _per_unit(ts, us, N)
        assert [x.size for x in a] == [x.size for x in b], dt
        errs.append(max(np.abs(x - y).max() for x, y in zip(a, b) if x.size))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.05, errs


def test_convergence_check_fails_for_a_wrong_mapping(monkeypatch):
    """The check above can fail: a time-stepped model given the bias per step unscaled (b instead of
    (1 - α) b) does not converge to the exact spikes."""
    import refimpl.exact.reference as reference

    real = reference.stepped_network

    def unscaled(cfg, params, dt, **kw):
        net, p = real(cfg, params, dt, **kw)
        p["layer1/b"] = np.asarray(params["layer1/b"], float)
        return net, p

    monkeypatch.setattr(reference, "stepped_network", unscaled)
    params, in_t, in_u = _net(1, 6)
    cfg = ExactConfig(layers=(6,), n_in=4, tau_mem=10.0, tau_syn=3.0)
    ex = simulate(cfg, params, in_t, in_u, 200.0)
    ts, us = stepped(cfg, params, in_t, in_u, 200.0, 0.001)
    a, b = _per_unit(ex.spike_times, ex.spike_units, 6), _per_unit(ts, us, 6)
    assert [x.size for x in a] != [x.size for x in b] or max(np.abs(x - y).max() for x, y in zip(a, b) if x.size) > 0.05


def test_deterministic_and_both_resets_agree():
    params, in_t, in_u = _net(2)
    cfg = ExactConfig(layers=(6,), n_in=4)
    r1, r2 = simulate(cfg, params, in_t, in_u, 200.0), simulate(cfg, params, in_t, in_u, 200.0)
    assert np.array_equal(r1.spike_times, r2.spike_times) and np.array_equal(r1.spike_units, r2.spike_units)
    rs = simulate(ExactConfig(layers=(6,), n_in=4, reset="subtract"), params, in_t, in_u, 200.0)
    assert np.array_equal(rs.spike_units, r1.spike_units)
    np.testing.assert_allclose(rs.spike_times, r1.spike_times, atol=1e-9)


def test_simultaneous_spikes_are_emitted_together_in_index_order():
    """Two identical neurons driven identically cross at exactly the same time: both spikes carry that
    time, lower index first, and each gets the other's recurrent jump only after both are reset."""
    p = {"layer1/W_in": np.full((3, 1), 3.0), "layer1/W_rec": np.array([[0, 0.5, 0], [0.5, 0, 0], [1.0, 1.0, 0]]),
        "layer1/b": np.zeros(3)}  # fmt: skip
    p["layer1/W_in"][2] = 0.0
    r = simulate(ExactConfig(layers=(3,), n_in=1), p, [1.0, 2.0, 3.0], [0, 0, 0], 50.0)
    t01 = r.spike_times[r.spike_units < 2]
    assert t01.size >= 2 and np.all(t01[0::2] == t01[1::2])
    assert list(r.spike_units[:2]) == [0, 1]


def test_refractory_membrane_is_held_at_reset():
    b = 2.0
    p = {"layer1/W_in": np.zeros((1, 1)), "layer1/W_rec": np.zeros((1, 1)), "layer1/b": np.array([b])}
    cfg = ExactConfig(layers=(1,), t_ref=3.0)
    t1 = 10.0 * math.log(b / (b - 1.0))
    r = simulate(cfg, p, [], [], 20.0, I0=[b], sample_times=[t1 + 1.0, t1 + 2.9, t1 + 3.5])
    assert r.sample_V[0, 0] == 0.0 and r.sample_V[1, 0] == 0.0 and r.sample_V[2, 0] > 0.0


def test_a_layer_stack_is_its_layers_fed_with_each_others_spikes():
    """Layer 2 of a two-layer stack, simulated alone with layer 1's spikes as its input events, fires the
    same spikes: the stack's feed-forward weights act without delay."""
    rng = np.random.default_rng(3)
    p = {"layer1/W_in": rng.uniform(0.8, 2.0, (5, 3)), "layer1/W_rec": 0.2 * rng.standard_normal((5, 5)),
        "layer1/b": np.full(5, 0.2), "layer2/W_in": rng.uniform(0.0, 1.0, (4, 5)),
        "layer2/W_rec": 0.2 * rng.standard_normal((4, 4)), "layer2/b": np.full(4, 0.1)}  # fmt: skip
    in_t, in_u = np.sort(rng.uniform(0, 100, 60)), rng.integers(0, 3, 60)
    both = simulate(ExactConfig(layers=(5, 4), n_in=3), p, in_t, in_u, 100.0)
    l1 = both.spike_units < 5
    assert l1.sum() > 10 and (~l1).sum() > 5
    top = {"layer1/W_in": p["layer2/W_in"], "layer1/W_rec": p["layer2/W_rec"], "layer1/b": p["layer2/b"]}
    alone = simulate(ExactConfig(layers=(4,), n_in=5), top, both.spike_times[l1], both.spike_units[l1], 100.0)
    np.testing.assert_allclose(alone.spike_times, both.spike_times[~l1], rtol=0, atol=1e-11)
    assert np.array_equal(alone.spike_units, both.spike_units[~l1] - 5)


def test_grazing_crossing_warns():
    """A membrane whose maximum just touches θ: the crossing is counted as grazing and reported."""
    # τ_m = 2τ_s, V₀ = b = 0: V = I₀ (x - x²), x = e^{-t/τ_m}, peaks at x = 1/2 with I₀/4; a peak of
    # θ (1 + 1e-14) is crossed with a slope (I - θ)/θ of about 1e-7
    I0 = 4.0 * (1.0 + 1e-14)
    p = {"layer1/W_in": np.zeros((1, 1)), "layer1/W_rec": np.zeros((1, 1)), "layer1/b": np.zeros(1)}
    with pytest.warns(GrazingCrossingWarning, match="grazing"):
        r = simulate(ExactConfig(layers=(1,)), p, [], [], 50.0, I0=[I0])
    assert r.n_grazing == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulate(ExactConfig(layers=(1,)), p, [], [], 50.0, I0=[I0 * 1.5])


@pytest.mark.parametrize("call, match", [
    (lambda p: simulate(ExactConfig(layers=(2,)), p, [2.0, 1.0], [0, 0], 10.0), "ascending"),
    (lambda p: simulate(ExactConfig(layers=(2,)), p, [1.0], [3], 10.0), "input_units"),
    (lambda p: simulate(ExactConfig(layers=(2,)), p, [1.0], [0], -1.0), "t_end"),
    (lambda p: simulate(ExactConfig(layers=(3,)), p, [], [], 1.0), "shape"),
    (lambda p: simulate(ExactConfig(layers=(2,)), p, [], [], 1.0, V0=[0.0]), "V0"),
    (lambda p: ExactConfig(tau_mem=0.0), "tau_mem"),
    (lambda p: ExactConfig(reset="zeros"), "reset"),
])  # fmt: skip
def test_bad_input_is_refused_by_name(call, match):
    p = {"layer1/W_in": np.ones((2, 1)), "layer1/W_rec": np.zeros((2, 2)), "layer1/b": np.zeros(2)}
    with pytest.raises(ValueError, match=match):
        call(p)


# ---------------------------------------------------------------------------
# exact gradients (forward sensitivities) against central differences
# ---------------------------------------------------------------------------


def _two_layer(seed=4):
    rng = np.random.default_rng(seed)
    p = {"layer1/W_in": rng.uniform(0.8, 2.0, (5, 3)), "layer1/W_rec": 0.3 * rng.standard_normal((5, 5)),
        "layer1/b": np.full(5, 0.3), "layer2/W_in": rng.uniform(0.2, 1.0, (3, 5)),
        "layer2/W_rec": 0.3 * rng.standard_normal((3, 3)), "layer2/b": np.full(3, 0.2)}  # fmt: skip
    in_t, in_u = np.sort(rng.uniform(0, 40, 25)), rng.integers(0, 3, 25)
    return p, in_t, in_u, rng


def _losses(rng, n_samples):
    from refimpl.exact import gradients as G

    W_out, y = rng.standard_normal((2, 3)), rng.standard_normal((n_samples, 2))
    return {"first_spike": G.first_spike_loss(np.full(3, 12.0)),
        "spike_readout": G.spike_readout_loss(W_out, np.zeros(2), 5.0, y),
        "membrane_readout": G.membrane_readout_loss(W_out, np.zeros(2), y)}  # fmt: skip


def _fd_errors(cfg, p, in_t, in_u, T, loss, ts, grads, rng, n=4, h=1e-6):
    from refimpl.exact.events import simulate as sim

    worst = 0.0
    for key in sorted(k for k in p):
        for _ in range(n):
            idx = tuple(int(rng.integers(0, s)) for s in p[key].shape)
            vals = []
            for sgn in (1, -1):
                q = {k: v.copy() for k, v in p.items()}
                q[key][idx] += sgn * h
                vals.append(loss(cfg, sim(cfg, q, in_t, in_u, T, sample_times=ts), T, ts).value)
            fd = (vals[0] - vals[1]) / (2 * h)
            worst = max(worst, abs(fd - grads[key][idx]) / max(abs(fd), abs(grads[key][idx]), 1e-6))
    return worst


@pytest.mark.parametrize("taus", [(10.0, 5.0), (10.0, 3.0), (10.0, 10.0)])
def test_exact_gradient_matches_central_differences(taus):
    """Forward sensitivities (implicit derivative of each crossing, carried through later events by the
    saltation rule) against central differences, every parameter block of a 2-layer recurrent network,
    three losses; no spike is created or deleted by the ±1e-6 steps here."""
    from refimpl.exact.gradients import value_and_grad

    p, in_t, in_u, rng = _two_layer()
    ts = np.linspace(2.0, 40.0, 12)
    cfg = ExactConfig(layers=(5, 3), n_in=3, tau_mem=taus[0], tau_syn=taus[1])
    for name, loss in _losses(rng, ts.size).items():
        L, g, res = value_and_grad(cfg, p, in_t, in_u, 40.0, loss, sample_times=ts, method="forward")
        assert res.spike_times.size > 20 and np.isfinite(L)
        assert _fd_errors(cfg, p, in_t, in_u, 40.0, loss, ts, g, rng) <= 1e-6, name
        # the adjoint (EventProp) pass, an independent computation, agrees with the forward one
        _, ga, _ = value_and_grad(cfg, p, in_t, in_u, 40.0, loss, sample_times=ts, method="adjoint")
        for k in g:
            assert np.abs(ga[k] - g[k]).max() <= 1e-10 * max(np.abs(g[k]).max(), 1e-12), (name, k)


@pytest.mark.parametrize("method", ["forward", "adjoint"])
@pytest.mark.parametrize("fault", [1, 2])
def test_a_wrong_saltation_fails_the_gradient_check(fault, method):
    """Each term of the saltation rule matters, in both passes: dropping the targets' time-shift terms (1)
    or the reset's (2) fails the same check."""
    from refimpl.exact.gradients import value_and_grad

    p, in_t, in_u, rng = _two_layer()
    ts = np.linspace(2.0, 40.0, 12)
    cfg = ExactConfig(layers=(5, 3), n_in=3)
    loss = _losses(rng, ts.size)["spike_readout"]
    _, g, _ = value_and_grad(cfg, p, in_t, in_u, 40.0, loss, sample_times=ts, fault=fault, method=method)
    assert _fd_errors(cfg, p, in_t, in_u, 40.0, loss, ts, g, rng) > 1e-3


def test_adjoint_gives_the_initial_state_gradient():
    from refimpl.exact.events import simulate as sim
    from refimpl.exact.gradients import value_and_grad

    p, in_t, in_u, rng = _two_layer()
    ts = np.linspace(2.0, 40.0, 12)
    cfg = ExactConfig(layers=(5, 3), n_in=3)
    loss = _losses(rng, ts.size)["membrane_readout"]
    V0, I0 = 0.3 * rng.random(8), 0.5 * rng.random(8)
    _, g, _ = value_and_grad(cfg, p, in_t, in_u, 40.0, loss, sample_times=ts, V0=V0, I0=I0)
    h = 1e-6
    for name, x in (("V0", V0), ("I0", I0)):
        for i in (0, 4, 6):
            vals = []
            for sgn in (1, -1):
                y = x.copy()
                y[i] += sgn * h
                kw = {"V0": y, "I0": I0} if name == "V0" else {"V0": V0, "I0": y}
                vals.append(loss(cfg, sim(cfg, p, in_t, in_u, 40.0, sample_times=ts, **kw), 40.0, ts).value)
            fd = (vals[0] - vals[1]) / (2 * h)
            assert abs(fd - g[name][i]) <= 1e-6 * max(abs(fd), 1e-6), (name, i, fd, g[name][i])


def test_closed_form_and_bracketed_crossings_give_the_same_gradient():
    from refimpl.exact.gradients import value_and_grad

    p, in_t, in_u, rng = _two_layer()
    ts = np.linspace(2.0, 40.0, 12)
    loss = _losses(rng, ts.size)["spike_readout"]
    for taus in ((10.0, 5.0), (10.0, 10.0)):
        ga = value_and_grad(ExactConfig(layers=(5, 3), n_in=3, tau_mem=taus[0], tau_syn=taus[1]), p, in_t, in_u, 40.0,
            loss, sample_times=ts)[1]  # fmt: skip
        gb = value_and_grad(ExactConfig(layers=(5, 3), n_in=3, tau_mem=taus[0], tau_syn=taus[1], root="bracket"), p,
            in_t, in_u, 40.0, loss, sample_times=ts)[1]  # fmt: skip
        for k in ga:
            np.testing.assert_allclose(ga[k], gb[k], rtol=1e-9, atol=1e-12)


def test_gradients_refuse_refractoriness():
    from refimpl.exact.gradients import first_spike_loss, value_and_grad

    p, in_t, in_u, _ = _two_layer()
    with pytest.raises(ValueError, match="t_ref"):
        value_and_grad(ExactConfig(layers=(5, 3), n_in=3, t_ref=1.0), p, in_t, in_u, 40.0, first_spike_loss(np.zeros(3)))


# ---------------------------------------------------------------------------
# the exact Lyapunov spectrum
# ---------------------------------------------------------------------------


def _driven(seed=0, N=20, n_in=5, T=2000.0, g=1.0, bias=0.8, layers=None):
    rng = np.random.default_rng(seed)
    p = {"layer1/W_in": rng.uniform(0.5, 1.5, (N, n_in)), "layer1/W_rec": g * rng.standard_normal((N, N)) / np.sqrt(N),
        "layer1/b": np.full(N, bias)}  # fmt: skip
    n_ev = rng.poisson(0.02 * T * n_in)
    return p, np.sort(rng.uniform(0, T, n_ev)), rng.integers(0, n_in, n_ev)


@pytest.mark.parametrize("fault", [0, 1, 2])
def test_tangent_map_is_the_derivative_of_the_flow_map(fault):
    """The tangent vectors carried through 30 ms of events (flow, saltation at 20–60 spikes) equal central
    differences of the exact simulation from perturbed initial states; dropping either saltation term
    (fault 1, 2) fails."""
    from refimpl.exact.events import run_tangent_segment, stack_weights

    p, in_t, in_u = _driven(T=30.0)
    cfg = ExactConfig(layers=(20,), n_in=5)
    rng = np.random.default_rng(1)
    V0, I0 = 0.5 * rng.random(20), 0.5 * rng.random(20)
    Q = np.linalg.qr(rng.standard_normal((40, 3)))[0]
    QV, QI = Q[:20].copy(), Q[20:].copy()
    V, I = V0.copy(), I0.copy()
    sp, _, _, _, _ = run_tangent_segment(cfg, stack_weights(cfg, p), V, I, in_t, in_u, 30.0, QV, QI, fault)
    assert sp.size > 20
    h = 1e-7
    fd = []
    for c in range(3):
        ends = []
        for sgn in (1, -1):
            r = simulate(cfg, p, in_t, in_u, 30.0, V0=V0 + sgn * h * Q[:20, c], I0=I0 + sgn * h * Q[20:, c])
            ends.append(np.concatenate([r.V, r.I]))
        fd.append((ends[0] - ends[1]) / (2 * h))
    err = np.abs(np.array(fd).T - np.vstack([QV, QI])).max() / np.abs(np.array(fd)).max()
    assert (err <= 1e-6) if fault == 0 else (err > 1e-3), err


def test_exponents_sum_to_the_log_determinant_rate():
    """With every exponent (k = 2N), their sum is the time average of log|det| of the tangent map:
    -N (1/τ_m + 1/τ_s) + (1/T) Σ_k log|v⁺/v⁻| (1/s), here with ~2500 spikes deciding the second term."""
    from refimpl.exact.lyapunov import spectrum

    p, in_t, in_u = _driven(T=1000.0)
    s = spectrum(ExactConfig(layers=(20,), n_in=5), p, in_t, in_u, 1000.0, transient=50.0)
    assert s.n_spikes > 500 and s.exponents.size == 40
    assert abs(s.exponents.sum() - s.log_det_rate) <= 1e-9 * abs(s.log_det_rate)
    assert abs(s.log_det_rate - (-20 * (1 / 10 + 1 / 5) * 1000)) > 100  # the spikes' term is not negligible
    # the identity can fail: without the reset's saltation term the spiking neuron's column (nearly) vanishes;
    # whether it comes out exactly 0 (an exponent of -inf, with a DegenerateSpectrumWarning) or a tiny
    # number depends on the BLAS/LAPACK release, so either is allowed here, and the identity must fail
    from refimpl.dynamics.lyapunov import DegenerateSpectrumWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateSpectrumWarning)
        bad = spectrum(ExactConfig(layers=(20,), n_in=5), p, in_t, in_u, 1000.0, transient=50.0, fault=2)
    assert not abs(bad.exponents.sum() - bad.log_det_rate) <= 1e-9 * abs(bad.log_det_rate)


def test_uncoupled_and_autonomous_spectra():
    """Uncoupled silent neurons: -1/τ_m and -1/τ_s (N of each). A neuron firing periodically under a
    constant drive: one zero exponent (along the flow) and -1/τ_s."""
    from refimpl.exact.lyapunov import spectrum

    N = 3
    p = {"layer1/W_in": np.zeros((N, 1)), "layer1/W_rec": np.zeros((N, N)), "layer1/b": np.zeros(N)}
    s = spectrum(ExactConfig(layers=(N,)), p, [], [], 2000.0, V0=[0.1, 0.2, 0.3], I0=[0.1, 0.2, 0.3])
    np.testing.assert_allclose(s.exponents, [-100.0] * 3 + [-200.0] * 3, rtol=0.02)
    p1 = {"layer1/W_in": np.zeros((1, 1)), "layer1/W_rec": np.zeros((1, 1)), "layer1/b": np.array([1.5])}
    s = spectrum(ExactConfig(layers=(1,)), p1, [], [], 2000.0, I0=[1.5], transient=100.0)
    assert s.n_spikes > 100 and abs(s.exponents[0]) < max(3 * s.error[0], 0.5)
    assert s.exponents[1] == pytest.approx(-200.0, rel=1e-6)
    # a coupled autonomous network (bias-driven, no input) keeps an exponent at zero (along its flow)
    rng = np.random.default_rng(3)
    p = {"layer1/W_in": np.zeros((10, 1)), "layer1/W_rec": 0.5 * rng.standard_normal((10, 10)) / np.sqrt(10),
        "layer1/b": rng.uniform(1.2, 1.6, 10)}  # fmt: skip
    s = spectrum(ExactConfig(layers=(10,)), p, [], [], 5000.0, k=6, transient=200.0, I0=p["layer1/b"])
    assert s.n_spikes > 1000 and np.min(np.abs(s.exponents) / s.error) < 1.0


def test_largest_exponent_agrees_with_two_nearby_trajectories():
    """λ₁ of the tangent map against a brute-force estimate: two exact simulations 1e-9 apart,
    renormalized every 5 ms (Benettin with two trajectories), over 1.9 s of a driven recurrent network."""
    from refimpl.exact.lyapunov import spectrum

    p, in_t, in_u = _driven()
    cfg = ExactConfig(layers=(20,), n_in=5)
    s = spectrum(cfg, p, in_t, in_u, 2000.0, k=2, transient=100.0)
    rng = np.random.default_rng(2)
    eps, seg = 1e-9, 5.0
    VA, IA = np.zeros(20), np.zeros(20)
    d0 = rng.standard_normal(40)
    d0 /= np.linalg.norm(d0)
    VB, IB = VA + eps * d0[:20], IA + eps * d0[20:]
    acc = counted = 0.0
    for t0 in np.arange(0.0, 2000.0, seg):
        sel = (in_t >= t0) & (in_t < t0 + seg)
        ra = simulate(cfg, p, in_t[sel] - t0, in_u[sel], seg, V0=VA, I0=IA, warn=False)
        rb = simulate(cfg, p, in_t[sel] - t0, in_u[sel], seg, V0=VB, I0=IB, warn=False)
        VA, IA = ra.V, ra.I
        dx = np.concatenate([rb.V - VA, rb.I - IA])
        d = np.linalg.norm(dx)
        assert d < 1e-6  # no spike fell between the two trajectories' renormalizations
        if t0 >= 100.0:
            acc += math.log(d / eps)
            counted += seg
        VB, IB = VA + eps * dx[:20] / d, IA + eps * dx[20:] / d
    brute = acc / counted * 1000.0
    assert abs(brute - s.exponents[0]) <= 3 * s.error[0] + 1.0, (brute, s.exponents[0], s.error[0])
    # the comparison can fail: a tangent map without the reset's saltation term is far off
    wrong = spectrum(cfg, p, in_t, in_u, 2000.0, k=2, transient=100.0, fault=2)
    assert abs(brute - wrong.exponents[0]) > 3 * wrong.error[0] + 1.0, (brute, wrong.exponents[0])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["zero", "subtract"]), TAUS, st.sampled_from([(6,), (4, 3)]),
    st.sampled_from([0.0, 1.0]))  # fmt: skip
def test_no_membrane_is_ever_above_threshold(seed, reset, taus, layers, t_ref):
    """Over drawn networks, dialects of reset, time constants, stacks and refractory periods: a missed
    crossing would leave a membrane above θ at some sample time; none is, spike times are ascending in
    [0, t_end], and a second run gives the same spikes."""
    rng = np.random.default_rng(seed)
    n_in = 3
    p, n_below = {}, n_in
    for l, n in enumerate(layers):
        p[f"layer{l + 1}/W_in"] = rng.uniform(0.0, 2.0, (n, n_below))
        p[f"layer{l + 1}/W_rec"] = 0.5 * rng.standard_normal((n, n))
        p[f"layer{l + 1}/b"] = rng.uniform(-0.5, 1.5, n)
        n_below = n
    in_t, in_u = np.sort(rng.uniform(0, 50, 40)), rng.integers(0, n_in, 40)
    cfg = ExactConfig(layers=layers, n_in=n_in, tau_mem=taus[0], tau_syn=taus[1], reset=reset, t_ref=t_ref)
    ts = np.linspace(0.0, 50.0, 401)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrazingCrossingWarning)
        r = simulate(cfg, p, in_t, in_u, 50.0, sample_times=ts)
        r2 = simulate(cfg, p, in_t, in_u, 50.0, sample_times=ts)
    assert r.sample_V.max() <= cfg.theta + 1e-12
    assert np.all(np.diff(r.spike_times) >= 0) and (r.spike_times.size == 0 or r.spike_times[-1] <= 50.0)
    assert np.array_equal(r.spike_times, r2.spike_times) and np.array_equal(r.spike_units, r2.spike_units)
