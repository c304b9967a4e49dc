"""Result files of a sweep's jobs: where they live, how they are written and read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------------
# result files
# ---------------------------------------------------------------------------


def result_path(out_dir, job) -> Path:
    return Path(out_dir) / "jobs" / f"{job.name}.h5"


def failed_path(out_dir, job) -> Path:
    return Path(out_dir) / "jobs" / f"{job.name}.failed.txt"


def work_dir(out_dir, job) -> Path:
    return Path(out_dir) / "work" / job.name


def write_tree(g, d: dict, where: str = "") -> None:
    """A nested dict of scalars, arrays and strings as HDF5 datasets and groups (``None`` is left out)."""
    import h5py

    for key, v in d.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"result keys must be non-empty strings, got {where}{key!r}")
        if v is None:
            continue
        if isinstance(v, dict):
            write_tree(g.require_group(key), v, f"{where}{key}/")
        elif isinstance(v, str):
            g.create_dataset(key, data=v, dtype=h5py.string_dtype())
        else:
            a = np.asarray(v)
            if a.dtype.kind in "UO":
                if not all(isinstance(x, str) for x in a.ravel()):
                    raise TypeError(f"result {where}{key}: cannot store {v!r} (numbers, arrays, strings and dicts of them)")
                a = a.astype(object)
                g.create_dataset(key, data=a, dtype=h5py.string_dtype())
            else:
                g.create_dataset(key, data=a)


def load_result(path) -> tuple:
    """``(meta, data)`` of a result file: ``meta`` its attributes (``axes`` and ``overrides``
    decoded from JSON), ``data`` every dataset by its ``a/b`` path (0-d values as Python scalars,
    strings as ``str``)."""
    import h5py

    meta, data = {}, {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            meta[k] = json.loads(v) if k in ("axes", "overrides") else (v.item() if hasattr(v, "item") else v)

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            if h5py.check_string_dtype(obj.dtype) is not None:
                v = obj.asstr()[()]
                v = v if isinstance(v, str) else np.asarray(v, dtype=object)
            else:
                v = obj[()]
                if np.ndim(v) == 0:
                    v = v.item()
            data[name] = v

        f.visititems(visit)
    return meta, data


def stored_hash(path) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("spec_hash", ""))
    except OSError:
        return None
