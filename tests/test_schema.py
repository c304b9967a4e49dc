"""One configuration schema (refimpl/schema.py): the sections, the TOML keys, the CLI flags, the docs
table and the golden config keys are derived from it or agree with it."""

import argparse
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest

from refimpl.model import config
from refimpl import schema
from refimpl.check.golden.schema import SCHEMA as GOLDEN_SCHEMA
from refimpl.training.schedules import ScheduleConfig
from refimpl.training import runconfig
from refimpl.exact.events import ExactConfig

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"network": runconfig.NetworkSection, "training": runconfig.TrainingSection,
    "flossing": runconfig.FlossingSection, "lyapunov": runconfig.LyapunovSection,
    "output": runconfig.OutputSection, "exact": ExactConfig}  # fmt: skip


@pytest.mark.parametrize("name", list(CLASSES))
def test_sections_are_the_schema(name):
    """Every field of a section dataclass is a schema setting, in order, with its default."""
    fs = dataclasses.fields(CLASSES[name])
    assert [f.name for f in fs] == [s.key for s in schema.SCHEMA[name]]
    for f, s in zip(fs, schema.SCHEMA[name]):
        assert f.default == s.default or (isinstance(s.default, float) and math.isnan(s.default)), f.name
    assert name == "exact" or runconfig.SECTIONS[name] is CLASSES[name]


def test_schedule_config_is_the_schedule_part():
    assert [f.name for f in dataclasses.fields(ScheduleConfig)] == list(schema.SCHEDULE_KEYS)


def _bad_values(s):
    if s.kind in ("choice", "names"):
        yield "no_such_name"
    if s.kind in ("int", "float") and s.lo is not None and math.isfinite(s.lo):
        yield (int(s.lo) - 1) if s.kind == "int" else s.lo - 1.0
    if s.kind in ("int", "float") and s.hi is not None and math.isfinite(s.hi):
        yield (int(s.hi) + 1) if s.kind == "int" else s.hi + 1.0
    if s.kind == "int":
        yield 2.5
    if s.kind == "float" and not s.allow_inf:
        yield math.inf
    if s.kind == "bool":
        yield "yes"
    if s.kind == "layers":
        yield [0]


@pytest.mark.parametrize("name", list(CLASSES))
def test_every_setting_is_checked_under_its_name(name):
    """A bad value of any key fails when the section is built, naming ``section.key``."""
    n = 0
    for s in schema.SCHEMA[name]:
        for bad in _bad_values(s):
            with pytest.raises(ValueError, match=rf"{name}\.{s.key}\b"):
                CLASSES[name](**{s.key: bad})
            n += 1
    assert n >= len(schema.SCHEMA[name]) - 3  # almost every key has a value that must be refused


def test_docs_table_is_generated_from_the_schema():
    out = subprocess.run([sys.executable, "-m", "refimpl.cli", "train", "--keys"], capture_output=True, text=True,
        check=True).stdout  # fmt: skip
    table = out[: out.rindex("| **[task]**")]
    assert table in (ROOT / "docs" / "training.md").read_text()


def _flag_defaults(command):
    from refimpl.cli import build_parser

    parser, _ = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: (a.default, a.help) for a in sub.choices[command]._actions}


@pytest.mark.parametrize("command", ["lyapunov", "floss", "gradcheck"])
def test_network_flags_come_from_the_schema(command):
    """Type, help and default of every network flag are the schema's; the only differences are the
    documented Poisson defaults (and gradcheck's small network)."""
    from refimpl.cli.flags import NETWORK_FLAGS, POISSON_DEFAULTS

    flags = _flag_defaults(command)
    own = {"gradcheck": {"w_in": 2.0, "g_rec": 1.5}}.get(command, {})
    for key in NETWORK_FLAGS:
        s = schema.setting("network", key)
        default, help_ = flags[key]
        assert help_.startswith(s.help), key
        if s.kind != "bool":
            assert default == own.get(key, POISSON_DEFAULTS.get(key, s.default)), key


def test_model_configs_use_the_schema_choices():
    for name in (
        "CELLS",
        "SURROGATES",
        "RESET_GRADS",
        "RESETS",
        "SYN_INPUTS",
        "INPUT_GAINS",
        "LOSSES",
        "FLOSS_PARAMS",
        "DIALECTS",
        "READOUT_SOURCES",
    ):
        assert getattr(config, name) is getattr(schema, name), name
    assert set(schema.setting("network", "readout").choices) == {x for v in schema.READOUT_SOURCES.values() for x in v}
    with pytest.raises(ValueError, match="lyapunov.ons"):
        config.LyapunovConfig(ons=0)


KINDS = {"str": ("choice", "str"), "number": ("float",), "number_or_list": ("float",), "int": ("int",),
    "bool": ("bool",), "int_list": ("layers",)}  # fmt: skip


def test_golden_keys_agree_with_the_schema():
    """The golden case config keys (docs/golden-format.md) are the model config's fields, and the
    ones that are also [network] keys have the same kind of value."""
    net_fields = {f.name for f in dataclasses.fields(config.NetworkConfig)}
    flat = {k for k, v in GOLDEN_SCHEMA.items() if not isinstance(v, dict)}
    assert flat <= net_fields | {"surrogate", "readout"}
    network = {s.key: s for s in schema.SCHEMA["network"]}
    shared = [k for k in flat if k in network]
    assert len(shared) >= 8
    for k in shared:
        assert network[k].kind in KINDS[GOLDEN_SCHEMA[k]], k
    assert set(GOLDEN_SCHEMA["surrogate"]) == {"name", "slope"}  # [network] surrogate, slope
    for k in ("k", "ons", "warmup", "transient"):
        assert GOLDEN_SCHEMA["lyapunov"][k] == "int" and schema.setting("lyapunov", k).kind == "int"
    assert set(GOLDEN_SCHEMA["flossing"]) == {"target", "params"}
    assert schema.setting("flossing", "params").choices == schema.FLOSS_PARAMS


def test_exact_docs_table_is_generated_from_the_schema():
    """docs/exact.md carries the [exact] settings as the schema prints them."""
    assert schema.table_markdown(["exact"]) in (ROOT / "docs" / "exact.md").read_text()
