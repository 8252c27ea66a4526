"""Read medsweep stores (``<out>/medsweep.sqlite``) read-only into polars DataFrames.

The store is in WAL mode and may be written while we read: each store is opened with
``file:...?mode=ro`` and its three tables are read inside one transaction, so they form one snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import DataError
from pipeline.store import DB_NAME as STORE_NAME
from pipeline.store import check_intact

RUNS_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "model": pl.String(),
    "variant": pl.String(),
    "started_at": pl.Float64(),
    "finished_at": pl.Float64(),
    "config_json": pl.String(),
    "provenance_json": pl.String(),
}
RESULTS_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String(),
    "run_id": pl.String(),
    "model": pl.String(),
    "variant": pl.String(),
    "task": pl.String(),
    "subtask": pl.String(),
    "item_id": pl.String(),
    "repeat": pl.Int64(),
    "prompt_hash": pl.String(),
    "request_json": pl.String(),
    "reference_json": pl.String(),
    "status": pl.String(),
    "error_class": pl.String(),
    "error_message": pl.String(),
    "output": pl.String(),
    "finish_reason": pl.String(),
    "prompt_tokens": pl.Int64(),
    "completion_tokens": pl.Int64(),
    "latency_s": pl.Float64(),
    "attempts": pl.Int64(),
    "updated_at": pl.Float64(),
}
SCORES_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String(),
    "model": pl.String(),
    "variant": pl.String(),
    "task": pl.String(),
    "subtask": pl.String(),
    "item_id": pl.String(),
    "repeat": pl.Int64(),
    "parsed_json": pl.String(),
    "strict_valid": pl.Int64(),
    "metrics_json": pl.String(),
}
_TABLES = {"runs": RUNS_SCHEMA, "results": RESULTS_SCHEMA, "scores": SCORES_SCHEMA}
ITEM_KEY = ("model", "variant", "task", "subtask", "item_id", "repeat")


@dataclass(frozen=True, slots=True)
class StoreData:
    """All stores read together; every frame has a ``store`` column (the sqlite file's path)."""

    stores: tuple[Path, ...]
    runs: pl.DataFrame
    results: pl.DataFrame
    scores: pl.DataFrame


def find_stores(outs: Sequence[Path]) -> list[Path]:
    """``DIR/medsweep.sqlite`` for each ``--out DIR``; a DIR without one may hold runs in sub-folders."""
    found: list[Path] = []
    for out in outs:
        direct = out / STORE_NAME
        if direct.is_file():
            found.append(direct)
            continue
        nested = sorted(p for p in out.glob(f"*/{STORE_NAME}") if p.is_file())
        if not nested:
            raise DataError(
                f"{out}: no {STORE_NAME} here or in its sub-folders; pass the --out of an eval run"
            )
        found.extend(nested)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def read_store(path: Path) -> dict[str, pl.DataFrame]:
    check_intact(path)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot open the store read-only ({exc})") from None
    try:
        con.execute("BEGIN")  # one snapshot of all tables while an eval may still be writing
        frames = {name: _read_table(con, path, name, schema) for name, schema in _TABLES.items()}
        con.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a readable medsweep store ({exc})") from None
    finally:
        con.close()
    return frames


def _read_table(
    con: sqlite3.Connection, path: Path, table: str, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    present = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
    if not present:
        raise DataError(
            f"{path}: table {table!r} is missing; is this a medsweep store (see docs/architecture.md)?"
        )
    missing = [col for col in schema if col not in present]
    if missing:
        raise DataError(
            f"{path}: table {table!r} lacks column(s) {', '.join(missing)}; the store is from an "
            "incompatible medsweep version"
        )
    rows = con.execute(f"SELECT {', '.join(schema)} FROM {table}").fetchall()
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(pl.lit(str(path)).alias("store"))


def load_stores(outs: Sequence[Path]) -> StoreData:
    """Read every store under ``outs``. Results of one item from two different stores are an error."""
    stores = find_stores(outs)
    parts = [read_store(p) for p in stores]
    runs = pl.concat([p["runs"] for p in parts], how="vertical")
    results = pl.concat([p["results"] for p in parts], how="vertical")
    scores = pl.concat([p["scores"] for p in parts], how="vertical")
    _refuse_overlap(results)
    results = results.with_columns(pl.col("subtask").fill_null(""), pl.col("variant").fill_null("paper"))
    scores = scores.with_columns(pl.col("subtask").fill_null(""), pl.col("variant").fill_null("paper"))
    return StoreData(stores=tuple(stores), runs=runs, results=results, scores=scores)


def _refuse_overlap(results: pl.DataFrame) -> None:
    per_store = results.select([*ITEM_KEY, "store"]).unique()
    clash = (
        per_store.group_by(list(ITEM_KEY))
        .agg(pl.col("store").unique().sort())
        .filter(pl.col("store").list.len() > 1)
    )
    if clash.height:
        row = clash.row(0, named=True)
        raise DataError(
            f"model {row['model']!r} ({row['variant']}) has results for the same items in {row['store'][0]} "
            f"and {row['store'][1]} ({clash.height} items); pass only one of those --out folders"
        )


def item_records(data: StoreData) -> pl.DataFrame:
    """One row per result (failed ones included) with its score, if scored: the per-item record."""
    scored = data.scores.select(
        "key", "store", "parsed_json", "strict_valid", "metrics_json", pl.lit(True).alias("scored")
    )
    return (
        data.results.join(scored, on=["key", "store"], how="left")
        .with_columns(pl.col("scored").fill_null(False))
        .sort(list(ITEM_KEY))
    )
