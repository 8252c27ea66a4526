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
