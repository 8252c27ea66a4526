"""The store of record: one SQLite database (WAL) per ``--out`` directory.

Results are keyed by content key (see ``pipeline.request.content_key``). A succeeded result is never
overwritten by a later failure, so a rerun resumes: succeeded keys are skipped, failed keys are retried.
The directory is 0700 and the files 0600: outputs and references can hold credentialed patient text.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

DB_NAME = "medsweep.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, model TEXT NOT NULL, variant TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, config_json TEXT NOT NULL, provenance_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plan (
    model TEXT NOT NULL, variant TEXT NOT NULL, task TEXT NOT NULL, total INTEGER NOT NULL,
    run_id TEXT NOT NULL, PRIMARY KEY (model, variant, task)
);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, model TEXT NOT NULL, variant TEXT NOT NULL,
    task TEXT NOT NULL, subtask TEXT NOT NULL, item_id TEXT NOT NULL, repeat INTEGER NOT NULL,
    prompt_hash TEXT NOT NULL, request_json TEXT NOT NULL, reference_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    error_class TEXT, error_message TEXT, output TEXT, finish_reason TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, latency_s REAL, attempts INTEGER,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_model_task ON results (model, variant, task, status);
CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, variant TEXT NOT NULL, task TEXT NOT NULL,
    subtask TEXT NOT NULL, item_id TEXT NOT NULL, repeat INTEGER NOT NULL,
    parsed_json TEXT, strict_valid INTEGER NOT NULL, metrics_json TEXT NOT NULL
);
"""

_UPSERT = """
INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (key) DO UPDATE SET
    run_id = excluded.run_id, status = excluded.status, error_class = excluded.error_class,
    error_message = excluded.error_message, output = excluded.output,
    finish_reason = excluded.finish_reason, prompt_tokens = excluded.prompt_tokens,
    completion_tokens = excluded.completion_tokens, latency_s = excluded.latency_s,
    attempts = results.attempts + excluded.attempts, updated_at = excluded.updated_at
WHERE results.status != 'succeeded'
"""

ResultRow = tuple[Any, ...]
"""A row of ``results`` in column order (see ``_SCHEMA``)."""


@dataclass(frozen=True, slots=True)
class Counts:
    total: int
    succeeded: int
    failed: int
    failed_by_class: dict[str, int]

    @property
    def pending(self) -> int:
        return max(self.total - self.succeeded - self.failed, 0)


def db_path(out_dir: Path) -> Path:
    return out_dir / DB_NAME


class Store:
    """Read-write access for one eval process (the writer) or read-only access for status and reports."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, out_dir: Path) -> Store:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(out_dir, 0o700)
        path = db_path(out_dir)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives a power loss, not only a process crash. Commits are batched, so the
        # fsync per commit is cheap relative to the requests it covers.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.executescript(_SCHEMA)
        return cls(conn, path)

    @classmethod
    def open_readonly(cls, out_dir: Path) -> Store:
        path = db_path(out_dir)
        if not path.exists():
            from pipeline.errors import MedsweepError

            raise MedsweepError(
                f"no results in {out_dir}: {path} does not exist (run `medsweep eval --out {out_dir}`)"
            )
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    # --- runs and plans ---

    def begin_run(
        self, run_id: str, model: str, variant: str, config: dict[str, Any], provenance: dict[str, Any]
    ) -> None:
        self.conn.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?)",
            (run_id, model, variant, time.time(), None, _dumps(config), _dumps(provenance)),
        )

    def finish_run(self, run_id: str) -> None:
        self.conn.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", (time.time(), run_id))

    def set_plan(self, model: str, variant: str, task: str, total: int, run_id: str) -> None:
        self.conn.execute(
            "INSERT INTO plan VALUES (?,?,?,?,?) ON CONFLICT (model, variant, task) DO UPDATE SET "
            "total = excluded.total, run_id = excluded.run_id",
            (model, variant, task, total, run_id),
        )

    def runs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY started_at")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    # --- results ---

    def succeeded_keys(self, model: str, variant: str) -> set[str]:
        cur = self.conn.execute(
            "SELECT key FROM results WHERE model = ? AND variant = ? AND status = 'succeeded'",
            (model, variant),
        )
        return {row[0] for row in cur}

    def write_results(self, rows: Iterable[ResultRow]) -> None:
        """Commit a batch of results in one transaction."""
        with self._transaction():
            self.conn.executemany(_UPSERT, rows)

    def iter_results(
        self, model: str, variant: str, task: str, status: str = "succeeded"
    ) -> Iterator[sqlite3.Row]:
        self.conn.row_factory = sqlite3.Row
        try:
            yield from self.conn.execute(
                "SELECT * FROM results WHERE model = ? AND variant = ? AND task = ? AND status = ? "
                "ORDER BY subtask, item_id, repeat",
                (model, variant, task, status),
            )
        finally:
            self.conn.row_factory = None

    def write_scores(self, rows: Iterable[tuple[Any, ...]]) -> None:
        with self._transaction():
            self.conn.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    # --- status ---

    def counts(self) -> dict[tuple[str, str, str], Counts]:
        """Per (model, variant, task): planned total, succeeded, failed (by class)."""
        out: dict[tuple[str, str, str], Counts] = {}
        totals = {
            (m, v, t): n for m, v, t, n in self.conn.execute("SELECT model, variant, task, total FROM plan")
        }
        done: dict[tuple[str, str, str], list[int]] = {}
        by_class: dict[tuple[str, str, str], dict[str, int]] = {}
        for m, v, t, status, cls, n in self.conn.execute(
            "SELECT model, variant, task, status, COALESCE(error_class, ''), COUNT(*) FROM results "
            "GROUP BY model, variant, task, status, error_class"
        ):
            key = (m, v, t)
            pair = done.setdefault(key, [0, 0])
            if status == "succeeded":
                pair[0] += n
            else:
                pair[1] += n
                by_class.setdefault(key, {})[cls] = by_class.get(key, {}).get(cls, 0) + n
        for key in sorted(set(totals) | set(done)):
            s, f = done.get(key, [0, 0])
            out[key] = Counts(max(totals.get(key, 0), s + f), s, f, by_class.get(key, {}))
        return out

    def integrity_ok(self) -> bool:
        return bool(self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # --- export ---

    def export_parquet(self, dest: Path) -> Path:
        """Write results joined with scores to Parquet for polars (outputs included: keep it private)."""
        import polars as pl

        cur = self.conn.execute(
            "SELECT r.*, s.parsed_json, s.strict_valid, s.metrics_json FROM results r "
            "LEFT JOIN scores s ON s.key = r.key"
        )
        names = [d[0] for d in cur.description]
        frame = pl.DataFrame(cur.fetchall(), schema=names, orient="row", infer_schema_length=None)
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        frame.write_parquet(dest)
        os.chmod(dest, 0o600)
        return dest

    def _transaction(self) -> _Tx:
        return _Tx(self.conn)


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
