"""The one record of a running server: what was started, where it answers, and the ids it is watched and
stopped by. ``pipeline.serving.lifecycle.start_server`` returns it; `medsweep serve` writes it as the state
file (``.medsweep/serve.json``, pipeline.serving.state); the sweep and a Slurm job hold it in memory; the
engines stop it, tell whether it runs and show its log from it.

It never holds a key or token: only the *name* of the environment variable that holds the API key. Its
fields are the state file's keys (an older file, with fewer of them, still loads).
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from pipeline.models.registry import Device


class RunningServer(BaseModel):
    """One started server. ``url`` is the server root (``/health``, ``/tokenize``, ``/metrics``);
    ``openai_base_url`` is ``url + "/v1"`` for OpenAI-style clients."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    openai_base_url: str
    served_model: str
    served_models: list[str] = Field(default_factory=list)  # every name it answers to (LoRA: the base too)
    model: str  # registry name (servers/<model>.toml)
    engine: str  # a name of pipeline.serving.engines.ENGINES (checked where a file is read)
    device: Device = "gpu"
    host: str
    port: int
    container_id: str | None = None
    pid: int | None = None
    boot_id: str | None = None  # with pid_start: who ``pid`` is (pipeline/proc.py); stop checks both
    pid_start: int | None = None
    hf_id: str | None = None
    revision: str | None = None
    image: str | None = None
    image_id: str | None = None  # `docker image inspect` .Id of the image that ran (content address)
    image_digests: list[str] = Field(default_factory=list)  # its registry digests, when it came from one
    offers: dict[str, bool] = Field(default_factory=dict)  # what the endpoint serves (engines.base.Offers)
    gpus: list[int] = Field(default_factory=list)
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    memory_class: int | None = None
    max_model_len: int | None = None
    chat_mode: str | None = None
    stop: list[str] = Field(default_factory=list)
    api_key_env: str | None = None  # name of the variable holding the key; never the key
    # VLLM_BATCH_INVARIANT as started (engines.base.Target); None in a state file from before it was kept.
    vllm_batch_invariant: bool | None = None
    log_path: str | None = None
    started_at: float = Field(default_factory=time.time)

    def describe(self) -> str:
        """``container 0123456789ab`` or ``pid N (log PATH)``: how the user finds it."""
        if self.container_id:
            return f"container {self.container_id[:12]}"
        return f"pid {self.pid}" + (f" (log {self.log_path})" if self.log_path else "")
