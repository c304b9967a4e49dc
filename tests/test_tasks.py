"""Tests of refimpl.tasks: targets, encodings, randman geometry, determinism, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.tasks.generators import TASKS, TaskBatch, delayed_copy, delayed_xor, encode_bits, make_task, randman

SETTINGS = settings(max_examples=25, deadline=None)


def _xor_args(draw):
    delta = draw(st.integers(1, 4))
    h = draw(st.integers(0, 3))
    d = delta * 2**h
    T = d + draw(st.integers(1, 20))
    return dict(T=T, batch=draw(st.integers(1, 4)), delta=delta, h=h, seed=draw(st.integers(0, 2**32)))


xor_args = st.composite(_xor_args)()
encodings = st.sampled_from(["analog", "pulse", "poisson"])


# ---------------------------------------------------------------------------
# delayed XOR / parity
# ---------------------------------------------------------------------------


@SETTINGS
@given(args=xor_args, encoding=encodings, channels=st.integers(1, 3))
def test_xor_targets_match_direct_recomputation(args, encoding, channels):
    b = delayed_xor(**args, encoding=encoding, channels=channels, rate_hz=300.0)
    delta, h, T = args["delta"], args["h"], args["T"]
    d = delta * 2**h
    assert b.t0 == d
    assert b.loss == "bce_per_step"
    assert b.targets.shape == (T, args["batch"], 1) and b.targets.dtype == np.float64
    assert b.bits.shape == (T, args["batch"])
    for t in range(T):
        for j in range(args["batch"]):
            if t < d:
                assert b.targets[t, j, 0] == 0.0
            else:
                acc = 0
                for k in range(h + 1):
                    acc ^= int(b.bits[t - delta * 2**k, j])
                assert b.targets[t, j, 0] == float(acc)


def test_xor_h1_is_classic_delayed_xor():
    b = delayed_xor(T=50, batch=5, delta=3, h=1, seed=7)
    x = b.bits
    assert b.t0 == 6
    np.testing.assert_array_equal(b.targets[6:, :, 0], x[3:-3] ^ x[:-6])


def test_t0_is_first_step_whose_target_is_defined():
    # At t0 - 1 the largest lag would reach before step 0; at t0 it reaches exactly step 0.
    b = delayed_xor(T=40, batch=2, delta=5, h=2, seed=1)
    assert b.t0 == 20
    assert b.t0 - 5 * 2**2 == 0


@SETTINGS
@given(delta=st.integers(1, 5), extra=st.integers(1, 10), seed=st.integers(0, 1000))
def test_xor_h0_equals_copy(delta, extra, seed):
    a = delayed_xor(T=delta + extra, batch=3, delta=delta, h=0, seed=seed)
    c = delayed_copy(T=delta + extra, batch=3, delay=delta, seed=seed)
    np.testing.assert_array_equal(a.inputs, c.inputs)
    np.testing.assert_array_equal(a.targets, c.targets)
    assert a.t0 == c.t0 == delta


@SETTINGS
@given(delay=st.integers(0, 6), extra=st.integers(1, 10), batch=st.integers(1, 4), seed=st.integers(0, 1000))
def test_copy_targets(delay, extra, batch, seed):
    T = delay + extra
    b = delayed_copy(T=T, batch=batch, delay=delay, seed=seed)
    assert b.t0 == delay
    np.testing.assert_array_equal(b.targets[delay:, :, 0], b.bits[: T - delay])
    assert not b.targets[:delay].any()


def test_xor_targets_are_balanced_bits():
    b = delayed_xor(T=2000, batch=10, delta=2, h=2, seed=3)
    scored = b.targets[b.t0 :]
    assert set(np.unique(scored)) <= {0.0, 1.0}
    assert abs(scored.mean() - 0.5) < 0.02
    assert abs(b.bits.mean() - 0.5) < 0.02


# ---------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------


@SETTINGS
@given(T=st.integers(1, 20), B=st.integers(1, 4), channels=st.integers(1, 4), seed=st.integers(0, 1000))
def test_encoding_shapes_and_values(T, B, channels, seed):
    bits = np.random.default_rng(seed).integers(0, 2, size=(T, B))
    rng = np.random.default_rng(seed)

    a = encode_bits(bits, encoding="analog", channels=channels)
    assert a.shape == (T, B, 1) and a.dtype == np.float64
    np.testing.assert_array_equal(a[:, :, 0], 2.0 * bits - 1.0)

    p = encode_bits(bits, encoding="pulse", channels=channels)
    assert p.shape == (T, B, 2 * channels) and p.dtype == np.float64
    assert set(np.unique(p)) <= {0.0, 1.0}
    for c in range(channels):
        np.testing.assert_array_equal(p[:, :, c], bits)
        np.testing.assert_array_equal(p[:, :, channels + c], 1 - bits)
    np.testing.assert_array_equal(p.sum(axis=2), channels)

    q = encode_bits(bits, encoding="poisson", channels=channels, rate_hz=400.0, background_hz=50.0, rng=rng)
    assert q.shape == (T, B, 2 * channels) and q.dtype == np.float64
    assert set(np.unique(q)) <= {0.0, 1.0}


def test_poisson_extreme_rates_are_deterministic():
    bits = np.random.default_rng(0).integers(0, 2, size=(30, 4))
    rng = np.random.default_rng(1)
    full = encode_bits(bits, encoding="poisson", channels=2, rate_hz=1000.0, rng=rng)
    np.testing.assert_array_equal(full, encode_bits(bits, encoding="pulse", channels=2))
    silent = encode_bits(bits, encoding="poisson", channels=2, rate_hz=0.0, rng=rng)
    assert not silent.any()


@SETTINGS
@given(
    rate=st.floats(0.0, 1000.0), background=st.floats(0.0, 200.0), dt=st.sampled_from([0.1, 0.5, 1.0]), seed=st.integers(0, 2**32)
)
def test_poisson_rates_close_to_nominal(rate, background, dt, seed):
    T, B, channels = 400, 10, 5
    bits = np.random.default_rng(seed).integers(0, 2, size=(T, B))
    u = encode_bits(bits, encoding="poisson", channels=channels, rate_hz=rate, background_hz=background, dt=dt,
        rng=np.random.default_rng(seed + 1))  # fmt: skip
    on = bits.astype(bool)
    # Active population: channels [0, C) when the bit is 1, [C, 2C) when it is 0.
    active = np.concatenate([u[on][:, :channels], u[~on][:, channels:]], axis=0)
    inactive = np.concatenate([u[on][:, channels:], u[~on][:, :channels]], axis=0)
    for pop, hz in ((active, rate), (inactive, background)):
        p = hz * dt / 1000.0
        n = pop.size
        tol = 6.0 * np.sqrt(p * (1 - p) / n) + 1e-12
        assert abs(pop.mean() - p) <= tol


def test_same_bits_for_all_encodings():
    kw = dict(T=30, batch=3, delta=2, seed=11)
    a = delayed_xor(**kw, encoding="analog")
    p = delayed_xor(**kw, encoding="pulse", channels=2)
    q = delayed_xor(**kw, encoding="poisson", channels=2)
    np.testing.assert_array_equal(a.bits, p.bits)
    np.testing.assert_array_equal(a.bits, q.bits)
    np.testing.assert_array_equal(a.targets, q.targets)
    assert (a.n_in, p.n_in, q.n_in) == (1, 4, 4)
    assert a.n_out == 1


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------

SMALL = {
    "delayed_xor": dict(T=40, batch=3, delta=3, encoding="poisson", channels=2, rate_hz=300.0, background_hz=20.0),
    "delayed_copy": dict(T=30, batch=3, delay=4, encoding="poisson", channels=2),
    "randman": dict(n_classes=3, n_units=8, n_steps=30, dim_manifold=2, alpha=1.5, samples_per_class=4, jitter_ms=1.0),
}


@SETTINGS
@given(name=st.sampled_from(sorted(TASKS)), seed=st.integers(0, 2**32))
def test_deterministic_per_seed_and_different_across_seeds(name, seed):
    a = make_task(name, **SMALL[name], seed=seed)
    b = make_task(name, **SMALL[name], seed=seed)
    c = make_task(name, **SMALL[name], seed=seed + 1)
    assert a.inputs.tobytes() == b.inputs.tobytes()
    assert a.targets.tobytes() == b.targets.tobytes()
    assert a.t0 == b.t0 and a.loss == b.loss
    assert a.inputs.tobytes() != c.inputs.tobytes()


# ---------------------------------------------------------------------------
# randman
# ---------------------------------------------------------------------------


@SETTINGS
@given(
    n_classes=st.integers(2, 5),
    n_units=st.integers(1, 12),
    n_steps=st.integers(1, 40),
    dim=st.integers(1, 3),
    alpha=st.floats(0.0, 4.0),
    spc=st.integers(1, 6),
    jitter=st.sampled_from([0.0, 2.0]),
    dt=st.sampled_from([0.5, 1.0]),
    seed=st.integers(0, 2**32),
)
def test_randman_shapes_labels_one_spike(n_classes, n_units, n_steps, dim, alpha, spc, jitter, dt, seed):
    b = randman(n_classes=n_classes, n_units=n_units, n_steps=n_steps, dim_manifold=dim, alpha=alpha,
        samples_per_class=spc, seed=seed, dt=dt, jitter_ms=jitter)  # fmt: skip
    B = n_classes * spc
    assert b.inputs.shape == (n_steps, B, n_units) and b.inputs.dtype == np.float64
    assert b.targets.shape == (B,) and b.targets.dtype == np.int64
    assert b.loss == "ce_max" and b.t0 == 0 and b.bits is None
    assert b.n_in == n_units and b.n_out == n_classes
    assert set(np.unique(b.inputs)) <= {0.0, 1.0}
    np.testing.assert_array_equal(b.inputs.sum(axis=0), 1.0)
    np.testing.assert_array_equal(np.bincount(b.targets, minlength=n_classes), spc)


def test_randman_is_shuffled():
    b = randman(n_classes=4, n_units=5, n_steps=20, dim_manifold=1, alpha=2.0, samples_per_class=10, seed=0)
    assert not np.array_equal(b.targets, np.sort(b.targets))


def test_randman_manifold_independent_of_sample_count():
    # The class manifolds are drawn before the samples, so adding samples keeps the
    # map.  Intrinsic points are drawn class-major, so class 0's first point is the
    # same in both batches and its (jitter-free) spike pattern must reappear.
    kw = dict(n_classes=3, n_units=6, n_steps=50, dim_manifold=2, alpha=2.0, seed=5)
    small = randman(**kw, samples_per_class=1)
    big = randman(**kw, samples_per_class=20)
    first = small.inputs[:, small.targets == 0][:, 0]
    matches = [j for j in range(big.batch) if np.array_equal(big.inputs[:, j], first)]
    assert matches and all(big.targets[j] == 0 for j in matches)


def test_randman_uses_full_time_window():
    # Normalisation maps each unit's manifold coordinate onto the whole window.
    n_steps = 50
    b = randman(n_classes=2, n_units=5, n_steps=n_steps, dim_manifold=1, alpha=2.0, samples_per_class=300, seed=2)
    times = b.inputs.argmax(axis=0)  # (B, n_units)
    for c in range(2):
        tc = times[b.targets == c]
        assert (tc.min(axis=0) <= 0.1 * n_steps).all()
        assert (tc.max(axis=0) >= 0.9 * n_steps).all()


def test_randman_jitter_changes_times_not_labels():
    kw = dict(n_classes=3, n_units=10, n_steps=100, dim_manifold=1, alpha=2.0, samples_per_class=5, seed=9)
    a = randman(**kw)
    b = randman(**kw, jitter_ms=3.0)
    np.testing.assert_array_equal(a.targets, b.targets)
    ta, tb = a.inputs.argmax(axis=0), b.inputs.argmax(axis=0)
    assert not np.array_equal(ta, tb)
    # Same intrinsic points, so times differ only by the noise (6 s.d. + rounding).
    assert np.abs(ta - tb).max() <= 6 * 3.0 + 1


def test_randman_loss_choice():
    b = randman(n_classes=2, n_units=3, n_steps=10, dim_manifold=1, alpha=1.0, samples_per_class=2, seed=0, loss="ce_last")
    assert b.loss == "ce_last"


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

BASE = {"delayed_xor": dict(T=20, batch=2, delta=2, seed=0), "delayed_copy": dict(T=20, batch=2, delay=2, seed=0)}
XOR_OK = BASE["delayed_xor"]
BASE["randman"] = RM_OK = dict(n_classes=2, n_units=3, n_steps=10, dim_manifold=1, alpha=1.0, samples_per_class=2, seed=0)


@pytest.mark.parametrize(
    "name, override, param",
    [
        ("delayed_xor", dict(T=4), "T"),  # T <= d = 4
        ("delayed_xor", dict(T=4, h=0, delta=4), "T"),
        ("delayed_xor", dict(delta=0), "delta"),
        ("delayed_xor", dict(delta=-2), "delta"),
        ("delayed_xor", dict(h=-1), "h"),
        ("delayed_xor", dict(channels=-1), "channels"),
        ("delayed_xor", dict(channels=0), "channels"),
        ("delayed_xor", dict(channels=2.0), "channels"),
        ("delayed_xor", dict(encoding="poisson", rate_hz=1500.0), "rate_hz"),
        ("delayed_xor", dict(encoding="poisson", rate_hz=200.0, dt=10.0), "rate_hz"),
        ("delayed_xor", dict(encoding="poisson", background_hz=2000.0), "background_hz"),
        ("delayed_xor", dict(rate_hz=-1.0), "rate_hz"),
        ("delayed_xor", dict(rate_hz=float("nan")), "rate_hz"),
        ("delayed_xor", dict(dt=0.0), "dt"),
        ("delayed_xor", dict(encoding="spikes"), "encoding"),
        ("delayed_xor", dict(T=20.0), "T"),
        ("delayed_xor", dict(T=True), "T"),
        ("delayed_xor", dict(batch="2"), "batch"),
        ("delayed_xor", dict(seed=None), "seed"),
        ("delayed_xor", dict(seed=-1), "seed"),
        ("delayed_xor", dict(loss="ce_max"), "loss"),
        ("delayed_copy", dict(delay=20), "T"),
        ("delayed_copy", dict(delay=-1), "delay"),
        ("delayed_copy", dict(encoding="poisson", rate_hz=1001.0), "rate_hz"),
        ("randman", dict(n_classes=1), "n_classes"),
        ("randman", dict(n_units=0), "n_units"),
        ("randman", dict(n_steps=0), "n_steps"),
        ("randman", dict(dim_manifold=0), "dim_manifold"),
        ("randman", dict(alpha=-1.0), "alpha"),
        ("randman", dict(alpha="smooth"), "alpha"),
        ("randman", dict(samples_per_class=0), "samples_per_class"),
        ("randman", dict(jitter_ms=-0.5), "jitter_ms"),
        ("randman", dict(loss="bce_per_step"), "loss"),
    ],
)
def test_bad_input_names_parameter(name, override, param, monkeypatch):
    kwargs = {**BASE[name], **override}
    # Validation must happen before any random number is drawn.
    monkeypatch.setattr(np.random, "default_rng", _forbidden_rng)
    with pytest.raises(ValueError, match=f"'{param}'"):
        make_task(name, **kwargs)
    with pytest.raises(ValueError, match=f"'{param}'"):
        TASKS[name](**kwargs)


def _forbidden_rng(*args, **kwargs):
    raise AssertionError("random numbers drawn before validation")


def test_unknown_task_suggests_closest():
    with pytest.raises(ValueError, match="did you mean 'delayed_xor'"):
        make_task("delayed_xr", **XOR_OK)
    with pytest.raises(ValueError, match="'name'"):
        make_task("nonsense_task_zzz")


def test_unknown_and_missing_kwargs():
    with pytest.raises(ValueError, match="'dleta'.*did you mean 'delta'"):
        make_task("delayed_xor", T=20, batch=2, dleta=2, seed=0)
    with pytest.raises(ValueError, match="seed"):
        make_task("delayed_xor", T=20, batch=2, delta=2)


def test_encode_bits_bad_input():
    bits = np.zeros((5, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="'bits'"):
        encode_bits(np.zeros(5))
    with pytest.raises(ValueError, match="'bits'"):
        encode_bits(np.full((5, 2), 2))
    with pytest.raises(ValueError, match="'rng'"):
        encode_bits(bits, encoding="poisson")
    with pytest.raises(ValueError, match="'channels'"):
        encode_bits(bits, channels=-3)


def test_taskbatch_validation_and_frozen():
    u = np.zeros((5, 2, 3))
    with pytest.raises(ValueError, match="'t0'"):
        TaskBatch(inputs=u, targets=np.zeros((5, 2, 1)), loss="bce_per_step", t0=5)
    with pytest.raises(ValueError, match="'targets'"):
        TaskBatch(inputs=u, targets=np.zeros(2), loss="bce_per_step", t0=0)
    with pytest.raises(ValueError, match="'n_classes'"):
        TaskBatch(inputs=u, targets=np.zeros(2, dtype=np.int64), loss="ce_max", t0=0)
    with pytest.raises(ValueError, match="'loss'"):
        TaskBatch(inputs=u, targets=np.zeros((5, 2, 1)), loss="l2", t0=0)
    b = TaskBatch(inputs=u, targets=np.zeros(2, dtype=np.int64), loss="ce_mean", t0=0, n_classes=4)
    assert (b.T, b.batch, b.n_in, b.n_out) == (5, 2, 3, 4)
    with pytest.raises(AttributeError):
        b.t0 = 1
