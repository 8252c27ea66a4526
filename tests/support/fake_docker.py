"""A stand-in for the ``docker`` CLI whose containers really serve: ``docker run -d ... IMAGE MODEL ...``
starts our fake OpenAI server (tests/support/fakeserver.py) on the published host port, under the
``--served-model-name``, requiring the ``VLLM_API_KEY`` that ``-e VLLM_API_KEY`` passes by name (read from
this CLI's environment, as the real CLI does). Every call appends its argv as one JSON line to
``$FAKE_DOCKER_LOG``; the "container" is the server's pid (``$FAKE_DOCKER_LOG.pids``), stopped by
``docker stop``. Installed on PATH as ``docker`` by ``install(bin_dir)``; no daemon anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

FAKESERVER = Path(__file__).with_name("fakeserver.py")
CONTAINER_ID = "c0ffee" + "0" * 58


def install(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "docker"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    exe.chmod(0o755)
    return exe


def _pids(log: str) -> Path:
    return Path(f"{log}.pids")


def _run(argv: list[str], log: str) -> None:
    port = argv[argv.index("-p") + 1].split(":")[1]
    name = argv[argv.index("--served-model-name") + 1]
    server = [sys.executable, str(FAKESERVER), "--model", name, "--port", port]
    names = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-e"]
    if "VLLM_API_KEY" in names:  # by name: the value comes from this CLI's environment
        server += ["--api-key", os.environ["VLLM_API_KEY"]]
    env = {**os.environ, "PYTHONPATH": str(FAKESERVER.parents[2])}
    proc = subprocess.Popen(
        server, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    with _pids(log).open("a") as fh:
        fh.write(f"{proc.pid}\n")
    print(CONTAINER_ID)


def _stop(log: str) -> None:
    path = _pids(log)
    for line in path.read_text().split() if path.exists() else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line), signal.SIGTERM)
    path.unlink(missing_ok=True)


def main(argv: list[str]) -> None:
    log = os.environ["FAKE_DOCKER_LOG"]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(argv) + "\n")
    if argv[0] == "run":
        _run(argv, log)
    elif argv[0] == "version":
        print("20.10.24")
    elif argv[:2] == ["image", "inspect"]:
        print('"sha256:0123abcd" []' if "json" in " ".join(argv) else "sha256:0123abcd")
    elif argv[0] == "inspect":
        print("running 0")
    elif argv[0] == "stop":
        _stop(log)
        print(argv[-1])
    elif argv[0] == "rm":
        print(argv[-1])


if __name__ == "__main__":
    main(sys.argv[1:])
