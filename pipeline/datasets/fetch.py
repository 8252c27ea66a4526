"""`medsweep data fetch`: download the public datasets (MeQSum, LongHealth, MedQA; each task's
prompts/<task>.toml [data] names its URL and, where known, its sha256) and keep a file only once verified.

A file is downloaded into a staging folder inside the data dir, checked there (its pinned sha256; then that it
loads and is a known version, by checksum or shape: pipeline/datasets/versions.toml) and only then moved into
place, so a failed, corrupt or unexpected download never leaves a file, partial or whole, where a task reads.
``MEDSWEEP_DATA_MIRROR`` / ``--mirror URL`` fetch ``URL/<task>/<file>`` instead (an internal mirror, or the
tests' local file server)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets.versions import Identified, identify, sha256_of
from pipeline.errors import DataError
from pipeline.files import private_dir

MIRROR_ENV = "MEDSWEEP_DATA_MIRROR"
"""A base URL laid out like a data dir (``<mirror>/<task>/<file>``) to fetch from instead of the sources."""


@dataclass(frozen=True, slots=True)
class Fetched:
    task: str
    target: Path
    message: str  # one line for the user


def download(url: str, target: Path, expected_sha256: str) -> str:
    """Stream ``url`` into a temporary file next to ``target``, check its sha256 when one is pinned, then
    move it into place (atomic: a failed download never leaves a partial file). Returns the sha256."""
    import httpx

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            try:
                with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
                    if response.status_code != 200:
                        raise DataError(
                            f"GET {url} answered HTTP {response.status_code}; check the URL or mirror"
                        )
                    for chunk in response.iter_bytes():
                        digest.update(chunk)
                        out.write(chunk)
            except httpx.HTTPError as exc:
                raise DataError(
                    f"cannot download {url} ({type(exc).__name__}: {exc}); check the network"
                ) from None
        actual = digest.hexdigest()
        if expected_sha256 and actual != expected_sha256:
            raise DataError(
                f"{url}: sha256 {actual} does not match the pinned {expected_sha256}; "
                "the source changed or the download is corrupt, so the file was not saved"
            )
        os.replace(tmp, target)
        return actual
    finally:
        tmp.unlink(missing_ok=True)


def public_tasks() -> Iterator[str]:
    """The tasks whose dataset `data fetch` downloads (public, with a URL)."""
    from pipeline.tasks import task_names
    from pipeline.tasks.prompts import load_prompts

    for name in task_names():
        source = load_prompts(name).data
        if source.access == "public" and source.url:
            yield name


def fetch(name: str, data_dir: Path, mirror: str, force: bool) -> Fetched:
    """Download task ``name``'s dataset into ``data_dir`` unless a verified copy is there."""
    from pipeline.tasks import check_data, get_task
    from pipeline.tasks.prompts import load_prompts

    source = load_prompts(name).data
    target = get_task(name).data_path(data_dir)
    if target.is_file() and not force:
        if not source.sha256:
            return Fetched(
                name, target, f"{target} is already there (no checksum pinned; --force downloads it again)"
            )
        if sha256_of(target) == source.sha256:
            return Fetched(name, target, f"{target} is already there (sha256 verified)")
        print(f"{name}: {target} does not match the pinned sha256; downloading it again")
    url = f"{mirror.rstrip('/')}/{name}/{source.file}" if mirror else source.url
    try:
        private_dir(data_dir)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=data_dir))
    except OSError as exc:
        raise DataError(
            f"cannot write into {data_dir} ({exc.strerror}); pass a writable --data-dir"
        ) from None
    try:
        staged = get_task(name).data_path(staging)
        actual = download(url, staged, source.sha256)
        check = check_data(name, staging)
        if check.state != "ok":
            raise DataError(f"{url}: the download does not load ({check.reason}); the file was not saved")
        found: Identified = identify(name, staged, check.rows, source.sha256)
        if not found.by:
            raise DataError(f"{url}: {found.version}, not the expected dataset; the file was not saved")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    verified = (
        f"sha256 {actual} verified"
        if source.sha256
        else f"sha256 {actual}; no checksum is pinned for this file, so its shape was checked"
    )
    return Fetched(name, target, f"{url} -> {target} ({verified}; {found.describe()})")
