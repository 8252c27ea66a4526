"""Durability: resume without re-sending, keys independent of URL, secrets never written, status."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from pathlib import Path

from pipeline.commands.status import status_report
from pipeline.failures import FailureClass, is_transient
from pipeline.request import Request, Sampling, content_key
from pipeline.store import schema
from pipeline.store.database import Store
from pipeline.store.schema import ResultRecord
from tests.support.counting import CountingTask, eval_config, run_eval
from tests.support.paths import REPO_ROOT
from tests.support.servers import fake_server


def _statuses(out: Path) -> dict[str, str]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return dict(conn.execute("SELECT item_id, status FROM results"))


async def test_rerun_sends_nothing_that_succeeded(tmp_path: Path) -> None:
    with fake_server() as server:
        config = eval_config([server.base_url], tmp_path)
        first = await run_eval(config, CountingTask(30))
        second = await run_eval(config, CountingTask(30))
        stats = server.stats()
    assert (first.sent, second.sent, second.skipped) == (30, 0, 30)
    assert stats["received"] == 30
    assert all(n == 1 for n in stats["answered"].values())


async def test_failed_keys_are_retried_on_rerun_and_success_is_kept(tmp_path: Path) -> None:
    with fake_server("--status-always", "503") as bad:
        await run_eval(eval_config([bad.base_url], tmp_path, max_attempts=1), CountingTask(5))
    assert set(_statuses(tmp_path).values()) == {"failed"}
    with fake_server() as good:
        again = await run_eval(eval_config([good.base_url], tmp_path), CountingTask(5))
    assert again.sent == 5
    assert set(_statuses(tmp_path).values()) == {"succeeded"}
    with fake_server("--status-always", "503") as bad:
        third = await run_eval(eval_config([bad.base_url], tmp_path, max_attempts=1), CountingTask(5))
    assert third.sent == 0
    assert set(_statuses(tmp_path).values()) == {"succeeded"}


async def test_key_ignores_url_and_port(tmp_path: Path) -> None:
    with fake_server() as a:
        await run_eval(eval_config([a.base_url], tmp_path), CountingTask(10))
    with fake_server() as b:
        assert a.port != b.port
        again = await run_eval(eval_config([f"http://localhost:{b.port}"], tmp_path), CountingTask(10))
        assert b.stats()["received"] == 0
    assert again.sent == 0


def _req(content: str = "x", **extra: object) -> Request:
    messages = ({"role": "user", "content": content},)
    return Request(
        task="t", item_id="1", kind="chat", max_tokens=8, reference=None, messages=messages, **extra
    )  # type: ignore[arg-type]


def test_key_covers_model_prompt_sampling_and_schema() -> None:
    req = _req()
    base = content_key("m@main", req, Sampling())
    assert base == content_key("m@main", req, Sampling())
    assert base != content_key("m@other", req, Sampling())
    assert base != content_key("m@main", req, Sampling(seed=7))
    other_prompt = _req("y")
    assert base != content_key("m@main", other_prompt, Sampling())
    schema = _req(response_format={"type": "json_object"})
    assert base != content_key("m@main", schema, Sampling())


async def test_api_key_appears_in_no_file_the_run_writes(tmp_path: Path) -> None:
    secret = "sk-SENTINEL-4f1c2b9e"
    with fake_server("--api-key", secret) as server:
        await run_eval(eval_config([server.base_url], tmp_path), CountingTask(5), api_key=secret)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    assert set(_statuses(tmp_path).values()) == {"succeeded"}


async def test_results_are_private(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with fake_server() as server:
        await run_eval(eval_config([server.base_url], out), CountingTask(3))
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(out / "medsweep.sqlite").st_mode) == 0o600


async def test_an_existing_out_folder_keeps_its_mode_and_the_store_stays_private(tmp_path: Path) -> None:
    """A shared project folder (group-writable, setgid) is not locked to 0700 by an eval into it; the store
    files in it are 0600 all the same."""
    out = tmp_path / "project"
    out.mkdir()
    os.chmod(out, 0o2775)
    with fake_server("--hold") as server:
        task = asyncio.create_task(run_eval(eval_config([server.base_url], out), CountingTask(3)))
        await asyncio.to_thread(server.wait_held, 1)  # the store is open and written while requests wait
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.name.startswith("medsweep")
        }
        server.release()
        await task
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o2775
    assert modes and set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(os.stat(out / "medsweep.sqlite").st_mode) == 0o600


async def test_status_counts_while_and_after(tmp_path: Path) -> None:
    with fake_server("--status-always", "400") as server:
        await run_eval(eval_config([server.base_url], tmp_path), CountingTask(4, name="bad"))
    with fake_server() as server:
        await run_eval(eval_config([server.base_url], tmp_path), CountingTask(6, name="good"))
    report = status_report(tmp_path)
    assert (report["total"], report["succeeded"], report["failed"], report["pending"]) == (10, 6, 4, 0)
    assert report["failed_by_class"] == {"bad_request": 4}
    store = Store.open_readonly(tmp_path)
    assert store.integrity_ok()
    store.close()


async def test_parquet_export_reads_back_with_polars(tmp_path: Path) -> None:
    import polars as pl

    out = tmp_path / "out"
    with fake_server() as server:
        await run_eval(eval_config([server.base_url], out), CountingTask(4))
    store = Store.open(out)
    try:
        path = store.export_parquet(out / "results.parquet")
    finally:
        store.close()
    frame = pl.read_parquet(path)
    assert frame.height == 4
    assert set(frame["status"]) == {"succeeded"}
    assert {"key", "output", "prompt_hash", "metrics_json"} <= set(frame.columns)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _record(key: str, status: str, **outcome: object) -> ResultRecord:
    fields: dict[str, object] = {
        "key": key, "run_id": "r1", "model": "m@main", "variant": "paper", "task": "t", "subtask": "",
        "item_id": key, "repeat": 0, "prompt_hash": "h", "request_json": "{}", "reference_json": "null",
        "status": status, "error_class": None, "error_message": None, "output": None,
        "finish_reason": None, "prompt_tokens": None, "completion_tokens": None, "latency_s": None,
        "attempts": 1, "updated_at": 1.0,
    }  # fmt: skip
    return ResultRecord(**{**fields, **outcome})  # type: ignore[arg-type]


def _row(out: Path, key: str) -> dict[str, object]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute("SELECT * FROM results WHERE key = ?", (key,)).fetchone())


def test_a_later_failure_never_overwrites_a_succeeded_result(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        store.write_results([_record("k", "succeeded", output="entailment", attempts=2)])
        late = _record("k", "failed", run_id="r2", error_class="timeout", error_message="slow", attempts=3)
        store.write_results([late])
    finally:
        store.close()
    row = _row(tmp_path, "k")
    assert (row["status"], row["output"], row["run_id"], row["attempts"]) == (
        "succeeded",
        "entailment",
        "r1",
        2,
    )
    assert row["error_class"] is None


def test_a_retry_replaces_a_failure_and_adds_up_the_attempts(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        store.write_results([_record("k", "failed", error_class="server_error", attempts=3)])
        store.write_results([_record("k", "succeeded", run_id="r2", output="yes", attempts=1)])
        store.write_results([_record("k", "failed", run_id="r3", error_class="timeout", attempts=4)])
    finally:
        store.close()
    row = _row(tmp_path, "k")
    assert (row["status"], row["output"], row["run_id"], row["attempts"]) == ("succeeded", "yes", "r2", 4)
    assert row["error_class"] is None


def test_the_tables_are_the_records(tmp_path: Path) -> None:
    """The DDL, the report's polars schema and the records name the same columns in the same order."""
    from pipeline.report.load import read_store

    Store.open(tmp_path).close()
    with sqlite3.connect(tmp_path / "medsweep.sqlite") as conn:
        for table in schema.TABLES:
            columns = [(r[1], r[2], bool(r[3])) for r in conn.execute(f"PRAGMA table_info({table.name})")]
            assert [c[0] for c in columns] == list(table.record._fields)  # type: ignore[attr-defined]
            assert [not c.nullable for c in table.columns] == [
                notnull or name in table.primary_key for name, _, notnull in columns
            ]
    frames = read_store(tmp_path / "medsweep.sqlite")
    assert frames["results"].columns == [*ResultRecord._fields, "store"]


async def test_store_tallies(tmp_path: Path) -> None:
    with fake_server("--status-always", "400") as server:
        await run_eval(eval_config([server.base_url], tmp_path), CountingTask(4, name="bad"))
    with fake_server() as server:
        await run_eval(eval_config([server.base_url], tmp_path), CountingTask(6, name="good"))
    store = Store.open_readonly(tmp_path)
    try:
        everything, good = store.tally(), store.tally(tasks=["good"])
        (model,) = {m for m, _, _ in store.counts()}
        by_subtask = store.failed_by_subtask(model, "paper")
        tokens = store.token_totals(model, "paper", ["good"])
    finally:
        store.close()
    assert (everything.total, everything.succeeded, everything.failed) == (10, 6, 4)
    assert everything.failed_by_class == {"bad_request": 4}
    assert (good.total, good.failed) == (6, 0)
    assert by_subtask == {("bad", ""): 4}
    assert tokens[1] > 0


def test_failure_classes_say_whether_a_rerun_helps() -> None:
    must_fix = {c.value for c in FailureClass if not c.transient}
    assert must_fix == {"context_length", "auth", "not_found", "bad_request"}
    assert all(c.fix for c in FailureClass)
    assert is_transient("a class of a newer version") and FailureClass.parse("nope") is None


def test_the_documented_schema_names_every_column() -> None:
    """docs/architecture.md shows the tables; its column lists follow the records, in order."""
    import re

    docs = (REPO_ROOT / "docs" / "architecture.md").read_text()
    block = docs.split("```sql", 1)[1].split("```", 1)[0]
    for table in schema.TABLES:
        body = re.search(rf"^{table.name}\((.*?)\)$", block, re.S | re.M)
        assert body is not None, table.name
        documented = re.findall(r"(\w+) (?:TEXT|INTEGER|REAL)\b", body.group(1))
        assert documented == list(table.names), table.name
