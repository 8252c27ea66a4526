"""`make logs`: show the log of the server in .medsweep/serve.json (container logs or the process log file).

Run: ``python -m pipeline.serving.logs [--lines N] [--follow]``
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pipeline.errors import MedsweepError
from pipeline.serving import lifecycle
from pipeline.serving.state import read_state


def show_logs(lines: int = 200, follow: bool = False) -> int:
    state = read_state()
    if state is None:
        print("no server recorded in .medsweep/serve.json (start one with `make serve`)", file=sys.stderr)
        return 1
    if not follow:
        print(lifecycle.logs(state, lines))
        return 0
    argv = lifecycle.follow_argv(state, lines)
    os.execvp(argv[0], argv)  # hand the terminal over (Ctrl-C ends the follow)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serving.logs", description=__doc__)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--follow", "-f", action="store_true")
    args = parser.parse_args(argv)
    try:
        return show_logs(args.lines, args.follow)
    except MedsweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
