"""Which biomedical model is compared with which general model: the registry's pairs
(``pipeline.registry.pairs()``; until that module exists, the ``role``/``counterpart`` fields of
``servers/*.toml``) plus ``--pair BIO=GENERAL`` flags for models that are not in the registry."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError

_SERVERS_DIR = Path(__file__).resolve().parents[2] / "servers"


@dataclass(frozen=True, slots=True)
class Pair:
    biomedical: str
    general: str
    source: str  # "registry" or "--pair"


def parse_pair_flag(text: str) -> Pair:
    bio, sep, general = text.partition("=")
    if not sep or not bio.strip() or not general.strip():
        raise ConfigError(f"--pair {text!r}: expected BIO=GENERAL, e.g. --pair meditron-7b=llama2-7b")
    if bio.strip() == general.strip():
        raise ConfigError(f"--pair {text!r}: a model cannot be paired with itself")
    return Pair(bio.strip(), general.strip(), "--pair")


def registry_pairs(servers_dir: Path | None = None) -> list[tuple[str, str]]:
    """(biomedical, general) registry names."""
    if servers_dir is None:
        try:
            registry = importlib.import_module("pipeline.registry")
        except ImportError:
            registry = None
        if registry is not None and callable(getattr(registry, "pairs", None)):
            return [(str(b), str(g)) for b, g in registry.pairs()]
    return _pairs_from_toml(servers_dir or _SERVERS_DIR)


def _pairs_from_toml(directory: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        entry = data.get("model", data)
        if entry.get("role") == "biomedical" and entry.get("counterpart"):
            found.append((str(entry.get("name", path.stem)), str(entry["counterpart"])))
    return found


def all_pairs(flags: Sequence[str], servers_dir: Path | None = None) -> list[Pair]:
    """Flag pairs first (they override a registry pair of the same biomedical model), then the registry."""
    pairs = [parse_pair_flag(f) for f in flags]
    flagged = {p.biomedical for p in pairs}
    pairs += [Pair(b, g, "registry") for b, g in registry_pairs(servers_dir) if b not in flagged]
    return list(dict.fromkeys(pairs))
