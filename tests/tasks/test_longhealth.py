"""LongHealth expansion: counts, order, seeds, gold letters, distractors and document packing."""

from __future__ import annotations

import json

import pytest

from pipeline.evaluation.tokens import EstimateCounter
from pipeline.request import Request
from pipeline.tasks import get_task
from pipeline.tasks.base import ChatMode, RenderContext, TokenCounter
from pipeline.tasks.prompts import load_budget, load_prompts
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.tokenizer import WordCounter

DATA = json.loads((DEMO / "longhealth" / "benchmark_v5.json").read_text())


async def _all(ctx: RenderContext) -> list[Request]:
    return [r async for r in get_task("longhealth").requests(DEMO, ctx)]


def _ctx(
    mode: ChatMode = "chat", max_len: int = 2048, counter: TokenCounter | None = None, **kw: object
) -> RenderContext:
    return RenderContext(chat_mode=mode, max_model_len=max_len, counter=counter or EstimateCounter(), **kw)  # type: ignore[arg-type]


def _user(r: Request) -> str:
    assert r.messages is not None
    return r.messages[-1]["content"]


async def test_counts_order_and_groups() -> None:
    requests = await _all(_ctx())
    assert len(requests) == 2 * 3 * 3 * 5 == get_task("longhealth").expected_count(DEMO, None)
    assert len(await _all(_ctx(limit=2))) == 30 == get_task("longhealth").expected_count(DEMO, 2)
    groups = [r.prefix_group for r in requests]
    assert groups == sorted(groups) and set(groups) == {"patient_01", "patient_02"}
    assert {r.subtask for r in requests} == {"task1", "task2", "task3"}
    keys = {(r.subtask, r.item_id, r.repeat) for r in requests}
    assert len(keys) == len(requests)
    assert {r.repeat for r in requests} == set(range(5))
    assert all(r.max_tokens == 50 for r in requests)


async def test_identical_on_every_run() -> None:
    assert await _all(_ctx()) == await _all(_ctx())
    assert await _all(_ctx(counter=WordCounter())) == await _all(_ctx(counter=WordCounter()))


async def test_gold_letters_and_options() -> None:
    requests = await _all(_ctx())
    by = {(r.subtask, r.item_id, r.repeat): r for r in requests}
    assert by[("task1", "patient_01/1", 0)].reference == "B"
    assert by[("task2", "patient_01/2", 3)].reference == "C"
    assert all(r.reference == "F" for r in requests if r.subtask == "task3")
    assert "\nE: Pseudomonas aeruginosa\n\n" in _user(by[("task1", "patient_01/1", 0)])
    assert "\nF: Question cannot be answered with provided documents\n" in _user(
        by[("task2", "patient_01/1", 0)]
    )


async def test_documents_per_subtask() -> None:
    own = set(DATA["patient_01"]["texts"].values())
    others = set(DATA["patient_02"]["texts"].values())
    answer = DATA["patient_01"]["texts"]["text_1"]
    for r in await _all(_ctx()):
        if r.item_id != "patient_01/1":
            continue
        user = _user(r)
        if r.subtask == "task1":
            assert all(doc in user for doc in own) and not any(doc in user for doc in others)
        elif r.subtask == "task2":
            assert answer in user and not any(doc in user for doc in own - {answer})
            assert any(doc in user for doc in others)
        else:
            assert not any(doc in user for doc in own) and any(doc in user for doc in others)


async def test_seeded_shuffles_vary_across_repeats() -> None:
    orders = {_user(r) for r in await _all(_ctx()) if r.subtask == "task1" and r.item_id == "patient_02/3"}
    assert len(orders) > 1


async def test_layouts_per_mode() -> None:
    spec = load_prompts("longhealth").prompt
    chat = (await _all(_ctx("chat")))[0]
    base = (await _all(_ctx("base")))[0]
    nosys = (await _all(_ctx("chat_nosystem")))[0]
    assert chat.messages is not None and chat.messages[0] == {"role": "system", "content": spec.system}
    user = chat.messages[1]["content"]
    assert base.kind == "completion" and base.prompt == spec.system + "\n\n\n" + user
    assert nosys.messages == ({"role": "user", "content": spec.system + user},)


@pytest.mark.parametrize(
    ("counter", "max_len", "tight"),
    [
        (EstimateCounter(), 700, True),
        (EstimateCounter(), 1400, False),
        (WordCounter(), 360, True),
        (WordCounter(), 800, False),
    ],
    ids=["estimate-tight", "estimate-roomy", "fake-tight", "fake-roomy"],
)
async def test_packing_stays_within_budget(counter: TokenCounter, max_len: int, tight: bool) -> None:
    spec = load_prompts("longhealth").prompt
    reserve = load_budget().reserve(2)
    requests = await _all(_ctx(max_len=max_len, counter=counter))
    truncated = 0
    for r in requests:
        assert r.messages is not None
        used = sum([await counter.count(m["content"]) for m in r.messages])
        assert used + spec.max_new_tokens + reserve <= max_len
        whole = [doc for doc in DATA[r.prefix_group]["texts"].values() if doc in _user(r)]
        if r.subtask == "task1" and len(whole) < 3:
            truncated += 1
    # A tight context drops or cuts some of the patient's documents; a roomy one keeps all three.
    assert (truncated > 0) == tight


async def test_budgets_are_capped_at_8140_as_v3() -> None:
    spec = load_prompts("longhealth")
    assert spec.longhealth is not None and spec.longhealth.task1_max_len == 8140
    assert spec.longhealth.task23_max_len == 8140  # v3; HEAD packed Tasks 2/3 to the full context
    task = get_task("longhealth")
    assert task._max_len("task1", _ctx(max_len=32768)) == 8140  # type: ignore[attr-defined]
    assert task._max_len("task2", _ctx(max_len=32768)) == 8140  # type: ignore[attr-defined]
    small = 4096 - 50 - load_budget().reserve(2)
    assert task._max_len("task3", _ctx(max_len=4096)) == small  # type: ignore[attr-defined]


async def test_structured_enums_per_subtask() -> None:
    requests = await _all(_ctx(variant="structured"))
    for r in requests:
        assert r.response_format is not None
        enum = r.response_format["json_schema"]["schema"]["properties"]["answer"]["enum"]
        assert enum == (list("ABCDE") if r.subtask == "task1" else list("ABCDEF"))


def _answer_location(r: Request) -> list[str]:
    patient, no = r.item_id.split("/")
    question = next(q for q in DATA[patient]["questions"] if str(q["No"]) == no)
    return list(question["answer_location"])
