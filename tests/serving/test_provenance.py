"""runs.provenance_json: the typed records (pipeline.serving.provenance) write the keys and values a run has
always recorded, so old stores and the report read it as before."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.serving.provenance import LauncherFacts, RunProvenance, ServerProvenance, SweepPass
from pipeline.serving.running import RunningServer
from tests.support.servers import REPO, fake_server

SERVER_KEYS = [
    "base_url", "vllm_version", "served_model", "max_model_len", "root", "registry_model", "hf_id",
    "revision", "engine", "device", "image", "image_id", "image_digests", "offers", "gpus",
    "tensor_parallel_size", "pipeline_parallel_size", "memory_class", "medsweep_version", "git_commit",
    "vllm_batch_invariant",
]  # fmt: skip


def test_an_eval_records_the_same_keys_and_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSWEEP_STATE_DIR", str(tmp_path / "state"))  # no serve state file
    with fake_server("--max-model-len", "2048") as server:
        out, data = str(tmp_path / "out"), str(REPO / "demo_data")
        code = main(["eval", "--base-url", server.base_url, "--model", "fake-model", "--task", "mednli",
                     "--limit", "1", "--data-dir", data, "--out", out])  # fmt: skip
        root = server.root
    assert code == 0
    with sqlite3.connect(tmp_path / "out" / "medsweep.sqlite") as conn:
        (text,) = conn.execute("SELECT provenance_json FROM runs").fetchone()
    recorded = json.loads(text)
    run_keys = ["replicas", "truncation", "scorers", "prefix_caching", "concurrency"]
    assert list(recorded) == sorted([*SERVER_KEYS, *run_keys])  # the store sorts
    assert {k: recorded[k] for k in SERVER_KEYS[:5]} == {
        "base_url": root, "vllm_version": "0.0.0-fake", "served_model": "fake-model", "max_model_len": 2048,
        "root": "fake-model",
    }  # fmt: skip
    assert all(recorded[k] is None for k in SERVER_KEYS[5:18])  # no state file: the server's facts only
    assert (recorded["replicas"], recorded["truncation"]) == (1, "v3")
    assert recorded["medsweep_version"] and recorded["scorers"] == {}  # MedNLI needs no optional scorer
    # The fake server exports no cache-config gauge; batch invariance is known only of a server medsweep
    # started (its record), and there is none here (docs/eval.md).
    assert (recorded["prefix_caching"], recorded["vllm_batch_invariant"], recorded["concurrency"]) == (
        None, None, 64,
    )  # fmt: skip


def _server(**ids: object) -> RunningServer:
    return RunningServer.model_validate({
        "url": "http://127.0.0.1:8001", "openai_base_url": "http://127.0.0.1:8001/v1", "served_model": "m",
        "model": "m", "host": "127.0.0.1", "port": 8001, "gpus": [2, 3], "tensor_parallel_size": 2,
        "offers": {"queue_depth": True, "tokenize": True, "version": True}, "hf_id": "org/m", **ids,
    })  # fmt: skip


def test_a_sweep_adds_what_its_launcher_knew_and_its_pass() -> None:
    facts = ServerProvenance(base_url="http://127.0.0.1:8001", vllm_version="0.32.0", git_commit="abc")
    docker = _server(engine="docker", container_id="c1", image="vllm/vllm-openai:v0.32.0",
                     image_id="sha256:01", image_digests=["vllm/vllm-openai@sha256:02"])  # fmt: skip
    run = RunProvenance.of(
        facts, 1, LauncherFacts.of(docker, SweepPass.model_validate({"port": 8001, "pass": 2}))
    )
    recorded = run.model_copy(update={"truncation": "v3", "scorers": {}}).as_json()
    assert list(recorded) == [
        *SERVER_KEYS, "replicas", "sweep", "truncation", "scorers", "prefix_caching", "concurrency",
    ]  # fmt: skip
    assert recorded["sweep"] == {"port": 8001, "pass": 2}
    assert (recorded["engine"], recorded["device"], recorded["gpus"], recorded["tensor_parallel_size"]) == (
        "docker", "gpu", [2, 3], 2,
    )  # fmt: skip
    assert (recorded["image"], recorded["image_id"], recorded["image_digests"]) == (
        "vllm/vllm-openai:v0.32.0", "sha256:01", ["vllm/vllm-openai@sha256:02"],
    )  # fmt: skip
    # As the sweep always recorded it: what the state file would say of the model stays unknown.
    assert (recorded["registry_model"], recorded["hf_id"], recorded["memory_class"]) == (None, None, None)
    assert recorded["vllm_batch_invariant"] is None  # a record from before it was kept: unknown
    local = _server(engine="local", pid=42, log_path="/tmp/x.log", vllm_batch_invariant=False)
    recorded = RunProvenance.of(facts, 1, LauncherFacts.of(local)).as_json()
    assert "sweep" not in recorded and recorded["engine"] == "local"
    assert recorded["vllm_batch_invariant"] is False  # the sweep started it without: vLLM's default
    assert (recorded["image"], recorded["image_id"], recorded["image_digests"]) == (None, None, None)
