"""DRC with several negated concepts ("a street with no cars and no people", "cat -sofa -blanket"):
neg (Q, 1, D) is exactly neg (Q, D); more turn away from each and repel the worst violation."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from drc_jax.retrieval import top_k
from drc_jax.scoring import (
    DRCParams,
    Queries,
    compose,
    drc_score,
    query_vectors,
    score,
)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(5)
    nq, m, n, dim = 12, 3, 80, 16
    aff = unit(rng.standard_normal((nq, dim)))
    negs = unit(aff[:, None] + 0.1 * rng.standard_normal((nq, m, dim)))
    cfs = unit(aff[:, None] + 0.1 * rng.standard_normal((nq, m, dim)))
    full = unit(aff + 0.1 * rng.standard_normal((nq, dim)))
    # Close enough for the operator to act on every concept (theta < 2 acos(0.94)).
    assert np.all(np.einsum("qd,qmd->qm", aff, negs) > np.cos(2 * np.arccos(0.94)))
    images = unit(rng.standard_normal((n, dim)))
    images[: 2 * m] = unit(negs[0].repeat(2, axis=0) + 0.1 * rng.standard_normal((2 * m, dim)))
    strength = np.arange(nq) % 4
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return f32(images), f32(aff), f32(negs), f32(cfs), f32(full), jnp.asarray(strength, jnp.int32)


def test_neg_of_shape_q_1_d_gives_exactly_the_scores_of_shape_q_d(case):
    images, aff, negs, cfs, full, strength = case
    for params in (DRCParams(), DRCParams(use_d2=False, rho=2.0)):
        single = np.asarray(drc_score(images, aff, negs[:, 0], cfs[:, 0], full, strength, params))
        multi = drc_score(images, aff, negs[:, :1], cfs[:, :1], full, strength, params)
        np.testing.assert_array_equal(np.asarray(multi), single)
        # Absent concepts (masked out) change nothing either.
        mask = jnp.asarray(np.eye(3, dtype=bool)[np.zeros(len(aff), int)])  # only concept 0
        masked = drc_score(images, aff, negs, cfs, full, strength, params, mask)
        np.testing.assert_allclose(np.asarray(masked), single, atol=1e-6)


def test_several_concepts_turn_away_from_each_in_turn_and_repel_the_worst(case):
    images, aff, negs, cfs, full, strength = case
    p = DRCParams()
    got = np.asarray(drc_score(images, aff, negs, cfs, full, strength, p))
    t = jnp.asarray(p.t)[strength]

    def in_turn(a, bs):
        for j in range(bs.shape[1]):
            a = compose(a, bs[:, j], t)
        return a

    q = 0.35 * in_turn(aff, negs) + 0.35 * in_turn(aff, cfs) + 0.30 * in_turn(full, negs)
    rep = np.maximum(np.einsum("qmd,nd->qmn", np.asarray(negs), np.asarray(images)).max(1), 0)
    w_rep = (np.asarray(p.w_base) * p.rho)[np.asarray(strength)][:, None]
    want = np.asarray(q @ images.T) - w_rep * rep
    negated = np.asarray(strength) > 0
    want[~negated] = np.asarray(full @ images.T)[~negated]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_an_image_showing_any_excluded_concept_is_penalised(case):
    """Query 0 excludes three concepts; images 0..5 each look like one of them. Each loses
    against the single-concept score that ignores the concept it shows."""
    images, aff, negs, cfs, full, strength = case
    s = jnp.full((1,), 3, jnp.int32)
    all3 = np.asarray(drc_score(images, aff[:1], negs[:1], cfs[:1], full[:1], s))[0]
    for j in range(3):
        keep = [i for i in range(3) if i != j]
        without_j = np.asarray(
            drc_score(images, aff[:1], negs[:1, keep], cfs[:1, keep], full[:1], s)
        )[0]
        shows_j = [2 * j, 2 * j + 1]
        assert np.all(all3[shows_j] < without_j[shows_j] - 1e-3)


def test_top_k_searches_multi_concept_queries_like_the_full_scores(case):
    images, aff, negs, cfs, full, strength = case
    mask = jnp.asarray(np.arange(3)[None] <= (np.arange(len(aff)) % 3)[:, None])
    queries = Queries(aff, negs, cfs, full, strength, neg_mask=mask)
    full_scores = np.asarray(score("drc", images, queries))
    want = drc_score(images, aff, negs, cfs, full, strength, DRCParams(), mask)
    np.testing.assert_allclose(full_scores, np.asarray(want), atol=1e-6)
    got = top_k(images, query_vectors("drc", queries), 5, gt_index=np.zeros(len(aff), int))
    order = np.argsort(-full_scores, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(np.asarray(got.indices), order)
    gt_rank = 1 + np.sum(full_scores > full_scores[:, :1], axis=1)
    np.testing.assert_array_equal(np.asarray(got.gt_rank), gt_rank)


def test_a_caption_with_no_concept_left_scores_like_a_caption_without_negation(case):
    """A negated caption whose concepts are all masked out (or that has none, M = 0) has nothing
    to exclude: DRC and SpaceVLM give it eq. 2 on ``full``, never a blend of aff and full."""
    images, aff, negs, cfs, full, strength = case
    plain = np.asarray(full @ images.T)
    strong = jnp.full(strength.shape, 3, jnp.int32)
    none_present = jnp.zeros(negs.shape[:2], bool)
    got = drc_score(images, aff, negs, cfs, full, strong, DRCParams(), none_present)
    np.testing.assert_allclose(np.asarray(got), plain, atol=1e-6)
    got = drc_score(images, aff, negs[:, :0], cfs[:, :0], full, strong)
    np.testing.assert_allclose(np.asarray(got), plain, atol=1e-6)
    for method in ("drc", "spacevlm"):
        queries = Queries(aff, negs, cfs, full, strong, neg_mask=none_present)
        np.testing.assert_allclose(np.asarray(score(method, images, queries)), plain, atol=1e-6)
        empty = Queries(aff, negs[:, :0], cfs[:, :0], full, strong)
        got = top_k(images, query_vectors(method, empty), 5, gt_index=np.zeros(len(aff), int))
        order = np.argsort(-plain, axis=1, kind="stable")[:, :5]
        np.testing.assert_array_equal(np.asarray(got.indices), order)
    # One row masked out among negated ones: only that row changes to eq. 2.
    mask = jnp.ones(negs.shape[:2], bool).at[4].set(False)
    got = np.asarray(drc_score(images, aff, negs, cfs, full, strong, DRCParams(), mask))
    np.testing.assert_allclose(got[4], plain[4], atol=1e-6)
    assert np.all(np.abs(np.delete(got, 4, 0) - np.delete(plain, 4, 0)).max(axis=1) > 1e-3)
