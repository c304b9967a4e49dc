"""Keep freed memory in the process: glibc's ``mallopt`` (Linux only).

The kernels allocate their trajectories afresh on every call (a rate RNN of
N = 80, B = 16, T = 300 returns eight ``(301, 16, 80)`` arrays, 24 MB). glibc
serves every allocation above 128 kB with a fresh ``mmap`` and returns it to
the system on ``free``, so each call pays page faults for all of its memory
again: a third of a training step's time (measured: 31 ms → 19 ms per step
of that network, docs/performance.md). Raising the mmap and trim thresholds
lets freed blocks be reused instead. The numbers are unchanged; only the
process keeps up to its peak memory. ``REFIMPL_MALLOC=system`` leaves the C
library's defaults alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 1 << 30  # allocations below 1 GiB come from the heap
TRIM_THRESHOLD = 1 << 31  # give memory back only when 2 GiB are free at the top of the heap
TOP_PAD = 1 << 26

_done = False


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; returns whether they are in force."""
    global _done
    if _done:
        return True
    if os.environ.get("REFIMPL_MALLOC") == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = (
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            and libc.mallopt(M_TOP_PAD, TOP_PAD) == 1
        )
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
