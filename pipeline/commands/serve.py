"""`medsweep serve`: start a vLLM server for a model (docker, local vLLM or the embedded CPU build)."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.errors import ConfigError


def _gpu_list(text: str) -> list[int]:
    try:
        gpus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected GPU indices like 0,1,2,3, got {text!r}") from exc
    if not gpus or len(set(gpus)) != len(gpus) or min(gpus) < 0:
        raise argparse.ArgumentTypeError(f"expected distinct GPU indices like 0,1,2,3, got {text!r}")
    return gpus


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="start a vLLM server for a model of servers/ (no --model and no GPU: the CPU default)",
        description="Start a vLLM OpenAI-compatible server and record it in .medsweep/serve.json.",
    )
    parser.add_argument("--model", help="registry name (see `medsweep models`)")
    from pipeline.models.devices import DEVICES
    from pipeline.serving.engines import DEFAULT_ENGINES, ENGINE_NAMES

    defaults = ", ".join(f"{engine} on a {device}" for device, engine in DEFAULT_ENGINES.items())
    parser.add_argument("--engine", choices=ENGINE_NAMES, help=f"how to run the server (default: {defaults})")
    parser.add_argument(
        "--device", choices=DEVICES, help="gpu or cpu (default: the model's, from servers/<model>.toml)"
    )
    parser.add_argument(
        "--image", help="container engines: the image to run instead of the pin of docker/vllm.env"
    )
    parser.add_argument(
        "--gpus", type=_gpu_list, help="GPU indices, e.g. 0,1,2,3 (tensor-parallel size = count)"
    )
    parser.add_argument("--port", type=int, default=8000, help="host port (default 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--memory-class", type=int, choices=(80, 40, 24), help="GB per GPU (default: detected, else 80)"
    )
    parser.add_argument("--max-model-len", type=int, help="override the registry's max_model_len")
    parser.add_argument(
        "--timeout", type=float, help="seconds to wait for health (default 300 cpu, 1800 GPU)"
    )
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="env variable holding the API key the server requires"
    )
    parser.add_argument("--nodes", type=int, default=1, help="with --dry-run: print a Ray multi-node launch")
    parser.add_argument("--dry-run", action="store_true", help="print the exact command; start nothing")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.serving.launch import ServeRequest, serve

    if args.nodes < 1:
        raise ConfigError("--nodes must be at least 1")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is not a TCP port")
    if args.model:
        _warn_about_templates(args.model)
    state = serve(
        ServeRequest(
            model=args.model,
            engine=args.engine,
            device=args.device,
            image=args.image,
            gpus=args.gpus,
            port=args.port,
            host=args.host,
            memory_class=args.memory_class,
            max_model_len=args.max_model_len,
            timeout=args.timeout,
            api_key_env=args.api_key_env,
            nodes=args.nodes,
            dry_run=args.dry_run,
        )
    )
    if state is not None:
        print(f"ready: {state.served_model} at {state.openai_base_url} (stop with `medsweep stop`)")
    return 0


def _warn_about_templates(model: str) -> None:
    """A reasoning switch the chat template ignores: say so before serving (the run would not switch)."""
    import sys

    from pipeline.models.registry import get_model
    from pipeline.models.templates import template_warnings

    for line in template_warnings(get_model(model)):
        print(line, file=sys.stderr)
