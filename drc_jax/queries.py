"""Decompositions -> query embeddings (the encode step for text).

Every text DRC embeds (aff, neg, cf and the full caption) is prefixed "A photo of", as in the paper.
Unique texts are encoded once; captions without negation reuse the full caption's embedding for
aff/neg/cf (their strength is 0, so only ``full`` is scored: plain CLIP, eq. 2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from drc_jax.decompose.syntax import NEUTRAL_AFF
from drc_jax.scoring import STRENGTHS, Queries

PROMPT_PREFIX = "A photo of"


def with_prefix(text: str) -> str:
    """``"A photo of <text>"``; text that already starts with the prefix is left as it is, and
    the neutral aff "a photo" (a query with nothing affirmative) and its counterfactual "a photo
    with <neg>" only get a capital: "A photo", "A photo with a dog" (not "A photo of a photo")."""
    text = " ".join(text.split())
    low = text.lower()
    if low.startswith(PROMPT_PREFIX.lower()):
        return text
    if low == NEUTRAL_AFF or low.startswith(NEUTRAL_AFF + " with "):
        return text[0].upper() + text[1:]
    return f"{PROMPT_PREFIX} {text}"


def query_texts(decompositions: Sequence) -> tuple[list[list[str]], np.ndarray]:
    """Per decomposition the four prefixed texts [aff, neg, cf, full], and strength ints (Q,)."""
    texts, strength = [], []
    for d in decompositions:
        full = with_prefix(d.caption)
        if d.negated and d.strength != "none":
            texts.append([with_prefix(d.aff), with_prefix(d.neg), with_prefix(d.cf), full])
            strength.append(STRENGTHS.index(d.strength))
        else:
            texts.append([full, full, full, full])
            strength.append(0)
    return texts, np.asarray(strength, np.int32)


def embed_queries(clip_or_encode, decompositions: Sequence, *, batch_size: int = 256) -> Queries:
    """Embed decompositions into :class:`~drc_jax.scoring.Queries` (unit-norm (Q, D) fields).

    ``clip_or_encode`` is a loaded CLIP (anything with ``encode_texts``) or a function
    ``list[str] -> (B, D)`` array, e.g. one backed by an embedding cache.
    """
    encode: Callable = getattr(clip_or_encode, "encode_texts", clip_or_encode)
    texts, strength = query_texts(decompositions)
    if not texts:
        raise ValueError("embed_queries needs at least one decomposition")
    unique = list(dict.fromkeys(t for row in texts for t in row))
    parts = [
        np.asarray(encode(unique[i : i + batch_size])) for i in range(0, len(unique), batch_size)
    ]
    table = np.concatenate(parts).astype(np.float32)
    pos = {t: i for i, t in enumerate(unique)}
    idx = np.asarray([[pos[t] for t in row] for row in texts])
    aff, neg, cf, full = (jnp.asarray(table[idx[:, j]]) for j in range(4))
    return Queries(aff=aff, neg=neg, cf=cf, full=full, strength=jnp.asarray(strength))
