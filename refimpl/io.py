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
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C while writing: no half-written file, no temporary left behind
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_savefig(fig, path, **kw) -> None:
    """``fig.savefig(path)`` through a temporary file beside ``path``: a complete image or none."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, **kw)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_writable(path, flag: str, *, directory: bool = False) -> Path:
    """Check, before any work starts, that ``path`` (given as ``flag``) can be written.

    A file path must not be a directory and its parent must be (or become) a directory we may
    write in; a directory path must not be a file. Nothing is created. Raises ``ValueError`` naming
    the flag, so that a long computation never finishes only to fail on its output path.
    """
    path = Path(path)
    if directory:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{flag} {path}: exists and is not a directory")
    elif path.is_dir():
        raise ValueError(f"{flag} {path}: is a directory, not a file name")
    if str(path.resolve()).startswith(("/proc/", "/sys/")):
        raise ValueError(f"{flag} {path}: cannot write under /proc or /sys")
    probe = path if directory else path.parent
    probe = probe if str(probe) else Path(".")
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{flag} {path}: {probe} is a file, so nothing can be created below it")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: no permission to write in {probe}")
    return path


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
    except ImportError:  # not a POSIX system: no locking
        yield
        return
    path = directory / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _umask_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DirectoryInUse(
            f"{directory} is in use by another run (process {holder}); wait for it to finish or choose another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
