"""Private files: results, logs, state and locks may hold patient text or a server's details, so every file
medsweep writes is 0600 and every directory it creates 0700. Write them through here, never by hand."""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing directory keeps its mode."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by another process: it keeps its mode
            continue
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """``os.open(path, flags)`` with the file made 0600 (also one that existed with another mode); the
    caller owns the descriptor. The default appends (logs, journals)."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes | str, *, atomic: bool = False) -> Path:
    """Replace ``path`` with ``data``, readable by the owner only (also when the file existed before).
    ``atomic``: write ``<path>.tmp`` and rename it, so a reader never sees a half-written file."""
    payload = data.encode() if isinstance(data, str) else data
    target = path.with_name(path.name + ".tmp") if atomic else path
    fd = open_private(target, os.O_WRONLY | os.O_TRUNC)
    try:
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(payload)
    finally:
        os.close(fd)
    if atomic:
        target.replace(path)
    return path
