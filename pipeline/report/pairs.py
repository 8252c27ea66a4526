"""Which biomedical model is compared with which general model: the registry's pairs
(``pipeline.models.registry.pairs()``, from servers/*.toml ``role`` and ``counterpart``) plus
``--pair BIO=GENERAL`` flags for models that are not in the registry.

Stores hold model identities (``name@revision``, ``+lora.<checksum>`` for an adapter; docs/architecture.md)
while pairs name models: a name matches the identity equal to it or beginning with ``name@``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.paths import SERVERS_DIR


@dataclass(frozen=True, slots=True)
class Pair:
    biomedical: str
    general: str
    source: str  # "registry" or "--pair"


def parse_pair_flag(text: str) -> Pair:
    bio, sep, general = text.partition("=")
    if not sep or not bio.strip() or not general.strip():
        raise ConfigError(f"--pair {text!r}: expected BIO=GENERAL, e.g. --pair meditron-7b=llama-2-7b-hf")
    if bio.strip() == general.strip():
        raise ConfigError(f"--pair {text!r}: a model cannot be paired with itself")
    return Pair(bio.strip(), general.strip(), "--pair")


def registry_pairs(servers_dir: Path | None = None) -> list[tuple[str, str]]:
    """(biomedical, general) registry names; none when the servers folder does not exist."""
    directory = servers_dir or SERVERS_DIR
    if not directory.is_dir():
        return []
    return [(str(b), str(g)) for b, g in registry.pairs(directory)]


def all_pairs(flags: Sequence[str], servers_dir: Path | None = None) -> list[Pair]:
    """Flag pairs first (they override a registry pair of the same biomedical model), then the registry."""
    pairs = [parse_pair_flag(f) for f in flags]
    flagged = {p.biomedical for p in pairs}
    pairs += [Pair(b, g, "registry") for b, g in registry_pairs(servers_dir) if b not in flagged]
    return list(dict.fromkeys(pairs))


def identities_of(name: str, present: Collection[str]) -> list[str]:
    """The model identities in ``present`` that ``name`` (an identity or a registry name) stands for."""
    if name in present:
        return [name]
    return sorted(m for m in present if m.startswith(name + "@"))


def resolve_pairs(pairs: Sequence[Pair], present: Collection[str]) -> tuple[list[Pair], list[str]]:
    """The pairs as identities of ``present`` (one per combination when a model has several, e.g. two
    revisions) and notes on the pairs skipped for lack of results (a registry pair only when one of its
    two models has results: the registry lists far more models than one study runs)."""
    resolved: list[Pair] = []
    notes: list[str] = []
    for pair in pairs:
        bio, general = identities_of(pair.biomedical, present), identities_of(pair.general, present)
        if bio and general:
            resolved += [Pair(b, g, pair.source) for b in bio for g in general]
            continue
        absent = [name for name, found in ((pair.biomedical, bio), (pair.general, general)) if not found]
        if len(absent) == 1 or pair.source == "--pair":
            notes.append(
                f"pair {pair.biomedical}={pair.general} ({pair.source}) skipped: no results for "
                f"{', '.join(absent)}"
            )
    return list(dict.fromkeys(resolved)), notes
