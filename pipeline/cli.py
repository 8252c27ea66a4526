"""The ``medsweep`` command line. Each sub-command lives in ``pipeline/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a function ``(args) -> int``.
Command modules import their heavy dependencies inside the handler so that ``medsweep --help`` is fast."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence

from pipeline import __version__
from pipeline.errors import MedsweepError

_COMMANDS = ("eval", "status", "score", "report", "serve", "stop", "models", "sweep", "data")
# Commands that write results (outputs and references can hold credentialed patient text): everything they
# create, SQLite's -wal/-shm files and report files included, is private to the user. Not for `serve`,
# whose child processes share caches (HF hub) with other users.
_PRIVATE_OUTPUT = frozenset({"eval", "score", "report", "status"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medsweep", description="Serve LLMs with vLLM and score them on medical tasks."
    )
    parser.add_argument("--version", action="version", version=f"medsweep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        module = importlib.import_module(f"pipeline.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in _PRIVATE_OUTPUT:
        os.umask(0o077)
    try:
        code: int = args.handler(args)
    except MedsweepError as exc:
        from pipeline.config import without_credentials  # here: the CLI's start stays light

        print(f"error: {without_credentials(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`medsweep models --json | head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again, and exit as a SIGPIPE'd tool would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def entry() -> int:
    """The ``medsweep`` console script and ``python -m pipeline``: ``main`` in a process of its own.

    Every object the command's imports made is frozen before the interpreter exits, so that its teardown
    skips a last collection over them: an eval's teardown took 0.15 s of its 1.1 s outside generation, and
    takes 0.02 s (docs/performance.md). Not in ``main``, which tests and other programs call in a process
    that goes on."""
    code = main()
    gc.freeze()
    return code
