"""Reading a golden (or candidate) file, with a one-line :class:`FormatError` for anything not in the format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refimpl.check.golden.schema import FORMAT, FormatError

#: the format versions this reader accepts: 1 (time-stepped cases), 2 (and event-based cases)
READ_VERSIONS = (1, 2)

# ---------------------------------------------------------------------------
# reading a golden (or candidate) file
# ---------------------------------------------------------------------------


def one_line(exc) -> str:
    msg = str(exc).strip().splitlines()
    return (msg[0] if msg else type(exc).__name__).strip()


def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape in ((), (1,)):
        return _attr_str(v.ravel()[0] if v.shape == (1,) else v[()])
    if isinstance(v, np.bytes_):
        return bytes(v).decode("utf-8", "replace")
    return v


@dataclass
class GoldenFile:
    """The contents of a golden-format file, read into memory."""

    path: str
    generator: str
    cases: dict  # name -> {path: array}
    configs: dict  # name -> config dict, or None when the group has no config attribute
    groups: dict  # name -> set of group paths inside the case (for layout checks)


def read_golden(path, what: str = "candidate") -> GoldenFile:
    """Read a whole golden-format file; ``FormatError`` (one line) if it is unreadable or not in the format."""
    import h5py

    p = Path(path)
    if not p.exists():
        raise FormatError(f"{what} {path}: no such file")
    if p.is_dir():
        raise FormatError(f"{what} {path}: is a directory, not an HDF5 file")
    try:
        is_h5 = h5py.is_hdf5(str(p))
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"{what} {path}: cannot be read ({one_line(exc)})") from None
    if not is_h5:
        raise FormatError(f"{what} {path}: not an HDF5 file (no HDF5 signature)")
    try:
        with h5py.File(str(p), "r") as f:
            fmt = _attr_str(f.attrs.get("format", None))
            if fmt is None:
                raise FormatError(f"{what} {path}: root attribute 'format' is missing (expected {FORMAT!r})")
            if fmt != FORMAT:
                raise FormatError(f"{what} {path}: root attribute format = {fmt!r}, expected {FORMAT!r}")
            ver = f.attrs.get("format_version", None)
            if ver is None:
                raise FormatError(f"{what} {path}: root attribute 'format_version' is missing (expected 1 or 2)")
            ver = np.asarray(ver)
            if ver.size != 1 or not np.issubdtype(ver.dtype, np.integer) or int(ver.ravel()[0]) not in READ_VERSIONS:
                raise FormatError(
                    f"{what} {path}: root attribute format_version = {ver.ravel().tolist()!r}, expected the integer 1 or 2"
                )
            gen = _attr_str(f.attrs.get("generator", "(no generator attribute)"))
            cases, configs, groups = {}, {}, {}
            for name in f:
                obj = f[name]
                if not isinstance(obj, h5py.Group):
                    raise FormatError(f"{what} {path}: root member {name!r} is not a case group")
                data, subgroups = {}, set()

                def visit(rel, item, data=data, subgroups=subgroups, name=name):
                    if isinstance(item, h5py.Dataset):
                        try:
                            value = item[()]
                        except Exception as exc:  # noqa: BLE001 - truncated or corrupted data
                            raise FormatError(f"{what} {path}: dataset {name}/{rel} cannot be read ({one_line(exc)})") from None
                        arr = np.asarray(value)
                        if arr.dtype.kind not in "biuf":
                            raise FormatError(f"{what} {path}: dataset {name}/{rel} holds {arr.dtype} values, not numbers")
                        data[rel] = arr
                    else:
                        subgroups.add(rel)

                obj.visititems(visit)
                cfg = obj.attrs.get("config", None)
                if cfg is not None:
                    try:
                        cfg = json.loads(_attr_str(cfg))
                    except (TypeError, ValueError) as exc:
                        raise FormatError(
                            f"{what} {path}: case {name!r} has a config attribute that is not JSON ({one_line(exc)})"
                        ) from None
                    if not isinstance(cfg, dict):
                        raise FormatError(f"{what} {path}: case {name!r} config is not a JSON object")
                cases[name], configs[name], groups[name] = data, cfg, subgroups
    except FormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError …
        raise FormatError(f"{what} {path}: corrupted or truncated HDF5 file ({one_line(exc)})") from None
    return GoldenFile(str(path), str(gen), cases, configs, groups)
