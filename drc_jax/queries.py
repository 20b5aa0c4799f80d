"""The texts a method scores (:mod:`drc_jax.texts`) -> query embeddings, each distinct text once."""

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
    """Unit-norm (Q, D) text embeddings of decomposed captions and strength (Q,) int32.

    With M concepts ``neg``, ``cf`` are (Q, M, D), ``neg_mask`` (Q, M) marking those present.
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
    """:class:`Queries` of ``texts`` (rows of [aff, neg, cf, full] + ``neg, cf`` pairs) embedded by
    ``lookup(list[str]) -> (B, D)``.

    Further concepts give (Q, M, D) ``neg``/``cf``, M at least ``concepts``; padding repeats the
    first concept, masked, so the scores do not depend on M.
    """
    if not texts:
        raise ValueError("queries need at least one row of texts")
    if any(len(row) < 4 or len(row) % 2 for row in texts):
        raise ValueError("each row of texts is [aff, neg, cf, full] plus (neg, cf) pairs")
    unique = list(dict.fromkeys(t for row in texts for t in row))
    table = np.asarray(lookup(unique), np.float32)
    pos = {t: i for i, t in enumerate(unique)}
    idx = np.asarray([[pos[t] for t in row[:4]] for row in texts])
    aff, neg, cf, full = (table[idx[:, j]] for j in range(4))
    m = max(concepts, max(len(row) - 2 for row in texts) // 2)
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
    """:class:`Queries` of the texts ``method`` scores, embedded by ``clip_or_encode``: a CLIP (with
    ``encode_texts``) or ``list[str] -> (B, D)``; ``concepts`` as in :func:`queries_from_table`."""
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
