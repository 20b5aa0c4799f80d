"""A NEAT logic-inversion CSV written from NegBench query rows, as NEAT's repository ships them."""

from __future__ import annotations

import ast
import csv
import re

NEAT_COLUMNS = ("pos_captions", "neg_captions", "inverted_captions")


def _three(caption: str, absent: list[str]) -> tuple[str, str, str]:
    """Fixture texts in NEAT's shape (not NEAT's LLM): pos, "<concept> present", the inversion."""
    concept = next((o for o in absent if o in caption.lower()), absent[0] if absent else "object")
    pos = re.split(r",|;|\bbut\b|\bwithout\b|\bno\b|\bNo\b", caption)[0].strip() or caption
    return pos, f"{concept} present", f"No {pos[:1].lower()}{pos[1:]}, with {concept} present."


def write_neat_csv(rows: list[dict], dst, absent_column: str = "negative_objects") -> list:
    """The query ``rows`` (csv.DictReader dicts) plus NEAT's three list columns; returns the
    (pos, neg, inv) lists per row."""
    out, texts = [], []
    for row in rows:
        captions = ast.literal_eval(row["captions"])
        absent = row.get(absent_column) or "[]"
        absent = ast.literal_eval(absent) if absent.startswith("[") else [absent]
        three = [_three(c, absent) for c in captions]
        texts.append(three)
        extra = {k: repr([t[i] for t in three]) for i, k in enumerate(NEAT_COLUMNS)}
        out.append({**row, **extra})
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0], *NEAT_COLUMNS])
        w.writeheader()
        w.writerows(out)
    return texts
