"""Where the stores of a results directory are.

``OUT/medsweep.sqlite`` is the store of an eval or of a local sweep. A sweep on Slurm gives each model's
job its own store, ``OUT/stores/<model>/medsweep.sqlite``: SQLite in WAL mode relies on shared memory
(``-shm``) and POSIX locks that NFS and Lustre do not provide across hosts, so one database written by
jobs on several nodes can lose commits or corrupt. One writer per store, on whichever node its job runs,
is always safe; `medsweep status` and `medsweep report` read every store of the directory.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.store.database import DB_NAME

STORES_DIR = "stores"


def job_dir(out: Path, model: str) -> Path:
    """The folder of one model's job: its store, journal, summary and logs."""
    return out / STORES_DIR / model


def store_dirs(out: Path) -> list[Path]:
    """Every folder under ``out`` that holds a store: ``out`` itself, then ``out/stores/<model>``."""
    found = [out] if (out / DB_NAME).is_file() else []
    found += sorted(p.parent for p in (out / STORES_DIR).glob(f"*/{DB_NAME}") if p.is_file())
    return found
