"""Read medsweep stores (``<out>/medsweep.sqlite``) read-only into polars DataFrames.

The store is in WAL mode and may be written while we read: each store is opened with
``file:...?mode=ro`` and its three tables are read inside one transaction, so they form one snapshot
(``pipeline.store.database.snapshot``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import DataError
from pipeline.store import schema
from pipeline.store.database import DB_NAME as STORE_NAME
from pipeline.store.database import snapshot
from pipeline.store.layout import store_dirs
from pipeline.store.schema import polars_schema

# The tables the report reads; their columns and types come from the store's records (pipeline.store.schema).
_TABLES = (schema.RUNS, schema.RESULTS, schema.SCORES)
_SCHEMAS: dict[str, dict[str, pl.DataType]] = {t.name: polars_schema(t) for t in _TABLES}
ITEM_KEY = ("model", "variant", "task", "subtask", "item_id", "repeat")


@dataclass(frozen=True, slots=True)
class StoreData:
    """All stores read together; every frame has a ``store`` column (the sqlite file's path)."""

    stores: tuple[Path, ...]
    runs: pl.DataFrame
    results: pl.DataFrame
    scores: pl.DataFrame


def find_stores(outs: Sequence[Path]) -> list[Path]:
    """The stores of each ``--out DIR``: its own and its Slurm jobs' (pipeline/store/layout.py); a DIR with
    neither may hold runs in sub-folders."""
    found: list[Path] = []
    for out in outs:
        own = store_dirs(out)
        if own:
            found.extend(folder / STORE_NAME for folder in own)
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
    rows = snapshot(path, _TABLES)
    return {
        table.name: pl.DataFrame(rows[table.name], schema=_SCHEMAS[table.name], orient="row").with_columns(
            pl.lit(str(path)).alias("store")
        )
        for table in _TABLES
    }


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


def no_answer() -> pl.Expr:
    """``pipeline.store.schema.NO_ANSWER`` over the results frame: the budget ran out inside the trace."""
    return (pl.col("status") == "succeeded") & pl.col("output").is_null() & pl.col("reasoning").is_not_null()


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
