"""`medsweep stop`: stop the server recorded in .medsweep/serve.json and remove the record."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "stop", help="stop the server started by `medsweep serve`"
    )
    parser.add_argument(
        "--grace", type=float, default=20.0, help="seconds between SIGTERM and SIGKILL for local/cpu servers"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.serving.launch import stop

    print(stop(grace=args.grace))
    return 0
