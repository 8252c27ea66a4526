"""A stand-in for ``apptainer`` (which cannot be installed here): records its argv as one JSON line in
``$FAKE_APPTAINER_LOG``, then becomes our fake OpenAI server (tests/support/fakeserver.py) on the port and
under the served name that the ``vllm serve ...`` part of its command line asks for. Installed on PATH as
``apptainer`` by tests/serving/test_apptainer.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> None:
    argv = sys.argv[1:]
    with open(os.environ["FAKE_APPTAINER_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
    serve = argv[argv.index("serve") + 1 :]

    def flag(name: str, default: str) -> str:
        return serve[serve.index(name) + 1] if name in serve else default

    fake = Path(__file__).with_name("fakeserver.py")
    args = [
        sys.executable, str(fake),
        "--model", flag("--served-model-name", "fake-model"),
        "--host", flag("--host", "127.0.0.1"),
        "--port", flag("--port", "8000"),
        "--max-model-len", flag("--max-model-len", "2048"),
    ]  # fmt: skip
    os.execv(sys.executable, args)  # the same pid: the engine stops it by its process group


if __name__ == "__main__":
    main()
