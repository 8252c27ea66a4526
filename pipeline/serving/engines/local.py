"""``--engine local``: ``vllm serve`` installed on this machine, on its GPUs (CUDA_VISIBLE_DEVICES)."""

from __future__ import annotations

import shutil

from pipeline.serving.argv import NO_TELEMETRY_ENV, server_url, vllm_model_args
from pipeline.serving.engines.base import Launch, Target
from pipeline.serving.engines.common import ProcessEngine, require_on_path


class LocalEngine(ProcessEngine):
    name = "local"
    devices = ("gpu",)
    multinode = True

    def plan(self, target: Target) -> Launch:
        args = vllm_model_args(
            target.model, **target.parallel(), max_model_len=target.max_model_len, adapters=target.adapters
        )
        vllm_bin = shutil.which("vllm") or "vllm"
        argv = [vllm_bin, "serve", *args, "--host", target.host, "--port", str(target.port)]
        env = {
            "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in target.gpus),
            **NO_TELEMETRY_ENV,
            **target.env(),
        }
        return Launch(argv=argv, env=env, url=server_url(target.host, target.port))

    def check(self, target: Target, launch: Launch) -> None:
        require_on_path("vllm", "install vLLM, or use --engine docker")
