"""`medsweep serve --engine docker` / `medsweep stop` with a fake ``docker`` first on PATH (no Docker engine
here): the exact argv, the state file, stop by id, logs on failure; and the compose file."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.serving.image import VLLM_ENV_FILE, pinned_image, read_env_file
from pipeline.serving.state import read_state
from tests.support.paths import REPO_ROOT as REPO
from tests.support.ready_later import ReadyLaterServer
from tests.support.require import ran, unavailable

FAKE_ID = "f00dfeedcafe0123456789abcdef0123456789abcdef0123456789abcdef0123"
IMAGE = read_env_file(VLLM_ENV_FILE)["VLLM_IMAGE"]

# FAKE_DOCKER_FAULT makes it answer as docker 20.10's CLI does when something is wrong (its exact stderr).
FAKE_DOCKER = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "api_key_set": bool(os.environ.get("VLLM_API_KEY"))}}) + "\\n")
fault = os.environ.get("FAKE_DOCKER_FAULT", "")
sock = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
if args[0] == "version" and fault == "no-daemon":
    sys.exit(f"Cannot connect to the Docker daemon at {{sock}}. Is the docker daemon running?")
if args[0] == "version" and fault == "no-permission":
    sys.exit(f"Got permission denied while trying to connect to the Docker daemon socket at {{sock}}: "
             f'Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version": dial unix {{sock[7:]}}: connect: '
             "permission denied")
if args[:2] == ["image", "inspect"] and fault == "no-image":
    sys.exit(f"Error: No such image: {{args[-1]}}")
if args[0] == "pull" and fault == "no-image":
    sys.exit('Error response from daemon: Get "https://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: '
             "connection refused")
if args[0] == "run" and fault == "port-taken":
    print("docker: Error response from daemon: driver failed programming external connectivity on endpoint "
          f"{{args[3]}} (0123): Error starting userland proxy: listen tcp4 127.0.0.1:8000: bind: "
          "address already in use.", file=sys.stderr)
    sys.exit(125)
if args[0] == "run":
    print("{fake_id}")
elif args[0] == "version":
    print("20.10.24")
elif args[:2] == ["image", "inspect"]:
    print('"sha256:0123abcd" []' if "json" in " ".join(args) else "sha256:0123abcd")
elif args[0] == "ps":
    pass  # no medsweep container runs
elif args[0] == "inspect":
    print(os.environ.get("FAKE_DOCKER_STATUS", "running 0"))
elif args[0] == "logs":
    print("fake vllm log: CUDA out of memory")
elif args[0] in ("stop", "rm"):
    print(args[-1])
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable, fake_id=FAKE_ID))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("MEDSWEEP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_written")
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("VLLM_IMAGE", raising=False)
    return log


def _calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_tp4_70b_exact_argv_state_and_stop(fake_docker: Path, tmp_path: Path) -> None:
    name = "meta-llama-3.1-70b-instruct"
    with ReadyLaterServer(not_ready=1, model=name) as server:
        code = main(
            ["serve", "--model", name, "--gpus", "0,1,2,3", "--port", str(server.port), "--timeout", "30"]
        )
    assert code == 0
    port = server.port
    calls = [c["argv"] for c in _calls(fake_docker)]
    # Checked first: the daemon answers, no medsweep container serves the port, the image is present; a
    # stopped leftover of the same name is removed; after the run, the image's id goes into provenance.
    assert [c[0] for c in calls[:6]] == ["version", "ps", "image", "rm", "run", "image"]
    assert calls[1] == ["ps", "-q", "--no-trunc", "--filter", "label=medsweep.managed=1",
                        "--filter", f"label=medsweep.port={server.port}"]  # fmt: skip
    run = next(c for c in calls if c[0] == "run")
    assert run == [
        "run", "-d", "--name", f"medsweep-{name}-{port}",
        "--label", "medsweep.managed=1", "--label", f"medsweep.model={name}",
        "--label", f"medsweep.port={port}",
        "--gpus", '"device=0,1,2,3"', "--ipc=host",
        "-p", f"127.0.0.1:{port}:8000",
        "-v", f"{tmp_path}/home/.cache/huggingface:/root/.cache/huggingface",
        "-e", "HF_TOKEN", "-e", "VLLM_NO_USAGE_STATS=1", "-e", "DO_NOT_TRACK=1",
        IMAGE,
        "meta-llama/Meta-Llama-3.1-70B-Instruct", "--revision", "main",
        "--served-model-name", name, "--tensor-parallel-size", "4",
        "--max-model-len", "131072", "--dtype", "bfloat16", "--generation-config", "vllm",
    ]  # fmt: skip
    state_file = tmp_path / "state" / "serve.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert "hf_secret_never_written" not in state_file.read_text()
    state = read_state()
    assert state is not None
    assert (state.container_id, state.engine, state.tensor_parallel_size) == (FAKE_ID, "docker", 4)
    assert (state.url, state.openai_base_url) == (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/v1")
    assert state.gpus == [0, 1, 2, 3] and state.image == IMAGE and state.served_model == name
    assert state.image_id == "sha256:0123abcd" and state.device == "gpu"

    assert main(["stop"]) == 0
    assert [c["argv"] for c in _calls(fake_docker)[-2:]] == [
        ["stop", "-t", "20", FAKE_ID],
        ["rm", "-f", FAKE_ID],
    ]
    assert read_state() is None


def test_tp1_8b_with_api_key_passed_by_name(
    fake_docker: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-local-123")
    name = "meta-llama-3-8b-instruct"
    with ReadyLaterServer(not_ready=0, model=name, api_key="sk-local-123") as server:
        code = main(["serve", "--model", name, "--port", str(server.port), "--api-key-env", "MY_KEY"])
    assert code == 0
    call = next(c for c in _calls(fake_docker) if c["argv"][0] == "run")  # type: ignore[index]
    argv = call["argv"]
    assert isinstance(argv, list)
    del argv[4:10]  # the labels (checked above)
    assert argv[:11] == [
        "run", "-d", "--name", f"medsweep-{name}-{server.port}", "--gpus", '"device=0"', "--ipc=host",
        "-p", f"127.0.0.1:{server.port}:8000",
        "-v", f"{tmp_path}/home/.cache/huggingface:/root/.cache/huggingface",
    ]  # fmt: skip
    assert argv[11:20] == [
        "-e", "HF_TOKEN", "-e", "VLLM_NO_USAGE_STATS=1", "-e", "DO_NOT_TRACK=1", "-e", "VLLM_API_KEY", IMAGE,
    ]  # fmt: skip
    assert argv[argv.index("--tensor-parallel-size") + 1] == "1"
    assert argv[argv.index("--max-model-len") + 1] == "8192"
    assert call["api_key_set"] is True  # the value travels in the environment only
    assert not any("sk-local-123" in a for a in argv)
    state = read_state()
    assert state is not None and state.api_key_env == "MY_KEY"
    assert "sk-local-123" not in (tmp_path / "state" / "serve.json").read_text()
    assert "sk-local-123" not in capsys.readouterr().out


def test_dry_run_prints_the_command_and_starts_nothing(
    fake_docker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--model", "meta-llama-3.1-70b-instruct", "--gpus", "0,1,2,3", "--dry-run"])
    assert code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(
        "docker run -d --name medsweep-meta-llama-3.1-70b-instruct-8000 --label medsweep.managed=1 "
        "--label medsweep.model=meta-llama-3.1-70b-instruct --label medsweep.port=8000 "
        "--gpus '\"device=0,1,2,3\"'"
    )
    assert "--tensor-parallel-size 4" in out and "hf_secret" not in out
    assert not fake_docker.exists() and read_state() is None


def test_failed_start_prints_container_logs_and_exits_nonzero(
    fake_docker: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_STATUS", "exited 1")
    with ReadyLaterServer(not_ready=10**9, model="meta-llama-3-8b-instruct") as server:
        code = main(
            ["serve", "--model", "meta-llama-3-8b-instruct", "--port", str(server.port), "--timeout", "30"]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert "container exited 1" in err and "fake vllm log: CUDA out of memory" in err
    verbs = [c["argv"][0] for c in _calls(fake_docker)]  # type: ignore[index]
    assert verbs[verbs.index("run") :] == ["run", "image", "inspect", "logs", "stop", "rm"]
    assert ["logs", "--tail", "50", FAKE_ID] in [c["argv"] for c in _calls(fake_docker)]
    assert read_state() is None


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("no-docker", "error: docker not found on PATH: install Docker"),
        ("no-daemon", "error: the Docker daemon is not running (unix://"),
        ("no-permission", "error: permission denied on the Docker socket (unix://"),
        ("no-image", "error: image 127.0.0.1:9/medsweep/nosuch:1 is not present and `docker pull` failed"),
        ("port-taken", "error: docker run: the port is already in use"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix_and_starts_nothing(
    fault: str,
    message: str,
    fake_docker: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Docker's bad-input messages without a daemon: the fake CLI answers as docker 20.10's does (the real
    daemon's test, tests/serving/test_docker_real.py, keeps the cases whose wording comes from a daemon)."""
    monkeypatch.setenv("FAKE_DOCKER_FAULT", fault)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    if fault == "no-docker":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    port = 8011
    args = ["serve", "--model", "meta-llama-3-8b-instruct", "--port", str(port), "--timeout", "30"]
    if fault == "no-image":
        args += ["--image", "127.0.0.1:9/medsweep/nosuch:1"]
    assert main(args) == 2
    err = capfd.readouterr().err  # fd-level: `docker pull` writes its progress to our stderr
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Error response")]
    assert len(lines) == 1 and lines[0].startswith(message), err
    assert "Traceback" not in err
    if fault in ("no-daemon", "no-permission"):
        assert f"unix://{tmp_path}/docker.sock" in lines[0]  # names the socket it tried
    calls = [c["argv"] for c in _calls(fake_docker)] if fake_docker.exists() else []
    if fault == "port-taken":  # the container docker created before the port failed is removed
        assert calls[-2:] == [calls[-2], ["rm", "-f", f"medsweep-meta-llama-3-8b-instruct-{port}"]]
        assert calls[-2][0] == "run"
    else:
        assert not any(c[0] == "run" for c in calls)
    assert read_state() is None


def test_too_few_gpus_and_bad_tp_are_errors(fake_docker: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", "meta-llama-3.1-70b-instruct", "--gpus", "0,1", "--dry-run"]) == 2
    assert "needs 4 GPUs of 80 GB" in capsys.readouterr().err
    assert main(["serve", "--model", "mixtral-8x22b-instruct-v0.1", "--gpus", "0,1,2,3,4,5,6,7", "--dry-run",
                 "--memory-class", "40"]) == 2  # fmt: skip
    assert "needs 16 GPUs" in capsys.readouterr().err
    assert main(["serve", "--model", "no-such-model", "--dry-run"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_stop_without_state_is_harmless(fake_docker: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stop"]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_image_pin_is_a_version_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_IMAGE", raising=False)
    image = pinned_image()
    assert image.startswith("vllm/vllm-openai:v") and image.count(".") >= 2
    monkeypatch.setenv("VLLM_IMAGE", "registry.local/vllm:test")
    assert pinned_image() == "registry.local/vllm:test"


def test_compose_default_image_matches_the_pin() -> None:
    compose = (REPO / "docker" / "compose.yaml").read_text()
    assert f'"${{VLLM_IMAGE:-{IMAGE}}}"' in compose


@pytest.mark.parametrize("with_env_file", [False, True])
def test_compose_file_passes_docker_compose_config(with_env_file: bool) -> None:
    if shutil.which("docker-compose") is None:
        unavailable("docker", "docker-compose not installed (scripts/setup_test_tools.sh installs it)")
    ran("docker")
    args = ["docker-compose"] + (["--env-file", "docker/vllm.env"] if with_env_file else [])
    env = {k: v for k, v in os.environ.items() if k != "VLLM_IMAGE"}
    proc = subprocess.run(
        [*args, "-f", "docker/compose.yaml", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"image: {IMAGE}" in proc.stdout
    assert "127.0.0.1:8000:8000" in proc.stdout
    assert "HF_TOKEN: null" in proc.stdout  # passed through by name, no value in the file
