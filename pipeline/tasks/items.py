"""Dataset rows -> ``Item``s: the fields the prompt templates read, a stable id, and the gold answer.

References (what ``Request.reference`` holds, for the scorers):
- mednli: the lowercase gold label (``"entailment"``); meqsum / probsum / medisumqa: the reference text;
- medisumcode: the list of gold ICD-10 codes, in file order, not de-duplicated (no dots, as in MIMIC).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.tasks.fewshot import Item, unique_ids
from pipeline.tasks.loaders import load_medisumcode, load_medisumqa, load_mednli, load_meqsum, load_probsum


def mednli_items(path: Path) -> list[Item]:
    rows = load_mednli(path)
    ids = unique_ids([r.pairID for r in rows])
    return [Item(i, r.model_dump(), r.gold_label) for i, r in zip(ids, rows, strict=True)]


def meqsum_items(path: Path) -> list[Item]:
    rows = load_meqsum(path)
    ids = unique_ids([r.File for r in rows])
    return [Item(i, r.model_dump(), r.Summary) for i, r in zip(ids, rows, strict=True)]


def probsum_items(path: Path) -> list[Item]:
    rows = load_probsum(path)
    items: list[Item] = []
    fields = [r.model_dump() for r in rows]
    ids = unique_ids([f.get("File ID") or None for f in fields])
    for item_id, row in zip(ids, fields, strict=True):
        # Both code versions turn the ";"-separated problem list into ", "-separated text.
        row["Summary"] = row["Summary"].replace(";", ", ")
        items.append(Item(item_id, row, row["Summary"]))
    return items


def medisumqa_items(path: Path) -> list[Item]:
    rows = load_medisumqa(path)
    ids = unique_ids([r.note_id or r.hadm_id for r in rows])
    items: list[Item] = []
    for item_id, row in zip(ids, rows, strict=True):
        fields = row.model_dump()
        # v3 templates say {without_discharge_summary}, HEAD's {discharge_summary}: offer both spellings.
        letter = (
            row.without_discharge_summary
            if row.without_discharge_summary is not None
            else row.discharge_summary
        )
        fields["without_discharge_summary"] = letter
        if row.discharge_summary is None:
            fields["discharge_summary"] = letter
        items.append(Item(item_id, fields, row.Answer))
    return items


def medisumcode_items(path: Path) -> list[Item]:
    rows = load_medisumcode(path)
    ids = unique_ids([r.hadm_id for r in rows])
    items: list[Item] = []
    for item_id, row in zip(ids, rows, strict=True):
        codes = [c.code for c in row.icd_codes]
        fields = {"text": row.text, "codes": ", ".join(codes), "hadm_id": row.hadm_id}
        items.append(Item(item_id, fields, codes))
    return items
