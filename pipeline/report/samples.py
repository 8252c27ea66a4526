"""The per-sample paired viewer's data (``medsweep report --samples``): for each pair and task unit that the
report compares, every item with both models' answers, scores, strict parse, failure and prompt.

An item's verdict is the paired row's outcome of ``pipeline.report.compare`` (biomedical ``better`` /
``worse`` / ``tie`` on the compared value, the mean of the metrics both models have); ``none`` when a side has
no score (failed, unscored or not run). Texts go into the page as JSON data, never as markup.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from pipeline.report import compare
from pipeline.report.aggregate import metric_long, unit_label
from pipeline.report.build import Report
from pipeline.report.pairs import Pair
from pipeline.report.prompt_text import PromptIndex, rerender_prompts

NO_VERDICT = "none"
PROMPT_BUDGET_BYTES = 16 * 1024 * 1024
"""Prompt text embedded in one report at most: LongHealth prompts carry a patient's documents (tens of KB
each), and a page of hundreds of MB would not open. Prompts past it are named, not shown."""

_SIDE_COLUMNS = (
    "item_id",
    "repeat",
    "status",
    "error_class",
    "error_message",
    "output",
    "reasoning",
    "parsed_json",
    "strict_valid",
    "metrics_json",
    "scored",
    "prompt_hash",
    "reference_json",
)


@dataclass(slots=True)
class SampleSet:
    """What the viewer shows: ``rows`` point into ``pairs`` and ``prompts`` by index."""

    pairs: list[dict[str, str]] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    error_classes: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, str]] = field(default_factory=list)
    _prompt_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    _prompt_bytes: int = 0

    def as_json(self) -> str:
        """The data as JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or
        ``&`` (so no ``</script>`` or ``<!--`` can end the block early)."""
        text = orjson.dumps({"pairs": self.pairs, "rows": self.rows, "prompts": self.prompts}).decode()
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    def prompt_ref(self, text: str | None, why: str, prompt_hash: str) -> int:
        """Index of the prompt (or of why it is not shown) in ``prompts``, each text stored once."""
        if text is not None and ("t", prompt_hash) in self._prompt_ids:
            return self._prompt_ids[("t", prompt_hash)]
        if text is not None and self._prompt_bytes + len(text) > PROMPT_BUDGET_BYTES:
            text, why = (
                None,
                (
                    f"not embedded: the report's prompts already take {PROMPT_BUDGET_BYTES // 2**20} MB "
                    f"(prompt sha256 {prompt_hash})"
                ),
            )
        key = ("t", prompt_hash) if text is not None else ("w", why)
        found = self._prompt_ids.get(key)
        if found is not None:
            return found
        if text is not None:
            self._prompt_bytes += len(text)
            self.prompts.append({"text": text})
        else:
            self.prompts.append({"why": why})
        self._prompt_ids[key] = len(self.prompts) - 1
        return len(self.prompts) - 1


def collect_samples(report: Report, data_dir: Path | None = None) -> SampleSet:
    """Every item of every compared (pair, variant, task unit), in the order of the paired table."""
    items = report.items
    units = compare.comparable_units(items, report.pairs)
    wanted = {(m, v, t) for pair, v, (t, _) in units for m in (pair.biomedical, pair.general)}
    prompts = rerender_prompts(report.runs, wanted, data_dir)
    long = metric_long(items)
    samples = SampleSet()
    pair_index: dict[tuple[str, str, str], int] = {}
    for pair, variant, (task, subtask) in units:
        key = (pair.biomedical, pair.general, variant)
        if key not in pair_index:
            pair_index[key] = len(samples.pairs)
            samples.pairs.append({"biomedical": pair.biomedical, "general": pair.general, "variant": variant})
        unit = unit_label(task, subtask)
        if unit not in samples.units:
            samples.units.append(unit)
        for row in _unit_rows(items, long, pair, variant, task, subtask, samples, prompts):
            samples.rows.append({"pair": pair_index[key], "unit": unit, **row})
    samples.error_classes = sorted(
        {side["error"] for row in samples.rows for side in row["sides"] if side["error"]}
    )
    return samples


def _unit_rows(
    items: pl.DataFrame,
    long: pl.DataFrame,
    pair: Pair,
    variant: str,
    task: str,
    subtask: str,
    samples: SampleSet,
    prompts: PromptIndex,
) -> Iterator[dict[str, Any]]:
    used, values = compare.paired_values(long, pair, variant, task, subtask)
    sides = []
    for model, value in zip((pair.biomedical, pair.general), values, strict=True):
        frame = items.filter(
            (pl.col("model") == model)
            & (pl.col("variant") == variant)
            & (pl.col("task") == task)
            & (pl.col("subtask") == subtask)
        ).select(_SIDE_COLUMNS)
        sides.append(frame.join(value, on=["item_id", "repeat"], how="left"))
    bio, gen = sides
    joined = bio.join(gen, on=["item_id", "repeat"], how="full", coalesce=True, suffix="_g")
    ordered = sorted(joined.iter_rows(named=True), key=lambda r: (natural_key(r["item_id"]), r["repeat"]))
    for row in ordered:
        shown = []
        for model, suffix in ((pair.biomedical, ""), (pair.general, "_g")):
            side = {c: row[c + suffix] for c in (*_SIDE_COLUMNS[2:], "value")}
            shown.append(_side(side, model, variant, task, samples, prompts))
        a, b = shown[0]["value"], shown[1]["value"]
        reference = row["reference_json"] if row["reference_json"] is not None else row["reference_json_g"]
        yield {
            "id": row["item_id"],
            "repeat": row["repeat"],
            "verdict": NO_VERDICT if a is None or b is None else compare.item_outcome(a, b),
            "metrics": used,
            "reference": _json_text(reference),
            "sides": shown,
        }


def _side(
    side: dict[str, Any], model: str, variant: str, task: str, samples: SampleSet, prompts: PromptIndex
) -> dict[str, Any]:
    """One model's answer to an item: ``state`` is scored, unscored, failed or missing (not run)."""
    if side["status"] is None:
        state = "missing"
    elif side["status"] == "failed":
        state = "failed"
    else:
        state = "scored" if side["scored"] else "unscored"
    text, why = prompts.lookup(model, variant, task, side["prompt_hash"])
    metrics = orjson.loads(side["metrics_json"]) if side["metrics_json"] else {}
    return {
        "state": state,
        "error": side["error_class"] or ("unknown" if state == "failed" else ""),
        "message": side["error_message"] or "",
        "output": side["output"],
        # A reasoning model's trace, shown folded beside the answer; a trace without an answer is a
        # no-answer (pipeline.store.schema.NO_ANSWER).
        "reasoning": side["reasoning"],
        "no_answer": state == "scored" and side["output"] is None and side["reasoning"] is not None,
        "value": side["value"],
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
        "strict": None if side["strict_valid"] is None else bool(side["strict_valid"]),
        "parsed": _json_text(side["parsed_json"]),
        "prompt": None if state == "missing" else samples.prompt_ref(text, why, side["prompt_hash"] or ""),
    }


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort ``q2`` before ``q10``: digit runs compare as numbers."""
    parts = (part for part in re.split(r"(\d+)", text) if part)
    return tuple((0, int(part)) if part.isdecimal() else (1, part) for part in parts)


def _json_text(text: str | None) -> str | None:
    """A stored JSON value as a person reads it: a string as itself, anything else indented."""
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
