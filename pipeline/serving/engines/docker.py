"""``--engine docker``: the pinned vLLM image in a container, on GPUs (``--gpus``) or on the CPU (the image of
`make image-cpu`), published on the host address only, labelled ``medsweep.managed=1`` (+ model, port)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.serving import docker_cli
from pipeline.serving.argv import CPU_ENV, NO_TELEMETRY_ENV, server_url
from pipeline.serving.engines.base import Engine, Launch, Target
from pipeline.serving.engines.common import container_serve_args, hf_cache_dir, model_dir
from pipeline.serving.image import IMAGE_VARIABLES, pinned_image
from pipeline.serving.running import RunningServer

CONTAINER_PORT = 8000
CONTAINER_HF_CACHE = "/root/.cache/huggingface"
CONTAINER_MODELS = "/models"


def container_name(target: Target) -> str:
    return f"medsweep-{target.model.name}-{target.port}"


def labels(target: Target) -> list[str]:
    return [
        "--label", f"{docker_cli.MANAGED_LABEL}=1",
        "--label", f"{docker_cli.MODEL_LABEL}={target.model.name}",
        "--label", f"{docker_cli.PORT_LABEL}={target.port}",
    ]  # fmt: skip


def run_argv(target: Target, image: str, hf_cache: Path) -> list[str]:
    """``docker run -d ...`` for an image with the vllm/vllm-openai contract (ENTRYPOINT `vllm serve`).
    Secrets pass by name only (``-e HF_TOKEN`` copies the variable from the caller's environment)."""
    cfg = target.model
    argv = ["docker", "run", "-d", "--name", container_name(target), *labels(target)]
    if target.device == "gpu":
        # docker splits --gpus on commas unless the device list is quoted inside the value.
        argv += ["--gpus", f'"device={",".join(str(g) for g in target.gpus)}"']
    argv += [
        "--ipc=host",
        "-p", f"{target.host}:{target.port}:{CONTAINER_PORT}",
        "-v", f"{hf_cache}:{CONTAINER_HF_CACHE}",
    ]  # fmt: skip
    env = {**(NO_TELEMETRY_ENV if target.device == "gpu" else CPU_ENV), **target.env()}
    if cfg.local_path:
        # The weights stay outside the image, read-only: the same image serves any model folder.
        inside = f"{CONTAINER_MODELS}/{cfg.name}"
        argv += ["-v", f"{model_dir(cfg)}:{inside}:ro"]
        model = inside
    else:
        model = cfg.hf_id
    argv += ["-e", "HF_TOKEN", *(x for k, v in env.items() for x in ("-e", f"{k}={v}"))]
    if target.api_key:
        argv += ["-e", "VLLM_API_KEY"]
    mounts, flags = container_serve_args(target, "-v")
    argv += mounts
    # `vllm serve MODEL` (positional): the entrypoint of both images is `vllm serve`.
    return [*argv, image, model, *flags]


class DockerEngine(Engine):
    name = "docker"

    def plan(self, target: Target) -> Launch:
        image = target.image or pinned_image(target.device)
        argv = run_argv(target, image, hf_cache_dir())
        return Launch(argv=argv, url=server_url(target.host, target.port), image=image)

    def check(self, target: Target, launch: Launch) -> None:
        if target.model.local_path and not model_dir(target.model).is_dir():
            # docker run -v would create the missing folder (as root) and serve nothing.
            raise ConfigError(f"{model_dir(target.model)}: model folder missing: run `make setup-server`")
        docker_cli.check_daemon()
        running = docker_cli.managed_containers(port=target.port, running_only=True)
        if running:
            raise ConfigError(
                f"a medsweep container ({running[0][:12]}) already serves port {target.port}: "
                "`medsweep stop` it first, or pick another --port"
            )
        image = str(launch.image)
        if docker_cli.image_present(image):
            return
        if image == pinned_image("cpu"):
            raise ConfigError(f"image {image} is not present: build it with `make image-cpu`")
        if not docker_cli.pull(image):
            raise ConfigError(
                f"image {image} is not present and `docker pull` failed (no registry reachable?): "
                f"`docker load` it, or name a present one with --image / {IMAGE_VARIABLES[target.device]}"
            )

    def start(
        self, target: Target, launch: Launch, env: Mapping[str, str], server: RunningServer
    ) -> RunningServer:
        hf_cache_dir().mkdir(parents=True, exist_ok=True)
        # A stopped container of this name (a crashed sweep) would make `docker run --name` fail.
        docker_cli.remove(container_name(target))
        container_id = docker_cli.run_detached(launch.argv, env, container_name(target))
        image = docker_cli.image_provenance(str(launch.image))
        # The container logs to docker (`docker logs`), not to a file.
        return server.model_copy(
            update={"container_id": container_id, "log_path": None, "image_id": image.image_id,
                    "image_digests": list(image.digests)}
        )  # fmt: skip

    def alive(self, server: RunningServer) -> str | None:
        return docker_cli.container_status(str(server.container_id))

    def stop(self, server: RunningServer, grace: float = 20.0) -> str:
        docker_cli.stop_and_remove(str(server.container_id), grace=grace)
        return f"stopped and removed container {str(server.container_id)[:12]}"

    def logs(self, server: RunningServer, lines: int = 50) -> str:
        return docker_cli.logs_tail(str(server.container_id), lines)

    def follow_argv(self, server: RunningServer, lines: int) -> list[str]:
        return [docker_cli.docker_bin(), "logs", "--tail", str(lines), "-f", str(server.container_id)]
