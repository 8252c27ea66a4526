"""`medsweep score` end to end through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.commands import score as score_command
from pipeline.tasks.registry import task_names


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_json_output_for_mednli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path / "mednli.jsonl",
        [
            {"id": "a", "prediction": "NEUTRAL", "reference": "neutral"},
            {"id": "b", "prediction": "entailment or neutral", "reference": "neutral"},
            {"id": "c", "prediction": "I don't know", "reference": "entailment"},
            {"id": "d", "prediction": "CONTRADICTION", "reference": "entailment"},
        ],
    )
    assert main(["score", "--task", "mednli", "--input", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "mednli" and result["n"] == 4
    assert result["metrics"]["accuracy"] == 50.0
    assert result["metrics"]["format_adherence"] == 50.0
    assert result["missing"] == []


def test_longhealth_subtasks_default_to_task1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path / "lh.jsonl",
        [
            {"id": "1", "prediction": "The correct answer is C: x", "reference": "C"},
            {"id": "2", "prediction": "The correct answer is F: y", "reference": "F", "subtask": "task3"},
        ],
    )
    assert main(["score", "--task", "longhealth", "--input", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"]["task1_accuracy"] == 100.0
    assert result["metrics"]["task3_accuracy"] == 100.0
    assert result["missing"] == ["task2_accuracy"]


def test_table_output_for_medisumcode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "codes.jsonl", [{"id": "1", "prediction": "I10, E11.9", "reference": ["I10"]}])
    assert main(["score", "--task", "medisumcode", "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert "icd_em_f1" in out and "66.67" in out


def test_table_reports_missing_extras(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path / "q.jsonl", [{"id": "1", "prediction": "Who makes it?", "reference": "Who makes it?"}]
    )
    assert main(["score", "--task", "meqsum", "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert "bertscore_f1" in out and "missing" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "q.jsonl:2: not valid JSON"),
        ("[1, 2]", "q.jsonl:2: expected a JSON object"),
        ({"prediction": "x", "reference": "y"}, "q.jsonl:2: field 'id'"),
        ({"id": "1", "prediction": "x", "reference": "y"}, "q.jsonl:2: field 'id' '1' repeats line 1"),
        ({"id": "2", "prediction": 3, "reference": "y"}, "q.jsonl:2: field 'prediction'"),
        ({"id": "2", "prediction": "x"}, "q.jsonl:2: field 'reference' is missing"),
        ({"id": "2", "prediction": "x", "reference": "maybe"}, "q.jsonl:2: field 'reference'"),
    ],
)
def test_malformed_lines_name_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: object, message: str
) -> None:
    path = _write(tmp_path / "q.jsonl", [{"id": "1", "prediction": "NEUTRAL", "reference": "neutral"}, line])
    assert main(["score", "--task", "mednli", "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_missing_and_empty_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--task", "mednli", "--input", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    empty = _write(tmp_path / "empty.jsonl", [""])
    assert main(["score", "--task", "mednli", "--input", str(empty)]) == 2
    assert "no predictions" in capsys.readouterr().err


def test_cli_task_list_matches_scoring() -> None:
    # The CLI looks the choices up lazily (imports stay light); they must be the registry's.
    assert task_names() == score_command._TASKS
