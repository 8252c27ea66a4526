"""``--engine apptainer``: what HPC clusters run instead of Docker. ``apptainer exec`` of the pinned vLLM
image (``docker://IMAGE``, or a local ``.sif`` given with ``--image``), ``--nv`` on GPUs, the HF cache bound.
There is no port mapping: the server binds the host address itself. Stopped by its process group."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.serving.argv import CPU_ENV, NO_TELEMETRY_ENV, server_url
from pipeline.serving.engines.base import Launch, Target
from pipeline.serving.engines.common import (
    ProcessEngine,
    container_serve_args,
    hf_cache_dir,
    model_dir,
    require_model_dir,
    require_on_path,
)
from pipeline.serving.image import pinned_image

CONTAINER_MODELS = "/models"


def image_ref(image: str) -> str:
    """A local ``.sif`` file as it is; anything else is an image of a registry (``docker://``)."""
    if image.endswith(".sif") or "://" in image:
        return image
    return f"docker://{image}"


class ApptainerEngine(ProcessEngine):
    name = "apptainer"

    def plan(self, target: Target) -> Launch:
        cfg = target.model
        hf_cache = hf_cache_dir()
        argv = ["apptainer", "exec"]
        if target.device == "gpu":
            argv.append("--nv")
        env = {**(NO_TELEMETRY_ENV if target.device == "gpu" else CPU_ENV), **target.env()}
        env["HF_HOME"] = str(hf_cache)
        argv += ["--bind", f"{hf_cache}:{hf_cache}"]
        if cfg.local_path:
            inside = f"{CONTAINER_MODELS}/{cfg.name}"
            argv += ["--bind", f"{model_dir(cfg)}:{inside}:ro"]
            model = inside
        else:
            model = cfg.hf_id
        mounts, flags = container_serve_args(target, "--bind")
        argv += mounts
        argv += [x for k, v in env.items() for x in ("--env", f"{k}={v}")]
        image = target.image or pinned_image(target.device)
        argv += [image_ref(image), "vllm", "serve", model, *flags]
        argv += ["--host", target.host, "--port", str(target.port)]
        # HF_TOKEN and VLLM_API_KEY reach the container from the environment (apptainer passes it through);
        # CUDA_VISIBLE_DEVICES picks the GPUs as for a local vllm.
        run_env = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in target.gpus)} if target.gpus else {}
        return Launch(argv=argv, env=run_env, url=server_url(target.host, target.port), image=image)

    def check(self, target: Target, launch: Launch) -> None:
        require_on_path("apptainer", "load it (e.g. `module load apptainer`) or use --engine docker")
        image = str(launch.image)
        if image.endswith(".sif") and "://" not in image and not Path(image).is_file():
            raise ConfigError(f"--image {image}: no such .sif file")
        if target.model.local_path:
            require_model_dir(target.model)
