"""A store made before a column was added opens: read-only it reads the column as NULL, a writer adds it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.store import schema
from pipeline.store.database import Store, snapshot

# The results columns added since the first stores (each migrated in by Store.open).
_ADDED = ("choice_logprobs", "reasoning", "reasoning_tokens")


def _old_store(out: Path) -> Path:
    """A store with the results table as it was before the columns of ``_ADDED``, holding one result."""
    Store.open(out).close()
    path = out / "medsweep.sqlite"
    with sqlite3.connect(path) as conn:
        for column in _ADDED:
            conn.execute(f"ALTER TABLE results DROP COLUMN {column}")
        old = [c for c in schema.RESULTS.names if c not in _ADDED]
        values = ["k1", "r1", "m", "paper", "t", "", "i1", 0, "h", "{}", "null", "succeeded", None, None,
                  "out", "stop", 1, 1, 0.1, 1, 1.0]  # fmt: skip
        conn.execute(f"INSERT INTO results ({', '.join(old)}) VALUES ({','.join('?' * len(old))})", values)
    return path


def test_an_old_store_reads_null_and_a_writer_adds_the_column(tmp_path: Path) -> None:
    path = _old_store(tmp_path)
    rows = snapshot(path, [schema.RESULTS])["results"]
    assert all(rows[0][schema.RESULTS.names.index(c)] is None for c in _ADDED)
    with sqlite3.connect(path) as conn:  # reading changed nothing
        assert not set(_ADDED) & {r[1] for r in conn.execute("PRAGMA table_info(results)")}
    readonly = Store.open_readonly(tmp_path)  # status reads an old store: no column, no no-answers
    try:
        assert readonly.tally().no_answer == 0 and readonly.tally().succeeded == 1
    finally:
        readonly.close()

    store = Store.open(tmp_path)
    try:
        record = schema.ResultRecord(
            key="k2", run_id="r2", model="m", variant="loglik", task="t", subtask="", item_id="i2", repeat=0,
            prompt_hash="h", request_json="{}", reference_json="null", status="succeeded", error_class=None,
            error_message=None, output="a", finish_reason=None, prompt_tokens=None, completion_tokens=None,
            latency_s=None, attempts=1, updated_at=2.0, choice_logprobs="[-1.5, -0.25]",
        )  # fmt: skip
        store.write_results([record])
        traced = record._replace(
            key="k3", item_id="i3", output=None, reasoning="all trace", reasoning_tokens=7
        )
        store.write_results([traced])
        assert store.tally(variant="loglik").no_answer == 1
        stored = {
            r["key"]: r["choice_logprobs"] for r in store.iter_results("m", "loglik", "t") if r["key"] == "k2"
        }
        old = [r["output"] for r in store.iter_results("m", "paper", "t")]
    finally:
        store.close()
    assert stored == {"k2": "[-1.5, -0.25]"}
    assert old == ["out"]
    Store.open(tmp_path).close()  # a second open finds nothing to add
