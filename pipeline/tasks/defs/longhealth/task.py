"""LongHealth's data and requests: multiple-choice questions over a patient's documents, in three sub-tasks.

- ``task1``: the answer documents plus the same patient's other texts; options A-E.
- ``task2``: the answer documents plus texts of other patients (distractors); options A-F.
- ``task3``: only the distractors; options A-F; the gold answer is F ("cannot be answered").

Each question is asked ``repeats`` times per sub-task with a new document order (and new distractors). The
shuffles are seeded per (sub-task, patient, question, repeat), so every run and machine sends the same
prompts. A patient's requests are adjacent and share ``prefix_group`` = the patient id.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from pipeline.config import ChatMode
from pipeline.errors import DataError
from pipeline.request import Request
from pipeline.tasks.base import RenderContext, TokenCounter
from pipeline.tasks.budget import prompt_cap, v3_truncation
from pipeline.tasks.fewshot import missing_data_error
from pipeline.tasks.loaders import Row, load_once, read_text, validation_error
from pipeline.tasks.prompts import LongHealthSettings, TaskPrompts, load_budget, load_prompts, response_format
from pipeline.tasks.render import render_longhealth

SUBTASKS = ("task1", "task2", "task3")
_TASK1_LABELS = "abcde"
_TASK23_LABELS = "abcdef"  # F: "Question cannot be answered with provided documents"


def option_letters(subtask: str) -> str:
    """The option letters a sub-task offers, upper case (Task 1: A-E; Tasks 2/3 add F)."""
    return (_TASK1_LABELS if subtask == "task1" else _TASK23_LABELS).upper()


class LongHealthQuestion(Row):
    No: int | str
    question: str
    answer_a: str
    answer_b: str
    answer_c: str
    answer_d: str
    answer_e: str
    correct: str
    answer_location: dict[str, Any]


class LongHealthPatient(Row):
    name: str = ""
    texts: dict[str, str] = Field(min_length=1)
    questions: list[LongHealthQuestion]


def load_longhealth(path: Path) -> dict[str, LongHealthPatient]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a JSON object keyed by patient id (patient_01, ...)")
    patients: dict[str, LongHealthPatient] = {}
    for patient_id, obj in data.items():
        try:
            patient = LongHealthPatient.model_validate(obj)
        except ValidationError as exc:
            raise validation_error(
                path, f"patient {patient_id!r}", exc, "see the LongHealth schema in docs/tasks.md"
            ) from None
        for index, question in enumerate(patient.questions):
            unknown = [t for t in question.answer_location if t not in patient.texts]
            if unknown:
                raise DataError(
                    f"{path}: patient {patient_id!r}: field 'questions.{index}.answer_location': names texts "
                    f"{unknown} that the patient does not have; fix the text ids"
                )
        patients[patient_id] = patient
    return patients


def derive_seed(*parts: str) -> int:
    """A 64-bit seed from names (not ``hash()``, which changes per process)."""
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "big")


def option_texts(question: LongHealthQuestion, option_f: str) -> dict[str, str]:
    return {
        "a": question.answer_a,
        "b": question.answer_b,
        "c": question.answer_c,
        "d": question.answer_d,
        "e": question.answer_e,
        "f": option_f,
    }


def gold_letter(question: LongHealthQuestion, labels: str, option_f: str, rule: str) -> str | None:
    """The option whose text contains ``correct`` (a substring test, as the paper's code does); with several,
    the first or the last one by ``rule``."""
    texts = option_texts(question, option_f)
    matches = [label.upper() for label in labels if question.correct in texts[label]]
    if not matches:
        return None
    return matches[0] if rule == "first" else matches[-1]


def _n_messages(mode: ChatMode) -> int:
    return 2 if mode == "chat" else 1


async def pack_documents(
    counter: TokenCounter,
    answer_docs: Sequence[str],
    other_docs: Sequence[str],
    budget: int,
    separator_tokens: int,
) -> list[str]:
    """Answer documents first, then the others while they fit; the document that overflows is cut (its
    start kept) and packing stops. Each document is charged one separator."""
    selected: list[str] = []
    total = 0
    for doc in [*answer_docs, *other_docs]:
        n = await counter.count(doc)
        if total + n <= budget:
            selected.append(doc)
            total += n + separator_tokens
            continue
        remaining = budget - total
        if remaining > 0:
            cut = await counter.truncate(doc, remaining, keep="start")
            if cut:
                selected.append(cut)
        break
    return selected


def _other_documents(patients: dict[str, LongHealthPatient], patient_id: str) -> list[str]:
    return [text for pid, p in patients.items() if pid != patient_id for text in p.texts.values()]


@dataclass(frozen=True, slots=True)
class _Frame:
    """What one question's sub-task shares across its repeats."""

    options: str
    budget: int  # tokens left for the documents
    reference: str
    response_format: dict[str, Any] | None
    choices: tuple[tuple[str, str], ...] = ()  # --variant loglik: (letter, the answer naming it)


class LongHealthTask:
    name = "longhealth"

    @property
    def spec(self) -> TaskPrompts:
        return load_prompts(self.name)

    @property
    def settings(self) -> LongHealthSettings:
        settings = self.spec.longhealth
        if settings is None:
            raise DataError(
                "prompts/longhealth.toml has no [longhealth] table; restore it from the repository"
            )
        return settings

    def data_path(self, data_dir: Path) -> Path:
        return data_dir / self.name / self.spec.data.file

    def load(self, data_dir: Path) -> dict[str, LongHealthPatient]:
        path = self.data_path(data_dir)
        if not path.is_file():
            raise missing_data_error(self.name, path, self.spec)
        patients = load_once(load_longhealth, path)
        settings = self.settings
        for patient_id, patient in patients.items():
            for index, question in enumerate(patient.questions):
                if gold_letter(question, _TASK1_LABELS, settings.option_f, settings.gold_match) is None:
                    raise DataError(
                        f"{path}: patient {patient_id!r}: field 'questions.{index}.correct': "
                        f"{question.correct!r} is not part of any option answer_a..answer_e; fix the question"
                    )
        return patients

    def rows(self, data_dir: Path) -> int:
        return sum(len(p.questions) for p in self.load(data_dir).values())

    def _questions(
        self, patients: dict[str, LongHealthPatient], limit: int | None
    ) -> list[tuple[str, LongHealthQuestion]]:
        pairs = [(pid, q) for pid, patient in patients.items() for q in patient.questions]
        return pairs if limit is None else pairs[:limit]

    def expected_count(self, data_dir: Path, limit: int | None) -> int:
        return len(self._questions(self.load(data_dir), limit)) * len(SUBTASKS) * self.settings.repeats

    async def requests(self, data_dir: Path, ctx: RenderContext) -> AsyncIterator[Request]:
        patients = self.load(data_dir)
        settings, counter = self.settings, ctx.counter
        separator_tokens = await counter.count(settings.document_separator)
        pools: dict[str, list[str]] = {}  # Tasks 2/3 draw distractors from every other patient's documents
        for patient_id, question in self._questions(patients, ctx.limit):
            patient = patients[patient_id]
            answers = [patient.texts[t] for t in question.answer_location]
            for subtask in SUBTASKS:
                frame = await self._frame(question, subtask, ctx)
                task1_docs: list[str] | None = None  # Task 1 packs the same documents in every repeat
                for repeat in range(settings.repeats):
                    rng = random.Random(
                        derive_seed(self.name, subtask, patient_id, str(question.No), str(repeat))
                    )
                    if subtask == "task1":
                        if task1_docs is None:
                            own = [t for k, t in patient.texts.items() if k not in question.answer_location]
                            task1_docs = await pack_documents(
                                counter, answers, own, frame.budget, separator_tokens
                            )
                        documents = list(task1_docs)
                    else:
                        if patient_id not in pools:
                            pools[patient_id] = _other_documents(patients, patient_id)
                        pool = pools[patient_id]
                        others = rng.sample(pool, min(settings.distractors, len(pool)))
                        kept = answers if subtask == "task2" else []
                        documents = await pack_documents(
                            counter, kept, others, frame.budget, separator_tokens
                        )
                    rng.shuffle(documents)
                    yield self._request(patient_id, question, subtask, repeat, frame, documents, ctx)

    def _max_len(self, subtask: str, ctx: RenderContext) -> int:
        settings = self.settings
        cap = prompt_cap(
            ctx.max_model_len, self.spec.prompt.max_new_tokens, load_budget(), _n_messages(ctx.chat_mode)
        )
        configured = settings.task1_max_len if subtask == "task1" else settings.task23_max_len
        return min(configured, cap) if configured else cap

    def _response_format(self, labels: str) -> dict[str, Any] | None:
        structured = self.spec.structured
        if structured is None:
            return None
        schema = copy.deepcopy(structured.json_schema)
        schema["properties"]["answer"]["enum"] = [label.upper() for label in labels]
        return response_format(structured, schema)

    async def _frame(self, question: LongHealthQuestion, subtask: str, ctx: RenderContext) -> _Frame:
        settings, prompt = self.settings, self.spec.prompt
        labels = option_letters(subtask).lower()
        texts = option_texts(question, settings.option_f)
        options = "\n".join(f"{label.upper()}: {texts[label]}" for label in labels)
        fixed = await ctx.counter.count(prompt.system) + await ctx.counter.count(
            prompt.user.format(documents="", question_text=question.question, options=options)
        )
        if subtask == "task3":
            reference = "F"
        else:
            reference = gold_letter(question, labels, settings.option_f, settings.gold_match) or ""
        fmt = self._response_format(labels) if ctx.variant == "structured" else None
        choices: tuple[tuple[str, str], ...] = ()
        if ctx.variant == "loglik":
            if self.spec.loglik is None:
                raise DataError(
                    "prompts/longhealth.toml has no [loglik] table; restore it from the repository"
                )
            answer = self.spec.loglik.answer
            choices = tuple(
                (label.upper(), answer.format(label=label.upper(), text=texts[label])) for label in labels
            )
        return _Frame(options, self._max_len(subtask, ctx) - fixed, reference, fmt, choices)

    def _request(
        self,
        patient_id: str,
        question: LongHealthQuestion,
        subtask: str,
        repeat: int,
        frame: _Frame,
        documents: list[str],
        ctx: RenderContext,
    ) -> Request:
        settings = self.settings
        prompt = self.spec.prompt
        user = prompt.user.format(
            documents=settings.document_separator.join(documents),
            question_text=question.question,
            options=frame.options,
        )
        rendered = render_longhealth(
            ctx.chat_mode,
            prompt.system,
            user,
            nosystem_join=settings.nosystem_join,
            base_join=settings.base_join,
        )
        extra = dict(rendered.extra_body)
        if ctx.truncation == "v3" and subtask in settings.truncate_subtasks:
            extra.update(v3_truncation(ctx.max_model_len, prompt))
        return Request(
            task=self.name,
            item_id=f"{patient_id}/{question.No}",
            kind=rendered.kind,
            max_tokens=prompt.max_new_tokens,
            reference=frame.reference,
            messages=rendered.messages,
            prompt=rendered.prompt,
            subtask=subtask,
            repeat=repeat,
            response_format=frame.response_format,
            prefix_group=patient_id,
            extra_body=extra,
            choices=frame.choices,
        )
