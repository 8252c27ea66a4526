"""Secrets and privacy: no API key or HF token in any file or output, private result files (SQLite's -wal
and -shm included), servers bound to 127.0.0.1 unless asked, no telemetry, no patient text in logs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import fake_docker, fake_vllm
from tests.support.ports import free_port
from tests.support.servers import REPO, fake_server

DEMO = REPO / "demo_data"
API_KEY = "sk-SENTINEL-api-7d41c0"
HF_TOKEN = "hf_SENTINELtoken93be2"
ANSWER = "OUTPUT-SENTINEL the patient has entailment"


def _medsweep(*args: str, cwd: Path, api_key: str | None = API_KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env.update({"PYTHONPATH": str(REPO), "HF_TOKEN": HF_TOKEN})
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _patient_texts() -> list[str]:
    texts = []
    for line in (DEMO / "mednli" / "mli_test_v1.jsonl").read_text().splitlines():
        row = json.loads(line)
        texts += [row["sentence1"], row["sentence2"]]
    return texts


def test_secrets_never_written_and_no_patient_text_in_logs(tmp_path: Path) -> None:
    out = tmp_path / "results"
    with fake_server("--api-key", API_KEY, "--answer", ANSWER) as server:
        eval_args = ("eval", "--task", "mednli,probsum", "--model", "fake-model",
                     "--base-url", server.base_url, "--data-dir", str(DEMO), "--out", str(out))  # fmt: skip
        evaluated = _medsweep(*eval_args, cwd=tmp_path)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        assert server.stats()["answered"]  # the key was accepted: the sentinel really travelled
    outputs = [evaluated.stdout, evaluated.stderr]
    for args in (("status", "--out", str(out)), ("status", "--out", str(out), "--json")):
        status = _medsweep(*args, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        outputs += [status.stdout, status.stderr]
    report = _medsweep("report", "--out", str(out), "--format", "md,csv,html,parquet", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    outputs += [report.stdout, report.stderr]

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "medsweep.sqlite" for p in files)
    for path in files:
        data = path.read_bytes()
        assert API_KEY.encode() not in data, path
        assert HF_TOKEN.encode() not in data, path
    for text in outputs:
        assert API_KEY not in text and HF_TOKEN not in text
    # Progress and summary print counts and metrics, never prompts or outputs.
    for text in outputs[:2]:
        assert "OUTPUT-SENTINEL" not in text
        assert not [t for t in _patient_texts() if t in text]
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert (out / "report").is_dir()


def _scan(root: Path, outputs: list[str], key: str) -> None:
    """``key`` is in no file under ``root`` and in none of ``outputs``."""
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert key.encode() not in path.read_bytes(), path
    for text in outputs:
        assert key not in text


@pytest.mark.parametrize("engine", ["local", "docker"])
def test_serve_with_api_key_env_writes_the_key_nowhere(tmp_path: Path, engine: str) -> None:
    """`serve --api-key-env` (vLLM on PATH, or a container through the docker CLI), then `eval`, `status`,
    `logs`, `stop`: the key reaches the server (it answers only with it) and is in no file, no output, and
    no command line (the docker CLI gets ``-e VLLM_API_KEY``, the name only; what the daemon keeps, and
    `docker inspect` shows, is documented in docs/engines.md)."""
    key = "sk-SENTINEL-serve-31f9a2"
    bin_dir, state, out = tmp_path / "bin", tmp_path / "state", tmp_path / "results"
    fake_vllm.install(bin_dir)
    fake_docker.install(bin_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update({
        "PYTHONPATH": str(REPO), "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
        "MEDSWEEP_STATE_DIR": str(state), "HOME": str(tmp_path / "home"), "MY_SERVER_KEY": key,
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
    })  # fmt: skip

    def medsweep(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    served = medsweep("serve", "--engine", engine, "--model", "meta-llama-3-8b-instruct", "--gpus", "0",
                      "--port", str(free_port()), "--api-key-env", "MY_SERVER_KEY",
                      "--timeout", "60")  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    try:
        evaluated = medsweep(
            "eval", "--task", "mednli", "--limit", "3", "--data-dir", str(DEMO), "--out", str(out)
        )
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        outputs = [served.stdout, served.stderr, evaluated.stdout, evaluated.stderr]
        for args in (("status", "--out", str(out), "--json"), ("logs",)):
            shown = medsweep(*args)
            outputs += [shown.stdout, shown.stderr]
        assert '"succeeded": 3' in outputs[-4], outputs[-4]  # the server answered: the key travelled
    finally:
        stopped = medsweep("stop")
    assert stopped.returncode == 0, stopped.stderr
    _scan(tmp_path, [*outputs, stopped.stdout, stopped.stderr], key)
    if engine == "docker":
        runs = [json.loads(line) for line in (tmp_path / "docker.log").read_text().splitlines()]
        (run,) = [argv for argv in runs if argv[0] == "run"]
        assert run[run.index("VLLM_API_KEY") - 1] == "-e"  # by name; the value only in the CLI's environment


def test_sweep_with_api_key_env_writes_the_key_nowhere(tmp_path: Path) -> None:
    key = "sk-SENTINEL-sweep-8c0e47"
    bin_dir = tmp_path / "bin"
    fake_vllm.install(bin_dir)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[sweep]\nout = "results"\ndata_dir = "{DEMO}"\ntasks = ["mednli"]\ngpus = [0, 1]\n'
        'engine = "local"\n'
        f'base_port = {free_port()}\nlimit = 3\nstartup_timeout = 60\napi_key_env = "MY_SWEEP_KEY"\n\n'
        '[[models]]\nname = "meta-llama-3-8b-instruct"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update({"PYTHONPATH": str(REPO), "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "MY_SWEEP_KEY": key,
                "MEDSWEEP_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path / "home")})  # fmt: skip
    swept = subprocess.run([sys.executable, "-m", "pipeline", "sweep", "--plan", str(plan)], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert swept.returncode == 0, swept.stderr[-3000:]
    summary = json.loads((tmp_path / "results" / "sweep-summary.json").read_text())
    assert summary["results"][0]["stats"]["succeeded"] == 3  # the key travelled: the server answered
    _scan(tmp_path, [swept.stdout, swept.stderr], key)


def test_wal_and_shm_are_private_while_the_eval_writes(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = str(REPO)
    # The server holds the requests: once two are held (one answered in between), the eval has opened
    # its store, written its run and committed or buffered an answer, and cannot finish before we look.
    with fake_server("--hold") as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "eval", "--task", "longhealth", "--model", "fake-model",
             "--base-url", server.base_url, "--data-dir", str(DEMO), "--out", str(out), "--concurrency", "1"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            server.wait_held(1)
            server.release(1)
            server.wait_held(1, answered=1)
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            modes = {}
            for suffix in ("-wal", "-shm"):
                path = out / f"medsweep.sqlite{suffix}"
                assert path.exists(), f"{path.name} is missing while the eval writes"
                modes[suffix] = stat.S_IMODE(path.stat().st_mode)
        finally:
            proc.kill()
            proc.communicate()
    assert modes == {"-wal": 0o600, "-shm": 0o600}


def test_servers_bind_loopback_unless_asked() -> None:
    from pipeline.cli import build_parser
    from pipeline.models.registry import load_registry
    from pipeline.serving.engines import ENGINES, Target

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    cfg = load_registry()["meta-llama-3-8b-instruct"]
    cpu_cfg = load_registry()["smollm2-135m-instruct"]
    for name, engine in ENGINES.items():
        model = cpu_cfg if name == "cpu" else cfg
        device = engine.devices[0]
        argv = engine.plan(Target(model=model, device=device, port=8000, host=args.host, gpus=(0,))).argv
        if "-p" in argv:  # a container: published on the host address only
            assert argv[argv.index("-p") + 1] == "127.0.0.1:8000:8000", name
        else:
            assert argv[argv.index("--host") + 1] == "127.0.0.1", name
    # Exposing the server is explicit: --host 0.0.0.0 is passed through as asked.
    exposed = ENGINES["local"].plan(Target(model=cfg, device="gpu", port=8000, host="0.0.0.0", gpus=(0,)))
    assert exposed.argv[exposed.argv.index("--host") + 1] == "0.0.0.0"


def test_served_vllm_sends_no_usage_stats() -> None:
    from pipeline.models.registry import load_registry
    from pipeline.serving.engines import ENGINES, Target

    registry = load_registry()
    for name, engine in ENGINES.items():
        for device in engine.devices:
            model = registry["smollm2-135m-instruct" if device == "cpu" else "meta-llama-3-8b-instruct"]
            gpus = (0,) if device == "gpu" else ()
            launch = engine.plan(Target(model=model, device=device, port=8000, gpus=gpus))
            everything = launch.shell()
            assert "VLLM_NO_USAGE_STATS=1" in everything and "DO_NOT_TRACK=1" in everything, (name, device)


def test_credentials_in_a_base_url_are_never_written(tmp_path: Path) -> None:
    """`--base-url https://user:token@host/v1`: the token travels (basic auth) but is in no file (the store's
    provenance and config, the report), no output and no error message — for a server that answers, one
    that fails every request, and one that is not there."""
    token = "tok-SENTINEL-url-5be1"
    out = tmp_path / "results"
    outputs: list[str] = []
    with fake_server("--answer", ANSWER) as server:
        url = server.base_url.replace("http://", f"http://alice:{token}@")
        args = ("eval", "--task", "mednli", "--limit", "3", "--model", "fake-model", "--base-url", url,
                "--data-dir", str(DEMO), "--out", str(out))  # fmt: skip
        evaluated = _medsweep(*args, cwd=tmp_path, api_key=None)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        assert server.stats()["answered"]
        outputs += [evaluated.stdout, evaluated.stderr]
    with fake_server("--status-always", "400") as failing:
        url = failing.base_url.replace("http://", f"http://alice:{token}@")
        failed = _medsweep("eval", "--task", "meqsum", "--limit", "2", "--model", "fake-model",
                           "--base-url", url, "--data-dir", str(DEMO), "--out", str(out),
                           cwd=tmp_path, api_key=None)  # fmt: skip
        assert failed.returncode == 1, failed.stderr[-3000:]
        outputs += [failed.stdout, failed.stderr]
    nowhere = f"http://alice:{token}@127.0.0.1:{free_port()}/v1"
    gone = _medsweep("eval", "--task", "mednli", "--base-url", nowhere, "--data-dir", str(DEMO),
                     "--out", str(tmp_path / "other"), cwd=tmp_path, api_key=None)  # fmt: skip
    assert gone.returncode == 2 and "cannot reach http://***@127.0.0.1:" in gone.stderr, gone.stderr
    outputs += [gone.stdout, gone.stderr]
    both = _medsweep("eval", "--task", "mednli", "--base-url", nowhere, "--data-dir", str(DEMO),
                     "--out", str(tmp_path / "other"), cwd=tmp_path)  # fmt: skip
    assert both.returncode == 2 and both.stderr.startswith("error: the base URL carries credentials"), (
        both.stderr
    )
    assert len(both.stderr.strip().splitlines()) == 1  # one line, no traceback
    outputs += [both.stdout, both.stderr]
    report = _medsweep("report", "--out", str(out), "--format", "md,csv,html", cwd=tmp_path, api_key=None)
    assert report.returncode == 0, report.stderr[-3000:]
    outputs += [report.stdout, report.stderr]
    provenance = _provenance(out)
    assert provenance and all(p["base_url"].startswith("http://***@127.0.0.1:") for p in provenance)
    _scan(tmp_path, outputs, token)


def _provenance(out: Path) -> list[dict[str, Any]]:
    import sqlite3

    with sqlite3.connect(f"{(out / 'medsweep.sqlite').as_uri()}?mode=ro", uri=True) as db:
        return [json.loads(row[0]) for row in db.execute("SELECT provenance_json FROM runs")]


def test_without_credentials_cuts_every_urls_userinfo_and_nothing_else() -> None:
    from pipeline.config import without_credentials

    text = "a https://u:p%40ss@h.example/v1 and HTTP://tok@10.0.0.1:8000 but not mail@x.org or http://h:1/v1"
    assert without_credentials(text) == (
        "a https://***@h.example/v1 and HTTP://***@10.0.0.1:8000 but not mail@x.org or http://h:1/v1"
    )
