"""A store made before a column was added opens: read-only it reads the column as NULL, a writer adds it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.store import schema
from pipeline.store.database import Store, snapshot


def _old_store(out: Path) -> Path:
    """A store with the results table as it was before ``choice_logprobs``, holding one result."""
    Store.open(out).close()
    path = out / "medsweep.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE results DROP COLUMN choice_logprobs")
        old = [c for c in schema.RESULTS.names if c != "choice_logprobs"]
        values = ["k1", "r1", "m", "paper", "t", "", "i1", 0, "h", "{}", "null", "succeeded", None, None,
                  "out", "stop", 1, 1, 0.1, 1, 1.0]  # fmt: skip
        conn.execute(f"INSERT INTO results ({', '.join(old)}) VALUES ({','.join('?' * len(old))})", values)
    return path


def test_an_old_store_reads_null_and_a_writer_adds_the_column(tmp_path: Path) -> None:
    path = _old_store(tmp_path)
    rows = snapshot(path, [schema.RESULTS])["results"]
    assert rows[0][schema.RESULTS.names.index("choice_logprobs")] is None
    with sqlite3.connect(path) as conn:  # reading changed nothing
        assert "choice_logprobs" not in {r[1] for r in conn.execute("PRAGMA table_info(results)")}

    store = Store.open(tmp_path)
    try:
        record = schema.ResultRecord(
            key="k2", run_id="r2", model="m", variant="loglik", task="t", subtask="", item_id="i2", repeat=0,
            prompt_hash="h", request_json="{}", reference_json="null", status="succeeded", error_class=None,
            error_message=None, output="a", finish_reason=None, prompt_tokens=None, completion_tokens=None,
            latency_s=None, attempts=1, updated_at=2.0, choice_logprobs="[-1.5, -0.25]",
        )  # fmt: skip
        store.write_results([record])
        stored = {r["key"]: r["choice_logprobs"] for r in store.iter_results("m", "loglik", "t")}
        old = [r["output"] for r in store.iter_results("m", "paper", "t")]
    finally:
        store.close()
    assert stored == {"k2": "[-1.5, -0.25]"}
    assert old == ["out"]
    Store.open(tmp_path).close()  # a second open finds nothing to add
