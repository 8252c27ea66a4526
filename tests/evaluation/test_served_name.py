"""`medsweep eval --served-name`: a registry model on an endpoint that serves it under another id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.support.paths import FIDELITY_DATA
from tests.support.servers import fake_server

DATA = FIDELITY_DATA


def test_served_name_sends_the_endpoints_id_and_keys_by_the_registry_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["eval", "--model", "smollm2-135m-instruct", "--task", "mednli", "--data-dir", str(DATA),
            "--out", str(out)]  # fmt: skip
    with fake_server("--model", "gateway/smol-a") as server:
        assert main([*args, "--base-url", server.base_url]) != 0  # the registry's ids are not served there
        assert "is not served at" in capsys.readouterr().err
        assert main([*args, "--base-url", server.base_url, "--served-name", "gateway/smol-a"]) == 0
        bodies = server.requests()
    assert bodies and {b["model"] for b in bodies} == {"gateway/smol-a"}
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        models = {m for (m,) in conn.execute("SELECT DISTINCT model FROM results WHERE status = 'succeeded'")}
        served = {
            s for (s,) in conn.execute("SELECT json_extract(config_json, '$.target.served_name') FROM runs")
        }
    assert models == {"smollm2-135m-instruct@main"}  # results stay keyed by the registry model
    assert served == {"gateway/smol-a"}
