"""Peak memory and time of `medsweep data build medisumcode` on SYNTHETIC inputs of the full MIMIC size.

Writes, into a temporary folder that is deleted at the end, a made-up ``discharge.csv.gz`` with as many
notes as MIMIC-IV-Note v2.2 has (~331,000; ~3 GB of text once decompressed, a few notes near the csv
module's 131,072-character field limit) and a made-up ``diagnoses_icd.csv.gz`` of ~5 million rows; then runs
the command in a child process and reports its peak RSS (``ru_maxrss`` of the child) and wall time. No
record is real: the texts are random words marked SYNTHETIC.

Usage: ``python bench/medisumcode_build.py [--notes 331000] [--diagnoses 5000000] [--text-gb 3.0]
[--plain]`` (``--plain`` writes ``.csv`` instead of ``.csv.gz``). It needs about 1 GB of free disk space
compressed, ``--text-gb`` + 0.3 GB with ``--plain``; it checks first.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
FIELD_LIMIT = 131_072
# Made-up clinical-sounding words; a newline and quotes so the csv writer quotes fields as in MIMIC.
_VOCABULARY = (
    "SYNTHETIC patient admitted with chest pain dyspnea fever cough sepsis hypertension diabetes discharge "
    "medications aspirin metoprolol follow-up clinic history of present illness exam labs imaging plan café "
    'µg résumé, "quoted"'
)
_WORDS = [*_VOCABULARY.split(" "), "\n"]


def _block(rng: random.Random, size: int) -> str:
    """A long random text to cut notes from (cutting is fast; each note starts somewhere else)."""
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=1)
    return path.open("w", encoding="utf-8", newline="")


def write_inputs(
    folder: Path, notes: int, diagnoses: int, text_bytes: float, plain: bool
) -> tuple[Path, Path]:
    rng = random.Random(1)
    suffix = ".csv" if plain else ".csv.gz"
    discharge = folder / f"synthetic_discharge{suffix}"
    diagnoses_path = folder / f"synthetic_diagnoses_icd{suffix}"
    mean = int(text_bytes / notes)
    block = _block(rng, FIELD_LIMIT * 4)
    hadm = [20_000_000 + i * 3 for i in range(notes)]
    with _open(discharge) as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(
            ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"]
        )
        for i, admission in enumerate(hadm):
            # Lengths spread around the mean; one note in 10,000 near the field limit.
            length = FIELD_LIMIT - 100 if i % 10_000 == 0 else int(rng.uniform(0.2, 1.8) * mean)
            start = rng.randrange(0, len(block) - length)
            text = f"SYNTHETIC note {i}\n" + block[start : start + length]
            subject = 10_000_000 + i // 3
            out.writerow([f"{subject}-DS-{i}", subject, admission, "DS", 1, "2180-01-01", "", text])
    codes9 = ["4019", "25000", "0389", "V1582", "E8497", "41401", "2724", "E9429", "7999"]
    codes10 = ["E119", "I10", "N179", "Z87891", "J189", "I2510", "A419", "F17210"]
    with _open(diagnoses_path) as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"])
        per = max(1, diagnoses // notes)
        written = 0
        while written < diagnoses:
            admission = hadm[(written // per) % notes]
            version = 9 if written % 3 else 10
            code = (codes9 if version == 9 else codes10)[written % 8]
            out.writerow([10_000_000, admission, written % per + 1, code, version])
            written += 1
    return discharge, diagnoses_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=331_000)
    parser.add_argument("--diagnoses", type=int, default=5_000_000)
    parser.add_argument("--text-gb", type=float, default=3.0)
    parser.add_argument("--plain", action="store_true", help="write .csv, not .csv.gz")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary folder goes")
    args = parser.parse_args()
    need = (args.text_gb + 0.3) * 1e9 if args.plain else 1.0e9
    base = args.dir or Path(tempfile.gettempdir())
    free = shutil.disk_usage(base).free
    if free < 2 * need:
        sys.exit(
            f"{base}: {free / 1e9:.1f} GB free; this needs about {need / 1e9:.1f} GB (twice that to be safe)"
        )
    with tempfile.TemporaryDirectory(prefix="medisumcode-bench-", dir=base) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        discharge, diagnoses = write_inputs(
            folder, args.notes, args.diagnoses, args.text_gb * 1e9, args.plain
        )
        written = time.perf_counter() - started
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e9:.2f} GB" for p in (discharge, diagnoses))
        print(
            f"inputs: {args.notes:,} notes, {args.diagnoses:,} diagnosis rows ({sizes}; "
            f"{written:.0f} s to write)"
        )
        command = [sys.executable, "-m", "pipeline", "data", "build", "medisumcode"]
        command += [
            "--discharge",
            str(discharge),
            "--diagnoses",
            str(diagnoses),
            "--data-dir",
            str(folder / "data"),
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO)
        wall = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        built = folder / "data" / "medisumcode" / "MeDiSumCode.json"
        print(f"output: {built.stat().st_size / 1e6:.1f} MB, {sum(1 for _ in built.open())} records")
        print(
            f"peak RSS of `medsweep data build medisumcode`: {peak_kib / 1024:.0f} MiB; "
            f"wall time {wall:.0f} s"
        )


if __name__ == "__main__":
    main()
