"""The ``refimpl`` command line.

One module per subcommand in this package (:data:`COMMANDS`), each with
``add_parser(subparsers)`` and ``run(args)``. The parsers import nothing
heavy, so ``refimpl --help`` and argument errors answer at once; ``run``
imports the numerical modules it needs. Exit codes: 0 success, 1 a failed
check or mismatch, 2 bad input (one line, never a traceback), 130 Ctrl-C
(one line; what finished is kept, see docs/cli.md "Interrupting a command").
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

#: subcommand modules of this package, in the order ``refimpl --help`` lists them
COMMANDS = ("gradcheck", "lyapunov", "floss", "train", "sweep", "demo", "golden", "bench", "exact", "digits")


class UsageError(Exception):
    """Bad input: reported in one line, exit code 2."""


def shipped(directory: str) -> list:
    """Names of the TOML files shipped in ``refimpl/<directory>`` (presets, sweeps), without importing them."""
    root = Path(__file__).resolve().parent.parent / directory
    return sorted(p.stem for p in root.glob("*.toml"))


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (exit 2) and whose help shows every default."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: …)`` to every option that has a non-trivial default and does not state it."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if (
            d is not None
            and d is not False
            and d is not argparse.SUPPRESS
            and "default" not in text
            and action.option_strings
            and not isinstance(d, list)
        ):
            text += f" (default: {d})"
        return text


#: modules a numerical command needs, imported before it runs with Ctrl-C deferred: an import of Numba or
#: LLVM that a KeyboardInterrupt cuts short can crash the interpreter at exit (SIGSEGV) instead of exiting 130
HEAVY = ("numpy", "h5py", "numba", "refimpl.training")


def _import_heavy(module, args) -> None:
    """Import what the command needs (``main`` runs this with Ctrl-C deferred and polls right after)."""
    names = module.heavy(args) if hasattr(module, "heavy") else getattr(module, "HEAVY", HEAVY)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # an optional peer: the command reports it when it needs it


def build_parser():
    parser = Parser(
        prog="refimpl",
        description=(
            "Reference implementation of surrogate gradients, surrogate Lyapunov exponents and "
            "surrogate gradient flossing in spiking networks."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    runners = {}
    for mod in COMMANDS:
        m = importlib.import_module(f"refimpl.cli.{mod}")
        for name in m.add_parser(sub):
            runners[name] = m
    return parser, runners


def main(argv=None) -> int:
    command = "refimpl"
    try:
        parser, runners = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2, one line already printed)
            return int(exc.code or 0)
        command = f"refimpl {args.command}"
        module = runners[args.command]
        from refimpl.interrupt import DeferredInterrupt

        # Ctrl-C is deferred for the whole command (imports, Numba compiling and loading kernels, the
        # kernels themselves) and acted on at the commands' safe points, or when the command ends
        with DeferredInterrupt() as sigint:
            from refimpl.threads import default_threads, set_threads

            threads = default_threads()  # bad REFIMPL_THREADS: exit 2 before any work
            _import_heavy(module, args)
            if threads is not None:
                set_threads(threads, torch_too=False)
            sigint.poll()
            return int(module.run(args) or 0)
    except (UsageError, ValueError) as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `refimpl … | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException as exc:
        # Ctrl-C, also in the disguise of an error it caused inside a kernel or a Numba cache load; the
        # commands with partial results to keep say what they kept themselves and return 130
        from refimpl.interrupt import is_interrupt

        if not is_interrupt(exc):
            raise
        print(f"{command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
