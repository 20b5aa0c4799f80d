"""Several negated concepts reach the scoring: "a street with no cars and no people" is scored
away from both (drc_score on (Q, M, D) concepts) by search and by the launcher's DRC rows; one
concept is scored exactly as before, and the baselines keep scoring one concept as their papers
do."""

from __future__ import annotations

import hashlib

import numpy as np

from drc_jax import DRCParams, drc_score, query_vectors, score
from drc_jax.decompose import Decomposition
from drc_jax.queries import embed_queries
from drc_jax.texts import scored_texts, text_set, texts_of

D = 32


def fake_encode(texts):
    """A deterministic unit vector per text (a stand-in for CLIP's text tower)."""
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(D)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, np.float32)


def dec(caption, aff, negs, strength="strong"):
    negs = tuple(negs)
    return Decomposition(
        caption,
        bool(negs),
        aff,
        negs[0] if negs else "",
        f"{aff} with {negs[0]}" if negs else aff,
        strength if negs else "none",
        negs=negs,
    )


TWO = dec("a street with no cars and no people", "a street", ("a car", "a person"))
ONE = dec("a dog not on a beach", "a dog", ("a beach",), "moderate")
PLAIN = dec("a red kite", "a red kite", ())


def images(n=64, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_caption_with_two_negated_concepts_is_scored_away_from_both():
    queries = embed_queries(fake_encode, [TWO, ONE, PLAIN])
    assert queries.neg.shape == (3, 2, D) and queries.cf.shape == (3, 2, D)
    np.testing.assert_array_equal(
        np.asarray(queries.neg_mask), [[True, True], [True, False], [True, False]]
    )
    want_neg = fake_encode(["A photo of a car", "A photo of a person"])
    np.testing.assert_allclose(np.asarray(queries.neg[0]), want_neg)
    imgs = images()
    got = np.asarray(score("drc", imgs, queries))
    want = drc_score(
        imgs,
        queries.aff,
        queries.neg,
        queries.cf,
        queries.full,
        queries.strength,
        DRCParams(),
        queries.neg_mask,
    )
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-6)
    # the second concept matters: scoring only the first gives other scores for that query
    first_only = np.asarray(
        score("drc", imgs, embed_queries(fake_encode, [TWO], all_concepts=False))
    )
    assert not np.allclose(got[0], first_only[0], atol=1e-4)


def test_one_concept_per_caption_is_scored_exactly_as_drc_score():
    queries = embed_queries(fake_encode, [ONE, PLAIN])
    assert queries.neg.shape == (2, D) and queries.neg_mask is None
    imgs = images()
    want = drc_score(
        imgs, queries.aff, queries.neg, queries.cf, queries.full, queries.strength, DRCParams()
    )
    np.testing.assert_array_equal(np.asarray(score("drc", imgs, queries)), np.asarray(want))
    vectors = query_vectors("drc", queries)
    assert vectors.neg.shape == (2, D)


def test_the_launcher_scores_every_concept_in_drc_rows_and_one_in_the_baselines():
    class Row:
        def __init__(self, method):
            from drc_jax.texts import DRC_PROMPTS, RAW_PROMPTS

            self.method, self.split, self.concepts = method, None, "all"
            self.prompts = DRC_PROMPTS if method == "drc" else RAW_PROMPTS

    drc_set, spacevlm_set = text_set(Row("drc")), text_set(Row("spacevlm"))
    assert drc_set.all_concepts and not spacevlm_set.all_concepts
    rows, strength = texts_of(drc_set, [TWO, ONE], None, None)
    assert rows[0][4:] == ["A photo of a person", "A photo of a street with a person"]
    assert len(rows[1]) == 4
    record = scored_texts("drc", rows[0], int(strength[0]))
    assert record["negs"] == ["A photo of a car", "A photo of a person"]
    rows, _ = texts_of(spacevlm_set, [TWO], None, None)
    assert rows == [["a street", "a car", "a street", "a street"]]  # aff, neg; unread fields: aff
    one = text_set("drc", concepts="one")
    assert not one.all_concepts and len(texts_of(one, [TWO])[0][0]) == 4
