"""The SpaceVLM baseline row is SpaceVLM's method: one fixed t, its operator, no repulsion.

SpaceVLM's retrieval script (sepehrkr/SpaceVLM, Retrieval/space_idea_retrieval_LLM_simplified.py)
computes ``compose(aff, neg, --threshold)`` with ``--threshold 0.92`` for every caption; DRC's
Table 3 "+d1" row uses DRC's strength-dependent t instead, so the two rows must differ.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from drc_jax.scoring import (
    SPACEVLM_T,
    DRCParams,
    Queries,
    compose,
    drc_score,
    query_vectors,
    score,
    spacevlm_score,
)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(11)
    nq, n, dim = 16, 64, 24
    aff = unit(rng.standard_normal((nq, dim)))
    near = lambda s: unit(aff + s * rng.standard_normal((nq, dim)))  # noqa: E731
    neg, cf, full = near(0.12), near(0.12), near(0.08)  # close enough for the operator to act
    assert np.all(np.sum(aff * neg, axis=1) > np.cos(2 * np.arccos(0.94)))
    images = unit(rng.standard_normal((n, dim)))
    strength = np.arange(nq) % 4
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return f32(images), f32(aff), f32(neg), f32(cf), f32(full), jnp.asarray(strength, jnp.int32)


def test_spacevlm_uses_one_threshold_whatever_the_strength(case):
    images, aff, neg, _, full, strength = case
    got = np.asarray(spacevlm_score(images, aff, neg, full, strength))
    want = np.asarray(images @ compose(aff, neg, 0.92).T).T
    negated = np.asarray(strength) > 0
    np.testing.assert_allclose(got[negated], want[negated], atol=1e-6)
    assert SPACEVLM_T == 0.92 and DRCParams().spacevlm_t == 0.92


def test_spacevlm_differs_from_the_d1_row_exactly_where_strengths_differ(case):
    """Weak (t 0.94) and strong (t 0.90) captions score differently from "+d1"; moderate captions,
    whose DRC t is SpaceVLM's 0.92, score the same."""
    images, aff, neg, cf, full, strength = case
    d1_row = DRCParams(use_d2=False, use_dctx=False, use_repulsion=False)
    d1 = np.asarray(drc_score(images, aff, neg, cf, full, strength, d1_row))
    svlm = np.asarray(spacevlm_score(images, aff, neg, full, strength))
    st = np.asarray(strength)
    gap = np.abs(d1 - svlm).max(axis=1)
    assert np.all(gap[(st == 1) | (st == 3)] > 1e-3), gap
    np.testing.assert_allclose(d1[st == 2], svlm[st == 2], atol=1e-6)
    np.testing.assert_allclose(d1[st == 0], svlm[st == 0], atol=1e-6)  # both eq. 2 on full


def test_spacevlm_scores_captions_without_negation_on_the_full_caption(case):
    images, aff, neg, _, full, _ = case
    none = jnp.zeros(aff.shape[0], jnp.int32)
    got = np.asarray(spacevlm_score(images, aff, neg, full, none))
    np.testing.assert_allclose(got, np.asarray(full @ images.T), atol=1e-6)
    assert not np.allclose(got, np.asarray(aff @ images.T), atol=1e-3)  # not on aff


def test_spacevlm_threshold_is_a_parameter_and_has_no_repulsion(case):
    images, aff, neg, cf, full, strength = case
    queries = Queries(aff, neg, cf, full, strength)
    vectors = query_vectors("spacevlm", queries, DRCParams(spacevlm_t=0.9))
    assert vectors.neg is None and vectors.w_rep is None  # one GEMM, no repulsion
    want = spacevlm_score(images, aff, neg, full, strength, 0.9)
    np.testing.assert_allclose(
        np.asarray(score("spacevlm", images, queries, DRCParams(spacevlm_t=0.9))),
        np.asarray(want),
        atol=1e-6,
    )
    default = np.asarray(spacevlm_score(images, aff, neg, full, strength))
    assert not np.allclose(np.asarray(want), default, atol=1e-3)
    # The paper's printed eq. 8 stays selectable for SpaceVLM too.
    eq8 = spacevlm_score(images, aff, neg, full, strength, operator="paper_eq8")
    assert not np.allclose(np.asarray(eq8), default, atol=1e-3)
