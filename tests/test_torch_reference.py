"""Self-checks of the independent PyTorch reference (validation/torch_reference.py).

Nothing here imports refimpl: the reference is checked against finite
differences, against the closed forms of docs/model.md (§4 Jacobian, uncoupled
exponents, sum of the spectrum = mean log|det D_t|) and by a file round trip.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from validation import torch_reference as tr  # noqa: E402
from validation.cases import make_case, write_golden_like, state_size  # noqa: E402

DT = torch.float64


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _values(case, params_np, what):
    """Float loss or flossing loss of the torch forward at params_np (no autograd)."""
    params = tr.to_tensor_params(params_np, requires_grad=False)
    with torch.no_grad():
        ev = tr.evaluate(case["config"], params, case["inputs"], case["targets"], Q0=case["lyapunov/Q0"], what=(what,))
    return float(ev["loss"] if what == "loss" else ev["flossing_loss"])


def _fd_directional(case, key, direction, what, h):
    """5-point central difference of the loss along `direction` in parameter `key`."""

    def f(s):
        p = {k: v.copy() for k, v in case["params"].items()}
        p[key] = p[key] + s * direction
        return _values(case, p, what)

    return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)


def _check_fd(case, res, rng, what, h=1e-4, n_dir=2):
    """max relative error of autograd vs finite differences over random directions."""
    prefix = "grad/" if what == "loss" else "flossing/grad/"
    worst = 0.0
    keys = [k[len(prefix) :] for k in res if k.startswith(prefix)]
    assert keys
    for key in keys:
        g = res[prefix + key]
        for _ in range(n_dir):
            d = rng.standard_normal(g.shape)
            d /= np.linalg.norm(d)
            ad = float(np.sum(g * d))
            fd = _fd_directional(case, key, d, what, h)
            scale = max(abs(ad), abs(fd), 1e-8)
            worst = max(worst, abs(ad - fd) / scale)
    return worst


LYAP = {"ons": 2, "warmup": 1, "transient": 1, "batch_index": 1}

FD_CONFIGS = {
    "clif1_sigmoid_zero_new": {
        "cell": "clif",
        "layers": [4],
        "n_in": 3,
        "n_out": 2,
        "surrogate": {"name": "sigmoid", "slope": 3.0},
        "reset": "zero",
        "loss": {"name": "bce_per_step", "t0": 2},
        "lyapunov": dict(LYAP, k=5),
    },
    "clif2_arctan_subtract_old_unit": {
        "cell": "clif",
        "layers": [4, 3],
        "n_in": 3,
        "n_out": 3,
        "syn_input": "old",
        "input_gain": "unit",
        "reset": "subtract",
        "surrogate": {"name": "arctan", "slope": 2.0},
        "readout": {"tau_out": 3.0, "source": "spikes"},
        "loss": {"name": "ce_mean", "t0": 1},
        "lyapunov": dict(LYAP, k=6),
    },
    "clif2_fastsig_zero_pertau_membrane": {
        "cell": "clif",
        "layers": [3, 3],
        "n_in": 2,
        "n_out": 2,
        "tau_mem": [8.0, 10.0, 15.0],
        "tau_syn": [3.0, 5.0, 4.0],
        "surrogate": {"name": "fast_sigmoid", "slope": 2.0},
        "reset": "zero",
        "readout": {"tau_out": 0.0, "source": "membrane"},
        "loss": {"name": "ce_last"},
        "lyapunov": dict(LYAP, k=4),
    },
    "clif1_triangle_subtract": {
        "cell": "clif",
        "layers": [5],
        "n_in": 2,
        "n_out": 2,
        "reset": "subtract",
        "surrogate": {"name": "triangle", "slope": 1.0},
        "loss": {"name": "mse_per_step"},
        "lyapunov": dict(LYAP, k=10),
    },
    "binary_gaussian": {
        "cell": "binary",
        "layers": [5],
        "n_in": 2,
        "n_out": 2,
        "surrogate": {"name": "gaussian", "slope": 1.5},
        "readout": {"tau_out": 2.0, "source": "activation"},
        "loss": {"name": "mse_per_step"},
        "lyapunov": dict(LYAP, k=3),
    },
    "rate": {
        "cell": "rate",
        "layers": [5],
        "n_in": 2,
        "n_out": 2,
        "readout": {"tau_out": 0.0, "source": "state"},
        "loss": {"name": "bce_per_step"},
        "lyapunov": dict(LYAP, k=4),
    },
}


def _fd_case(name, seed=3):
    cfg = dict(FD_CONFIGS[name], smooth=True, reset_grad="attached")
    cell = cfg["cell"]
    cfg["flossing"] = {"target": 0.1, "params": ["W_in", "W_rec", "b"] + (["V0", "I0"] if cell == "clif" else ["x0"])}
    return make_case(cfg, seed, T=12, B=2)


# ---------------------------------------------------------------------------
# (a) autograd vs finite differences, smooth mode, reset_grad = attached
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FD_CONFIGS))
def test_gradients_match_finite_differences(name):
    case = _fd_case(name)
    res = tr.compute_case(case)
    if "forward/layer1/S" in res:  # the case must exercise the spike nonlinearity
        assert res["forward/layer1/S"].max() > 0.05
    rng = np.random.default_rng(0)
    assert _check_fd(case, res, rng, "loss") <= 1e-6
    assert _check_fd(case, res, rng, "flossing") <= 1e-6


def test_finite_difference_check_can_fail(monkeypatch):
    """A deliberately wrong surrogate derivative must be caught by the FD check."""
    case = _fd_case("clif1_sigmoid_zero_new")
    good = tr.sigma_prime
    monkeypatch.setattr(tr, "sigma_prime", lambda x, n, s: 1.05 * good(x, n, s))
    res = tr.compute_case(case)  # autograd with the broken backward
    monkeypatch.setattr(tr, "sigma_prime", good)
    rng = np.random.default_rng(0)
    assert _check_fd(case, res, rng, "loss", n_dir=1) > 1e-4


def test_flossing_check_needs_sigma_second_derivative(monkeypatch):
    """With sigma' right but sigma'' dropped (a once-differentiable spike), the
    loss gradient still passes and the flossing gradient must fail."""
    case = _fd_case("clif1_sigmoid_zero_new")
    good = tr.sigma_prime
    monkeypatch.setattr(tr, "sigma_prime", lambda x, n, s: good(x.detach(), n, s))
    res = tr.compute_case(case)
    monkeypatch.setattr(tr, "sigma_prime", good)
    rng = np.random.default_rng(0)
    assert _check_fd(case, res, rng, "loss", n_dir=1) <= 1e-6
    assert _check_fd(case, res, rng, "flossing", n_dir=1) > 1e-4


# ---------------------------------------------------------------------------
# (b) file round trip
# ---------------------------------------------------------------------------

ROUND_TRIP = {
    "clif2_surrogate": ({"layers": [4, 3], "n_in": 3, "n_out": 2, "lyapunov": {"k": 5}}, {}),
    "clif_spytorch_ce_max": (
        {
            "layers": [4],
            "n_in": 2,
            "n_out": 3,
            "syn_input": "old",
            "input_gain": "unit",
            "reset_grad": "ignored",
            "surrogate": {"name": "triangle", "slope": 2.0},
            "loss": {"name": "ce_max", "t0": 2},
            "lyapunov": {"k": 8, "ons": 2, "warmup": 2},
            "flossing": {"params": ["W_rec", "V0"]},
        },
        {"jacobian_steps": []},
    ),
    "binary_ce_last": (
        {"cell": "binary", "layers": [5], "n_in": 2, "n_out": 2, "loss": {"name": "ce_last"}, "lyapunov": {"k": 2}},
        {},
    ),
    "rate_mse_activation": (
        {
            "cell": "rate",
            "layers": [4],
            "n_in": 2,
            "n_out": 2,
            "readout": {"tau_out": 0.0, "source": "activation"},
            "loss": {"name": "mse_per_step"},
            "flossing": {"params": ["W_rec", "x0"], "target": -0.5},
        },
        {},
    ),
}


def _expected_shapes(case, T, B):
    c = case["config"]
    sizes, n_in, n_out = c["layers"], c["n_in"], c["n_out"]
    M, k = state_size(c), c["lyapunov"]["k"]
    shapes = {"inputs": (T, B, n_in), "loss": (), "forward/readout/y": (T, B, n_out),
        "jacobian/steps": (len(case["jacobian/steps"]),), "jacobian/D": (len(case["jacobian/steps"]), M, M),
        "lyapunov/Q0": (M, k), "lyapunov/spectrum": (k,), "flossing/loss": (),
        "targets": (B,) if c["loss"]["name"].startswith("ce_") else (T, B, n_out)}  # fmt: skip
    n_prev = n_in
    for l, n in enumerate(sizes, start=1):
        p = {"W_in": (n, n_prev), "W_rec": (n, n), "b": (n,)}
        if c["cell"] == "clif":
            p.update(V0=(n,), I0=(n,))
            for q in "VIS":
                shapes[f"forward/layer{l}/{q}"] = (T + 1, B, n)
        else:
            p.update(x0=(n,))
            shapes[f"forward/layer{l}/x"] = (T + 1, B, n)
        for name, s in p.items():
            shapes[f"params/layer{l}/{name}"] = s
            shapes[f"grad/layer{l}/{name}"] = s
            if name in c["flossing"]["params"]:
                shapes[f"flossing/grad/layer{l}/{name}"] = s
        n_prev = n
    for name, s in (("W_out", (n_out, sizes[-1])), ("b_out", (n_out,))):
        shapes[f"params/readout/{name}"] = s
        shapes[f"grad/readout/{name}"] = s
    return shapes


def test_file_round_trip(tmp_path):
    T, B = 9, 3
    cases = {name: make_case(cfg, seed, T=T, B=B, **kw) for seed, (name, (cfg, kw)) in enumerate(ROUND_TRIP.items())}
    golden, cand = tmp_path / "golden.h5", tmp_path / "candidate.h5"
    write_golden_like(str(golden), cases)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "validation" / "torch_reference.py"), str(golden), str(cand)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    with h5py.File(cand, "r") as f, h5py.File(golden, "r") as g:
        assert f.attrs["format"] == "refimpl-golden"
        assert int(f.attrs["format_version"]) == 1
        assert f.attrs["generator"] == f"torch-reference {torch.__version__}"
        assert sorted(f.keys()) == sorted(cases)
        for name, case in cases.items():
            grp = f[name]
            assert grp.attrs["config"] == g[name].attrs["config"]
            found = {}
            grp.visititems(lambda p, o: found.__setitem__(p, o.shape) if isinstance(o, h5py.Dataset) else None)
            assert found == _expected_shapes(case, T, B), name
            for p, shape in found.items():
                ds = grp[p]
                if p in ("jacobian/steps",) or p == "targets" and ds.dtype.kind == "i":
                    assert ds.dtype.kind == "i"
                else:
                    assert ds.dtype == np.float64, p
            np.testing.assert_array_equal(grp["targets"][()], case["targets"])
            np.testing.assert_array_equal(grp["lyapunov/Q0"][()], case["lyapunov/Q0"])
            # the file holds exactly what the in-memory computation gives
            direct = tr.compute_case(case)
            for p, v in direct.items():
                np.testing.assert_array_equal(grp[p][()], v, err_msg=f"{name}/{p}")
            assert np.all(np.isfinite(grp["lyapunov/spectrum"][()]))
            # Q0 is the thin QR of default_rng(seed).standard_normal((M, k)), diag R > 0
            cfg = json.loads(grp.attrs["config"])
            Q0 = grp["lyapunov/Q0"][()]
            G = np.random.default_rng(cfg["lyapunov"]["seed"]).standard_normal(Q0.shape)
            np.testing.assert_allclose(Q0.T @ G, np.triu(Q0.T @ G), atol=1e-12)
            assert np.all(np.diag(Q0.T @ G) > 0)


# ---------------------------------------------------------------------------
# (c) sum of the full spectrum = mean log|det D_t|
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed,extra",
    [
        (0, {"layers": [3], "lyapunov": {"ons": 1}}),
        (1, {"layers": [3, 2], "syn_input": "old", "lyapunov": {"ons": 1, "warmup": 2, "transient": 2}}),
        (
            2,
            {
                "layers": [2, 3],
                "reset": "subtract",
                "reset_grad": "attached",
                "lyapunov": {"ons": 3, "warmup": 1, "transient": 1},
            },
        ),
        (
            3,
            {
                "layers": [4],
                "reset": "subtract",
                "reset_grad": "attached",
                "surrogate": {"name": "gaussian", "slope": 2.0},
                "lyapunov": {"ons": 1},
            },
        ),
        (
            4,
            {
                "layers": [4],
                "smooth": True,
                "syn_input": "old",
                "surrogate": {"name": "sigmoid", "slope": 2.0},
                "lyapunov": {"ons": 2, "transient": 1},
            },
        ),
    ],
)
def test_spectrum_sum_is_mean_log_det(seed, extra):
    cfg = {"cell": "clif", "n_in": 2, "n_out": 2, "reset": "none"}
    cfg.update(extra)
    cfg.setdefault("reset", "none")
    T = 12
    case = make_case(dict(cfg, lyapunov=dict(cfg["lyapunov"], k=None)), seed, T=T, B=1, jacobian_steps=list(range(T)))
    c = case["config"]
    assert c["lyapunov"]["k"] == state_size(c)
    net = tr.Network(c, tr.to_tensor_params(case["params"], requires_grad=False))
    u = torch.as_tensor(case["inputs"][:, 0])
    ly = tr.lyapunov_spectrum(net, u, torch.as_tensor(case["lyapunov/Q0"]), jacobian_steps=range(T))
    lyc = c["lyapunov"]
    qr_steps = [t for t in range(lyc["warmup"], T) if (t + 1 - lyc["warmup"]) % lyc["ons"] == 0]
    counted = qr_steps[lyc["transient"] :]
    covered = range(counted[0] - lyc["ons"] + 1, counted[-1] + 1)
    assert ly["steps_covered"] == len(covered) == len(counted) * lyc["ons"]
    logdet = [np.linalg.slogdet(ly["D"][t].numpy())[1] for t in covered]
    total = float(ly["spectrum"].sum())
    assert abs(total - np.mean(logdet)) <= 1e-10
    if c["syn_input"] == "new" and c["reset"] == "none":
        # then det D_t = prod(alpha * beta) for every t (layers couple feed-forward,
        # and V' = beta V + g I' shears the I' rows): the sum is known exactly
        assert np.ptp(logdet) < 1e-12
        exact = sum(n * (-1 / c["tau_mem"] - 1 / c["tau_syn"]) for n in c["layers"])
        assert abs(total - exact) <= 1e-12
    else:
        # det D_t varies along the trajectory: the check is not trivially true
        assert np.ptp(logdet) > 1e-3


# ---------------------------------------------------------------------------
# (d) uncoupled cells: {log beta_i, log alpha_i}
# ---------------------------------------------------------------------------


def test_uncoupled_cells_spectrum():
    tau_mem = [10.0, 20.0, 7.0]
    tau_syn = [5.0, 3.0, 2.5]
    cfg = {"cell": "clif", "layers": [3], "n_in": 2, "n_out": 1, "reset": "none", "syn_input": "new",
        "tau_mem": tau_mem, "tau_syn": tau_syn, "lyapunov": {"k": 6, "ons": 1}}  # fmt: skip
    exact = np.sort(np.concatenate([-1.0 / np.array(tau_mem), -1.0 / np.array(tau_syn)]))
    scaled = []
    for T in (200, 400):
        case = make_case(cfg, 7, T=T, B=1, jacobian_steps=[])
        case["params"]["layer1/W_rec"][:] = 0.0
        net = tr.Network(case["config"], tr.to_tensor_params(case["params"], False))
        ly = tr.lyapunov_spectrum(net, torch.as_tensor(case["inputs"][:, 0]), torch.as_tensor(case["lyapunov/Q0"]))
        err = np.sort(ly["spectrum"].numpy()) - exact
        # the finite-time error of a constant map is c_i / T (c_i from Q0 and the
        # non-normal eigenvectors), c_i of order one
        assert np.max(np.abs(err)) <= 5.0 / T
        scaled.append(T * err)
    # ... and it shrinks exactly like 1/T: T * error is the same constant
    np.testing.assert_allclose(scaled[0], scaled[1], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------
# docs/model.md §4 closed-form Jacobian (surrogate mode), and autograd.functional
# ---------------------------------------------------------------------------


def _analytic_D(net, x, u):
    """docs/model.md §4 assembled by hand for clif (any L), binary and rate."""
    c = net.cfg
    if net.cell != "clif":
        W = net.p["layer1/W_rec"].detach()
        if net.cell == "rate":
            return W * (1 - torch.tanh(x) ** 2)
        return W * tr.sigma_prime(x, net.sur_name, net.slope)
    st = net.unflatten(x)
    theta, M = net.theta, net.M
    D = torch.zeros(M, M, dtype=DT)
    offs = np.cumsum([0] + [2 * n for n in net.sizes])
    sp = [tr.sigma_prime(st[2 * l] - theta, net.sur_name, net.slope) for l in range(net.L)]
    S = [(st[2 * l] - theta > 0).to(DT) for l in range(net.L)]
    for l, n in enumerate(net.sizes):
        p = f"layer{l + 1}/"
        Win, Wrec = net.p[p + "W_in"].detach(), net.p[p + "W_rec"].detach()
        al = net.alpha[l] * torch.ones(n, dtype=DT)
        be = net.beta[l] * torch.ones(n, dtype=DT)
        g = net.gain[l] * torch.ones(n, dtype=DT)
        V, I = st[2 * l], st[2 * l + 1]
        vi, ii = slice(offs[l], offs[l] + n), slice(offs[l] + n, offs[l] + 2 * n)
        z = u if l == 0 else S[l - 1]
        In = al * I + Win @ z + Wrec @ S[l] + net.p[p + "b"].detach()
        m = be * V + g * (In if c["syn_input"] == "new" else I)
        rho = 1 - S[l] if c["reset"] == "zero" and c["reset_grad"] != "ignored" else torch.ones(n, dtype=DT)
        E = torch.zeros(n, dtype=DT)
        if c["reset_grad"] == "attached":
            E = -m * sp[l] if c["reset"] == "zero" else (-theta * sp[l] if c["reset"] == "subtract" else E)
        # dI'/d(...)
        dI_dV = Wrec * sp[l]
        D[ii, vi] = dI_dV
        D[ii, ii] = torch.diag(al)
        if l > 0:
            pv = slice(offs[l - 1], offs[l - 1] + net.sizes[l - 1])
            D[ii, pv] = Win * sp[l - 1]
        if c["syn_input"] == "new":
            D[vi, vi] = torch.diag(rho * be + E) + (rho * g)[:, None] * dI_dV
            D[vi, ii] = torch.diag(rho * g * al)
            if l > 0:
                D[vi, pv] = (rho * g)[:, None] * Win * sp[l - 1]
        else:
            D[vi, vi] = torch.diag(rho * be + E)
            D[vi, ii] = torch.diag(rho * g)
    return D


@pytest.mark.parametrize("syn", ["new", "old"])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("rg", ["detached", "attached", "ignored"])
def test_jacobian_matches_model_section4(syn, reset, rg):
    cfg = {"cell": "clif", "layers": [3, 2], "n_in": 2, "n_out": 2, "syn_input": syn, "reset": reset,
        "reset_grad": rg, "input_gain": "unit" if syn == "old" else "one_minus_beta",
        "surrogate": {"name": "fast_sigmoid", "slope": 3.0}}  # fmt: skip
    case = make_case(cfg, 11, T=3, B=1)
    net = tr.Network(case["config"], tr.to_tensor_params(case["params"]))
    rng = np.random.default_rng(5)
    x = torch.as_tensor(rng.uniform(-0.5, 2.5, net.M))  # V on both sides of theta
    u = torch.as_tensor(rng.standard_normal(2))
    D = net.jacobian(x, u)
    torch.testing.assert_close(D, _analytic_D(net, x, u), rtol=0, atol=1e-12)
    D2 = torch.autograd.functional.jacobian(lambda y: net.F(y, u), x)
    torch.testing.assert_close(D, D2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["binary", "rate"])
def test_jacobian_binary_rate(cell):
    case = make_case(
        {"cell": cell, "layers": [4], "n_in": 2, "n_out": 2, "surrogate": {"name": "arctan", "slope": 2.0}}, 2, T=3, B=1
    )
    net = tr.Network(case["config"], tr.to_tensor_params(case["params"]))
    x = torch.as_tensor(np.random.default_rng(1).standard_normal(4))
    u = torch.zeros(2, dtype=DT)
    torch.testing.assert_close(net.jacobian(x, u), _analytic_D(net, x, u), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# surrogates, spike function, losses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", tr.SURROGATES)
def test_surrogate_primitive_and_second_derivative(name):
    gam = 2.0
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.2, 1.2, 40)
    x = x[np.min(np.abs(x[:, None] - np.array([0.0, 0.5, -0.5])[None]), axis=1) > 1e-2]
    xt = torch.as_tensor(x)
    h = 1e-4

    def fd(f):
        return (-f(xt + 2 * h) + 8 * f(xt + h) - 8 * f(xt - h) + f(xt - 2 * h)) / (12 * h)

    # Phi' = sigma'
    torch.testing.assert_close(fd(lambda z: tr.sigma_primitive(z, name, gam)), tr.sigma_prime(xt, name, gam), rtol=0, atol=1e-9)
    assert abs(float(tr.sigma_primitive(torch.tensor(-1e9, dtype=DT), name, gam))) < 1e-8
    # the spike Function: forward H (strict), first derivative sigma', second sigma''
    xs = xt.clone().requires_grad_(True)
    s = tr.spike(xs, name, gam, smooth=False)
    assert torch.equal(s, (xt > 0).to(DT))
    assert float(tr.spike(torch.zeros(1, dtype=DT), name, gam)) == 0.0
    (g1,) = torch.autograd.grad(s.sum(), xs, create_graph=True)
    torch.testing.assert_close(g1, tr.sigma_prime(xt, name, gam), rtol=0, atol=1e-15)
    (g2,) = torch.autograd.grad(g1.sum(), xs)
    torch.testing.assert_close(g2, fd(lambda z: tr.sigma_prime(z, name, gam)), rtol=0, atol=1e-8)
    # smooth mode: forward Phi
    torch.testing.assert_close(tr.spike(xt, name, gam, smooth=True), tr.sigma_primitive(xt, name, gam), rtol=0, atol=0)


def test_losses():
    cfg = {"cell": "clif", "layers": [2], "n_in": 1, "n_out": 2, "readout": {"tau_out": 1.0}, "loss": {"name": "ce_max", "t0": 1}}
    y = torch.tensor([[[9.0, 0.0]], [[1.0, 0.0]], [[3.0, 0.5]], [[3.0, 0.5]]], dtype=DT, requires_grad=True)  # (T=4, B=1, 2)
    loss = tr.loss_fn(cfg, y, torch.tensor([1]))
    z = torch.tensor([3.0, 0.5], dtype=DT)  # step 0 not scored
    assert abs(loss.item() - float(torch.logsumexp(z, 0) - z[1])) < 1e-15
    (g,) = torch.autograd.grad(loss, y)
    assert g[0].abs().sum() == 0 and g[1].abs().sum() == 0 and g[3].abs().sum() == 0
    assert g[2].abs().sum() > 0  # first maximum
    cfg["loss"] = {"name": "bce_per_step", "t0": 0}
    y0 = torch.zeros(2, 1, 2, dtype=DT, requires_grad=True)
    tg = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=DT)
    loss = tr.loss_fn(cfg, y0, tg)
    assert abs(loss.item() - np.log(2.0)) < 1e-15
    (g,) = torch.autograd.grad(loss, y0)
    torch.testing.assert_close(g, (0.5 - tg) / 4, rtol=0, atol=1e-16)
    cfg["loss"] = {"name": "mse_per_step", "t0": 1}
    loss = tr.loss_fn(cfg, y0 + 1.0, tg)
    assert abs(loss.item() - float(((1.0 - tg[1:]) ** 2).mean())) < 1e-15
