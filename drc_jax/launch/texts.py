"""What each table row scores: its texts per query, from the decomposition and its prompts.

A row's texts are decided by its method, its :class:`~drc_jax.queries.Prompts` and, for SpaceVLM
rows run with ``--config.spacevlm_split``, SpaceVLM's own Mistral-7B split
(:mod:`drc_jax.data.spacevlm_split`). Rows that share both share one :class:`TextSet`; the encode
stage embeds the union of every set's texts once per backbone (each distinct text once) and builds
one :class:`~drc_jax.scoring.Queries` per set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drc_jax.queries import FIELDS, PROMPT_PREFIX, Prompts, query_texts, with_prefix
from drc_jax.scoring import STRENGTHS

SPLIT_STRENGTH = STRENGTHS.index("moderate")
"""Strength given to a split's negated captions: any value > 0 (SpaceVLM's one ``t`` ignores it)."""


SCORED = {"clip": ("full",), "spacevlm": ("aff", "neg"), "drc": FIELDS}
"""The fields each method reads for a negated query (every method reads ``full`` otherwise)."""


@dataclass(frozen=True)
class TextSet:
    """Which texts a row scores: its prompts, whether SpaceVLM's split replaces the run's
    decomposition, the fields its method reads (:data:`SCORED`; only those are encoded), and
    whether every negated concept of a caption is scored (DRC, :func:`drc_jax.scoring.
    drc_score`) or only the first (the baselines, as their papers score one)."""

    prompts: Prompts
    split: bool = False
    fields: tuple[str, ...] = FIELDS
    all_concepts: bool = False


def text_set(variant) -> TextSet:
    drc = variant.method == "drc"
    return TextSet(variant.prompts, bool(variant.split), SCORED[variant.method], drc)


def _only(fields: tuple[str, ...], row: list[str], strength: int) -> list[str]:
    """``row`` with the fields a method does not read replaced by one it reads (so nothing
    unread is encoded; the shapes of :class:`~drc_jax.scoring.Queries` stay (Q, D))."""
    if strength == 0 or fields == FIELDS:
        return row
    keep = row[FIELDS.index(fields[0])]
    return [t if f in fields else keep for f, t in zip(FIELDS, row, strict=True)]


def texts_of(ts: TextSet, decompositions, queries, split: dict | None):
    """(Q rows of [aff, neg, cf, full], strength (Q,)) for the text set ``ts``.

    ``queries`` are the benchmark's :class:`~drc_jax.data.negbench.Query` records (their CSV line
    and caption key the split).
    """
    rows, strength = _texts(ts, decompositions, queries, split)
    return [_only(ts.fields, r, int(s)) for r, s in zip(rows, strength, strict=True)], strength


def _texts(ts: TextSet, decompositions, queries, split: dict | None):
    if not ts.split:
        return query_texts(decompositions, ts.prompts, all_concepts=ts.all_concepts)
    rows, strength = [], []
    for q in queries:
        aff, neg = split[(q.line, q.caption)]
        if neg.strip():  # verbatim, as SpaceVLM's script encodes them
            rows.append([aff, neg, aff, q.caption])
            strength.append(SPLIT_STRENGTH)
        else:
            rows.append([with_prefix(q.caption, ts.prompts.fallback)] * 4)
            strength.append(0)
    return rows, np.asarray(strength, np.int32)


def scored_texts(method: str, row: list[str], strength: int) -> dict[str, str]:
    """The texts ``method`` scores for one query: what decompositions.jsonl records."""
    if strength == 0:
        return {"full": row[3]}
    out = {f: row[FIELDS.index(f)] for f in SCORED[method]}
    if len(row) > len(FIELDS):  # further negated concepts (DRC): every neg and cf it scored
        out["negs"] = [row[1], *row[4::2]]
        out["cfs"] = [row[2], *row[5::2]]
    return out


def neat_lists(decompositions, prompts: Prompts):
    """NEAT's (captions, pos, neg, inv) from our decomposition: pos = aff, neg = neg, inv = cf
    (:mod:`drc_jax.neat.texts`); a caption without negation gives (caption, caption, None, None),
    which NEAT masks out of every term that reads neg / inv. NEAT refuses an empty text, so an
    empty caption (kept by ``--on_bad_caption keep``) is given as the bare "A photo of"."""
    captions, pos, neg, inv = [], [], [], []
    for d in decompositions:
        if not d.caption.strip():
            captions.append(PROMPT_PREFIX)
            pos.append(PROMPT_PREFIX)
            neg.append(None)
            inv.append(None)
            continue
        if d.negated and d.strength != "none":
            captions.append(with_prefix(d.caption, prompts.full))
            pos.append(with_prefix(d.aff, prompts.aff))
            neg.append(with_prefix(d.neg, prompts.neg))
            inv.append(with_prefix(d.cf, prompts.cf))
        else:
            captions.append(with_prefix(d.caption, prompts.fallback))
            pos.append(captions[-1])
            neg.append(None)
            inv.append(None)
    return captions, pos, neg, inv
