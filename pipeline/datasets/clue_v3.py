"""The study's published numbers: the CLUE results site's v3 table (``pipeline/scoring/clue_v3_results.csv``;
its header says where each figure comes from). One row per model, keyed by the site's name (the registry's
``site_label``); one column per reported metric (``<task>_<metric>``, medsweep's metric names, in %) plus
``level1`` and ``level2``. An empty cell is a figure the site does not publish."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "scoring" / "clue_v3_results.csv"
LABEL = "CLUE v3 (the CLUE results site, June 2024; Dada et al., arXiv 2404.04067)"
LEVELS = ("level1", "level2")


@cache
def published(path: Path = RESULTS) -> dict[str, dict[str, float]]:
    """site label -> {column: value in %}, the published figures only (empty cells left out)."""
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    return {
        row["model"]: {name: float(value) for name, value in row.items() if name != "model" and value}
        for row in rows
    }


def metric_column(task: str, metric: str) -> str:
    """The table's column of ``task``'s metric (``mednli``, ``accuracy`` -> ``mednli_accuracy``)."""
    return f"{task}_{metric}"
