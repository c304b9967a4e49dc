"""Ctrl-C at a safe point: the first SIGINT only sets a flag that the long loop polls.

A signal that arrives while a compiled (Numba) kernel runs would otherwise surface as a
``SystemError`` from inside the kernel, with the step's results half written. With
:class:`DeferredInterrupt` installed, the first Ctrl-C sets ``requested`` (and, at a terminal,
says that the command stops after the current step); the loop calls
:meth:`DeferredInterrupt.poll` after each step, which raises ``KeyboardInterrupt`` there, so
the caller can save what finished. A second Ctrl-C interrupts at once.
"""
from __future__ import annotations

import signal
import sys
import threading


def is_interrupt(exc: BaseException | None) -> bool:
    """Whether ``exc`` is Ctrl-C: a ``KeyboardInterrupt``, or an error it caused on its way out of a
    compiled kernel or an interrupted Numba cache load (a ``SystemError``, a pickling error …), which
    carry it as their ``__context__``."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


class DeferredInterrupt:
    """Install with :meth:`install` (main thread only, and only over Python's default handler);
    :meth:`restore` puts the previous handler back."""

    def __init__(self, message: str | None = "Ctrl-C: stopping after the current step (press again to stop at once)"):
        # message None: say nothing now (the command prints its own one line when it stops)
        self.message = message
        self.requested = False
        self._old = None

    def install(self) -> "DeferredInterrupt":
        self.requested = False
        if threading.current_thread() is not threading.main_thread():
            return self
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return self     # someone else (a test, an embedding program) handles SIGINT

        def handler(signum, frame):
            if self.requested:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.requested = True
            if self.message and sys.stderr.isatty():   # a person at a terminal; a pipe gets only the final line
                print("\n" + self.message, file=sys.stderr, flush=True)

        self._old = signal.signal(signal.SIGINT, handler)
        return self

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def poll(self) -> None:
        """Raise ``KeyboardInterrupt`` here if Ctrl-C was pressed since the last poll."""
        if self.requested:
            self.requested = False
            raise KeyboardInterrupt

    def __enter__(self) -> "DeferredInterrupt":
        return self.install()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.restore()
        # a Ctrl-C that came after the last poll must not be lost: it stops the caller here
        if self.requested and exc_type is None:
            self.requested = False
            raise KeyboardInterrupt
