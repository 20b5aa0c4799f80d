"""The texts stage: per method and decomposition, the texts a row encodes (the one builder).

The launcher's rows and search's columns both call :func:`text_set` + :func:`texts_of`, so a
method scores the same texts everywhere. Each text field's prefix is a :class:`Prompts` setting:

- CLIP (NegBench's baseline, eq. 2) encodes the raw caption (:data:`RAW_PROMPTS`).
- SpaceVLM as its retrieval script runs (:data:`SPACEVLM_PROMPTS`): aff raw, "This is a photo" for
  an empty aff, neg as ``"A photo of a " + concept`` (:func:`with_prefix`'s article rule).
- DRC (the paper): "A photo of" on aff / neg / cf / full once decomposed (:data:`DRC_PROMPTS`).

A caption without negation is scored with eq. 2 on the caption itself by every method (the
``fallback`` field, raw by default). Rows that share a :class:`TextSet` share its texts; each
distinct text is encoded once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from drc_jax.decompose.syntax import NEUTRAL_AFF
from drc_jax.decompose.types import STRENGTHS

PROMPT_PREFIX = "A photo of"
SPACEVLM_NEG_PREFIX = "A photo of a"
SPACEVLM_EMPTY_AFF = "This is a photo"
FIELDS = ("aff", "neg", "cf", "full")
"""The four texts of a decomposed query, in :class:`~drc_jax.scoring.Queries` order."""
CONCEPTS = ("all", "one")
"""``concepts_per_caption``: every negated concept the decomposer found, or the first only."""
_ARTICLES = ("a ", "an ", "the ")


@dataclass(frozen=True)
class Prompts:
    """The prefix put before each text field ("" = the text as it is).

    ``aff``, ``neg``, ``cf`` and ``full`` apply to captions with negation; ``fallback`` to the
    caption of a query without negation. ``empty_aff`` replaces an aff with nothing affirmative
    ("" = that aff with the ``aff`` prefix).
    """

    aff: str = PROMPT_PREFIX
    neg: str = PROMPT_PREFIX
    cf: str = PROMPT_PREFIX
    full: str = PROMPT_PREFIX
    fallback: str = ""
    empty_aff: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


DRC_PROMPTS = Prompts()
"""The paper's: "A photo of" on aff/neg/cf/full once decomposed; the raw caption otherwise."""
RAW_PROMPTS = Prompts("", "", "", "", "")
"""Every text as written: NegBench's CLIP baseline."""
PHOTO_PROMPTS = Prompts(fallback=PROMPT_PREFIX)
"""Every text prefixed, the fallback caption too (the "clip_prefixed" option)."""
SPACEVLM_PROMPTS = Prompts("", SPACEVLM_NEG_PREFIX, "", "", "", SPACEVLM_EMPTY_AFF)
"""SpaceVLM's retrieval script (``Retrieval/space_idea_retreival_LLM.py``): aff raw ("This is a
photo" when empty), ``"A photo of a " + neg``."""
METHOD_PROMPTS = {
    "clip": RAW_PROMPTS,
    "spacevlm": SPACEVLM_PROMPTS,
    "drc": DRC_PROMPTS,
    "neat": RAW_PROMPTS,
}
"""Each method's own prefixes (NEAT: its texts as they are; its loader lower-cases)."""
SCORED = {"clip": ("full",), "spacevlm": ("aff", "neg"), "drc": FIELDS}
"""The fields each method reads for a negated query (every method reads ``full`` otherwise)."""
SPLIT_STRENGTH = STRENGTHS.index("moderate")
"""Strength given to a split's negated captions: any value > 0 (SpaceVLM's one ``t`` ignores it)."""


def with_prefix(text: str, prefix: str = PROMPT_PREFIX) -> str:
    """``"<prefix> <text>"`` (whitespace collapsed); text already starting with the prefix is kept.

    An empty ``prefix`` returns ``text`` byte for byte. The neutral aff "a photo" and "a photo
    with <neg>" only get a capital under "A photo of". A prefix ending in an article ("A photo
    of a", SpaceVLM's) takes the bare concept, as SpaceVLM's Mistral-7B emits it: the text's own
    leading a / an / the is dropped ("a beach" -> "A photo of a beach", "an apple" -> "A photo of
    a apple", "dancing" -> "A photo of a dancing")."""
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
    """Per decomposition [aff, neg, cf, full] with ``prompts``' prefixes, and strengths (Q,).

    A caption without negation gives its fallback text in all four slots (strength 0: eq. 2).
    With ``all_concepts`` a caption negating several concepts appends one ``neg, cf`` pair per
    further concept (``Decomposition.negs`` / ``.cfs``; scored by ``drc_score_multi``)."""
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
    """Which texts a row scores: its prompts, whether SpaceVLM's split replaces the run's
    decomposition, the fields its method reads (:data:`SCORED`; only those are encoded), and
    whether every negated concept of a caption is scored (DRC with ``concepts_per_caption``
    "all", :func:`drc_jax.scoring.drc_score_multi`) or only the first."""

    prompts: Prompts
    split: bool = False
    fields: tuple[str, ...] = FIELDS
    all_concepts: bool = False


def text_set(method, prompts: Prompts | None = None, *, split=False, concepts="all") -> TextSet:
    """The :class:`TextSet` of ``method`` (or of a launcher row: anything with ``method``,
    ``prompts``, ``split`` and ``concepts``); the baselines always score one concept."""
    if not isinstance(method, str):
        v = method
        return text_set(v.method, v.prompts, split=bool(v.split), concepts=v.concepts)
    if concepts not in CONCEPTS:
        raise ValueError(f"concepts_per_caption must be one of {CONCEPTS}, got {concepts!r}")
    prompts = METHOD_PROMPTS[method] if prompts is None else prompts
    return TextSet(prompts, bool(split), SCORED[method], method == "drc" and concepts == "all")


def _only(fields: tuple[str, ...], row: list[str], strength: int) -> list[str]:
    """``row`` with the fields a method does not read replaced by one it reads (so nothing
    unread is encoded; the shapes of :class:`~drc_jax.scoring.Queries` stay (Q, D))."""
    if strength == 0 or fields == FIELDS:
        return row
    keep = row[FIELDS.index(fields[0])]
    return [t if f in fields else keep for f, t in zip(FIELDS, row, strict=True)]


def texts_of(ts: TextSet, decompositions, queries=(), split: dict | None = None):
    """(Q rows of [aff, neg, cf, full], strength (Q,)) for the text set ``ts``.

    ``queries`` are the benchmark's :class:`~drc_jax.data.negbench.Query` records (their CSV line
    and caption key the split; needed only when ``ts.split``).
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
