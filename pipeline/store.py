"""The store of record: one SQLite database (WAL) per ``--out`` directory.

Results are keyed by content key (see ``pipeline.request.content_key``). A succeeded result is never
overwritten by a later failure, so a rerun resumes: succeeded keys are skipped, failed keys are retried.
The directory is 0700 and the files 0600: outputs and references can hold credentialed patient text.

Every command opens its store here, and SQLite's "the file is damaged" and "the disk is full" become one
``error:`` line that names the file and what to do (see docs/reliability.md). A damaged file is found
read-only, before anything is written to it, and is never changed.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import DataError, MedsweepError
from pipeline.storelock import Holder, store_lock

DB_NAME = "medsweep.sqlite"
_SQLITE_MAGIC = b"SQLite format 3\x00"

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


class StoreDamagedError(DataError):
    """The store file is not a readable SQLite database; it is left exactly as it is."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"{path} is damaged ({detail}); medsweep did not change it: restore it from a backup, or recover "
            f'its readable rows with `sqlite3 {path} ".recover" | sqlite3 {path}.recovered` and move '
            f"{path.name}.recovered in its place"
        )


class StoreFullError(MedsweepError):
    """A write to the store failed for lack of space; what was committed before is intact."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"cannot write to {path}: the disk is full ({detail}); what was committed before is intact: free "
            f"space, or copy {path.parent} to a disk with room and rerun with --out there (only what is not "
            "committed is sent)"
        )


def check_intact(path: Path) -> None:
    """Raise ``StoreDamagedError`` if ``path`` exists and is not a sound SQLite database. Read-only."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return  # a new store: SQLite treats an empty file as an empty database
    with path.open("rb") as handle:
        if handle.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            raise StoreDamagedError(path, "not an SQLite database: its header is wrong")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        if _is_damage(exc):
            raise StoreDamagedError(path, str(exc)) from None
        raise
    finally:
        conn.close()
    if problems != ["ok"]:
        raise StoreDamagedError(path, f"{len(problems)} problem(s), first: {problems[0]}")


def _is_damage(exc: sqlite3.Error) -> bool:
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _user_error(exc: sqlite3.Error, path: Path) -> MedsweepError | None:
    """The one-line error for a damaged store or a full disk; ``None`` for anything else."""
    if _is_damage(exc):
        return StoreDamagedError(path, str(exc))
    if ((getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF) == sqlite3.SQLITE_FULL:
        return StoreFullError(path, str(exc))
    return None


class _Connection(sqlite3.Connection):
    """A connection whose damaged-file and disk-full errors are the user-facing ones above."""

    store_path: Path = Path(DB_NAME)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise _user_error(exc, self.store_path) or exc from None

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as exc:
            raise _user_error(exc, self.store_path) or exc from None

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(sql_script)
        except sqlite3.Error as exc:
            raise _user_error(exc, self.store_path) or exc from None


def _connect(path: Path, uri: str | None = None) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            uri or path, uri=uri is not None, isolation_level=None, check_same_thread=False,
            factory=_Connection,
        )  # fmt: skip
    except sqlite3.Error as exc:
        raise _user_error(exc, path) or exc from None
    conn.store_path = path
    return conn


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
        check_intact(path)
        if not path.exists():
            try:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as exc:
                raise MedsweepError(f"cannot create {path}: {exc.strerror}; check --out") from None
        conn = _connect(path)
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
            raise MedsweepError(
                f"no results in {out_dir}: {path} does not exist (run `medsweep eval --out {out_dir}`)"
            )
        check_intact(path)
        conn = _connect(path, f"{path.resolve().as_uri()}?mode=ro")
        conn.execute("PRAGMA busy_timeout=10000")
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    def lock(self, model: str, variant: str) -> AbstractContextManager[Holder]:
        """One writer per (store, model, variant); see ``pipeline.storelock``."""
        return store_lock(self.path, model, variant)

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
        if not exc_type:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:  # SQLite rolls some failures (a full disk) back by itself
            self.conn.execute("ROLLBACK")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
