"""The store of record: one SQLite database (WAL) per ``--out`` directory.

Results are keyed by content key (see ``pipeline.request.content_key``). A succeeded result is never
overwritten by a later failure, so a rerun resumes: succeeded keys are skipped, failed keys are retried.
The directory is 0700 and the files 0600: outputs and references can hold credentialed patient text.

Every command opens its store here, and SQLite's "the file is damaged" and "the disk is full" become one
``error:`` line that names the file and what to do (see docs/reliability.md). A damaged file is found
read-only, before anything is written to it, and is never changed.
"""

from __future__ import annotations

import io
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import DataError, MedsweepError
from pipeline.files import open_private, private_dir, write_private
from pipeline.store import schema
from pipeline.store.lock import Holder, store_lock
from pipeline.store.schema import PlanRecord, ResultRecord, RunRecord, ScoreRecord

DB_NAME = "medsweep.sqlite"
_SQLITE_MAGIC = b"SQLite format 3\x00"

# What scoring reads of a result: not the request body (``request_json``, the largest column by far).
SCORING_COLUMNS = (
    "key", "subtask", "item_id", "repeat", "output", "reference_json", "choice_logprobs",
    "reasoning IS NOT NULL AS traced", "reasoning_tokens",  # the no-answers and trace lengths, not the traces
    # --variant loglik: the options' labels and texts from the request (not its bodies, which are large)
    "json_extract(request_json, '$.labels') AS choice_labels",
    "json_extract(request_json, '$.continuations') AS choice_texts",
)  # fmt: skip
# The tables are generated from their records (pipeline.store.schema); the index serves status and scoring.
_SCHEMA = "\n".join(
    [
        *(schema.create_table(t) for t in schema.TABLES),
        "CREATE INDEX IF NOT EXISTS results_by_model_task ON results (model, variant, task, status);",
    ]
)
# The store's one guarantee for resuming: a later outcome never overwrites a succeeded result (the WHERE).
_UPSERT = schema.upsert(
    schema.RESULTS, keep=schema.RESULT_IDENTITY, add=("attempts",), where="results.status != 'succeeded'"
)
_INSERT_SCORE = schema.insert(schema.SCORES, replace=True)


@dataclass(frozen=True, slots=True)
class Counts:
    total: int
    succeeded: int
    failed: int
    failed_by_class: dict[str, int]
    no_answer: int = 0  # of the succeeded: the budget ran out inside the trace (schema.NO_ANSWER)

    @property
    def pending(self) -> int:
        return max(self.total - self.succeeded - self.failed, 0)

    def plus(self, other: Counts) -> Counts:
        """Both counts together (e.g. of the stores of a directory)."""
        by_class = dict(self.failed_by_class)
        for cls, n in other.failed_by_class.items():
            by_class[cls] = by_class.get(cls, 0) + n
        return Counts(
            self.total + other.total, self.succeeded + other.succeeded, self.failed + other.failed, by_class,
            self.no_answer + other.no_answer,
        )  # fmt: skip


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


def snapshot(path: Path, tables: Sequence[schema.Table]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` (their record's columns, in order) from the store file ``path``, read-only
    and in one transaction, so that they agree while an eval is still writing (the report reads this)."""
    check_intact(path)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot open the store read-only ({exc})") from None
    try:
        con.execute("BEGIN")  # one snapshot of all tables while an eval may still be writing
        rows = {table.name: _read_table(con, path, table) for table in tables}
        con.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a readable medsweep store ({exc})") from None
    finally:
        con.close()
    return rows


def _read_table(con: sqlite3.Connection, path: Path, table: schema.Table) -> list[tuple[Any, ...]]:
    present = {row[1] for row in con.execute(f"PRAGMA table_info({table.name})")}
    if not present:
        raise DataError(
            f"{path}: table {table.name!r} is missing; is this a medsweep store (see docs/architecture.md)?"
        )
    missing = [c.name for c in table.columns if c.name not in present and not c.nullable]
    if missing:
        raise DataError(
            f"{path}: table {table.name!r} lacks column(s) {', '.join(missing)}; the store is from an "
            "incompatible medsweep version"
        )
    # A column added since the store was made (schema.add_columns) reads NULL until a writer migrates it.
    columns = [c.name if c.name in present else f"NULL AS {c.name}" for c in table.columns]
    return con.execute(f"SELECT {', '.join(columns)} FROM {table.name}").fetchall()


def _migrate(conn: sqlite3.Connection) -> None:
    """Add the columns that newer records have to a store made by an older medsweep. Checked again inside
    a write transaction: two processes opening one old store add each column once."""

    def statements() -> list[str]:
        return [
            sql
            for table in schema.TABLES
            for sql in schema.add_columns(
                table, {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")}
            )
        ]

    if not statements():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql in statements():
            conn.execute(sql)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Store:
    """Read-write access for one eval process (the writer) or read-only access for status and reports."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, out_dir: Path) -> Store:
        # A new --out is made 0700; an existing one keeps its mode (a shared project folder stays shared):
        # the store's files are 0600 whatever the folder's mode.
        private_dir(out_dir)
        path = db_path(out_dir)
        check_intact(path)
        if not path.exists():
            try:
                os.close(open_private(path, os.O_WRONLY))
            except OSError as exc:
                raise MedsweepError(f"cannot create {path}: {exc.strerror}; check --out") from None
        conn = _connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives a power loss, not only a process crash. Commits are batched, so the
        # fsync per commit is cheap relative to the requests it covers.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.executescript(_SCHEMA)
        _migrate(conn)
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
        """One writer per (store, model, variant); see ``pipeline.store.lock``."""
        return store_lock(self.path, model, variant)

    # --- runs and plans ---

    def begin_run(
        self, run_id: str, model: str, variant: str, config: dict[str, Any], provenance: dict[str, Any]
    ) -> None:
        record = RunRecord(
            run_id=run_id, model=model, variant=variant, started_at=time.time(), finished_at=None,
            config_json=_dumps(config), provenance_json=_dumps(provenance),
        )  # fmt: skip
        self.conn.execute(schema.insert(schema.RUNS), record)

    def add_provenance(self, run_id: str, extra: dict[str, Any]) -> None:
        """Merge ``extra`` into a run's provenance (what is learnt after it began: the recheck)."""
        row = self.conn.execute("SELECT provenance_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        merged = {**(orjson.loads(row[0]) if row else {}), **extra}
        self.conn.execute("UPDATE runs SET provenance_json = ? WHERE run_id = ?", (_dumps(merged), run_id))

    def stored_answers(self, keys: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        """key -> (output, choice_logprobs) of succeeded results."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for key in keys:
            row = self.conn.execute(
                "SELECT output, choice_logprobs FROM results WHERE key = ? AND status = 'succeeded'", (key,)
            ).fetchone()
            if row is not None:
                out[key] = (row[0], row[1])
        return out

    def finish_run(self, run_id: str) -> None:
        self.conn.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", (time.time(), run_id))

    def set_plan(self, model: str, variant: str, task: str, total: int, run_id: str) -> None:
        record = PlanRecord(model=model, variant=variant, task=task, total=total, run_id=run_id)
        self.conn.execute(schema.upsert(schema.PLAN, keep=()), record)

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

    def write_results(self, rows: Iterable[ResultRecord]) -> None:
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

    def result_batches(
        self, model: str, variant: str, task: str, size: int, status: str = "succeeded"
    ) -> Iterator[list[sqlite3.Row]]:
        """The ``status`` results of one task, ``size`` rows at a time, in scoring order (sub-task, item,
        repeat) and with only ``SCORING_COLUMNS``: scoring a run of any size holds one batch, never the
        requests. The caller may write (its scores) between batches."""
        cur = self.conn.execute(
            f"SELECT {', '.join(SCORING_COLUMNS)} FROM results "
            "WHERE model = ? AND variant = ? AND task = ? AND status = ? ORDER BY subtask, item_id, repeat",
            (model, variant, task, status),
        )
        cur.row_factory = sqlite3.Row
        while rows := cur.fetchmany(size):
            yield rows

    def write_scores(self, rows: Iterable[ScoreRecord]) -> None:
        with self._transaction():
            self.conn.executemany(_INSERT_SCORE, rows)

    # --- status ---

    def counts(self) -> dict[tuple[str, str, str], Counts]:
        """Per (model, variant, task): planned total, succeeded, failed (by class)."""
        out: dict[tuple[str, str, str], Counts] = {}
        totals = {
            (m, v, t): n for m, v, t, n in self.conn.execute("SELECT model, variant, task, total FROM plan")
        }
        done: dict[tuple[str, str, str], list[int]] = {}
        by_class: dict[tuple[str, str, str], dict[str, int]] = {}
        # Two queries, not one grouped by error_class too: this one reads the index alone (it covers the
        # columns), the next visits the rows of failed results only (10x faster on a study's store).
        for m, v, t, status, n in self.conn.execute(
            "SELECT model, variant, task, status, COUNT(*) FROM results GROUP BY model, variant, task, status"
        ):
            pair = done.setdefault((m, v, t), [0, 0, 0])
            pair[0 if status == "succeeded" else 1] += n
        for m, v, t, cls, n in self.conn.execute(
            "SELECT model, variant, task, COALESCE(error_class, ''), COUNT(*) FROM results "
            "WHERE status != 'succeeded' GROUP BY model, variant, task, error_class"
        ):
            classes = by_class.setdefault((m, v, t), {})
            classes[cls] = classes.get(cls, 0) + n
        # No-answers visit only the rows with a trace (none at all for a model that does not reason); a store
        # read-only from before the reasoning column has none (nothing migrated it yet).
        if "reasoning" in self._columns("results"):
            for m, v, t, n in self.conn.execute(
                f"SELECT model, variant, task, COUNT(*) FROM results WHERE {schema.NO_ANSWER} "
                "GROUP BY model, variant, task"
            ):
                done.setdefault((m, v, t), [0, 0, 0])[2] += n
        for key in sorted(set(totals) | set(done)):
            s, f, na = done.get(key, [0, 0, 0])
            out[key] = Counts(max(totals.get(key, 0), s + f), s, f, by_class.get(key, {}), na)
        return out

    def tally(
        self, model: str | None = None, variant: str | None = None, tasks: Sequence[str] = ()
    ) -> Counts:
        """``counts()`` summed over the (model, variant, task)s that match (all of them by default; every
        task of the model when ``tasks`` is empty)."""
        total = succeeded = failed = no_answer = 0
        by_class: dict[str, int] = {}
        for (m, v, t), c in self.counts().items():
            if (model is not None and m != model) or (variant is not None and v != variant):
                continue
            if tasks and t not in tasks:
                continue
            total, succeeded, failed = total + c.total, succeeded + c.succeeded, failed + c.failed
            no_answer += c.no_answer
            for cls, n in c.failed_by_class.items():
                by_class[cls] = by_class.get(cls, 0) + n
        return Counts(total, succeeded, failed, by_class, no_answer)

    def failed_by_subtask(self, model: str, variant: str) -> dict[tuple[str, str], int]:
        """Failed results of ``model`` per (task, subtask): what the eval summary lists beside the scores."""
        cur = self.conn.execute(
            "SELECT task, subtask, COUNT(*) FROM results "
            "WHERE model = ? AND variant = ? AND status = 'failed' GROUP BY task, subtask",
            (model, variant),
        )
        return {(t, s): n for t, s, n in cur}

    def token_totals(self, model: str, variant: str, tasks: Sequence[str] = ()) -> tuple[int, int]:
        """Prompt and completion tokens of ``model``'s succeeded results (on ``tasks``; all when empty)."""
        sql = (
            "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) FROM results "
            "WHERE model = ? AND variant = ? AND status = 'succeeded'"
        )
        if tasks:
            sql += f" AND task IN ({','.join('?' * len(tasks))})"
        row = self.conn.execute(sql, (model, variant, *tasks)).fetchone()
        return int(row[0]), int(row[1])

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}

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
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        private_dir(dest.parent)
        return write_private(dest, buffer.getvalue())

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
