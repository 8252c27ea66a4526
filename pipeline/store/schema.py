"""The store's tables, each written once as a typed record: ``pipeline.store.database`` generates the DDL and
the
upsert from these, the runner and the scorer build them by name, and the report reads its polars schema
from them (``polars_schema``). docs/architecture.md shows the resulting SQL.

A field typed ``X | None`` is a nullable column, any other is ``NOT NULL``; a ``Literal`` field is checked
against its values. The first field is the primary key unless the table names a composite one.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, NamedTuple, Union

ResultStatus = Literal["succeeded", "failed"]


class RunRecord(NamedTuple):
    """One ``medsweep eval`` invocation (``runs``)."""

    run_id: str
    model: str
    variant: str
    started_at: float
    finished_at: float | None
    config_json: str
    provenance_json: str


class PlanRecord(NamedTuple):
    """How many requests a run planned for one task (``plan``): the totals that status and ETAs use."""

    model: str
    variant: str
    task: str
    total: int
    run_id: str


class ResultRecord(NamedTuple):
    """The final outcome of one request (``results``), keyed by its content key. A NamedTuple is the row
    SQLite binds, so the eval loop pays nothing for the names."""

    key: str
    run_id: str
    model: str
    variant: str
    task: str
    subtask: str
    item_id: str
    repeat: int
    prompt_hash: str
    request_json: str
    reference_json: str
    status: ResultStatus
    error_class: str | None
    error_message: str | None
    output: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    attempts: int | None
    updated_at: float
    # --variant loglik: each answer option's summed log-probability, a JSON list aligned with the options
    # (request_json names them); NULL for generated answers. Added after the first stores: migrated in.
    choice_logprobs: str | None = None
    # A reasoning model's trace, stored apart from its answer (``output`` holds only the final answer, and
    # is NULL when the token budget ran out inside the trace: a no-answer, ``NO_ANSWER``); its length in
    # tokens where the server reports it. NULL for replies without a trace. Migrated into older stores.
    reasoning: str | None = None
    reasoning_tokens: int | None = None


# A succeeded result without an answer (the budget ran out inside the trace; docs/reasoning.md): in the
# paper's metrics a wrong answer, never retried, never a failure. The one definition (SQL; the report's polars
# filter is ``pipeline.report.load.no_answer``).
NO_ANSWER = "(status = 'succeeded' AND output IS NULL AND reasoning IS NOT NULL)"


def is_no_answer(status: str, output: str | None, reasoning: str | None) -> bool:
    """``NO_ANSWER`` for one row read into Python."""
    return status == "succeeded" and output is None and reasoning is not None


# What the content key determines: a later attempt at the same key keeps these and replaces the rest
# (``attempts`` add up).
RESULT_IDENTITY: tuple[str, ...] = (
    "key", "model", "variant", "task", "subtask", "item_id", "repeat", "prompt_hash", "request_json",
    "reference_json",
)  # fmt: skip


class ScoreRecord(NamedTuple):
    """The score of one succeeded result (``scores``), keyed like it."""

    key: str
    model: str
    variant: str
    task: str
    subtask: str
    item_id: str
    repeat: int
    parsed_json: str | None
    strict_valid: int
    metrics_json: str


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: type  # str, int or float
    nullable: bool
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    record: type[tuple[Any, ...]]
    primary_key: tuple[str, ...]

    @property
    def columns(self) -> tuple[Column, ...]:
        return _columns(self.record)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


RUNS = Table("runs", RunRecord, ("run_id",))
PLAN = Table("plan", PlanRecord, ("model", "variant", "task"))
RESULTS = Table("results", ResultRecord, ("key",))
SCORES = Table("scores", ScoreRecord, ("key",))
TABLES: tuple[Table, ...] = (RUNS, PLAN, RESULTS, SCORES)

_SQL_TYPES: dict[type, str] = {str: "TEXT", int: "INTEGER", float: "REAL"}


@cache
def _columns(record: type[tuple[Any, ...]]) -> tuple[Column, ...]:
    hints = typing.get_type_hints(record)
    return tuple(_column(name, hints[name]) for name in record._fields)  # type: ignore[attr-defined]


def _column(name: str, hint: Any) -> Column:
    nullable = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable, hint = True, args[0]
    if typing.get_origin(hint) is Literal:
        return Column(name, str, nullable, tuple(str(v) for v in typing.get_args(hint)))
    if hint not in _SQL_TYPES:
        raise TypeError(f"{name}: a store column is str, int or float (or Optional / Literal of str)")
    return Column(name, hint, nullable)


def create_table(table: Table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for ``table``."""
    parts = []
    single = len(table.primary_key) == 1
    for column in table.columns:
        sql = f"{column.name} {_SQL_TYPES[column.type]}"
        if single and column.name == table.primary_key[0]:
            sql += " PRIMARY KEY"
        elif not column.nullable:
            sql += " NOT NULL"
        if column.choices:
            sql += f" CHECK ({column.name} IN ({', '.join(repr(c) for c in column.choices)}))"
        parts.append(sql)
    if not single:
        parts.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(parts)});"


def insert(table: Table, *, replace: bool = False) -> str:
    """Insert a whole record (``replace``: over the row with its primary key). The columns are named: a
    migrated store has its added columns last, in the order they were added, not the record's."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    return (
        f"{verb} INTO {table.name} ({', '.join(table.names)}) VALUES ({','.join('?' * len(table.columns))})"
    )


def add_columns(table: Table, present: Collection[str]) -> list[str]:
    """``ALTER TABLE`` statements adding the record's columns that a store made by an older medsweep lacks.
    Only nullable columns can be added (old rows read NULL); a missing ``NOT NULL`` one is an error."""
    statements = []
    for column in table.columns:
        if column.name in present:
            continue
        if not column.nullable:
            raise ValueError(f"{table.name}.{column.name} is NOT NULL: it cannot be added to an old store")
        statements.append(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {_SQL_TYPES[column.type]}")
    return statements


def upsert(table: Table, keep: Sequence[str], add: Sequence[str] = (), where: str = "") -> str:
    """Insert, or on a primary-key conflict replace every column except ``keep`` (``add``: sum instead),
    only where ``where`` holds for the stored row."""
    sets = [
        f"{c} = {table.name}.{c} + excluded.{c}" if c in add else f"{c} = excluded.{c}"
        for c in table.names
        if c not in keep and c not in table.primary_key
    ]
    sql = f"{insert(table)} ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET {', '.join(sets)}"
    return f"{sql} WHERE {where}" if where else sql


def polars_schema(table: Table) -> dict[str, Any]:
    """``{column: polars dtype}`` for reading ``table`` into a DataFrame (the report)."""
    import polars as pl

    dtypes = {str: pl.String, int: pl.Int64, float: pl.Float64}
    return {c.name: dtypes[c.type]() for c in table.columns}
