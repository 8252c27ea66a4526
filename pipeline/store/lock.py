"""One eval at a time per (store, model, variant): a lock file beside the store file it protects.

Two evals of the same model into the same store would send the same requests twice (each skips only what
was committed when it started). The second one stops at once with one line naming the holder.

The lock file ``<store>.<model>.<variant>.lock`` holds a ``flock`` for as long as the eval runs, and a record
of its holder (pid, host, start time). The kernel drops the ``flock`` when the holder dies, however it dies,
so on one host a lock is never stale. The record covers file systems whose locks do not reach other hosts
(some NFS and Lustre mounts): a record left by a live process on another host refuses the lock, and one
left by a dead process on this host (``kill -9``, a crash) is taken over. Why a lock and not per-request
claims, and the limits: docs/reliability.md.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from pipeline.errors import MedsweepError
from pipeline.files import open_private
from pipeline.proc import boot_id, start_ticks


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock: enough to name it in an error and to tell, on its own host, whether it still runs."""

    pid: int
    host: str
    started_at: float  # seconds since the epoch
    boot_id: str  # a reboot frees every lock of this host
    proc_start: int | None  # its start time since boot (clock ticks): a reused pid is not the holder
    model: str
    variant: str

    @classmethod
    def me(cls, model: str, variant: str) -> Holder:
        pid = os.getpid()
        return cls(pid, socket.gethostname(), time.time(), boot_id(), start_ticks(pid), model, variant)

    def alive(self) -> bool:
        """False only when this host can tell the process is gone; another host's holder counts as alive."""
        if self.host != socket.gethostname():
            return True
        if self.boot_id and self.boot_id != boot_id():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: it exists
        start = start_ticks(self.pid)
        return start is None or self.proc_start is None or start == self.proc_start

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"pid {self.pid} on {self.host} since {when}"


class StoreLockedError(MedsweepError):
    """Another eval of the same model and variant writes this store now."""


def lock_path(store_path: Path, model: str, variant: str) -> Path:
    """``<store>.<model>.<variant>.lock`` beside the store; the model part is readable and unique."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model)[:60]
    digest = hashlib.sha256(f"{model}\0{variant}".encode()).hexdigest()[:8]
    return store_path.with_name(f"{store_path.name}.{slug}-{digest}.{variant}.lock")


@contextmanager
def store_lock(store_path: Path, model: str, variant: str) -> Iterator[Holder]:
    """Hold the (store, model, variant) lock for the ``with`` block, or raise ``StoreLockedError``."""
    path = lock_path(store_path, model, variant)
    fd = open_private(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise _locked(store_path, path, _read(fd)) from None
            # No flock on this file system (ENOLCK, EOPNOTSUPP): the record alone decides.
        recorded = _read(fd)
        if recorded is not None and recorded.alive():
            raise _locked(store_path, path, recorded)
        me = Holder.me(model, variant)
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(asdict(me)), 0)
        os.fsync(fd)
        try:
            yield me
        finally:
            os.ftruncate(fd, 0)  # released: an empty record
    finally:
        os.close(fd)  # drops the flock


def _locked(store_path: Path, path: Path, holder: Holder | None) -> StoreLockedError:
    who = holder.describe() if holder is not None else "another process"
    what = f"{holder.model} ({holder.variant})" if holder is not None else "this model"
    message = (
        f"{what} is already being evaluated into {store_path} by {who}: wait for it to finish "
        f"(`medsweep status --out {store_path.parent}` shows its progress) or stop it; a second eval would "
        "send the same requests again"
    )
    if holder is not None and holder.host != socket.gethostname():
        message += f". If that process no longer runs, delete {path}"
    return StoreLockedError(message)


def _read(fd: int) -> Holder | None:
    raw = os.pread(fd, 4096, 0)
    if not raw.strip():
        return None
    try:
        return Holder(**orjson.loads(raw))
    except (orjson.JSONDecodeError, TypeError):
        return None  # a torn write of a holder that died while writing it
