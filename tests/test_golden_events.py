"""Event-based golden cases (format version 2; refimpl/check/golden/events.py, docs/golden-format.md): the
shipped file is what refimpl computes, its cases are robust, and `refimpl validate` catches what an
EventProp implementation can get wrong."""

import shutil

import h5py
import numpy as np
import pytest

from refimpl import cli
from refimpl.check.golden.events import (EVENT_CASES, compute_event_case, default_events_reference,
    exact_config_from_dict, make_event_problem)  # fmt: skip

SHIPPED = default_events_reference()


def _validate(capsys, path, *extra):
    rc = cli.main(["validate", str(path), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def candidate(tmp_path):
    p = tmp_path / "candidate.h5"
    shutil.copy(SHIPPED, p)
    return p


def test_shipped_file_is_a_fresh_export():
    """Every dataset of refimpl/data/golden_events.h5 equals a fresh computation (re-export:
    `refimpl golden export --events refimpl/data/golden_events.h5`): integers exactly, floats to 1e-12
    relative. Bit for bit with the NumPy/SciPy/BLAS the file was exported with; other releases move the last
    digits of the BLAS and LAPACK calls (NumPy 2.4.6 / SciPy 1.17.1: up to 9e-15 relative), far inside
    every tolerance of `refimpl validate`."""
    with h5py.File(SHIPPED, "r") as f:
        assert f.attrs["format_version"] == 2 and sorted(f) == sorted(c.name for c in EVENT_CASES)
        for case in EVENT_CASES:
            fresh = compute_event_case(case)
            stored = {}
            f[case.name].visititems(lambda k, v: stored.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
            assert sorted(stored) == sorted(fresh)
            for k, v in fresh.items():
                a, b = np.asarray(stored[k]), np.asarray(v)
                if a.dtype.kind in "fc":
                    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=f"{case.name} {k}")
                else:
                    assert np.array_equal(a, b), (case.name, k)


@pytest.mark.parametrize("case", EVENT_CASES, ids=lambda c: c.name)
def test_cases_are_robust(case):
    """No crossing is near-grazing ((I - θ)/θ > 1e-2) and no spike lies within 1e-6 ms of a sample time,
    so a correct implementation cannot flip a spike or a sample by rounding; every layer spikes."""
    from refimpl.exact.events import simulate

    cfg, t_end, _, _ = exact_config_from_dict(case.config)
    p, (t, u), s, _, _ = make_event_problem(case)
    r = simulate(cfg, p, t, u, t_end, sample_times=s)
    assert r.min_slope > 1e-2
    assert np.min(np.abs(r.spike_times[:, None] - s[None, :])) > 1e-6
    off = cfg.offsets
    assert all(np.any((r.spike_units >= a) & (r.spike_units < b)) for a, b in zip(off[:-1], off[1:]))


def test_the_shipped_gradient_is_the_forward_sensitivity_gradient():
    """The golden gradient (adjoint pass) agrees with forward sensitivities, an independent computation."""
    from refimpl.exact.gradients import spike_readout_loss, value_and_grad

    for case in EVENT_CASES:
        cfg, t_end, loss_cfg, _ = exact_config_from_dict(case.config)
        p, (t, u), s, W_out, y = make_event_problem(case)
        _, g, _ = value_and_grad(cfg, p, t, u, t_end, spike_readout_loss(W_out, np.zeros(2), loss_cfg["tau_out"], y),
            sample_times=s, method="forward")  # fmt: skip
        with h5py.File(SHIPPED, "r") as f:
            for k in p:
                ref = f[f"{case.name}/exact/grad/{k}"][()]
                assert np.abs(ref - g[k]).max() <= 1e-10 * max(np.abs(ref).max(), 1e-12), (case.name, k)


def test_validate_accepts_the_shipped_file_and_chooses_the_event_reference(capsys):
    rc, out, _ = _validate(capsys, SHIPPED)
    assert rc == 0 and "57 of the reference's 57 datasets" in out


def test_a_moved_spike_is_a_mismatch(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        d = f["exact_recurrent_bracket/exact/spikes/times"]
        v = d[()]
        v[3] += 1e-6
        d[...] = v
    rc, out, _ = _validate(capsys, candidate)
    assert rc == 1 and "exact_recurrent_bracket" in out and "spike_times" in out


def test_a_missing_spike_is_a_mismatch_not_a_format_error(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        for q in ("times", "units"):
            v = f[f"exact_recurrent_quadratic/exact/spikes/{q}"][()]
            del f[f"exact_recurrent_quadratic/exact/spikes/{q}"]
            f[f"exact_recurrent_quadratic/exact/spikes/{q}"] = v[:-1]
    rc, out, _ = _validate(capsys, candidate)
    assert rc == 1 and "54 spikes, the reference has 55" in out


def test_a_wrong_gradient_and_a_wrong_config_are_mismatches(capsys, candidate):
    import json

    with h5py.File(candidate, "r+") as f:
        d = f["exact_two_layer_lambert/exact/grad/layer2/W_rec"]
        d[...] = d[()] * (1 + 1e-5)
        cfg = json.loads(f["exact_recurrent_quadratic"].attrs["config"])
        cfg["tau_syn"] = 4.0
        f["exact_recurrent_quadratic"].attrs["config"] = json.dumps(cfg)
    rc, out, _ = _validate(capsys, candidate)
    assert rc == 1 and "exact/grad/layer2/W_rec" in out and "tau_syn=4.0" in out


def test_a_damaged_event_reference_exits_2(capsys, tmp_path, candidate):
    ref = tmp_path / "ref.h5"
    shutil.copy(SHIPPED, ref)
    with h5py.File(ref, "r+") as f:
        del f["exact_recurrent_quadratic/exact/spectrum"]
    rc, _, err = _validate(capsys, candidate, "--reference", str(ref))
    assert rc == 2 and "damaged" in err and err.count("\n") == 1


def test_export_events_one_case(tmp_path, capsys):
    p = tmp_path / "one.h5"
    assert cli.main(["golden", "export", "--events", str(p), "--case", "exact_recurrent_bracket"]) == 0
    with h5py.File(p, "r") as f:
        assert list(f) == ["exact_recurrent_bracket"] and f.attrs["format_version"] == 2
    assert cli.main(["golden", "export", "--events", str(p), "--case", "nope"]) == 2
    assert "unknown event-based case 'nope'" in capsys.readouterr().err
