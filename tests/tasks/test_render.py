"""Rendering in the three chat modes, few-shot selection, limits and the structured variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.evaluation.tokens import EstimateCounter
from pipeline.request import Request
from pipeline.tasks import get_task
from pipeline.tasks.base import ChatMode, RenderContext
from pipeline.tasks.fewshot import split_few_shot
from pipeline.tasks.prompts import load_prompts
from pipeline.tasks.registry import task_names
from pipeline.tasks.render import render_few_shot, render_longhealth
from tests.support.paths import DEMO_DATA_DIR as DEMO

DEMOS = [("U1", "A1"), ("U2", "A2")]


def _ctx(mode: ChatMode = "chat", **kw: object) -> RenderContext:
    return RenderContext(chat_mode=mode, max_model_len=2048, counter=EstimateCounter(), **kw)  # type: ignore[arg-type]


async def _all(task: str, ctx: RenderContext, data_dir: Path = DEMO) -> list[Request]:
    return [r async for r in get_task(task).requests(data_dir, ctx)]


def test_chat_mode_messages() -> None:
    r = render_few_shot("chat", "S", DEMOS, "Q")
    assert r.kind == "chat" and r.prompt is None and r.extra_body == {}
    assert r.messages == (
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
        {"role": "assistant", "content": "A2"},
        {"role": "user", "content": "Q"},
    )


def test_chat_nosystem_merges_system_into_first_user_turn() -> None:
    r = render_few_shot("chat_nosystem", "S", DEMOS, "Q")
    assert r.messages is not None
    assert [m["role"] for m in r.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert r.messages[0]["content"] == "S\n\nU1"
    assert r.messages[-1]["content"] == "Q"
    zero_shot = render_few_shot("chat_nosystem", "S", [], "Q")
    assert zero_shot.messages == ({"role": "user", "content": "S\n\nQ"},)


def test_base_mode_is_one_completion_prompt() -> None:
    r = render_few_shot("base", "S", DEMOS, "Q")
    assert r.kind == "completion" and r.messages is None
    assert r.prompt == "S\n\nU1\n\nA1\n\nU2\n\nA2\n\nQ\n\n"


def test_prefill_ends_prompt_or_is_continued_assistant_message() -> None:
    base = render_few_shot("base", "S", DEMOS, "Q", prefill="Answer: ")
    assert base.prompt == "S\n\nU1\n\nA1\n\nU2\n\nA2\n\nQ\n\nAnswer: "
    chat = render_few_shot("chat", "S", DEMOS, "Q", prefill="Answer: ")
    assert chat.messages is not None
    assert chat.messages[-1] == {"role": "assistant", "content": "Answer: "}
    assert chat.extra_body == {"add_generation_prompt": False, "continue_final_message": True}


def test_longhealth_layouts() -> None:
    kw = {"nosystem_join": "", "base_join": "\n\n\n"}
    assert render_longhealth("chat", "S", "U", **kw).messages == (
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
    )
    assert render_longhealth("chat_nosystem", "S", "U", **kw).messages == ({"role": "user", "content": "SU"},)
    assert render_longhealth("base", "S", "U", **kw).prompt == "S\n\n\nU"


def test_prompt_files_keep_the_source_text() -> None:
    mednli = load_prompts("mednli").prompt
    assert "You will recieve two sentences" in mednli.system
    assert mednli.user == "\nSENTENCE_1: {sentence1}\nSENTENCE_2: {sentence2}\n"
    lh = load_prompts("longhealth").prompt
    assert lh.system.startswith("\nYou are a highly skilled") and lh.system.endswith("key.\n")
    assert "documents. \n\nYour answers" in lh.system
    assert "your answer should be: \n'The correct answer is C: Acute bronchitis.'\n" in lh.user
    clue = [t for t in task_names() if load_prompts(t).source["repo"] == "TIO-IKIM/CLUE"]
    assert clue == ["mednli", "meqsum", "probsum", "longhealth", "medisumqa", "medisumcode"]
    for task in clue:
        spec = load_prompts(task)
        assert spec.source["license"].startswith("MIT")
        assert spec.source["v3_commit"] == "ff75877284133361d15f12e4ab290d230f449dd0"


@pytest.mark.parametrize("demonstrations", ["v3", "shuffled"])
async def test_mednli_chat_takes_the_first_rows_or_those_after_a_seed_1_shuffle(demonstrations: str) -> None:
    import random

    rows = [json.loads(line) for line in (DEMO / "mednli" / "mli_test_v1.jsonl").read_text().splitlines()]
    if demonstrations == "shuffled":  # HEAD; v3 took the file's first three rows
        random.Random(1).shuffle(rows)
    requests = await _all("mednli", _ctx(demonstrations=demonstrations))
    assert [r.item_id for r in requests] == [row["pairID"] for row in rows[3:]]
    first = requests[0]
    assert first.messages is not None and first.kind == "chat"
    assert first.messages[0]["content"] == load_prompts("mednli").prompt.system
    assert (
        first.messages[1]["content"]
        == f"\nSENTENCE_1: {rows[0]['sentence1']}\nSENTENCE_2: {rows[0]['sentence2']}\n"
    )
    assert first.messages[2] == {"role": "assistant", "content": rows[0]["gold_label"]}
    assert first.messages[-1]["content"] == (
        f"\nSENTENCE_1: {rows[3]['sentence1']}\nSENTENCE_2: {rows[3]['sentence2']}\n"
    )
    assert first.reference == rows[3]["gold_label"]
    assert first.max_tokens == 20 and first.prefix_group == "mednli" and first.extra_body == {}


async def test_meqsum_base_prompt_exact() -> None:
    requests = await _all("meqsum", _ctx("base"))
    spec = load_prompts("meqsum").prompt
    prompt = requests[0].prompt
    assert prompt is not None and requests[0].kind == "completion"
    rows = get_task("meqsum").load(DEMO)  # type: ignore[attr-defined]
    demos, _ = split_few_shot(rows, load_prompts("meqsum").prompt)
    assert prompt.startswith(spec.system + "\n\n" + spec.user.format(**demos[0].fields) + "\n\nQuestion: ")
    assert prompt.count("\n\nQuestion: ") == 4  # three demonstrations + the prefill
    assert prompt.endswith("--------------END PATIENT INQUIRY--------------\n\nQuestion: ")


@pytest.mark.parametrize("task", ["mednli", "meqsum", "probsum", "medisumqa", "medisumcode"])
async def test_demos_leave_the_test_set_and_output_is_deterministic(task: str) -> None:
    task_obj = get_task(task)
    k = load_prompts(task).prompt.few_shot
    first = await _all(task, _ctx())
    second = await _all(task, _ctx())
    assert first == second
    ids = [r.item_id for r in first]
    assert len(ids) == len(set(ids)) == task_obj.expected_count(DEMO, None)
    demo_users = {m["content"] for m in (first[0].messages or ())[1 : 1 + 2 * k : 2]}
    assert len(demo_users) == k
    for r in first:
        assert r.messages is not None and r.messages[-1]["role"] in ("user", "assistant")
        query = [m for m in r.messages if m["role"] == "user"][-1]["content"]
        assert query not in demo_users


@pytest.mark.parametrize("demonstrations", ["v3", "shuffled"])
async def test_medisumqa_shuffles_with_seed_one(demonstrations: str) -> None:
    import random

    rows = json.loads((DEMO / "medisumqa" / "MeDiSumQA.json").read_text())
    ids = [r["note_id"] for r in rows]
    random.Random(1).shuffle(ids)  # v3 and HEAD alike
    requests = await _all("medisumqa", _ctx(demonstrations=demonstrations))
    assert [r.item_id for r in requests] == ids[1:]
    assert requests[0].messages is not None
    assert requests[0].messages[-1] == {"role": "assistant", "content": "Answer: "}


async def test_limit_caps_items_after_removing_demos() -> None:
    requests = await _all("mednli", _ctx(limit=2))
    assert len(requests) == 2 == get_task("mednli").expected_count(DEMO, 2)
    assert get_task("mednli").expected_count(DEMO, 100) == 9


async def test_structured_variant_sets_schema_for_closed_tasks_only() -> None:
    nli = (await _all("mednli", _ctx(variant="structured")))[0]
    assert nli.response_format is not None
    spec = nli.response_format["json_schema"]
    assert spec["strict"] is True
    assert spec["schema"]["properties"]["label"]["enum"] == ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]
    code = (await _all("medisumcode", _ctx(variant="structured")))[0]
    assert code.response_format is not None
    assert code.extra_body == {}  # no prefill before the JSON
    summary = (await _all("meqsum", _ctx(variant="structured")))[0]
    assert summary.response_format is None
    assert summary == (await _all("meqsum", _ctx()))[0]


@pytest.mark.parametrize("demonstrations", ["v3", "shuffled"])
async def test_medisumcode_reference_is_the_code_list(demonstrations: str) -> None:
    import random

    text = (DEMO / "medisumcode" / "MeDiSumCode.json").read_text()
    lines = [x for x in text.splitlines() if x]
    rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in lines]
    if demonstrations == "shuffled":  # HEAD shuffled MeDiSumCode, v3 did not
        random.Random(1).shuffle(rows)
    first = (await _all("medisumcode", _ctx(demonstrations=demonstrations)))[0]
    assert first.reference == [c["code"] for c in rows[1]["icd_codes"]]
    assert first.messages is not None
    assert first.messages[2]["content"] == "ICD-10 Codes: " + ", ".join(
        c["code"] for c in rows[0]["icd_codes"]
    )


def test_unknown_task_is_a_config_error() -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        get_task("nope")
