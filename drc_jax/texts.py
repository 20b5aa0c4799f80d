"""The texts a method encodes per decomposition: :func:`text_set` + :func:`texts_of`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from drc_jax.vocab import NEUTRAL_AFF, STRENGTHS

PROMPT_PREFIX = "A photo of"
SPACEVLM_NEG_PREFIX = "A photo of a"
SPACEVLM_EMPTY_AFF = "This is a photo"
FIELDS = ("aff", "neg", "cf", "full")
CONCEPTS = ("all", "one")  # concepts_per_caption: every negated concept found, or the first
_ARTICLES = ("a ", "an ", "the ")


@dataclass(frozen=True)
class Prompts:
    """Each text field's prefix ("" = as it is); ``fallback``: a caption without negation;
    ``empty_aff``: replaces an aff with nothing affirmative ("" = that aff, prefixed)."""

    aff: str = PROMPT_PREFIX
    neg: str = PROMPT_PREFIX
    cf: str = PROMPT_PREFIX
    full: str = PROMPT_PREFIX
    fallback: str = ""
    empty_aff: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


DRC_PROMPTS = Prompts()  # the paper: "A photo of" once decomposed, the raw caption otherwise
RAW_PROMPTS = Prompts("", "", "", "", "")  # NegBench's CLIP baseline
PHOTO_PROMPTS = Prompts(fallback=PROMPT_PREFIX)  # "clip_prefixed"
# SpaceVLM's space_idea_retreival_LLM.py: aff raw ("This is a photo" if empty), "A photo of a " neg
SPACEVLM_PROMPTS = Prompts("", SPACEVLM_NEG_PREFIX, "", "", "", SPACEVLM_EMPTY_AFF)
METHOD_PROMPTS = {
    "clip": RAW_PROMPTS,
    "spacevlm": SPACEVLM_PROMPTS,
    "drc": DRC_PROMPTS,
    "neat": RAW_PROMPTS,
}
SCORED = {"clip": ("full",), "spacevlm": ("aff", "neg"), "drc": FIELDS}  # fields read if negated
SPLIT_STRENGTH = STRENGTHS.index("moderate")  # any value > 0: SpaceVLM's one t ignores it


def with_prefix(text: str, prefix: str = PROMPT_PREFIX) -> str:
    """``"<prefix> <text>"``, whitespace collapsed ("" prefix: ``text`` unchanged); the neutral
    aff only gets a capital; after a prefix ending in "a" the text's own a / an / the is dropped
    (SpaceVLM's Mistral emits bare concepts: "an apple" -> "A photo of a apple")."""
    if not prefix:
        return text
    text = " ".join(text.split())
    low = text.lower()
    if low.startswith(prefix.lower()):
        return text
    if prefix.lower() == PROMPT_PREFIX.lower() and (
        low == NEUTRAL_AFF or low.startswith(NEUTRAL_AFF + " with ")
    ):
        return text[0].upper() + text[1:]
    if prefix.lower().endswith((" a", " an")):
        text = next((text[len(a) :] for a in _ARTICLES if low.startswith(a)), text)
    return f"{prefix} {text}".rstrip()


def _aff(d, prompts: Prompts) -> str:
    if prompts.empty_aff and d.aff.strip().lower() in ("", NEUTRAL_AFF):
        return prompts.empty_aff
    return with_prefix(d.aff, prompts.aff)


def query_texts(decompositions, prompts: Prompts = DRC_PROMPTS, *, all_concepts: bool = False):
    """Per decomposition [aff, neg, cf, full] (+ a ``neg, cf`` pair per further concept with
    ``all_concepts``) and strengths (Q,); no negation: the fallback text four times, strength 0."""
    texts, strength = [], []
    for d in decompositions:
        if d.negated and d.strength != "none":
            row = [_aff(d, prompts), with_prefix(d.neg, prompts.neg), with_prefix(d.cf, prompts.cf)]
            row.append(with_prefix(d.caption, prompts.full))
            if all_concepts:
                for n, c in zip(d.negs[1:], d.cfs[1:], strict=True):
                    row += [with_prefix(n, prompts.neg), with_prefix(c, prompts.cf)]
            texts.append(row)
            strength.append(STRENGTHS.index(d.strength))
        else:
            texts.append([with_prefix(d.caption, prompts.fallback)] * 4)
            strength.append(0)
    return texts, np.asarray(strength, np.int32)


@dataclass(frozen=True)
class TextSet:
    """A row's texts: prompts, SpaceVLM's split or not, fields read, every concept or the first."""

    prompts: Prompts
    split: bool = False
    fields: tuple[str, ...] = FIELDS
    all_concepts: bool = False


def text_set(method, prompts: Prompts | None = None, *, split=False, concepts="all") -> TextSet:
    """The :class:`TextSet` of ``method`` or of a launcher row; baselines score one concept."""
    if not isinstance(method, str):
        v = method
        return text_set(v.method, v.prompts, split=bool(v.split), concepts=v.concepts)
    if concepts not in CONCEPTS:
        raise ValueError(f"concepts_per_caption must be one of {CONCEPTS}, got {concepts!r}")
    prompts = METHOD_PROMPTS[method] if prompts is None else prompts
    return TextSet(prompts, bool(split), SCORED[method], method == "drc" and concepts == "all")


def _only(fields: tuple[str, ...], row: list[str], strength: int) -> list[str]:
    """``row`` with unread fields replaced by a read one (nothing unread is encoded)."""
    if strength == 0 or fields == FIELDS:
        return row
    keep = row[FIELDS.index(fields[0])]
    return [t if f in fields else keep for f, t in zip(FIELDS, row, strict=True)]


def texts_of(ts: TextSet, decompositions, queries=(), split: dict | None = None):
    """(rows of [aff, neg, cf, full], strength (Q,)) of ``ts``; ``queries`` key a split."""
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
    """NEAT's (captions, pos, neg, inv) = (full, aff, neg, cf); without negation (caption, caption,
    None, None), masked by NEAT; an empty caption as "A photo of" (NEAT refuses empty texts)."""
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
