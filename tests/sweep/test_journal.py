"""The sweep journal's typed events: old journals still read; a renamed key fails loudly, never as a 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.sweep.journal import JOURNAL_NAME, Journal, ModelDone, ModelStart, ServerStarted, ServerStopped

# Lines as the journal was written before its events were typed (a local sweep's, then a Slurm sweep's).
_OLD = b"""\
{"t":1796291306.879,"model":"m","event":"model_start","gpus":[1],"port":30913}
{"t":1796291306.909,"model":"m","event":"server_started","gpus":[1],"port":30913,"container_id":null,"pid":26458,"log_path":"/x/m.server.log"}
{"t":1796291308.121,"model":"m","event":"healthy","url":"http://127.0.0.1:30913"}
{"t":1796291314.068,"model":"m","event":"eval_done","eval_pass":1,"identity":"m@main","sent":6,"interrupted":false}
{"t":1796291314.337,"model":"m","event":"model_done","status":"done","identity":"m@main","tasks":["mednli"],"settings":{"limit":3},"restarts":0,"sent":6,"wall_s":7.5,"error":""}
{"t":1796291315.0,"model":"k","event":"server_started","gpus":[0],"port":30914,"container_id":"abc","pid":null,"log_path":null}
{"t":1796291316.0,"model":"f","event":"model_done","status":"failed","error":"RuntimeError('boom')"}
{"t":1796291317.0,"model":"m","event":"job_submitted","job_id":"3","job_name":"medsweep-plan-m","nodes":1,"gpus_per_node":1,"tp":1,"pp":1,"adopted":false}
{"t":1796291318.0,"model":"m","event":"model_do
"""


def _journal(tmp_path: Path, text: bytes) -> Journal:
    (tmp_path / JOURNAL_NAME).write_bytes(text)
    return Journal(tmp_path)


def test_an_old_journal_reads_into_the_records(tmp_path: Path) -> None:
    journal = _journal(tmp_path, _OLD)
    done = journal.finished()
    assert list(done) == ["m"]
    assert done["m"] == ModelDone(
        model="m", status="done", identity="m@main", tasks=["mednli"], settings={"limit": 3}, sent=6,
        wall_s=7.5, t=1796291314.337,
    )  # fmt: skip
    assert [(s.model, s.port, s.pid, s.container_id) for s in journal.leftover_servers()] == [
        ("m", 30913, 26458, None),
        ("k", 30914, None, "abc"),
    ]
    assert journal.read(ModelStart) == [ModelStart(model="m", gpus=[1], port=30913, t=1796291306.879)]
    assert journal.read(ModelDone)[-1].sent == 0 and journal.read(ModelDone)[-1].status == "failed"


def test_records_written_are_the_lines_read(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.write(ServerStarted(model="m", port=8000, gpus=[0, 1], pid=42))
    journal.write(ServerStopped(model="m", port=8000, note="leftover"))
    journal.write(ModelDone(model="m", status="done", sent=12))
    events = journal.events()
    assert [e["event"] for e in events] == ["server_started", "server_stopped", "model_done"]
    assert events[2]["sent"] == 12 and "t" in events[2]
    assert journal.leftover_servers() == []
    assert journal.finished()["m"].sent == 12


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (
            b'{"t":1.0,"model":"m","event":"model_done","status":"done","sent_count":6}',
            "unknown field 'sent_count'",
        ),
        (b'{"t":1.0,"model":"m","event":"model_done","sent":6}', "lacks field 'status'"),
        (
            b'{"t":1.0,"model":"m","event":"model_done","status":"done","sent":"6"}',
            "field 'sent' is '6', not int",
        ),
        (b'{"t":1.0,"model":"m","event":"server_started","gpus":[0]}', "lacks field 'port'"),
    ],
)
def test_a_renamed_or_mistyped_key_fails_naming_file_and_line(tmp_path: Path, line: bytes, says: str) -> None:
    journal = _journal(tmp_path, b'{"t":0.5,"model":"m","event":"healthy"}\n' + line + b"\n")
    with pytest.raises(ConfigError) as caught:
        journal.finished()
        journal.leftover_servers()
    assert f"{JOURNAL_NAME}:2: " in str(caught.value) and says in str(caught.value)
