"""MedQA-USMLE (4 options), the seventh task: its data, prompt, strict and lenient parses, `medsweep score`,
and that it stays out of the Level scores. The data here and in demo_data/medqa are synthetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import ChatMode
from pipeline.errors import DataError
from pipeline.evaluation.tokens import EstimateCounter
from pipeline.request import Request
from pipeline.scoring import level_scores
from pipeline.tasks import check_data, get_task
from pipeline.tasks.base import RenderContext
from pipeline.tasks.defs.medqa import load_medqa
from pipeline.tasks.scores import as_answer_text, score_item
from tests.support.paths import DEMO_DATA_DIR as DEMO

OPTIONS = {"A": "Aspirin", "B": "Beta blocker", "C": "Cardioversion", "D": "Digoxin"}
B_REF = {"answer": "B", "options": OPTIONS}
ROW = {"question": "Which treatment?", "options": OPTIONS, "answer_idx": "C", "answer": "Cardioversion"}


def _strict(output: str) -> str | None:
    parsed: dict[str, str | None] = score_item("medqa", output, "C").parsed
    return parsed["strict"]


@pytest.mark.parametrize(
    ("output", "strict"),
    [
        ("The correct answer is C.", "C"),
        ("The correct answer is (C) because", "C"),
        ("Thinking... The correct answer is B. No: The correct answer is C.", "B"),  # the first match
        ("The correct answer is Cardioversion.", None),  # \b: a word, not a letter
        ("The correct answer is E.", None),
        ("the correct answer is C.", None),  # case-sensitive
        ("C", None),
    ],
)
def test_the_strict_parse_is_the_contract_regex(output: str, strict: str | None) -> None:
    assert _strict(output) == strict


@pytest.mark.parametrize(
    "output", ["the correct answer is c.", "C", "(C)", "I would choose cardioversion.", "Answer: c)"]
)
def test_the_lenient_reading(output: str) -> None:
    item = score_item("medqa", output, {"answer": "C", "options": OPTIONS})
    assert item.metrics == {"accuracy": 0.0, "accuracy_lenient": 100.0}
    assert not item.strict_valid


def test_score_cli_takes_a_letter_or_a_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        {"id": "1", "prediction": "The correct answer is C.", "reference": "C"},
        {
            "id": "2",
            "prediction": "The correct answer is A.",
            "reference": {"answer": "B", "options": OPTIONS},
        },
        {"id": "3", "prediction": "beta blocker", "reference": {"answer": "B", "options": OPTIONS}},
        {"id": "4", "prediction": "The correct answer is (D)", "reference": "d"},
    ]
    path = tmp_path / "medqa.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["score", "--task", "medqa", "--input", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 4 and result["missing"] == []
    assert result["metrics"] == {"accuracy": 50.0, "accuracy_lenient": 75.0, "format_adherence": 75.0}


def test_score_cli_refuses_a_bad_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "medqa.jsonl"
    path.write_text(json.dumps({"id": "1", "prediction": "x", "reference": "E"}) + "\n")
    assert main(["score", "--task", "medqa", "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:1: field 'reference': MedQA gold must be one letter of ABCD")


def test_not_part_of_the_levels() -> None:
    with_medqa = level_scores({"mednli": {"accuracy": 50.0}, "medqa": {"accuracy": 90.0}})
    assert with_medqa == level_scores({"mednli": {"accuracy": 50.0}})


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"answer_idx": None}, ":2: field 'answer_idx'"),
        ({"answer_idx": "E"}, ":2: field 'answer_idx'"),
        (
            {"options": {**OPTIONS, "E": "Extra"}},
            ":2: field 'options': Value error, must map exactly A, B, C",
        ),
        ({"question": ""}, ":2: field 'question'"),
    ],
)
def test_malformed_rows_name_file_line_and_field(
    tmp_path: Path, change: dict[str, object], where: str
) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps({**ROW, **change}) + "\n")
    with pytest.raises(DataError) as raised:
        load_medqa(path)
    message = str(raised.value)
    assert message.startswith(f"{path}{where}") and "\n" not in message


def test_malformed_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "medqa" / "test.jsonl"
    bad.parent.mkdir()
    bad.write_text(json.dumps(ROW) + "\n{oops\n")
    check = check_data("medqa", tmp_path)
    assert check.state == "malformed" and check.reason.startswith(f"{bad}:2: not valid JSON")
    assert check_data("medqa", tmp_path / "nowhere").state == "missing"


def _ctx(mode: ChatMode, variant: str = "paper") -> RenderContext:
    return RenderContext(chat_mode=mode, max_model_len=4096, counter=EstimateCounter(), variant=variant)  # type: ignore[arg-type]


async def _requests(mode: ChatMode, variant: str = "paper") -> list[Request]:
    return [r async for r in get_task("medqa").requests(DEMO, _ctx(mode, variant))]


async def test_requests_carry_the_few_shot_block_and_every_demo_row() -> None:
    requests = await _requests("chat")
    assert len(requests) == 8 == get_task("medqa").expected_count(DEMO, None)  # no row is a demonstration
    first = requests[0]
    assert first.messages is not None and len(first.messages) == 1 + 2 * 3 + 1
    assert first.messages[2] == {"role": "assistant", "content": "The correct answer is A."}
    query = first.messages[-1]["content"]
    assert query.startswith("Question: A 34-year-old woman")
    assert "\nA. Anti-TSH receptor antibodies\n" in query
    assert first.reference["answer"] == "A" and set(first.reference["options"]) == set("ABCD")
    base = (await _requests("base"))[0]
    assert base.prompt is not None and base.prompt.count("Question: ") == 3 + 1


async def test_the_structured_variant() -> None:
    request = (await _requests("chat", "structured"))[0]
    assert request.response_format is not None
    assert request.response_format["json_schema"]["schema"]["properties"]["answer"]["enum"] == list("ABCD")
    assert as_answer_text("medqa", '{"answer": "B"}') == "The correct answer is B."
    assert as_answer_text("medqa", "B, I think") == "B, I think"
