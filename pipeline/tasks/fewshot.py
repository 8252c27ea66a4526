"""Single-question tasks: k demonstrations from the data, then one request per remaining item."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.config import Demonstrations
from pipeline.errors import ConfigError, DataError
from pipeline.request import Request
from pipeline.tasks.base import RenderContext
from pipeline.tasks.budget import count_rendered, prompt_cap, surely_fits, v3_truncation, water_fill
from pipeline.tasks.loaders import load_once
from pipeline.tasks.prompts import (
    PromptTexts,
    TaskPrompts,
    load_budget,
    load_prompts,
    prompt_path,
    response_format,
    template_fields,
)
from pipeline.tasks.render import Rendered, render_few_shot


@dataclass(frozen=True, slots=True)
class Item:
    """One dataset row: its stable id, the fields the templates read, and the gold answer for scoring."""

    item_id: str
    fields: Mapping[str, Any]
    reference: Any


def unique_ids(ids: Sequence[str | None]) -> list[str]:
    """The data's own ids, the row index where a row has none, and ``#2``, ``#3``... on repeats (several
    MeDiSumQA questions share a note), so that every item keeps a distinct, stable id."""
    seen: dict[str, int] = {}
    out: list[str] = []
    for index, raw in enumerate(ids):
        base = raw if raw else str(index)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return out


def split_few_shot(
    items: Sequence[Item], prompt: PromptTexts, demonstrations: Demonstrations = "v3"
) -> tuple[list[Item], list[Item]]:
    """Demonstrations and test items: the prompt file's ``examples``, then the first ``few_shot`` rows, which
    leave the test set. The rows are shuffled by
    ``random.Random(seed)`` first (what ``random.seed(1); random.shuffle(data)`` does) where v3 did that
    (the prompt file's ``shuffle``: MeDiSumQA), or for every task with ``demonstrations = "shuffled"``."""
    ordered = list(items)
    if prompt.shuffle or demonstrations == "shuffled":
        random.Random(prompt.shuffle_seed).shuffle(ordered)
    examples = [Item(f"example-{i}", fields, None) for i, fields in enumerate(prompt.examples)]
    return [*examples, *ordered[: prompt.few_shot]], ordered[prompt.few_shot :]


def missing_data_error(task: str, path: Path, spec: TaskPrompts) -> DataError:
    fetch = " or run `medsweep data fetch`" if spec.data.url else ""
    return DataError(
        f"{path} is missing ({task}); get it from {spec.data.get}{fetch}, "
        "and put it there (or pass --data-dir)"
    )


class FewShotTask:
    """A task whose prompt is system + k (user, assistant) demonstrations + the query."""

    def __init__(self, name: str, loader: Callable[[Path], list[Item]]) -> None:
        self.name = name
        self._loader = loader

    @property
    def spec(self) -> TaskPrompts:
        return load_prompts(self.name)

    def data_path(self, data_dir: Path) -> Path:
        return data_dir / self.name / self.spec.data.file

    def load(self, data_dir: Path) -> list[Item]:
        """All rows of the dataset, validated (demonstrations included)."""
        path = self.data_path(data_dir)
        if not path.is_file():
            raise missing_data_error(self.name, path, self.spec)
        items = load_once(self._loader, path)
        needed = self.spec.prompt.few_shot + 1
        if len(items) < needed:
            raise DataError(
                f"{path} has {len(items)} rows; {self.name} needs at least {needed} "
                f"({self.spec.prompt.few_shot} demonstrations + 1 to evaluate)"
            )
        return items

    def rows(self, data_dir: Path) -> int:
        return len(self.load(data_dir))

    def expected_count(self, data_dir: Path, limit: int | None) -> int:
        n = len(self.load(data_dir)) - self.spec.prompt.few_shot
        return n if limit is None else min(n, limit)

    async def requests(self, data_dir: Path, ctx: RenderContext) -> AsyncIterator[Request]:
        spec = self.spec
        prompt = spec.prompt
        items = self.load(data_dir)
        self._check_fields(items[0])
        demos, tests = split_few_shot(items, prompt, ctx.demonstrations)
        if ctx.limit is not None:
            tests = tests[: ctx.limit]
        fmt = response_format(spec.structured) if ctx.variant == "structured" and spec.structured else None
        # A prefill would put text before the JSON the schema asks for: the structured variant has none.
        prefill = "" if fmt else prompt.prefill
        extra: dict[str, Any] = {"stop": list(prompt.stop)} if prompt.stop else {}
        if ctx.truncation == "v3":
            extra.update(v3_truncation(ctx.max_model_len, prompt))
        for item in tests:
            if ctx.truncation == "v3":  # whole and as v3 rendered it: the server keeps the prompt's end
                rendered = self._render(demos, item, ctx, prefill)
            else:
                rendered = await self._fit(demos, item, ctx, prefill)
            yield Request(
                task=self.name,
                item_id=item.item_id,
                kind=rendered.kind,
                max_tokens=prompt.max_new_tokens,
                reference=item.reference,
                messages=rendered.messages,
                prompt=rendered.prompt,
                response_format=fmt,
                prefix_group=self.name,
                extra_body={**rendered.extra_body, **extra},
                choices=self._choices(item) if ctx.variant == "loglik" else (),
            )

    def _choices(self, item: Item) -> tuple[tuple[str, str], ...]:
        """``--variant loglik``'s options, each as the demonstrations' answers write it."""
        spec = self.spec
        if spec.loglik is None:
            raise ConfigError(
                f"{prompt_path(self.name)}: no [loglik] table: {self.name} has no options to score"
            )
        options = spec.loglik
        return tuple(
            (value, spec.prompt.assistant.format_map({**item.fields, options.field: value}))
            for value in options.values
        )

    def _check_fields(self, item: Item) -> None:
        prompt = self.spec.prompt
        for name in ("user", "assistant"):
            missing = template_fields(getattr(prompt, name)) - set(item.fields)
            if missing:
                raise ConfigError(
                    f"{prompt_path(self.name)}: prompt.{name} uses {sorted(missing)}, "
                    f"which {self.name} rows do not have (they have {sorted(item.fields)}); fix the template"
                )
            for index, example in enumerate(prompt.examples):
                absent = template_fields(getattr(prompt, name)) - set(example)
                if absent:
                    raise ConfigError(
                        f"{prompt_path(self.name)}: prompt.examples[{index}] lacks {sorted(absent)}, which "
                        f"prompt.{name} uses; give every example the fields of a row"
                    )

    def _render(self, demos: Sequence[Item], item: Item, ctx: RenderContext, prefill: str) -> Rendered:
        prompt = self.spec.prompt
        pairs = [(prompt.user.format_map(d.fields), prompt.assistant.format_map(d.fields)) for d in demos]
        return render_few_shot(
            ctx.chat_mode, prompt.system, pairs, prompt.user.format_map(item.fields), prefill
        )

    async def _fit(self, demos: Sequence[Item], item: Item, ctx: RenderContext, prefill: str) -> Rendered:
        """Render, and keep the END of over-long letters so that the prompt plus ``max_new_tokens`` fits
        ``max_model_len`` (``--truncation letters``). All letters (demonstrations' and the query's) share the
        budget: short ones stay whole, long ones are cut to the same length, and the system prompt stays.
        This is not what v3 did: TGI kept the end of the whole prompt (``--truncation v3``)."""
        prompt = self.spec.prompt
        rendered = self._render(demos, item, ctx, prefill)
        cap = prompt_cap(ctx.max_model_len, prompt.max_new_tokens, load_budget(), rendered.n_messages)
        if not prompt.truncate_fields or surely_fits(rendered, cap):
            return rendered
        owners = [*demos, item]
        blank = {name: "" for name in prompt.truncate_fields}
        blanked = [replace(o, fields={**o.fields, **blank}) for o in owners]
        fixed = await count_rendered(ctx.counter, self._render(blanked[:-1], blanked[-1], ctx, prefill))
        pieces = [
            (i, name, str(o.fields[name])) for i, o in enumerate(owners) for name in prompt.truncate_fields
        ]
        counts = [await ctx.counter.count(text) for _, _, text in pieces]
        per_text = water_fill(counts, cap - fixed)
        if per_text is None:
            return rendered
        new_fields = [dict(o.fields) for o in owners]
        for (i, name, text), count in zip(pieces, counts, strict=True):
            if count > per_text:
                new_fields[i][name] = await ctx.counter.truncate(text, per_text, keep="end")
        cut = [replace(o, fields=f) for o, f in zip(owners, new_fields, strict=True)]
        return self._render(cut[:-1], cut[-1], ctx, prefill)
