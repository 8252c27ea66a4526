"""`medsweep models`: the model registry (servers/*.toml)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("models", help="list the models of servers/*.toml")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=_run)


def _tp(cfg: Any, memory_class: int) -> str:
    from pipeline.models.registry import pp_size, tp_size

    if cfg.gpus.for_class(memory_class) == 0:
        return "-"
    tp, pp = tp_size(cfg, memory_class), pp_size(cfg, memory_class)
    return f"{tp}" if pp == 1 else f"{tp}x{pp}pp"


def _run(args: argparse.Namespace) -> int:
    from pipeline.models.registry import MEMORY_CLASSES, load_registry

    registry = load_registry()
    if args.json:
        rows = [
            {
                **cfg.model_dump(exclude={"gpus"}),
                "gpus": {str(c): cfg.gpus.for_class(c) for c in MEMORY_CLASSES},
                "tp": {str(c): _tp(cfg, c) for c in MEMORY_CLASSES},
            }
            for cfg in registry.values()
        ]
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(registry)} models (servers/*.toml); TP per GPU memory class, 'x2pp' = 2 nodes")
    for column in (
        "name",
        "role",
        "counterpart",
        "params B",
        "TP 80G",
        "TP 40G",
        "TP 24G",
        "max_len",
        "chat",
    ):
        table.add_column(column, no_wrap=column == "name")
    for cfg in registry.values():
        table.add_row(
            cfg.name,
            cfg.role,
            cfg.counterpart or "",
            f"{cfg.params_b:g}",
            *(_tp(cfg, c) for c in MEMORY_CLASSES),
            str(cfg.max_model_len),
            cfg.chat_mode,
        )
    Console(width=160).print(table)
    return 0
