"""Peers (issue 4, point 5): other libraries' own neurons against refimpl's golden vectors (docs/peers.md).

Each test runs when its library is installed and skips otherwise (CI does not
install them). The reference for the configurations that no shipped golden
case has is built here by validation/peers/references.py, with refimpl.
"""

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from refimpl import cli
from refimpl.check import golden

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = golden.default_reference()
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _require(name):
    """Import ``name`` or skip: like ``pytest.importorskip``, but any ImportError (a peer installed
    without one of its own dependencies, or PyPI's unrelated "stork") skips quietly."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"{name} is not importable: {exc}")


@pytest.fixture(scope="module")
def peer_reference(tmp_path_factory):
    from validation.peers import references

    path = tmp_path_factory.mktemp("peers") / "peer_reference.h5"
    references.export(str(path))
    return path


def _validate(capsys, candidate, reference):
    """Exit code of ``refimpl validate`` and its rows, ``{(case, quantity): Row}``."""
    rc = cli.main(["validate", str(candidate), "--reference", str(reference)])
    capsys.readouterr()
    rows = {(r.case, r.quantity): r for r in golden.compare(str(reference), str(candidate)).rows}
    return rc, rows


def _case_rows(rows, case):
    return {q: r for (c, q), r in rows.items() if c == case}


def _assert_exact(rows, case, rel=1e-12):
    """Every quantity agrees, to ``rel`` relative (or 1e-14 absolute for near-zero entries)."""
    got = _case_rows(rows, case)
    assert any(q.startswith("grad/") for q in got) and any(q.startswith("forward/") for q in got)
    for q, r in got.items():
        assert r.ok, (case, q, r.max_abs, r.max_rel)
        if r.kind != "config":
            assert r.max_abs <= 1e-14 or r.max_rel <= rel, (case, q, r.max_abs, r.max_rel)


def test_spyx_rlif_against_reference(capsys, tmp_path, request):
    """spyx's RLIF and LI with its superspike and triangular surrogates are our clif with α = 0,
    (new, unit, subtract), attached: everything agrees to rounding."""
    _require("jax")
    _require("spyx")
    peer_reference = request.getfixturevalue("peer_reference")  # built only when a peer runs
    from validation.peers import spyx_adapter

    cases = ["spyx_rlif_superspike", "spyx_rlif_triangular"]
    cand = tmp_path / "spyx.h5"
    skipped = spyx_adapter.process(str(peer_reference), str(cand), cases=cases, verbose=False)
    assert skipped == []
    rc, rows = _validate(capsys, cand, peer_reference)
    assert rc == 0
    for case in cases:
        _assert_exact(rows, case)
    with h5py.File(cand) as f:  # I0 has no effect when α = 0
        assert not np.any(f["spyx_rlif_superspike/grad/layer1/I0"][()])
    # no shipped golden case has α = 0, so the adapter runs none of them
    skipped = spyx_adapter.process(str(SHIPPED), str(tmp_path / "none.h5"), verbose=False)
    assert all("exactly 0" in why for _, why in skipped if why.startswith("exp"))
    assert len(skipped) == len(golden.CASES)


def test_stork_lifgroup_against_golden(capsys, tmp_path, request):
    """stork's LIFGroup is the stork dialect: the shipped clif_stork (attached, CustomSpike sigmoid)
    and the detached SuperSpike default agree to rounding."""
    _require("torch")
    _require("stork.nodes")  # fmi-basel/stork; PyPI's "stork" is another package
    peer_reference = request.getfixturevalue("peer_reference")
    from validation.peers import stork_adapter

    cand = tmp_path / "stork.h5"
    skipped = stork_adapter.process(str(SHIPPED), str(cand), verbose=False)
    assert "clif_stork" not in dict(skipped)
    rc, rows = _validate(capsys, cand, SHIPPED)
    assert rc == 0
    _assert_exact(rows, "clif_stork")
    cand2 = tmp_path / "stork_default.h5"
    stork_adapter.process(str(peer_reference), str(cand2), cases=["stork_lifgroup_default"], verbose=False)
    rc, rows = _validate(capsys, cand2, peer_reference)
    assert rc == 0
    _assert_exact(rows, "stork_lifgroup_default")
    from stork import activations  # the class attributes it set were restored

    assert activations.SuperSpike.beta == 20 and activations.CustomSpike.surrogate_type == "SuperSpike"


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_norse_lif_against_reference(capsys, tmp_path, request):
    """Norse's lif_step: exact without spikes (γ = 1); its 1.1.0 `super` ignores alpha; with spikes the
    reset-then-integrate form differs by exactly S_t (1-β) I_{t+1} at the first step after a spike;
    lif_feed_forward_step differentiates its reset even when nothing spikes."""
    _require("torch")
    norse = _require("norse")
    peer_reference = request.getfixturevalue("peer_reference")
    from validation.peers import norse_adapter

    cand = tmp_path / "norse.h5"
    cases = ["norse_subthreshold", "norse_subthreshold_gamma10", "norse_spiking"]
    assert norse_adapter.process(str(peer_reference), str(cand), cases=cases, verbose=False) == []
    rc, rows = _validate(capsys, cand, peer_reference)
    assert rc == 1
    # 1. no spike: the reset never acts, and lif_step (detached reset) is exactly our engelken network
    _assert_exact(rows, "norse_subthreshold", rel=1e-11)
    # 2. the same with γ = 10: forward exact, gradients differ
    got = _case_rows(rows, "norse_subthreshold_gamma10")
    assert all(r.ok for q, r in got.items() if not q.startswith("grad/layer1/"))
    with h5py.File(cand) as f:
        g1 = {k: f[f"norse_subthreshold/grad/{k}"][()] for k in ("layer1/W_in", "layer1/b", "layer1/V0")}
        g10 = {k: f[f"norse_subthreshold_gamma10/grad/{k}"][()] for k in g1}
    if norse.__version__ == "1.1.0":
        # its SuperSpike backward is 1/(|x|+1)²: alpha=10 gives the γ = 1 gradients, bit for bit
        assert all(np.array_equal(g1[k], g10[k]) for k in g1)
        assert not got["grad/layer1/W_in"].ok and got["grad/layer1/W_in"].max_rel > 10
    # 3. with spikes: agreement up to the first spike, then exactly the reset-then-integrate term
    got = _case_rows(rows, "norse_spiking")
    assert got["loss"].ok is False and got["forward/layer1/V"].ok is False
    with h5py.File(peer_reference) as f, h5py.File(cand) as c:
        V, I, S = (f[f"norse_spiking/forward/layer1/{k}"][()] for k in "VIS")
        Vc = c["norse_spiking/forward/layer1/V"][()]
    t1 = int(np.argmax(S.reshape(len(S), -1).any(axis=1)))
    assert S[t1].any()
    np.testing.assert_allclose(Vc[: t1 + 1], V[: t1 + 1], rtol=0, atol=1e-13)
    beta = np.exp(-1.0 / 10.0)
    np.testing.assert_allclose(Vc[t1 + 1] - V[t1 + 1], S[t1] * (1 - beta) * I[t1 + 1], rtol=0, atol=1e-13)
    assert np.abs(Vc[t1 + 1] - V[t1 + 1]).max() > 0.01
    # 4. lif_feed_forward_step: forward exact without spikes, gradients not (its reset is differentiated)
    cand_ff = tmp_path / "norse_ff.h5"
    norse_adapter.process(str(peer_reference), str(cand_ff), cases=["norse_subthreshold"], step="feed_forward", verbose=False)
    rc, rows = _validate(capsys, cand_ff, peer_reference)
    got = _case_rows(rows, "norse_subthreshold")
    assert rc == 1
    assert all(r.ok for q, r in got.items() if q.startswith("forward/") or q == "loss")
    assert not got["grad/layer1/W_in"].ok and not got["grad/layer1/V0"].ok


def test_adapters_import_nothing_from_refimpl():
    """The adapters and the common.py they share are the peers' side: they read the golden file
    themselves, so that a refimpl bug cannot hide in both sides (references.py may import refimpl)."""
    import ast

    for path in sorted((ROOT / "validation" / "peers").glob("*.py")):
        if path.name == "references.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "refimpl" for n in names), (path.name, names)
