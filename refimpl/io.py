"""Files: atomic HDF5 writes, so that an interrupted run never leaves a half-written result."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np


def _umask_mode() -> int:
    """``0o666 & ~umask``: the mode an ordinary ``open(…, "w")`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_next_to(path: Path):
    """A temporary file beside ``path`` with the mode the user's umask gives new files (``mkstemp``
    alone makes it 0600, which the rename would carry over to the result)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _umask_mode())
    return fd, tmp


@contextmanager
def atomic_h5(path):
    """Open a temporary HDF5 file next to ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    fd, tmp = _temp_next_to(path)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_text(path, text: str) -> None:
    """Write a text file atomically."""
    path = Path(path)
    fd, tmp = _temp_next_to(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class DirectoryInUse(ValueError):
    """Another live process holds a run directory (exit code 2 on the command line)."""


@contextmanager
def directory_lock(directory):
    """Own ``directory`` (a run's output folder) while the block runs.

    An exclusive, non-blocking ``flock`` on ``directory/.lock``: the operating system releases it
    when the holder exits or dies, so a killed run never leaves a stale lock behind. The holder's PID
    is written into the file so that a second process can name it. Raises :class:`DirectoryInUse`
    before anything is written if another process holds the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:      # not a POSIX system: no locking
        yield
        return
    path = directory / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _umask_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DirectoryInUse(f"{directory} is in use by another run (process {holder}); wait for it to "
                             "finish or choose another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # closing the descriptor releases the lock


def write_dict(group, d: dict) -> None:
    """Store a dict of arrays keyed by ``a/b`` paths under an HDF5 group."""
    for key, value in d.items():
        group.create_dataset(key, data=np.asarray(value))


def read_dict(group) -> dict:
    """Inverse of :func:`write_dict`: every dataset below ``group`` by its relative path."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]
    group.visititems(visit)
    return out


def to_json(obj) -> str:
    return json.dumps(obj, sort_keys=True)
