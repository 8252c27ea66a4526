"""Does a model's chat template read the switch the registry sets (``reasoning.chat_template_kwargs``)?

A template that never names the switch ignores it: vLLM renders the prompt as if it were not there, and a
run that meant to turn thinking on or off would not. The template is read from the model's local folder
(``local_path``) or from the Hugging Face cache, offline; where neither has it, nothing can be said.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.models.registry import ServerConfig
from pipeline.paths import REPO_ROOT

_TEMPLATE_FILES = ("chat_template.jinja", "tokenizer_config.json")


def template_warnings(cfg: ServerConfig) -> list[str]:
    """One line per switch of ``cfg.reasoning.chat_template_kwargs`` that its chat template never reads."""
    if cfg.reasoning is None or not cfg.reasoning.chat_template_kwargs:
        return []
    template = chat_template(cfg)
    if template is None:
        return []
    return [
        f"warning: servers/{cfg.name}.toml: reasoning.chat_template_kwargs.{switch}: the chat template of "
        f"{cfg.hf_id} never reads {switch!r}, so the switch is ignored; remove it or check the name"
        for switch in cfg.reasoning.chat_template_kwargs
        if switch not in template
    ]


def chat_template(cfg: ServerConfig) -> str | None:
    """The chat template's text, from the local folder or the Hugging Face cache; None if neither has it."""
    for folder in _folders(cfg):
        for name in _TEMPLATE_FILES:
            path = folder / name
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if name.endswith(".jinja"):
                return text
            try:
                found = json.loads(text).get("chat_template")
            except (ValueError, AttributeError):
                continue
            if isinstance(found, str):
                return found
            if isinstance(found, list):  # named templates: [{"name": ..., "template": ...}]
                return "\n".join(str(t.get("template", "")) for t in found if isinstance(t, dict))
    return None


def _folders(cfg: ServerConfig) -> list[Path]:
    if cfg.local_path:
        local = Path(cfg.local_path)
        return [local if local.is_absolute() else REPO_ROOT / local]
    hub = Path(
        os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub"
    )
    snapshots = hub.expanduser() / f"models--{cfg.hf_id.replace('/', '--')}" / "snapshots"
    return sorted(snapshots.iterdir()) if snapshots.is_dir() else []
