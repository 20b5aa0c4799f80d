"""The encode step for text: the texts a method scores (:mod:`drc_jax.texts`) -> query embeddings.

Texts are deduplicated before encoding, so rows that score the same text (any row's ``full`` of a
negated caption and another's fallback, ...) share one embedding.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.texts import Prompts, text_set, texts_of


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["aff", "neg", "cf", "full", "strength", "neg_mask"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Queries:
    """Text embeddings of decomposed captions: (Q, D) unit-norm each, and strength (Q,) int32.

    With several negated concepts per caption ``neg`` and ``cf`` are (Q, M, D) and ``neg_mask``
    (Q, M) bool marks the concepts present (None: all of them).
    """

    aff: jax.Array
    neg: jax.Array
    cf: jax.Array
    full: jax.Array
    strength: jax.Array
    neg_mask: jax.Array | None = None

    def __len__(self) -> int:
        return self.full.shape[0]

    def take(self, idx) -> Queries:
        """Rows ``idx`` of every field (a slice or an index array)."""
        return jax.tree_util.tree_map(lambda x: x[idx], self)


def queries_from_table(
    lookup: Callable, texts: list[list[str]], strength, *, concepts: int = 1
) -> Queries:
    """:class:`Queries` of ``texts`` (Q rows of [aff, neg, cf, full], each
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
    method: str = "drc",
    prompts: Prompts | None = None,
    all_concepts: bool = True,
    concepts: int = 1,
) -> Queries:
    """Embed the texts ``method`` scores (:func:`drc_jax.texts.text_set`) into
    :class:`Queries` ((Q, M, D) neg/cf for several DRC concepts); ``concepts`` as in
    :func:`queries_from_table`.

    ``clip_or_encode`` is a loaded CLIP (anything with ``encode_texts``) or a function
    ``list[str] -> (B, D)`` array, e.g. one backed by an embedding cache.
    """
    encode: Callable = getattr(clip_or_encode, "encode_texts", clip_or_encode)
    ts = text_set(method, prompts, concepts="all" if all_concepts else "one")
    texts, strength = texts_of(ts, decompositions)
    if not texts:
        raise ValueError("embed_queries needs at least one decomposition")

    def batched(unique):
        parts = [
            np.asarray(encode(unique[i : i + batch_size]))
            for i in range(0, len(unique), batch_size)
        ]
        return np.concatenate(parts)

    return queries_from_table(batched, texts, strength, concepts=concepts)
