"""``--engine cpu``: the embedded default, vLLM's CPU build from ``.venv-vllm`` (`make setup-server`) serving
a local model folder with the measured CPU environment (docs/serving.md, "CPU server pitfalls")."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.serving.argv import CPU_ENV, server_url, vllm_flags
from pipeline.serving.engines.base import Launch, Target
from pipeline.serving.engines.common import ProcessEngine, model_dir, require_model_dir, vllm_venv


class CpuEngine(ProcessEngine):
    name = "cpu"
    devices = ("cpu",)

    def plan(self, target: Target) -> Launch:
        # `vllm serve PATH` (positional) is the documented form; the flags after it are the shared ones.
        args = vllm_flags(
            target.model,
            tensor_parallel=1,
            max_model_len=target.max_model_len,
            with_revision=False,
            adapters=target.adapters,
        )
        vllm_bin = str(vllm_venv() / "bin" / "vllm")
        argv = [vllm_bin, "serve", str(model_dir(target.model)), *args]
        argv += ["--host", target.host, "--port", str(target.port)]
        return Launch(argv=argv, env={**CPU_ENV, **target.env()}, url=server_url(target.host, target.port))

    def check(self, target: Target, launch: Launch) -> None:
        if not Path(launch.argv[0]).exists():
            raise ConfigError(
                f"{launch.argv[0]} missing: run `make setup-server` (scripts/setup_cpu_server.sh)"
            )
        require_model_dir(target.model)
