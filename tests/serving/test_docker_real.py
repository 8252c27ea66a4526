"""`medsweep serve --engine docker --device cpu` against a REAL Docker engine (a private dockerd, the
``dockerd`` fixture) and the real CPU vLLM image (`make image-cpu`, built once when missing): serve, eval,
stop; a container that dies during start-up; the bad inputs that need a daemon, one line each with nothing
left running (every bad input is also tested without one: tests/serving/test_docker.py); and a
sweep whose container is `docker kill`ed mid-eval. After the session no container labelled
medsweep.managed=1 may be left (the fixture checks)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.models.registry import get_model
from tests.support.dockerd import Dockerd
from tests.support.paths import DEMO_DATA_DIR, REPO_ROOT
from tests.support.ports import free_port
from tests.support.require import unavailable

pytestmark = pytest.mark.docker
MEDSWEEP = [sys.executable, "-m", "pipeline"]
MODEL = "smollm2-135m-instruct"
POST_LINE = re.compile(r'"POST /v1/(chat/)?completions HTTP/1\.1" 200')


@pytest.fixture(autouse=True)
def _model_present() -> None:
    if not (REPO_ROOT / "models" / "smollm2-135m-instruct" / "config.json").exists():
        unavailable("docker", "models/smollm2-135m-instruct missing (make setup-server)")


def _env(dockerd: Dockerd, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**dockerd.env(), "MEDSWEEP_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path), **extra}


def _medsweep(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEDSWEEP, *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _managed(dockerd: Dockerd, *filters: str) -> list[str]:
    args = [
        "ps",
        "-aq",
        "--filter",
        "label=medsweep.managed=1",
        *(x for f in filters for x in ("--filter", f)),
    ]
    return dockerd.docker(*args).stdout.split()


def _serve_args(port: int) -> list[str]:
    return ["serve", "--engine", "docker", "--device", "cpu", "--port", str(port), "--timeout", "600"]


def test_serve_eval_stop_on_the_cpu_image(dockerd: Dockerd, cpu_image: str, tmp_path: Path) -> None:
    env, port = _env(dockerd, tmp_path), free_port()
    served = _medsweep(_serve_args(port), env)
    assert served.returncode == 0, served.stderr
    (container,) = _managed(dockerd, f"label=medsweep.port={port}")
    labels = json.loads(dockerd.docker("inspect", "--format", "{{json .Config.Labels}}", container).stdout)
    assert labels == {"medsweep.managed": "1", "medsweep.model": MODEL, "medsweep.port": str(port)}
    assert dockerd.docker("port", container, "8000").stdout.strip() == f"127.0.0.1:{port}"  # loopback only
    mounts = json.loads(dockerd.docker("inspect", "--format", "{{json .Mounts}}", container).stdout)
    model_mount = next(m for m in mounts if m["Destination"] == f"/models/{MODEL}")
    assert model_mount["RW"] is False  # the weights are mounted read-only, never baked into the image

    # A second serve on the same port: one line, exit 2, the first server untouched.
    for state in ("state", "other-state"):
        again = _medsweep(_serve_args(port), {**env, "MEDSWEEP_STATE_DIR": str(tmp_path / state)})
        assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
        assert again.stderr.startswith("error: ") and "medsweep stop" in again.stderr
    assert _managed(dockerd, f"label=medsweep.port={port}") == [container]

    out = tmp_path / "results"
    evaluated = _medsweep(["eval", "--limit", "2", "--task", "mednli,meqsum", "--out", str(out)], env)
    assert evaluated.returncode == 0, evaluated.stderr
    with sqlite3.connect(out / "medsweep.sqlite") as db:
        rows = db.execute("SELECT task, status FROM results").fetchall()
        (provenance,) = db.execute("SELECT provenance_json FROM runs").fetchone()
    assert sorted(rows) == [("mednli", "succeeded")] * 2 + [("meqsum", "succeeded")] * 2
    recorded = json.loads(provenance)
    image_id = dockerd.docker("image", "inspect", "--format", "{{.Id}}", cpu_image).stdout.strip()
    assert (recorded["engine"], recorded["device"], recorded["image"]) == ("docker", "cpu", cpu_image)
    assert recorded["image_id"] == image_id and recorded["vllm_version"] == "0.32.0"

    stopped = _medsweep(["stop"], env)
    assert stopped.returncode == 0 and "removed container" in stopped.stdout
    assert _managed(dockerd, f"label=medsweep.port={port}") == []


def test_a_container_dying_during_start_up_shows_its_log_and_leaves_nothing(
    dockerd: Dockerd, cpu_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from pipeline.cli import main
    from pipeline.serving import launch

    empty = tmp_path / "no-model-here"
    empty.mkdir()  # exists on the host, but there is no model at that path
    broken = get_model(MODEL).model_copy(update={"local_path": str(empty)})
    monkeypatch.setattr(launch, "get_model", lambda name: broken)
    for key, value in _env(dockerd, tmp_path).items():
        monkeypatch.setenv(key, value)
    port = free_port()
    assert main(_serve_args(port)) == 2
    err = capsys.readouterr().err
    assert "--- last log lines of the docker server" in err
    assert (
        err.strip().splitlines()[-1].startswith("error: server at ") and "exited before it was ready" in err
    )
    assert "/models/smollm2-135m-instruct" in err  # vLLM's own words about the model path
    assert _managed(dockerd, f"label=medsweep.port={port}") == []
    assert not (tmp_path / "state" / "serve.json").exists()


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _nobody() -> list[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        unavailable("docker", "needs root and setpriv to run medsweep as another user")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


# The cases whose wording comes from the real CLI talking to a real daemon (a socket nothing listens on, a
# socket another user may not open, a port the daemon cannot publish). "docker not installed" and "image not
# present" are medsweep's own logic: tests/serving/test_docker.py covers them (and these) on a fake CLI.
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no daemon", "error: the Docker daemon is not running (unix://"),
        ("no permission", "error: permission denied on the Docker socket"),
        ("port taken", "error: docker run: the port is already in use"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing_running(
    case: str, message: str, dockerd: Dockerd, cpu_image: str, tmp_path: Path, listening: int
) -> None:
    env, port, prefix = _env(dockerd, tmp_path), free_port(), []
    args = _serve_args(port)
    if case == "no daemon":
        env["DOCKER_HOST"] = f"unix://{tmp_path}/none.sock"
    elif case == "no permission":
        prefix = _nobody()
        # Another user reaches only a folder every user may enter (pytest's tmp folders are root's alone).
        shared = Path(tempfile.mkdtemp(prefix="msnobody."))
        shared.chmod(0o777)
        env.update(MEDSWEEP_STATE_DIR=str(shared / "state"), HOME=str(shared))
    elif case == "port taken":
        args = [*args[:-4], "--port", str(listening), "--timeout", "600"]
    proc = subprocess.run(
        [*prefix, *MEDSWEEP, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if not line.startswith(("Error response", "Using "))]
    assert proc.returncode == 2, proc.stderr
    assert lines[-1].startswith(message), proc.stderr
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in proc.stderr
    assert _managed(dockerd) == []
    assert not Path(env["MEDSWEEP_STATE_DIR"], "serve.json").exists()
    if case == "no permission":
        shutil.rmtree(env["HOME"])


class _LogFollower:
    """Keeps every medsweep container's log (``docker logs -f`` per container, as they appear): the sweep
    removes its containers, and their logs with them."""

    def __init__(self, dockerd: Dockerd, folder: Path) -> None:
        self.dockerd, self.folder = dockerd, folder
        self.order: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for container in _managed(self.dockerd):
                if container not in self.order:
                    self.order.append(container)
                    with (self.folder / f"{container}.log").open("wb") as log:
                        self.procs.append(
                            subprocess.Popen(
                                ["docker", "logs", "-f", container],
                                env=self.dockerd.env(),
                                stdout=log,
                                stderr=subprocess.STDOUT,
                            )
                        )
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=10)

    def posts(self, container: str) -> int:
        text = (self.folder / f"{container}.log").read_text(errors="replace")
        return len(POST_LINE.findall(text))


def _succeeded(db_file: Path) -> dict[str, float]:
    """key -> updated_at of the succeeded rows (read-only; the sweep is writing)."""
    if not db_file.exists():
        return {}
    try:
        with sqlite3.connect(f"{db_file.as_uri()}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT key, updated_at FROM results WHERE status = 'succeeded'").fetchall()
    except sqlite3.OperationalError:
        return {}
    return dict(rows)


def test_a_sweep_survives_docker_kill_mid_eval(dockerd: Dockerd, cpu_image: str, tmp_path: Path) -> None:
    out, limit, tasks = tmp_path / "sweep", 4, ("mednli", "meqsum")
    eval_config = tmp_path / "eval.toml"
    eval_config.write_text(
        # Longer than any answer here: a timed-out request is sent again (as it must be while uncommitted),
        # which would blur the count of what the restarted server was sent.
        "[client]\nmax_attempts = 50\nbackoff_base = 0.2\nbackoff_max = 2\ntimeout = 900\n"
    )
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[sweep]\nout = "{out}"\ndata_dir = "{DEMO_DATA_DIR}"\ntasks = {json.dumps(list(tasks))}\n'
        f'engine = "docker"\ndevice = "cpu"\nbase_port = {free_port()}\nlimit = {limit}\nconcurrency = 2\n'
        f'eval_config = "{eval_config}"\nmax_restarts = 2\nstartup_timeout = 600\nhealth_interval = 1\n'
        f'hang_timeout = 120\nmax_retry_time = 900\n\n[[models]]\nname = "{MODEL}"\n'
    )
    follower = _LogFollower(dockerd, tmp_path)
    sweep = subprocess.Popen(
        [*MEDSWEEP, "sweep", "--plan", str(plan)], env=_env(dockerd, tmp_path), cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # Kill the container once two answers are committed and the eval still has more to send.
        db_file, before = out / "medsweep.sqlite", {}
        deadline = time.monotonic() + 900
        while len(before) < 2:
            assert sweep.poll() is None and time.monotonic() < deadline, "the sweep ended before the kill"
            time.sleep(0.2)
            before = _succeeded(db_file)
        (victim,) = _managed(dockerd, "status=running")
        killed = dockerd.docker("kill", victim)
        assert killed.returncode == 0, killed.stderr
        kill_time, before = time.time(), _succeeded(db_file)
        assert len(before) < limit * len(tasks)
        output, _ = sweep.communicate(timeout=1800)
    finally:
        if sweep.poll() is None:
            sweep.kill()
        follower.stop()
    assert sweep.returncode == 0, output
    after = _succeeded(db_file)
    assert len(after) == limit * len(tasks)  # the eval completed
    assert {k: after[k] for k in before} == before  # rows committed before the kill are as they were
    summary = json.loads((out / "sweep-summary.json").read_text())
    (entry,) = [m for m in summary["results"] if m["model"] == MODEL]
    assert entry["status"] == "done" and entry["restarts"] >= 1
    # The restarted server was sent only what was not committed: its 200 answers are no more than the rows
    # committed after the kill (answers in flight at the kill are the only ones sent twice).
    first, second = follower.order[0], follower.order[-1]
    assert first == victim and second != victim
    assert (
        follower.posts(second) <= sum(1 for t in after.values() if t > kill_time) <= len(after) - len(before)
    )
    assert follower.posts(first) >= len(before)
    assert _managed(dockerd) == []
