"""Determinism: the agreement ``medsweep eval --recheck N`` measured, per model and variant, with what the
runs recorded about the server (prefix caching, ``VLLM_BATCH_INVARIANT``, the client's concurrency)."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

SCHEMA: dict[str, type[pl.DataType]] = {
    "model": pl.String,
    "variant": pl.String,
    "rechecked": pl.Int64,
    "raw_agree_pct": pl.Float64,
    "parsed_agree_pct": pl.Float64,
    "prefix_caching": pl.String,
    "vllm_batch_invariant": pl.String,
    "concurrency": pl.String,
}


def _setting(values: set[Any]) -> str:
    """One recorded setting over a model's runs: the value, ``unknown`` where none said, or each value."""
    shown = sorted("unknown" if v is None else str(v) for v in values)
    return ", ".join(shown)


def recheck_table(runs: pl.DataFrame) -> pl.DataFrame:
    """Per model and variant with rechecked items: how many, and the % whose raw output and parsed answer
    agreed when sent again (summed over its runs)."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for row in runs.select("model", "variant", "provenance_json").iter_rows(named=True):
        provenance = json.loads(row["provenance_json"] or "{}")
        checked = provenance.get("recheck")
        if not isinstance(checked, dict) or not checked.get("n"):
            continue
        entry = totals.setdefault(
            (row["model"], row["variant"] or "paper"),
            {"n": 0, "raw": 0, "parsed": 0, "prefix": set(), "invariant": set(), "concurrency": set()},
        )
        entry["n"] += int(checked["n"])
        entry["raw"] += int(checked["raw_agree"])
        entry["parsed"] += int(checked["parsed_agree"])
        entry["prefix"].add(provenance.get("prefix_caching"))
        entry["invariant"].add(provenance.get("vllm_batch_invariant"))
        entry["concurrency"].add(provenance.get("concurrency"))
    rows = [
        {
            "model": model,
            "variant": variant,
            "rechecked": e["n"],
            "raw_agree_pct": 100.0 * e["raw"] / e["n"],
            "parsed_agree_pct": 100.0 * e["parsed"] / e["n"],
            "prefix_caching": _setting(e["prefix"]),
            "vllm_batch_invariant": _setting(e["invariant"]),
            "concurrency": _setting(e["concurrency"]),
        }
        for (model, variant), e in sorted(totals.items())
    ]
    return pl.DataFrame(rows, schema=SCHEMA, orient="row") if rows else pl.DataFrame(schema=SCHEMA)
