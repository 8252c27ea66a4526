"""Which version of a task's dataset a file is (``versions.toml``), by checksum or by shape, and whether a run
on it can be compared with the study's published numbers."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError
from pipeline.paths import DEMO_DATA_DIR

VERSIONS = Path(__file__).resolve().parent / "versions.toml"


class Version(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    rows: int = Field(gt=0)
    sha256: str = ""
    source: bool = False  # the file `data fetch` downloads: its sha256 is the one prompts/<task>.toml pins
    published: bool
    note: str = ""


@cache
def known_versions(path: Path = VERSIONS) -> dict[str, tuple[Version, ...]]:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
        return {task: tuple(Version.model_validate(v) for v in entries) for task, entries in raw.items()}
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}; restore it from the repository") from None


@dataclass(frozen=True, slots=True)
class Identified:
    version: str  # the version's name, or what the file is when it is none of them
    by: str  # "sha256", "shape" or "" (not identified)
    comparable: bool  # a run on it can be compared with the published numbers
    note: str = ""

    def describe(self) -> str:
        how = f" (by {self.by})" if self.by else ""
        return f"{self.version}{how}" + (f"; {self.note}" if self.note else "")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identify(task: str, path: Path, rows: int, pinned_sha256: str = "") -> Identified:
    """Name the version of ``task``'s dataset at ``path`` (which loaded with ``rows`` rows).
    ``pinned_sha256``: the checksum prompts/<task>.toml pins for the file ``data fetch`` downloads."""
    if _inside(path, DEMO_DATA_DIR):
        return Identified("synthetic demo data (demo_data/)", "", False, "its scores mean nothing")
    versions = known_versions().get(task, ())
    actual = sha256_of(path)
    for version in versions:
        expected = pinned_sha256 if version.source else version.sha256
        if expected and actual == expected:
            return Identified(version.name, "sha256", version.published, version.note)
    for version in versions:
        if version.rows != rows:
            continue
        expected = pinned_sha256 if version.source else version.sha256
        if expected:  # the right size, but not the file whose checksum is known: an edited copy
            return Identified(
                f"{rows} rows like {version.name}, but sha256 {actual[:12]}… is not its {expected[:12]}…",
                "",
                False,
                "an edited or re-exported copy: fetch the original to compare with the paper",
            )
        return Identified(version.name, "shape", version.published, version.note)
    sizes = ", ".join(f"{v.rows}" for v in versions)
    return Identified(
        f"unknown version ({rows} rows; known: {sizes or 'none'})",
        "",
        False,
        "a subset or another release: scores on it are not comparable with the paper's",
    )


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
