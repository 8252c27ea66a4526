"""Pack models onto a GPU inventory. Pure functions: same input, same answer.

Models are placed largest first (plan order among equals). ``allocate`` picks the GPUs for one model: an
aligned block (``0-3``/``4-7`` for four GPUs: the pairs that share an NVLink switch or PCIe root on the usual
8-GPU nodes) when one is free, else the lowest free ids. ``pack`` previews the sweep as waves, assuming
the models of a wave finish together; the runner uses the same ``order`` and ``allocate`` as GPUs free
up, so a wave-2 model starts as soon as enough GPUs of wave 1 are free.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pipeline.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Need:
    name: str
    gpus: int  # >= 1 (the cpu engine schedules on a one-slot inventory: one model at a time)


@dataclass(frozen=True, slots=True)
class Assignment:
    name: str
    gpus: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Wave:
    index: int
    assignments: tuple[Assignment, ...]


def order(needs: Sequence[Need]) -> list[Need]:
    """Largest first; the plan order among models of one size (a stable sort)."""
    return sorted(needs, key=lambda n: -n.gpus)


def check_fits(needs: Sequence[Need], inventory: Sequence[int]) -> None:
    for need in needs:
        if need.gpus > len(inventory):
            raise ConfigError(
                f"model {need.name!r} needs {need.gpus} GPUs but the inventory has {len(inventory)} "
                f"({', '.join(map(str, inventory)) or 'none'}): add GPUs to [sweep] gpus or remove the model"
            )


def allocate(count: int, free: Collection[int], inventory: Sequence[int]) -> tuple[int, ...] | None:
    """``count`` GPU ids out of ``free``, or None when they do not fit now."""
    if count > len(free):
        return None
    # Aligned blocks by position in the inventory: for 4 GPUs out of 8 these are [0-3] and [4-7].
    for start in range(0, len(inventory) - count + 1, count):
        block = tuple(inventory[start : start + count])
        if all(g in free for g in block):
            return block
    return tuple(g for g in inventory if g in free)[:count]


def pack(needs: Sequence[Need], inventory: Sequence[int]) -> list[Wave]:
    """Waves of concurrent models: first-fit decreasing; each wave gets the whole inventory."""
    check_fits(needs, inventory)
    waves: list[list[Assignment]] = []
    free: list[set[int]] = []
    for need in order(needs):
        for wave, left in zip(waves, free, strict=True):
            got = allocate(need.gpus, left, inventory)
            if got is not None:
                wave.append(Assignment(need.name, got))
                left -= set(got)
                break
        else:
            got = allocate(need.gpus, set(inventory), inventory)
            assert got is not None  # check_fits
            waves.append([Assignment(need.name, got)])
            free.append(set(inventory) - set(got))
    return [Wave(i + 1, tuple(w)) for i, w in enumerate(waves)]
