"""The prompt of a stored result, for the sample viewer. The store keeps only the prompt's hash (the text is
rendered from the data), so the prompts are rendered again here, the way each run recorded that it rendered
them (its data folder, chat mode, demonstrations, truncation), and a text is shown only when its hash is the
stored ``prompt_hash``: never a prompt that merely looks like the one that was sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from pipeline.errors import MedsweepError
from pipeline.evaluation.tokens import EstimateCounter
from pipeline.request import Request
from pipeline.tasks import get_task
from pipeline.tasks.base import RenderContext

NOT_RENDERED = (
    "the prompt was not re-rendered: no rendering of the data gives its hash (the data or the prompt files "
    "changed since the run, or it was cut to the server's token counts, which the report cannot ask for)"
)


@dataclass(slots=True)
class PromptIndex:
    """Prompt texts by ``prompt_hash``, and why there are none for a (model, variant, task)."""

    texts: dict[str, str] = field(default_factory=dict)
    why: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def lookup(self, model: str, variant: str, task: str, prompt_hash: str | None) -> tuple[str | None, str]:
        """(text, "") when the prompt is known, else (None, why not)."""
        if prompt_hash and prompt_hash in self.texts:
            return self.texts[prompt_hash], ""
        return None, self.why.get((model, variant, task), NOT_RENDERED)


def prompt_as_text(request: Request) -> str:
    """A chat prompt as ``[role]`` blocks, a completion prompt as it is."""
    if request.messages is None:
        return request.prompt or ""
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in request.messages)


def _render_settings(config: dict[str, Any], variant: str, data_dir: Path | None) -> dict[str, Any]:
    """What a run rendered its prompts with, from its ``config_json``; KeyError when it does not say."""
    run, target = config["run"], config["target"]
    return {
        "data_dir": str(data_dir) if data_dir is not None else str(run["data_dir"]),
        "chat_mode": target["chat_mode"],
        "max_model_len": int(target["max_model_len"]),
        "truncation": target.get("truncation", "letters"),
        "demonstrations": run.get("demonstrations", "v3"),
        "limit": run.get("limit"),
        "variant": variant,
    }


async def _render(task: str, settings: dict[str, Any], into: dict[str, str]) -> None:
    ctx = RenderContext(
        chat_mode=settings["chat_mode"],
        max_model_len=settings["max_model_len"],
        counter=EstimateCounter(),
        variant=settings["variant"],
        limit=settings["limit"],
        demonstrations=settings["demonstrations"],
        truncation=settings["truncation"],
    )
    async for request in get_task(task).requests(Path(settings["data_dir"]), ctx):
        into.setdefault(request.prompt_hash(), prompt_as_text(request))


def _render_once(task: str, settings: dict[str, Any], into: dict[str, str]) -> str:
    """Render ``task``'s prompts into ``into``; why not, or "" when they were rendered."""
    if not Path(settings["data_dir"]).is_dir():
        return (
            f"the data folder {settings['data_dir']} (from the run's configuration) is not here: "
            "make the report where the eval ran, or pass --data-dir"
        )
    try:
        asyncio.run(_render(task, settings, into))
    except MedsweepError as exc:
        return f"the prompts could not be rendered again: {exc}"
    return ""


def rerender_prompts(
    runs: pl.DataFrame, wanted: Iterable[tuple[str, str, str]], data_dir: Path | None = None
) -> PromptIndex:
    """Render the prompts of every (model, variant, task) in ``wanted`` as its runs did. ``data_dir``
    replaces the runs' own data folder (for a report made elsewhere than the eval)."""
    index = PromptIndex()
    done: dict[str, str] = {}  # rendering settings -> why they gave no prompts ("" when they did)
    for model, variant, task in sorted(set(wanted)):
        configs = runs.filter((pl.col("model") == model) & (pl.col("variant") == variant))["config_json"]
        reasons: list[str] = []
        for text in configs.to_list():
            try:
                config = orjson.loads(text or "{}")
                if task not in config.get("prompts_sha256", {task: ""}):
                    continue  # this run did not evaluate the task
                settings = _render_settings(config, variant, data_dir)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                reasons.append("the run's configuration does not record how its prompts were rendered")
                continue
            marker = orjson.dumps([task, settings], option=orjson.OPT_SORT_KEYS).decode()
            if marker not in done:  # the two models of a pair often share their settings: render once
                done[marker] = _render_once(task, settings, index.texts)
            if done[marker]:
                reasons.append(done[marker])
        if reasons:
            index.why[(model, variant, task)] = reasons[0]
    return index
