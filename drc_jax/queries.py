"""Decompositions -> the texts each method scores -> query embeddings (the encode step for text).

Which prefix each text gets is a per-row setting (:class:`Prompts`), one per text field:

- DRC (the paper): once a caption is decomposed, ``aff``, ``neg``, ``cf`` and ``full`` are prefixed
  "A photo of" (:data:`DRC_PROMPTS`); a caption without negation is scored with plain CLIP on the
  caption *itself* (eq. 2; the ``fallback`` field, raw).
- CLIP (NegBench's baseline, eq. 2) encodes the raw caption (:data:`RAW_PROMPTS`);
  :data:`PHOTO_PROMPTS` is the prefixed variant, kept as a named option ("clip_prefixed").
- SpaceVLM encodes its aff and negated phrases as they are (:data:`RAW_PROMPTS`).

Texts are deduplicated before encoding, so rows that score the same text (any row's ``full`` of a
negated caption and another's fallback, ...) share one embedding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from drc_jax.decompose.syntax import NEUTRAL_AFF
from drc_jax.scoring import STRENGTHS, Queries

PROMPT_PREFIX = "A photo of"
FIELDS = ("aff", "neg", "cf", "full")
"""The four texts of a decomposed query, in :class:`~drc_jax.scoring.Queries` order."""


@dataclasses.dataclass(frozen=True)
class Prompts:
    """The prefix put before each text field ("" = the text as it is).

    ``aff``, ``neg``, ``cf`` and ``full`` apply to captions with negation; ``fallback`` to the
    caption of a query without negation, which every method scores with eq. 2.
    """

    aff: str = PROMPT_PREFIX
    neg: str = PROMPT_PREFIX
    cf: str = PROMPT_PREFIX
    full: str = PROMPT_PREFIX
    fallback: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


DRC_PROMPTS = Prompts()
"""The paper's: "A photo of" on aff/neg/cf/full once decomposed; the raw caption otherwise."""
RAW_PROMPTS = Prompts("", "", "", "", "")
"""Every text as written: NegBench's CLIP baseline and SpaceVLM's phrases."""
PHOTO_PROMPTS = Prompts(fallback=PROMPT_PREFIX)
"""Every text prefixed, the fallback caption too (the "clip_prefixed" option)."""


def with_prefix(text: str, prefix: str = PROMPT_PREFIX) -> str:
    """``"<prefix> <text>"`` (whitespace collapsed); text that already starts with the prefix is
    left as it is. An empty ``prefix`` returns ``text`` unchanged, byte for byte.

    With "A photo of", the neutral aff "a photo" (a query with nothing affirmative) and its
    counterfactual "a photo with <neg>" only get a capital: "A photo", "A photo with a dog" (not
    "A photo of a photo")."""
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
    return f"{prefix} {text}".rstrip()


def query_texts(
    decompositions: Sequence, prompts: Prompts = DRC_PROMPTS, *, all_concepts: bool = False
) -> tuple[list[list[str]], np.ndarray]:
    """Per decomposition the four texts [aff, neg, cf, full] with ``prompts``' prefixes, and the
    strength ints (Q,). A caption without negation gives its fallback text in all four slots
    (strength 0: only ``full`` is scored, eq. 2).

    With ``all_concepts``, a caption that negates several concepts ("a street with no cars and no
    people") appends one ``neg, cf`` pair per further concept (``Decomposition.negs`` /
    ``.cfs``), which :func:`queries_from_table` turns into (Q, M, D) concepts for
    :func:`~drc_jax.scoring.drc_score_multi`; one concept gives exactly the four texts."""
    texts, strength = [], []
    for d in decompositions:
        if d.negated and d.strength != "none":
            row = [with_prefix(getattr(d, f), getattr(prompts, f)) for f in FIELDS[:3]]
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


def queries_from_table(
    lookup: Callable, texts: list[list[str]], strength, *, concepts: int = 1
) -> Queries:
    """:class:`~drc_jax.scoring.Queries` of ``texts`` (Q rows of [aff, neg, cf, full], each
    optionally followed by ``neg, cf`` pairs of further concepts) from ``lookup(list[str]) ->
    (B, D)`` embeddings of those texts (each distinct text asked once).

    Rows of four texts give (Q, D) fields. When some row has further concepts, ``neg`` and ``cf``
    are (Q, M, D) with ``neg_mask`` (Q, M) marking each row's real concepts (M = the most any row
    has, at least ``concepts``; the padding repeats the row's first concept, masked out, so a
    larger ``concepts`` gives the same scores at a shape shared by other counts)."""
    if not texts:
        raise ValueError("queries need at least one row of texts")
    if any(len(row) < 4 or len(row) % 2 for row in texts):
        raise ValueError("each row of texts is [aff, neg, cf, full] plus (neg, cf) pairs")
    unique = list(dict.fromkeys(t for row in texts for t in row))
    table = np.asarray(lookup(unique), np.float32)
    pos = {t: i for i, t in enumerate(unique)}
    idx = np.asarray([[pos[t] for t in row[:4]] for row in texts])
    aff, neg, cf, full = (table[idx[:, j]] for j in range(4))
    m = max(concepts, max(len(row) - 2 for row in texts) // 2)  # per row: 1 + (len - 4) / 2
    strength = jnp.asarray(strength, jnp.int32)
    if m == 1:
        return Queries(*(jnp.asarray(x) for x in (aff, neg, cf, full)), strength=strength)
    negs, cfs = np.repeat(neg[:, None], m, 1), np.repeat(cf[:, None], m, 1)
    mask = np.zeros((len(texts), m), bool)
    for i, row in enumerate(texts):
        extra = row[4:]
        mask[i, : 1 + len(extra) // 2] = True
        for j in range(len(extra) // 2):
            negs[i, 1 + j] = table[pos[extra[2 * j]]]
            cfs[i, 1 + j] = table[pos[extra[2 * j + 1]]]
    return Queries(
        jnp.asarray(aff),
        jnp.asarray(negs),
        jnp.asarray(cfs),
        jnp.asarray(full),
        strength,
        neg_mask=jnp.asarray(mask),
    )


def embed_queries(
    clip_or_encode,
    decompositions: Sequence,
    *,
    batch_size: int = 256,
    prompts: Prompts = DRC_PROMPTS,
    all_concepts: bool = True,
    concepts: int = 1,
) -> Queries:
    """Embed decompositions into :class:`~drc_jax.scoring.Queries` (unit-norm (Q, D) fields;
    (Q, M, D) ``neg``/``cf`` with a mask when ``all_concepts`` and a query negates several
    concepts, see :func:`query_texts`); ``concepts`` as in :func:`queries_from_table`.

    ``clip_or_encode`` is a loaded CLIP (anything with ``encode_texts``) or a function
    ``list[str] -> (B, D)`` array, e.g. one backed by an embedding cache.
    """
    encode: Callable = getattr(clip_or_encode, "encode_texts", clip_or_encode)
    texts, strength = query_texts(decompositions, prompts, all_concepts=all_concepts)
    if not texts:
        raise ValueError("embed_queries needs at least one decomposition")

    def batched(unique):
        parts = [
            np.asarray(encode(unique[i : i + batch_size]))
            for i in range(0, len(unique), batch_size)
        ]
        return np.concatenate(parts)

    return queries_from_table(batched, texts, strength, concepts=concepts)
