"""A fake ``vllm`` command for jobs of the real Slurm tests: ``vllm serve --model ... --port P`` becomes our
fake OpenAI server (tests/support/fakeserver.py) serving the ``--served-model-name`` on that port.

Installed by ``install(bin_dir)`` as ``bin_dir/vllm`` (put first on PATH; sbatch passes PATH to the job).
Each start appends one JSON line to ``$FAKE_VLLM_RECORD``: its argv, the GPUs it was given
(``CUDA_VISIBLE_DEVICES``), the Slurm job id and its pid (the fake server keeps the pid: exec). Extra
fake-server flags per served model (``--hold``, ``--delay``) come from the JSON file ``$FAKE_VLLM_EXTRA``.
Like vLLM, it requires the key in ``$VLLM_API_KEY`` when that is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

FAKESERVER = Path(__file__).with_name("fakeserver.py")


def install(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "vllm"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    exe.chmod(0o755)
    return exe


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="vllm")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model_path", nargs="?")
    parser.add_argument("--model")
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-model-len", default="4096")
    args, _ = parser.parse_known_args(argv)
    record = os.environ.get("FAKE_VLLM_RECORD")
    if record:
        entry = {
            "argv": argv, "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "job_id": os.environ.get("SLURM_JOB_ID", ""), "pid": os.getpid(), "port": args.port,
            "model": args.served_model_name,
        }  # fmt: skip
        with open(record, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    extra: list[str] = []
    if os.environ.get("FAKE_VLLM_EXTRA"):
        extra = json.loads(Path(os.environ["FAKE_VLLM_EXTRA"]).read_text()).get(args.served_model_name, [])
    if os.environ.get("VLLM_API_KEY"):
        extra += ["--api-key", os.environ["VLLM_API_KEY"]]
    os.environ["PYTHONPATH"] = str(FAKESERVER.parents[2])
    server = [sys.executable, str(FAKESERVER), "--model", args.served_model_name, "--host", args.host,
              "--port", str(args.port), "--max-model-len", args.max_model_len, *extra]  # fmt: skip
    os.execv(sys.executable, server)


if __name__ == "__main__":
    main(sys.argv[1:])
