"""Loaders on the synthetic files, the real MeQSum file (when present) and malformed inputs."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import openpyxl
import pytest

from pipeline.errors import DataError
from pipeline.evaluation.tokens import EstimateCounter
from pipeline.tasks import check_data, get_task
from pipeline.tasks.base import RenderContext
from pipeline.tasks.defs.longhealth.task import load_longhealth
from pipeline.tasks.defs.medisumcode import load_medisumcode
from pipeline.tasks.defs.medisumqa import load_medisumqa
from pipeline.tasks.defs.mednli import load_mednli
from pipeline.tasks.defs.meqsum import load_meqsum
from pipeline.tasks.defs.probsum import load_probsum
from pipeline.tasks.fewshot import unique_ids
from pipeline.tasks.registry import task_names
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.paths import REAL_MEQSUM


@pytest.mark.parametrize("task", task_names())
def test_demo_files_load_and_are_marked_synthetic(task: str) -> None:
    check = check_data(task, DEMO)
    assert check.state == "ok", check.reason
    path = get_task(task).data_path(DEMO)
    if path.suffix == ".xlsx":
        sheet = openpyxl.load_workbook(path, read_only=True).worksheets[0]
        text = " ".join(str(c) for row in sheet.iter_rows(values_only=True) for c in row)
    else:
        text = path.read_text()
    assert "SYNTHETIC" in text


def test_demo_row_counts() -> None:
    assert len(load_mednli(DEMO / "mednli" / "mli_test_v1.jsonl")) == 12
    assert len(load_meqsum(DEMO / "meqsum" / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx")) == 8
    assert len(load_probsum(DEMO / "probsum" / "BioNLP2023-1A-Test.csv")) == 8
    patients = load_longhealth(DEMO / "longhealth" / "benchmark_v5.json")
    assert len(patients) == 2 and all(len(p.questions) == 3 and len(p.texts) == 3 for p in patients.values())
    assert len(load_medisumqa(DEMO / "medisumqa" / "MeDiSumQA.json")) == 4
    assert len(load_medisumcode(DEMO / "medisumcode" / "MeDiSumCode.json")) == 4


@pytest.mark.skipif(not REAL_MEQSUM.is_file(), reason="real MeQSum file not present")
async def test_real_meqsum(tmp_path: Path) -> None:
    rows = load_meqsum(REAL_MEQSUM)
    assert len(rows) == 1000
    assert rows[0].File == "1-131188152.xml.txt" and rows[0].Summary == "Who manufactures cetirizine?"
    (tmp_path / "meqsum").mkdir()
    shutil.copy(REAL_MEQSUM, tmp_path / "meqsum" / REAL_MEQSUM.name)
    task = get_task("meqsum")
    assert task.expected_count(tmp_path, None) == 997
    ctx = RenderContext(chat_mode="chat", max_model_len=4096, counter=EstimateCounter(), limit=5)
    requests = [r async for r in task.requests(tmp_path, ctx)]
    # v3: the file's first three rows are the demonstrations (the spec quotes them), rows 4-8 the first items
    assert [r.item_id for r in requests] == [r.File for r in rows[3:8]]
    assert requests[0].messages is not None
    assert requests[0].messages[2]["content"] == "Question: Who manufactures cetirizine?"
    shuffled_ctx = RenderContext(chat_mode="chat", max_model_len=4096, counter=EstimateCounter(), limit=5,
                                 demonstrations="shuffled")  # fmt: skip
    requests = [r async for r in task.requests(tmp_path, shuffled_ctx)]
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)
    assert [r.item_id for r in requests] == [r.File for r in shuffled[3:8]]


def test_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"physionet\.org/content/mednli"):
        get_task("mednli").expected_count(tmp_path, None)
    with pytest.raises(DataError, match=r"abachaa/MeQSum.*medsweep data fetch"):
        get_task("meqsum").expected_count(tmp_path, None)
    with pytest.raises(DataError, match=r"kbressem/LongHealth"):
        get_task("longhealth").expected_count(tmp_path, None)
    assert check_data("probsum", tmp_path).state == "missing"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _nli(pair: str, label: str = "neutral") -> str:
    return json.dumps({"pairID": pair, "gold_label": label, "sentence1": "a", "sentence2": "b"})


def test_jsonl_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "mli.jsonl", f"{_nli('1')}\n{_nli('2')}\n{{not json\n")
    with pytest.raises(DataError, match=rf"{path}:3: not valid JSON"):
        load_mednli(path)


def test_jsonl_wrong_value_names_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "mli.jsonl", f"{_nli('1')}\n{_nli('2', 'maybe')}\n")
    with pytest.raises(DataError, match=r"line 2: field 'gold_label'"):
        load_mednli(path)
    path = _write(
        tmp_path / "mli.jsonl", json.dumps({"pairID": "1", "gold_label": "neutral", "sentence1": 3})
    )
    with pytest.raises(DataError, match=r"line 1: field 'sentence1'"):
        load_mednli(path)


@pytest.mark.parametrize(
    "loader", [load_mednli, load_probsum, load_medisumqa, load_medisumcode, load_longhealth]
)
def test_empty_file_is_an_error(tmp_path: Path, loader: object) -> None:
    path = _write(tmp_path / "empty", "\n  \n")
    with pytest.raises(DataError, match="is empty"):
        loader(path)  # type: ignore[operator]


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_missing_column_and_empty_summary(tmp_path: Path) -> None:
    path = _csv(tmp_path / "p.csv", ["File ID", "Subjectives", "Summary"], [["1", "s", "x"]])
    with pytest.raises(DataError, match=r"no column 'Assessment'"):
        load_probsum(path)
    header = ["File ID", "Subjectives", "Assessment", "Summary"]
    path = _csv(tmp_path / "p.csv", header, [["1", "s", "a", "x;y"], ["2", "s", "a", ""]])
    with pytest.raises(DataError, match=r"line 3: field 'Summary'"):
        load_probsum(path)


def test_probsum_summary_semicolons_become_commas(tmp_path: Path) -> None:
    header = ["File ID", "Subjectives", "Assessment", "Summary"]
    rows = [[str(i), "s", "a", "CHF;hypoxia"] for i in range(4)]
    (tmp_path / "probsum").mkdir()
    _csv(tmp_path / "probsum" / "BioNLP2023-1A-Test.csv", header, rows)
    task = get_task("probsum")
    items = task.load(tmp_path)  # type: ignore[attr-defined]
    assert items[0].reference == "CHF, hypoxia" and items[0].item_id == "0"


def _xlsx(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def test_xlsx_missing_column_empty_cell_and_garbage(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "m.xlsx", ["File", "Question", "Summary"], [["a", "b", "c"]])
    with pytest.raises(DataError, match=r"has no column 'CHQ'"):
        load_meqsum(path)
    path = _xlsx(tmp_path / "m.xlsx", ["File", "CHQ", "Summary"], [["a", "b", "c"], ["d", None, "f"]])
    with pytest.raises(DataError, match=r"row 3: field 'CHQ'"):
        load_meqsum(path)
    path = _write(tmp_path / "bad.xlsx", "not a zip")
    with pytest.raises(DataError, match=r"not a readable \.xlsx"):
        load_meqsum(path)
    path = tmp_path / "zero.xlsx"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        load_meqsum(path)


def test_json_list_or_jsonl_and_both_letter_spellings(tmp_path: Path) -> None:
    records = [
        {"note_id": "n1", "discharge_summary": "L1", "Question": "q", "Answer": "a"},
        {"note_id": "n1", "without_discharge_summary": "L2", "Question": "q2", "Answer": "a2"},
    ]
    as_list = load_medisumqa(_write(tmp_path / "a.json", json.dumps(records)))
    as_lines = load_medisumqa(_write(tmp_path / "b.json", "\n".join(json.dumps(r) for r in records)))
    assert as_list == as_lines
    bad = [records[0], {"note_id": "n2", "discharge_summary": "L", "Question": 5, "Answer": "a"}]
    with pytest.raises(DataError, match=r"item \[1\]: field 'Question'"):
        load_medisumqa(_write(tmp_path / "c.json", json.dumps(bad)))
    with pytest.raises(DataError, match=r"line 1: field 'discharge_summary'"):
        load_medisumqa(_write(tmp_path / "d.json", json.dumps({"Question": "q", "Answer": "a"})))
    with pytest.raises(DataError, match=r"c2.json:1: not valid JSON"):
        load_medisumqa(_write(tmp_path / "c2.json", "[{"))


def test_medisumcode_codes_must_be_objects(tmp_path: Path) -> None:
    good = {"hadm_id": 1, "text": "t", "icd_codes": [{"code": "I10", "description": "d"}]}
    bad = {"hadm_id": 2, "text": "t", "icd_codes": ["I10"]}
    path = _write(tmp_path / "c.json", f"{json.dumps(good)}\n{json.dumps(bad)}\n")
    with pytest.raises(DataError, match=r"line 2: field 'icd_codes.0'"):
        load_medisumcode(path)
    assert load_medisumcode(_write(tmp_path / "ok.json", json.dumps(good)))[0].hadm_id == "1"


def test_longhealth_correct_must_be_an_option(tmp_path: Path) -> None:
    data = json.loads((DEMO / "longhealth" / "benchmark_v5.json").read_text())
    data["patient_02"]["questions"][1]["correct"] = "Something else"
    (tmp_path / "longhealth").mkdir()
    _write(tmp_path / "longhealth" / "benchmark_v5.json", json.dumps(data))
    with pytest.raises(DataError, match=r"patient 'patient_02': field 'questions.1.correct'"):
        get_task("longhealth").expected_count(tmp_path, None)
    data["patient_02"]["questions"][1]["correct"] = "Insulin glargine"
    data["patient_02"]["questions"][1]["answer_location"] = {"text_9": {"start": [0], "end": [1]}}
    _write(tmp_path / "longhealth" / "benchmark_v5.json", json.dumps(data))
    assert check_data("longhealth", tmp_path).state == "malformed"


def test_too_few_rows_for_the_demonstrations(tmp_path: Path) -> None:
    (tmp_path / "mednli").mkdir()
    _write(tmp_path / "mednli" / "mli_test_v1.jsonl", "\n".join(_nli(str(i)) for i in range(3)))
    with pytest.raises(DataError, match="needs at least 4"):
        get_task("mednli").expected_count(tmp_path, None)


def test_unique_ids() -> None:
    assert unique_ids(["a", None, "a", "", "a"]) == ["a", "1", "a#2", "3", "a#3"]


def test_medisumcode_note_without_codes_loads_as_the_generator_writes_it(tmp_path: Path) -> None:
    # generate_code_dataset.py keeps a note whose codes all failed icd10.find: icd_codes == [].
    rows = [{"hadm_id": "1", "text": "letter", "icd_codes": []}]
    loaded = load_medisumcode(_write(tmp_path / "MeDiSumCode.json", json.dumps(rows)))
    assert loaded[0].icd_codes == []
