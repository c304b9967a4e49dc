"""Ctrl-C at a safe point: a SIGINT only sets a flag that the long loops poll.

A signal that arrives while a compiled (Numba) kernel runs, while Numba compiles or loads a
kernel, or while a numerical module is imported would otherwise surface as a ``SystemError``
from inside the kernel, or crash the interpreter (SIGSEGV). With :class:`DeferredInterrupt`
installed, the first Ctrl-C sets ``requested`` (and, at a terminal, says that the command stops
after the current step); the loop calls :meth:`DeferredInterrupt.poll` (or :func:`poll`) at its
safe points, which raises ``KeyboardInterrupt`` there, so the caller can save what finished. A
Ctrl-C that no poll consumed is raised when the deferral ends. A second Ctrl-C interrupts at once.

Deferrals nest: ``refimpl``'s ``main`` defers for the whole command, and a trainer or a flossing
loop inside it shares that flag, so that its own polls see the Ctrl-C.
"""

from __future__ import annotations

import signal
import sys
import threading

#: the deferrals in force, outermost first (the first one owns the signal handler and the flag)
_ACTIVE: list = []


def is_interrupt(exc: BaseException | None) -> bool:
    """Whether ``exc`` is Ctrl-C: a ``KeyboardInterrupt``, or an error it caused on its way out of a
    compiled kernel or an interrupted Numba cache load (a ``SystemError``, a pickling error …), which
    carry it as their ``__context__``."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


def poll() -> None:
    """A safe point for code that may run inside a deferral: raise ``KeyboardInterrupt`` if Ctrl-C was
    pressed (nothing happens outside a deferral)."""
    if _ACTIVE:
        _ACTIVE[-1].poll()


class DeferredInterrupt:
    """Install with :meth:`install` (main thread only, and only over Python's default handler, unless
    another deferral is in force, whose flag it then shares); :meth:`restore` undoes it."""

    def __init__(self, message: str | None = "Ctrl-C: stopping after the current step (press again to stop at once)"):
        # message None: say nothing now (the command prints its own one line when it stops)
        self.message = message
        self.requested = False
        self._old = None
        self._owner = None  # the deferral whose flag this one uses (itself when it owns the handler)

    def install(self) -> "DeferredInterrupt":
        self.requested = False
        if _ACTIVE:  # nested: share the outermost deferral's flag
            self._owner = _ACTIVE[0]
            _ACTIVE.append(self)
            return self
        if threading.current_thread() is not threading.main_thread():
            return self
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return self  # someone else (a test, an embedding program) handles SIGINT

        def handler(signum, frame):
            if self.requested:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.requested = True
            if self.message and sys.stderr.isatty():  # a person at a terminal; a pipe gets only the final line
                print("\n" + self.message, file=sys.stderr, flush=True)

        self._old = signal.signal(signal.SIGINT, handler)
        self._owner = self
        _ACTIVE.append(self)
        return self

    def restore(self) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _pending(self) -> bool:
        owner = self._owner or self
        if owner.requested:
            owner.requested = False
            return True
        return False

    def poll(self) -> None:
        """Raise ``KeyboardInterrupt`` here if Ctrl-C was pressed since the last poll."""
        if self._pending():
            raise KeyboardInterrupt

    def __enter__(self) -> "DeferredInterrupt":
        return self.install()

    def __exit__(self, exc_type, exc, tb) -> None:
        pending = self._pending() if exc_type is None else False
        self.restore()
        # a Ctrl-C that came after the last poll must not be lost: it stops the caller here
        if pending:
            raise KeyboardInterrupt
