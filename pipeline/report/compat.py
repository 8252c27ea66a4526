"""Refuse to compare results made with different prompts or sampling.

Each result row names its run; ``runs.config_json`` holds ``prompts_sha256`` ({task: sha256}) and
``sampling``. Two systems are comparable on a task only when every run that produced their results for
that task used the same prompt file and the same sampling parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl


@dataclass(frozen=True, slots=True)
class Mismatch:
    model_a: str
    run_a: str
    model_b: str
    run_b: str
    task: str
    field: str
    value_a: Any
    value_b: Any

    def describe(self) -> str:
        return (
            f"{self.field} differs on {self.task} "
            f"({self.model_a!r} run {self.run_a}: {_show(self.value_a)} vs "
            f"{self.model_b!r} run {self.run_b}: {_show(self.value_b)})"
        )


def _show(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "…"  # a sha256: the prefix is enough to tell them apart
    return "missing" if value is None else orjson.dumps(value).decode()


def run_settings(runs: pl.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """(store, run_id) -> parsed config_json."""
    settings: dict[tuple[str, str], dict[str, Any]] = {}
    for row in runs.select("store", "run_id", "config_json").iter_rows(named=True):
        try:
            config = orjson.loads(row["config_json"]) if row["config_json"] else {}
        except orjson.JSONDecodeError:
            config = {}
        settings[(row["store"], row["run_id"])] = config if isinstance(config, dict) else {}
    return settings


def _fields(config: dict[str, Any], task: str) -> dict[str, Any]:
    prompts = config.get("prompts_sha256") or {}
    fields: dict[str, Any] = {
        f"prompts_sha256[{task!r}]": prompts.get(task) if isinstance(prompts, dict) else None
    }
    sampling = config.get("sampling")
    if isinstance(sampling, dict):
        fields.update({f"sampling.{k}": v for k, v in sorted(sampling.items())})
    else:
        fields["sampling"] = sampling
    return fields


def find_mismatches(
    results: pl.DataFrame,
    settings: dict[tuple[str, str], dict[str, Any]],
    models: tuple[str, ...],
    variant: str,
    task: str,
) -> list[Mismatch]:
    """Every field that differs between the first run and any other run behind ``models``' results."""
    used = (
        results.filter(
            pl.col("model").is_in(list(models)) & (pl.col("variant") == variant) & (pl.col("task") == task)
        )
        .select("model", "store", "run_id")
        .unique()
        .sort(["model", "run_id"], descending=[False, False])
    )
    ordered = sorted(used.iter_rows(named=True), key=lambda r: (models.index(r["model"]), str(r["run_id"])))
    if len(ordered) < 2:
        return []
    first = ordered[0]
    ref = _fields(settings.get((first["store"], first["run_id"]), {}), task)
    mismatches: list[Mismatch] = []
    for other in ordered[1:]:
        fields = _fields(settings.get((other["store"], other["run_id"]), {}), task)
        for name in sorted(set(ref) | set(fields)):
            if ref.get(name) != fields.get(name):
                mismatches.append(
                    Mismatch(
                        first["model"],
                        str(first["run_id"]),
                        other["model"],
                        str(other["run_id"]),
                        task,
                        name,
                        ref.get(name),
                        fields.get(name),
                    )
                )
    return mismatches
