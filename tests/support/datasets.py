"""Small synthetic task files (no real patient or exam text), written by the tests that need them."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write_mednli(folder: Path, rows: int) -> Path:
    """A synthetic MedNLI file (three rows become the few-shot demonstrations)."""
    labels = ("entailment", "neutral", "contradiction")
    path = folder / "mednli" / "mli_test_v1.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for i in range(rows):
            record = {
                "pairID": f"soak-{i:05d}",
                "gold_label": labels[i % 3],
                "sentence1": f"Synthetic premise number {i}.",
                "sentence2": f"Synthetic hypothesis number {i}.",
            }
            handle.write(json.dumps(record) + "\n")
    return folder


LETTER_WORDS = 3000


def long_probsum(data: Path, words: int = LETTER_WORDS) -> str:
    """Three short demonstrations and one item whose letter has ``words`` numbered words; returns its end."""
    rows = [(f"D{i}", f"Short note {i}.", "", f"Assessment {i}.", f"Problem {i}") for i in range(3)]
    letter = " ".join(f"w{i}" for i in range(words)) + " FINAL-WORDS-OF-THE-LETTER"
    rows.append(("LONG", letter, "", "Assessment of the long letter.", "Pneumonia"))
    (data / "probsum").mkdir(parents=True)
    with (data / "probsum" / "BioNLP2023-1A-Test.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["File ID", "Subjectives", "Objectives", "Assessment", "Summary"])
        writer.writerows(rows)
    return "FINAL-WORDS-OF-THE-LETTER"


def write_longhealth_full(folder: Path, template: Path) -> Path:
    """A SYNTHETIC LongHealth file of the real shape (20 patients x 20 questions), made by repeating the
    synthetic demo patient in ``template``; returns the file."""
    demo = json.loads(template.read_text())
    patient = next(iter(demo.values()))
    questions = [{**patient["questions"][i % len(patient["questions"])], "No": i + 1} for i in range(20)]
    data = {f"patient_{p:02d}": {**patient, "questions": questions} for p in range(1, 21)}
    path = folder / "longhealth" / "benchmark_v5.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_medqa_full(folder: Path, template: Path, rows: int = 1273) -> Path:
    """A SYNTHETIC MedQA test file of ``rows`` questions (the real split has 1,273), made by repeating the
    synthetic demo questions in ``template``; returns the file."""
    lines = template.read_text().splitlines()
    path = folder / "medqa" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for i in range(rows):
            record = json.loads(lines[i % len(lines)])
            handle.write(json.dumps({**record, "question": f"({i}) {record['question']}"}) + "\n")
    return path
