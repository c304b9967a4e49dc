"""Shared strategies: network configurations drawn by hypothesis (docs/model.md §8)."""

import os

import numpy as np
from hypothesis import HealthCheck, settings, strategies as st

from refimpl.model import network
from refimpl.model.config import SURROGATES, LossConfig, network_config

# CI runs a fixed, derandomized set of drawn cases (a red CI must mean a regression);
# REFIMPL_HYPOTHESIS=explore draws fresh cases, more of them, for a wider search.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("refimpl", max_examples=15, derandomize=True, **_common)
settings.register_profile("explore", max_examples=60, **_common)
settings.load_profile(os.environ.get("REFIMPL_HYPOTHESIS", "refimpl"))

SMOOTH_SURROGATES = ("sigmoid", "arctan", "gaussian")
#: where σ'' jumps (relative units: multiples of 1/γ)
KINKS = {"fast_sigmoid": (0.0,), "triangle": (-1.0, 0.0, 1.0)}
SLOPES = {"fast_sigmoid": (2.0, 5.0, 10.0), "sigmoid": (2.0, 5.0), "arctan": (1.0, 2.0, 5.0),
    "gaussian": (1.0, 2.0), "triangle": (0.5, 1.0, 2.0)}  # fmt: skip


@st.composite
def configs(draw, surrogates=SURROGATES, reset_grads=("detached", "attached", "ignored"), max_layers=3,
        cells=("clif", "binary", "rate")):  # fmt: skip
    cell = draw(st.sampled_from(cells))
    sur = draw(st.sampled_from(surrogates))
    kw = dict(cell=cell, n_in=draw(st.integers(1, 3)), n_out=draw(st.integers(2, 3)),
        surrogate={"name": sur, "slope": draw(st.sampled_from(SLOPES[sur]))})  # fmt: skip
    if cell == "clif":
        kw["layers"] = tuple(draw(st.lists(st.integers(2, 5), min_size=1, max_size=max_layers)))
        kw["syn_input"] = draw(st.sampled_from(["new", "old"]))
        kw["input_gain"] = draw(st.sampled_from(["one_minus_beta", "unit"]))
        kw["reset"] = draw(st.sampled_from(["zero", "subtract", "none"]))
        kw["reset_grad"] = draw(st.sampled_from(reset_grads))
        kw["readout"] = {"tau_out": draw(st.sampled_from([0.0, 5.0])), "source": draw(st.sampled_from(["spikes", "membrane"]))}
    else:
        kw["layers"] = (draw(st.integers(2, 6)),)
        kw["readout"] = {"tau_out": draw(st.sampled_from([0.0, 5.0])), "source": draw(st.sampled_from(["state", "activation"]))}
    return network_config(**kw)


losses = st.sampled_from(["bce_per_step", "mse_per_step", "ce_max", "ce_mean", "ce_last"]).map(lambda n: LossConfig(name=n, t0=2))


def kink_margin(cfg, params, inputs) -> float:
    """Smallest distance (in units of 1/γ) of any pre-activation from a kink of σ'."""
    kinks = KINKS.get(cfg.surrogate.name)
    if kinks is None or cfg.cell == "rate":
        return np.inf
    traj = network.simulate(cfg, params, inputs)
    gamma = cfg.surrogate.slope
    theta = 0.0 if cfg.cell != "clif" else cfg.theta
    x = np.concatenate([(V - theta).ravel() for V in traj.V]) * gamma
    return float(min(np.min(np.abs(x - k)) for k in kinks))


#: test modules whose every test gets a marker (pyproject.toml registers them; docs/testing.md)
MODULE_MARKS = {"test_figures.py": ("figures", "slow"), "test_torch_reference.py": ("torch",), "test_peers.py": ("torch",)}
#: single tests that take seconds (subprocesses, whole pipelines): left out of the fast subset
SLOW = {"test_ctrl_c_at_a_random_moment_of_every_long_command", "test_quick_bench_agrees_and_reports",
    "test_gradcheck_passes_and_fails", "test_dask_cluster_gives_the_pool_results",
    "test_every_readme_command_exits_as_documented", "test_killed_sweep_loses_nothing",
    "test_pytest_prints_its_summary_line", "test_interrupted_floss_resumes_to_the_uninterrupted_result",
    "test_memory_child_and_required_bytes", "test_every_deliberate_fault_reaches_the_fused_kernels"}  # fmt: skip
TORCH = {"test_torch_reference_round_trip", "test_quick_bench_agrees_and_reports"}


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        for mark in MODULE_MARKS.get(item.path.name, ()):
            item.add_marker(getattr(pytest.mark, mark))
        name = item.originalname or item.name
        if name in SLOW:
            item.add_marker(pytest.mark.slow)
        if name in TORCH:
            item.add_marker(pytest.mark.torch)
