"""TOML run configurations: parsing, key checking with suggestions, overrides, presets.

A file has the sections ``[network]``, ``[task]``, ``[training]``,
``[flossing]``, ``[lyapunov]`` and ``[output]`` (every one optional; every
key optional except the task's required parameters). The valid keys of a
section are the fields of its dataclass in :mod:`refimpl.training`
(``[task]``: ``name`` plus the parameters of the task generator). An unknown
section or key is an error that names the closest valid key; a value out of
range is an error naming ``section.key`` and the allowed range. All errors
are ``ValueError`` with a one-line message (``refimpl train`` turns them into
exit code 2).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from dataclasses import MISSING, fields
from pathlib import Path

from refimpl.training.runconfig import SECTIONS, RunConfig, task_keys

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"


def shipped_names(directory: Path = PRESET_DIR) -> list:
    """Names of the TOML files shipped in ``directory`` (presets, or sweeps)."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def preset_names() -> list:
    return shipped_names(PRESET_DIR)


def resolve_named(name, directory: Path = PRESET_DIR, what: str = "preset", file_kind: str = "configuration file") -> Path:
    """A TOML file by path, or one shipped in ``directory`` by name (``delayed_xor`` or ``delayed_xor.toml``)."""
    p = Path(name)
    if p.is_file():
        return p
    if p.is_dir():
        inside = [f.name for f in sorted(p.glob("*.toml"))][:3]
        hint = f"; did you mean {str(p / inside[0])!r}?" if inside else ""
        raise ValueError(f"{str(name)!r} is a directory, not a {file_kind}{hint}")
    names = shipped_names(directory)
    stem = p.name[:-5] if p.name.endswith(".toml") else p.name
    if p.parent == Path(".") and stem in names:
        return directory / f"{stem}.toml"
    hint = difflib.get_close_matches(stem, names, n=1)
    extra = f"; did you mean the {what} {hint[0]!r}?" if hint else ""
    raise ValueError(f"no {file_kind} {str(name)!r} (and no {what} of that name; {what}s: {', '.join(names) or 'none'}){extra}")


def resolve_path(name) -> Path:
    """A TOML file by path, or a shipped preset by name (``delayed_xor`` or ``delayed_xor.toml``)."""
    return resolve_named(name)


def section_keys(section: str, task_name: str = "delayed_xor") -> tuple:
    """Valid keys of ``[section]`` (for ``[task]``, of the task ``task_name``)."""
    if section == "task":
        return ("name", *task_keys(task_name))
    return tuple(f.name for f in fields(SECTIONS[section]))


def _suggest(word: str, options) -> str:
    hint = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def check_keys(d: dict, source: str = "config") -> None:
    """Every section and key must exist; the message suggests the closest valid one."""
    from refimpl.training.runconfig import task_names

    TASKS = task_names()  # the generators of refimpl.tasks and the file-backed shd
    for sec, body in d.items():
        if sec not in SECTIONS:
            raise ValueError(
                f"{source}: unknown section [{sec}]{_suggest(sec, SECTIONS)} "
                f"(sections: {', '.join('[' + s + ']' for s in SECTIONS)})"
            )
        if not isinstance(body, dict):
            raise ValueError(f"{source}: {sec} must be a section [{sec}], not a value")
    task_name = d.get("task", {}).get("name", "delayed_xor")
    if task_name not in TASKS:
        raise ValueError(
            f"{source}: task.name must be one of {sorted(TASKS)}, got {task_name!r}{_suggest(str(task_name), TASKS)}"
        )
    for sec, body in d.items():
        valid = section_keys(sec, task_name)
        for key in body:
            if key in valid:
                continue
            elsewhere = [s for s in SECTIONS if s != sec and key in section_keys(s, task_name)]
            where = f" ({key!r} belongs in [{elsewhere[0]}])" if elsewhere else ""
            if sec == "network" and key in ("n_in", "n_out"):
                where = " (n_in and n_out are set by the task)"
            if sec == "task" and key in ("batch", "dt"):
                where = {"batch": " (set training.batch_size)", "dt": " (set network.dt)"}[key]
            raise ValueError(
                f"{source}: unknown key {key!r} in [{sec}]{where}{_suggest(key, valid)} (valid keys: {', '.join(valid)})"
            )


def from_dict(d: dict, source: str = "config") -> RunConfig:
    """Check the keys of a nested dict and build the :class:`RunConfig` (errors prefixed by ``source``)."""
    check_keys(d, source)
    try:
        return RunConfig.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: {exc}") from None


def parse_value(text: str):
    """A TOML value (``16``, ``[32, 16]``, ``"zero"``, ``true``); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(d: dict, overrides, source: str = "--set") -> dict:
    """``section.key=value`` strings applied to a nested dict (a new dict is returned)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    for spec in overrides or ():
        if "=" not in spec or "." not in spec.split("=", 1)[0]:
            raise ValueError(f"{source} {spec!r}: expected SECTION.KEY=VALUE, e.g. training.epochs=5")
        lhs, value = spec.split("=", 1)
        sec, key = lhs.strip().split(".", 1)
        if sec not in SECTIONS:
            raise ValueError(f"{source} {spec!r}: unknown section [{sec}]{_suggest(sec, SECTIONS)}")
        body = out.setdefault(sec, {})
        if not isinstance(body, dict):
            raise ValueError(f"{source} {spec!r}: {sec} is not a section")
        body[key.strip()] = parse_value(value.strip())
    return out


def loads(text: str, overrides=(), source: str = "<string>") -> RunConfig:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = " ".join(str(exc).split())
        raise ValueError(f"{source}: malformed TOML: {msg}") from None
    d = apply_overrides(d, overrides)
    try:
        return from_dict(d, source)
    except ValueError as exc:
        raise ValueError(_blame(str(exc), source, overrides)) from None


def _blame(message: str, source: str, overrides) -> str:
    """Name what the user typed: an error about a key given with ``--set`` is the ``--set``'s, not the file's."""
    body = message[len(source) + 2 :] if message.startswith(f"{source}: ") else message
    for ov in overrides:
        key = ov.split("=", 1)[0].strip()
        if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", body):
            return f"--set {ov}: {body}"
    if overrides:
        return f"{message} (with " + " ".join(f"--set {ov}" for ov in overrides) + ")"
    return message


def load(path, overrides=()) -> RunConfig:
    """Read a TOML file (``overrides``: ``section.key=value`` strings applied on top)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: malformed TOML: not UTF-8 ({exc.reason})") from None
    return loads(text, overrides, source=str(path))


def load_preset(name: str, overrides=()) -> RunConfig:
    return load(resolve_path(name), overrides)


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {v!r} as a TOML value")


def to_toml(run: RunConfig) -> str:
    """The canonical TOML text of a run (every key, defaults included); ``loads`` reads it back."""
    lines = ["# written by refimpl; every key shown (see docs/training.md)"]
    for sec, body in run.to_dict().items():
        lines.append(f"\n[{sec}]")
        for key, v in body.items():
            lines.append(f"{key} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


def defaults_table() -> str:
    """Markdown table of every key with its default (used to write docs/training.md)."""
    rows = ["| key | default |", "|---|---|"]
    for sec, cls in SECTIONS.items():
        if sec == "task":
            continue
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()
            shown = "(from dialect)" if default is None else toml_value(default)
            rows.append(f"| `{sec}.{f.name}` | `{shown}` |")
    return "\n".join(rows)
