"""Golden vectors (docs/golden-format.md, issue 4): the shipped file, validate, bad files, PyTorch round trip."""

import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from refimpl import cli
from refimpl.check import golden
from refimpl.model.config import CELLS, LOSSES, RESET_GRADS, RESETS, SURROGATES, FlossConfig, LossConfig, LyapunovConfig
from refimpl.model.network import param_shapes

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = golden.default_reference()


def _validate(capsys, *argv):
    rc = cli.main(["validate", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_one_line_error(rc, out, err, *words):
    assert rc == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refimpl validate: error:"), err
    assert "Traceback" not in out + err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def candidate(tmp_path):
    """A writable copy of the shipped file (it agrees with itself)."""
    p = tmp_path / "candidate.h5"
    shutil.copyfile(SHIPPED, p)
    return p


# ---------------------------------------------------------------------------
# config_from_dict
# ---------------------------------------------------------------------------


def test_config_round_trip_of_every_case():
    for case in golden.CASES:
        assert golden.config_to_dict(*golden.config_from_dict(case.config)) == case.config
        assert golden.config_from_dict(json.dumps(case.config))[0] == golden.config_from_dict(case.config)[0]


def test_config_of_the_spec_example():
    d = {
        "cell": "clif",
        "layers": [16, 8],
        "n_in": 4,
        "n_out": 2,
        "dt": 1.0,
        "tau_mem": 10.0,
        "tau_syn": 5.0,
        "theta": 1.0,
        "syn_input": "new",
        "input_gain": "one_minus_beta",
        "reset": "zero",
        "reset_grad": "detached",
        "surrogate": {"name": "fast_sigmoid", "slope": 10.0},
        "smooth": False,
        "readout": {"tau_out": 5.0, "source": "spikes"},
        "loss": {"name": "bce_per_step", "t0": 0},
        "lyapunov": {"k": 4, "ons": 1, "warmup": 0, "transient": 0, "batch_index": 0},
        "flossing": {"target": 0.0, "params": ["W_in", "W_rec", "b"]},
        "my_own_key": [1, 2],
    }  # implementations may add keys
    cfg, loss, lcfg, fcfg = golden.config_from_dict(d)
    assert cfg.layers == (16, 8) and cfg.state_size == 48
    assert loss == LossConfig("bce_per_step", 0)
    assert lcfg == LyapunovConfig(k=4, seed=0)
    assert fcfg == FlossConfig(0.0, ("W_in", "W_rec", "b"))


def _with(d, path, value):
    d = json.loads(json.dumps(d))
    *head, last = path.split(".")
    tgt = d
    for h in head:
        tgt = tgt[h]
    if value is KeyError:
        del tgt[last]
    else:
        tgt[last] = value
    return d


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("reset", "zeros", ["reset", "zero"]),
        ("reset_grad", "detach", ["reset_grad"]),
        ("surrogate.name", "superspike", ["surrogate.name"]),
        ("cell", "lif", ["cell"]),
        ("loss.name", "ce_sum", ["loss.name"]),
        ("readout.source", "state", ["readout.source"]),
        ("syn_input", "newest", ["syn_input"]),
        ("input_gain", 1.0, ["input_gain"]),
        ("smooth", "no", ["smooth"]),
        ("layers", [6, 0], ["layers"]),
        ("layers", [], ["layers"]),
        ("n_in", 3.0, ["n_in"]),
        ("dt", -1.0, ["dt"]),
        ("tau_mem", [5.0, 6.0], ["tau_mem"]),
        ("theta", True, ["theta"]),
        ("lyapunov.k", 99, ["lyapunov.k"]),
        ("lyapunov.ons", 0, ["lyapunov.ons"]),
        ("lyapunov.seed", -1, ["lyapunov.seed"]),
        ("flossing.params", ["W_in", "W_out"], ["flossing.params"]),
        ("flossing.params", ["x0"], ["flossing.params"]),
        ("flossing.target", [0.0], ["flossing.target"]),
        ("reset", KeyError, ["reset", "missing"]),
        ("lyapunov.transient", KeyError, ["lyapunov.transient", "missing"]),
        ("surrogate", "fast_sigmoid", ["surrogate"]),
    ],
)
def test_config_is_strict(path, value, words):
    base = golden.get_case("clif_engelken").config
    with pytest.raises(ValueError) as exc:
        golden.config_from_dict(_with(base, path, value))
    for w in words:
        assert w in str(exc.value)


def test_config_not_json():
    with pytest.raises(ValueError, match="JSON"):
        golden.config_from_dict("{cell: clif")


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------


def test_cases_are_small_and_cover_every_switch():
    assert len(golden.CASES) >= 12
    assert len(set(golden.CASE_NAMES)) == len(golden.CASES)
    for c in golden.CASES:
        assert max(c.config["layers"]) <= 8 and c.T <= 30 and c.B <= 3, c.name
        assert c.config["lyapunov"]["k"] <= max(c.config["layers"]) or c.config["cell"] != "clif"
        assert len(c.jacobian_steps()) == 3
    cov = golden.coverage()
    assert set(cov["cell"]) == set(CELLS)
    assert {"engelken", "spytorch", "stork"} <= set(cov["dialect"])
    assert set(cov["reset"]) == set(RESETS)
    assert set(cov["reset_grad"]) == set(RESET_GRADS)
    assert set(cov["surrogate"]) == set(SURROGATES)
    assert set(cov["loss"]) == set(LOSSES)
    assert set(cov["layers"]) == {"1", "2-3"}
    assert set(cov["mode"]) == {"smooth", "surrogate"}
    assert set(cov["readout.source"]) == {"spikes", "membrane", "state", "activation"}
    assert set(cov["readout.tau_out"]) == {"0", ">0"}
    assert {"ons>1", "warmup>0", "transient>0"} <= set(cov["lyapunov"])
    assert set(cov["syn_input"]) == {"new", "old"} and set(cov["input_gain"]) == {"one_minus_beta", "unit"}


def test_shipped_cases_are_robust_to_rounding():
    """No quantity of a case sits on a discontinuity, so that another implementation's rounding
    cannot flip a spike, a σ'' branch or the ce_max step: margins far above rounding."""
    ref = golden.read_golden(SHIPPED, "reference")
    for c in golden.CASES:
        d, cfg = ref.cases[c.name], c.config
        net, loss, _, _ = golden.config_from_dict(cfg)
        gamma = net.surrogate.slope
        if net.cell == "clif":
            x = np.concatenate([(d[f"forward/layer{l + 1}/V"] - net.theta).ravel() for l in range(net.n_layers)])
            S = [d[f"forward/layer{l + 1}/S"] for l in range(net.n_layers)]
            if not net.smooth:
                assert all(set(np.unique(s)) <= {0.0, 1.0} for s in S)
                rate = np.mean([np.mean(s) for s in S])
                assert 0.02 < rate < 0.7, (c.name, rate)
        else:
            x = d["forward/layer1/x"].ravel()
        if net.cell != "rate":
            kinks = {"fast_sigmoid": (0.0,), "triangle": (-1 / gamma, 0.0, 1 / gamma)}.get(net.surrogate.name, (0.0,))
            margin = min(np.min(np.abs(x - k)) for k in kinks)
            assert margin > 1e-4, (c.name, margin)
        if loss.name == "ce_max":
            y = np.sort(d["forward/readout/y"][loss.t0 :], axis=0)
            assert np.min(y[-1] - y[-2]) > 1e-4, c.name
        assert np.all(np.isfinite(d["lyapunov/spectrum"]))


def test_shipped_file_has_every_quantity():
    ref = golden.read_golden(SHIPPED, "reference")
    assert ref.generator.startswith("refimpl ")
    assert list(golden.CASE_NAMES) == [n for n in golden.CASE_NAMES if n in ref.cases]
    assert sorted(ref.cases) == sorted(golden.CASE_NAMES)
    for c in golden.CASES:
        d = ref.cases[c.name]
        net, _, lcfg, fcfg = golden.config_from_dict(ref.configs[c.name])
        M, T, B = net.state_size, c.T, c.B
        for key, shape in param_shapes(net).items():
            assert d[f"params/{key}"].shape == shape
            assert d[f"grad/{key}"].shape == shape
            if key.split("/")[1] in fcfg.params:
                assert d[f"flossing/grad/{key}"].shape == shape
            else:
                assert f"flossing/grad/{key}" not in d
        for l, N in enumerate(net.layers):
            names = ("V", "I", "S") if net.cell == "clif" else ("x",)
            for n in names:
                assert d[f"forward/layer{l + 1}/{n}"].shape == (T + 1, B, N)
        assert d["forward/readout/y"].shape == (T, B, net.n_out)
        assert d["inputs"].shape == (T, B, net.n_in)
        assert d["loss"].shape == () and d["flossing/loss"].shape == ()
        assert d["jacobian/steps"].dtype == np.int64 and d["jacobian/steps"].shape == (3,)
        assert d["jacobian/D"].shape == (3, M, M)
        assert d["lyapunov/Q0"].shape == (M, lcfg.k)
        assert np.allclose(d["lyapunov/Q0"].T @ d["lyapunov/Q0"], np.eye(lcfg.k), atol=1e-14)
        assert d["lyapunov/spectrum"].shape == (lcfg.k,)
    assert SHIPPED.stat().st_size < 2 * 1024**2


def test_fresh_export_equals_shipped_file(tmp_path):
    """The shipped file is what the code computes today, so it can never silently drift.

    Copies (params, inputs, targets, jacobian/steps), the config and every attribute must
    be identical bit for bit (Q0, a LAPACK QR, to 1e-15); every computed quantity must agree within 1/100 of the tolerance
    that `refimpl validate` demands of other implementations (a reordering of floating-point
    sums, e.g. another BLAS, moves the last bits and is not drift). If a change is intended,
    re-export: `refimpl golden export refimpl/data/golden.h5`.
    """
    fresh = tmp_path / "fresh.h5"
    golden.export(fresh)

    def datasets(group):
        out = {}
        group.visititems(lambda k, o: out.__setitem__(k, o[()]) if isinstance(o, h5py.Dataset) else None)
        return out

    differ = []
    with h5py.File(SHIPPED, "r") as a, h5py.File(fresh, "r") as b:
        assert dict(a.attrs) == dict(b.attrs)
        assert sorted(a) == sorted(b)
        for name in a:
            assert dict(a[name].attrs) == dict(b[name].attrs), name
            da, db = datasets(a[name]), datasets(b[name])
            assert sorted(da) == sorted(db), name
            for k in da:
                assert da[k].dtype == db[k].dtype and da[k].shape == db[k].shape, (name, k)
                rtol, atol = golden.TOLERANCES[golden.kind_of(k)]
                if k == "lyapunov/Q0":
                    # LAPACK's QR: the BLAS kernel a machine picks moves its last bits (up to 4.4e-16
                    # measured); the full validate tolerance, not 1/100 of it
                    atol *= 100.0
                ok = np.all(np.abs(da[k] - db[k]) <= 0.01 * (atol + rtol * np.abs(da[k])))
                if not ok:
                    scale = max(np.max(np.abs(da[k])), 1e-300)
                    differ.append((float(np.max(np.abs(da[k] - db[k])) / scale), f"{name}/{k}"))
    if differ:
        worst = max(differ)
        pytest.fail(
            f"{len(differ)} dataset(s) differ from the shipped file, worst {worst[1]} "
            f"(max |diff| / max |value| = {worst[0]:.1e}); if intended, re-export with "
            "`refimpl golden export refimpl/data/golden.h5`"
        )


# ---------------------------------------------------------------------------
# refimpl validate: good, mismatching and missing
# ---------------------------------------------------------------------------


def test_validate_shipped_against_itself(capsys):
    rc, out, err = _validate(capsys, SHIPPED)
    assert rc == 0, out + err
    assert "MISMATCH" not in out.replace("0 MISMATCH", "")
    assert "result: all present quantities agree (exit 0)" in out
    for name in golden.CASE_NAMES:
        assert name in out


def test_perturbed_gradient_is_a_mismatch(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        d = f["clif_stork/grad/layer2/W_rec"]
        v = d[()]
        v[1, 2] *= 1 + 1e-6
        d[...] = v
    rc, out, err = _validate(capsys, candidate)
    assert rc == 1, out + err
    bad = [line for line in out.splitlines() if "MISMATCH" in line and line.startswith("clif_stork")]
    assert len(bad) == 1 and "grad/layer2/W_rec" in bad[0]
    assert "result: MISMATCH (exit 1)" in out
    # a looser tolerance accepts it
    rc, out, err = _validate(capsys, candidate, "--rtol", "1e-5")
    assert rc == 0, out


def test_flipped_spike_is_reported(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        d = f["clif_engelken/forward/layer1/S"]
        v = d[()]
        v[5, 1, 2] = 1.0 - v[5, 1, 2]
        d[...] = v
    rc, out, err = _validate(capsys, candidate, "--mismatches-only")
    assert rc == 1
    line = [ln for ln in out.splitlines() if "forward/layer1/S" in ln][0]
    assert "MISMATCH" in line and "1 spike(s) flipped, first at t=5 b=1 neuron=2" in line
    assert "reference V-θ there" in line


def test_changed_config_and_inputs_are_mismatches(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        cfg = json.loads(f["rate_state"].attrs["config"])
        cfg["readout"]["tau_out"] = 4.0
        f["rate_state"].attrs["config"] = json.dumps(cfg)
        x = f["binary_smooth/inputs"][()]
        x[0, 0, 0] += 1e-15
        f["binary_smooth/inputs"][...] = x
    rc, out, err = _validate(capsys, candidate, "--mismatches-only")
    assert rc == 1
    assert "readout.tau_out=4.0 (reference 5.0)" in out
    assert "computed on other data: inputs" in out


def test_missing_groups_are_listed_not_failed(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        del f["clif_stork/flossing"]
        del f["clif_stork/jacobian/D"]
        del f["rate_state"]
        del f["binary_surrogate"].attrs["config"]
    rc, out, err = _validate(capsys, candidate)
    assert rc == 0, out + err
    tail = out[out.index("missing from the candidate") :]
    assert "clif_stork: jacobian/D, flossing/*" in tail
    assert "rate_state: (whole case)" in tail
    assert "binary_surrogate: attr config" in tail


def test_nan_in_candidate_is_a_mismatch(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        v = f["rate_activation_full_spectrum/lyapunov/spectrum"][()]
        v[3] = np.nan
        f["rate_activation_full_spectrum/lyapunov/spectrum"][...] = v
    rc, out, err = _validate(capsys, candidate)
    assert (
        rc == 1 and "inf" in [ln for ln in out.splitlines() if "lyapunov/spectrum" in ln and ln.startswith("rate_activation")][0]
    )


# ---------------------------------------------------------------------------
# refimpl validate: files that are not in the format (exit 2, one line)
# ---------------------------------------------------------------------------


def test_text_file(capsys, tmp_path):
    p = tmp_path / "notes.h5"
    p.write_text("loss = 0.69\n")
    _assert_one_line_error(*_validate(capsys, p), "not an HDF5 file")


def test_missing_file(capsys, tmp_path):
    _assert_one_line_error(*_validate(capsys, tmp_path / "nope.h5"), "no such file")


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file(capsys, candidate, keep):
    data = candidate.read_bytes()
    candidate.write_bytes(data[: int(len(data) * keep)])
    _assert_one_line_error(*_validate(capsys, candidate), "truncated")


@pytest.mark.parametrize("where", ["superblock", "TREE", "HEAP", "SNOD"])
def test_corrupted_metadata(capsys, candidate, where):
    """Scribbled superblock, B-tree, local heap or symbol table node: exit 2, one line."""
    data = bytearray(candidate.read_bytes())
    offset = 8 if where == "superblock" else data.index(where.encode())
    data[offset : offset + 32] = bytes(range(32))
    candidate.write_bytes(bytes(data))
    _assert_one_line_error(*_validate(capsys, candidate), "corrupted")


def test_corrupted_raw_data_is_a_mismatch(capsys, candidate):
    """HDF5 keeps no checksum of raw data: scribbled values are caught by the comparison."""
    with h5py.File(candidate, "r") as f:
        offset = f["clif_subtract_attached/forward/layer2/V"].id.get_offset()
    data = bytearray(candidate.read_bytes())
    data[offset + 80 : offset + 88] = b"\x12" * 8
    candidate.write_bytes(bytes(data))
    rc, out, err = _validate(capsys, candidate, "--mismatches-only")
    assert rc == 1
    first = [ln for ln in out.splitlines() if "MISMATCH" in ln][0].split()
    assert first[:2] == ["clif_subtract_attached", "forward/layer2/V"]


def test_corrupted_data_bytes_never_pass_silently(capsys, candidate):
    """Scribbling over many places of the file: a read error (2) or a mismatch (1), never a traceback."""
    data = bytearray(candidate.read_bytes())
    rng = np.random.default_rng(0)
    for off in rng.integers(0, len(data) - 16, 40):
        data[off : off + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    candidate.write_bytes(bytes(data))
    rc, out, err = _validate(capsys, candidate)
    assert rc in (1, 2) and "Traceback" not in out + err
    if rc == 2:
        _assert_one_line_error(rc, out, err)


@pytest.mark.parametrize(
    "attr, value, words",
    [
        ("format", "refimpl-golden-v2", ["format", "refimpl-golden"]),
        ("format", None, ["'format' is missing"]),
        ("format_version", np.int64(3), ["format_version"]),  # 1 and 2 are read
        ("format_version", "1", ["format_version"]),
        ("format_version", None, ["'format_version' is missing"]),
    ],
)
def test_wrong_root_attributes(capsys, candidate, attr, value, words):
    with h5py.File(candidate, "r+") as f:
        if value is None:
            del f.attrs[attr]
        else:
            f.attrs[attr] = value
    _assert_one_line_error(*_validate(capsys, candidate), *words)


def test_wrong_shape(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        W = f["clif_engelken/grad/layer1/W_in"][()]
        del f["clif_engelken/grad/layer1/W_in"]
        f["clif_engelken/grad/layer1/W_in"] = W.T  # column-major writer, say
    _assert_one_line_error(*_validate(capsys, candidate), "clif_engelken/grad/layer1/W_in", "shape")


def test_unknown_case(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        f.copy(f["clif_engelken"], "clif_engelkn")
    _assert_one_line_error(*_validate(capsys, candidate), "unknown case", "clif_engelkn")


def test_dataset_where_the_format_has_a_group(capsys, candidate):
    with h5py.File(candidate, "r+") as f:
        del f["clif_engelken/flossing"]
        f["clif_engelken/flossing"] = np.zeros(3)
    _assert_one_line_error(*_validate(capsys, candidate), "clif_engelken/flossing")


def test_non_numeric_dataset_and_bad_config(capsys, candidate, tmp_path):
    with h5py.File(candidate, "r+") as f:
        del f["clif_engelken/loss"]
        f["clif_engelken/loss"] = "0.69"
    _assert_one_line_error(*_validate(capsys, candidate), "clif_engelken/loss")
    other = tmp_path / "c2.h5"
    shutil.copyfile(SHIPPED, other)
    with h5py.File(other, "r+") as f:
        f["clif_engelken"].attrs["config"] = "{not json"
    _assert_one_line_error(*_validate(capsys, other), "config", "JSON")


def test_bad_reference_and_tolerance(capsys, candidate, tmp_path):
    txt = tmp_path / "ref.txt"
    txt.write_text("x")
    _assert_one_line_error(*_validate(capsys, candidate, "--reference", txt), "reference")
    _assert_one_line_error(*_validate(capsys, candidate, "--rtol", "-1"), "--rtol")


# ---------------------------------------------------------------------------
# refimpl golden export / list
# ---------------------------------------------------------------------------


def test_golden_export_one_case_and_list(capsys, tmp_path):
    p = tmp_path / "one.h5"
    assert cli.main(["golden", "export", str(p), "--case", "rate_state"]) == 0
    with h5py.File(p, "r") as f:
        assert list(f) == ["rate_state"] and f.attrs["format"] == "refimpl-golden"
        assert f.attrs["format_version"] == 1
    rc, out, err = _validate(capsys, p)
    assert rc == 0 and "rate_state" in out and "(whole case)" in out
    assert cli.main(["golden", "export", str(p), "--case", "nope"]) == 2
    assert "unknown case 'nope'" in capsys.readouterr().err
    assert cli.main(["golden", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in golden.CASE_NAMES)


# ---------------------------------------------------------------------------
# the independent PyTorch reference agrees with the golden vectors
# ---------------------------------------------------------------------------


def test_torch_reference_round_trip(capsys, tmp_path):
    pytest.importorskip("torch")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from validation import torch_reference
    import torch

    cand = tmp_path / "torch_candidate.h5"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is several times faster
    try:
        assert torch_reference.process_file(str(SHIPPED), str(cand), verbose=False) == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    rc, out, err = _validate(capsys, cand)
    assert rc == 0, out + err
    assert "0 MISMATCH; 0 missing" in out
    with capsys.disabled():  # the worst error per quantity kind, for the log
        print("\n" + out[out.index("worst error per quantity kind") : out.index("\n\n", out.index("worst"))])


# ---------------------------------------------------------------------------
# a peer library: snnTorch's own Synaptic neuron (validation/peers/)
# ---------------------------------------------------------------------------


def test_snntorch_synaptic_against_golden(capsys, tmp_path):
    """snnTorch's Synaptic reproduces the forward pass exactly; its float32 spikes round
    every gradient that passes through a spike to float32 (docs/peers.md)."""
    pytest.importorskip("torch")
    pytest.importorskip("snntorch")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from validation.peers import snntorch_adapter

    for mode in ("float64", "snntorch"):
        cand = tmp_path / f"snntorch_{mode}.h5"
        skipped = snntorch_adapter.process(str(SHIPPED), str(cand), mode=mode, verbose=False)
        assert "clif_snntorch_synaptic" not in dict(skipped)
        rc, out, err = _validate(capsys, cand)
        rows = {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith("clif_snntorch_synaptic ")}
        assert all(
            rows[q].endswith(" ok")
            for q in (
                "forward/layer1/V",
                "forward/layer1/I",
                "forward/layer1/S",
                "forward/readout/y",
                "loss",
                "grad/readout/W_out",
                "grad/readout/b_out",
            )
        )
        through_spikes = [q for q in rows if q.startswith("grad/layer1/")]
        if mode == "float64":
            assert rc == 0, out
        else:
            assert rc == 1
            assert all("MISMATCH" in rows[q] for q in through_spikes)
            assert max(float(rows[q].split()[3]) for q in through_spikes) < 2e-6  # float32 rounding
