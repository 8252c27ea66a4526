"""LoRA adapter folders: which files make one, and the checksum the registry pins (``adapter.sha256``).

The checksum covers both files vLLM reads, so a changed rank, target list or weight is a different adapter:
it is the sha256 of the ``sha256sum`` listing of ``adapter_config.json`` and ``adapter_model.safetensors``
(in that order), i.e. ``cd DIR && sha256sum adapter_config.json adapter_model.safetensors | sha256sum``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.errors import ConfigError

ADAPTER_FILES: tuple[str, ...] = ("adapter_config.json", "adapter_model.safetensors")


def missing_files(folder: Path) -> list[str]:
    """The adapter files that ``folder`` lacks (all of them when it is not a folder)."""
    return [name for name in ADAPTER_FILES if not (folder / name).is_file()]


def adapter_digest(folder: Path) -> str:
    """The pinned checksum of the adapter in ``folder`` (see the module docstring)."""
    listing = ""
    for name in ADAPTER_FILES:
        digest = hashlib.sha256()
        with (folder / name).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        listing += f"{digest.hexdigest()}  {name}\n"
    return hashlib.sha256(listing.encode()).hexdigest()


def verify_adapter(folder: Path, sha256: str, where: str) -> None:
    """ConfigError (one line naming ``where``) unless ``folder`` holds the adapter with this checksum."""
    missing = missing_files(folder)
    if missing:
        raise ConfigError(f"{where}: field 'adapter.path': {folder} lacks {', '.join(missing)}")
    actual = adapter_digest(folder)
    if actual != sha256:
        raise ConfigError(
            f"{where}: field 'adapter.sha256': {folder} has checksum {actual}, not the pinned {sha256}; "
            "the adapter changed: restore it (git checkout) or pin the new checksum"
        )
