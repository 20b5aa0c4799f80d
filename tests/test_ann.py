"""The ANN path: DRC as a minimum of inner products, and its answers against the exact scan."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmarks.sphere import centres, clustered, drc_queries, near, unit
from drc_jax import ann
from drc_jax.retrieval import top_k
from drc_jax.scoring import QueryVectors, query_vectors, score_vectors

finite = st.floats(-1, 1, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    x=arrays(np.float32, (5, 8), elements=finite),
    q=arrays(np.float32, (8,), elements=finite),
    n=arrays(np.float32, (3, 8), elements=finite),
    w=arrays(np.float32, (3,), elements=st.floats(0, 3, width=32)),
)
def test_drc_score_is_the_minimum_of_its_probe_inner_products(x, q, n, w):
    # one concept: x.q - w max(x.n, 0) = min(x.q, x.(q - w n))
    lhs = x @ q - w[0] * np.maximum(x @ n[0], 0)
    np.testing.assert_allclose(lhs, np.minimum(x @ q, x @ (q - w[0] * n[0])), atol=1e-4)
    # several concepts, one w per query as scoring has it: min(x.q, min_m x.(q - w n_m))
    got = score_vectors(jnp.asarray(x), QueryVectors(q[None], n[None], w[:1]))[0]
    probes = ann.probes(QueryVectors(q[None], n[None], w[:1]))[0]
    nonzero = np.any(n != 0, axis=1).sum() if w[0] > 0 else 0
    assert probes.shape == (1 + nonzero, 8)
    np.testing.assert_allclose(got, (x @ probes.T).min(axis=1), atol=1e-4)


def _exact(images, vectors, k):
    res = top_k(images, vectors, k)
    return np.asarray(res.scores), np.asarray(res.indices)


def _recall(ann_rows, exact_rows) -> float:
    return float(
        np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(ann_rows, exact_rows, strict=True)])
    )


@pytest.fixture(scope="module")
def collection():
    c = centres(64, 64)
    x, _ = clustered(20_000, c, spread=0.7)
    index = ann.build(x, np.arange(len(x)))
    return c, x, index


@pytest.mark.parametrize("case", ["nearby_cluster", "overlapping_cluster", "three_concepts"])
def test_ann_top10_matches_the_exact_scan_on_clustered_data(collection, case):
    c, x, index = collection
    angle, concepts = {"nearby_cluster": (0.6, 1), "overlapping_cluster": (0.05, 1)}.get(
        case, (0.5, 3)
    )
    queries = drc_queries(c, 40, neg_angle=angle, concepts=concepts)
    vectors = query_vectors("drc", queries)
    _, want = _exact(x, vectors, 10)
    got = ann.search(index, x, vectors, 10)
    assert _recall(got.rows, want) >= 0.99
    assert (got.candidates > 10).all() and not got.exact.any()
    # its scores are the exact scan's for the rows it returns
    full = np.asarray(score_vectors(jnp.asarray(x), vectors))
    np.testing.assert_allclose(got.scores, np.take_along_axis(full, got.rows, 1), atol=1e-5)


def test_ann_finds_the_top_k_when_every_image_is_against_the_negated_concept():
    # x.n < 0 for every x: DRC is x.q, which q's own probe recovers (p = q - w n ranks otherwise)
    rng = np.random.default_rng(3)
    c = centres(32, 64, seed=5)
    axis = unit(rng.standard_normal(64).astype(np.float32))
    c = unit(c - np.minimum(c @ axis, 0)[:, None] * axis + 0.8 * axis)  # clusters around +axis
    x, _ = clustered(8_000, c, spread=0.3)
    x = x[x @ axis > 0.05]
    queries = drc_queries(c, 20)
    qv = query_vectors("drc", queries)
    neg = -np.stack([near(axis, 0.02, rng) for _ in range(20)])
    vectors = QueryVectors(qv.q, jnp.asarray(neg), qv.w_rep)
    assert (x @ neg.T < 0).all()
    _, want = _exact(x, vectors, 10)
    got = ann.search(ann.build(x, np.arange(len(x))), x, vectors, 10)
    assert _recall(got.rows, want) >= 0.99
    # no candidate of q - w n is repelled, so q's own probe ran too
    assert (got.candidates > ann.DEFAULT_CANDIDATES).all()


def test_the_concept_probe_alone_answers_when_k_of_its_candidates_are_repelled(collection):
    c, x, index = collection
    vectors = query_vectors("drc", drc_queries(c, 40, neg_angle=0.6))
    _, want = _exact(x, vectors, 10)
    got = ann.search(index, x, vectors, 10)
    assert (got.candidates == ann.DEFAULT_CANDIDATES).all()  # one probe's candidates
    assert _recall(got.rows, want) >= 0.99


@pytest.mark.parametrize("method", ["drc", "clip", "spacevlm"])
def test_an_exhaustive_ann_search_is_the_exact_scan_query_for_query(collection, method):
    c, x, index = collection
    queries = drc_queries(c, 12, concepts=2)
    vectors = query_vectors(method, queries)
    want_s, want = _exact(x, vectors, 10)
    nlist = ann.faiss_nlist(index)
    got = ann.search(index, x, vectors, 10, candidates=len(x), nprobe=nlist, exhaustive_exact=True)
    np.testing.assert_array_equal(got.rows, want)
    np.testing.assert_allclose(got.scores, want_s, atol=1e-5)
    assert got.exact.all() and (got.candidates == len(x)).all()


def test_an_exhaustive_search_of_fewer_rows_than_k_is_exact(collection):
    c, x, _ = collection
    few = x[:6]
    index = ann.build(few, np.arange(len(few)))
    vectors = query_vectors("drc", drc_queries(c, 3))
    got = ann.search(index, few, vectors, 10, nprobe=ann.faiss_nlist(index), exhaustive_exact=True)
    want_s, want = _exact(few, vectors, 6)
    np.testing.assert_array_equal(got.rows[:, :6], want)
    assert (got.rows[:, 6:] == -1).all() and got.exact.all() and (got.candidates == 6).all()


def test_rows_a_damaged_index_returns_outside_the_store_or_dead_are_dropped(collection):
    c, x, index = collection
    vectors = query_vectors("clip", drc_queries(c, 3))
    live = np.ones(len(x), bool)
    live[::2] = False
    got = ann.search(index, x[:10_000], vectors, 10, live=live[:10_000])
    assert ((got.rows < 10_000) & (got.rows % 2 == 1)).all()


def test_nlist_grows_with_the_collection_and_codes_compress_past_the_flat_limit():
    assert ann.nlist_for(1_000_000) == 4096 and ann.nlist_for(100_000) == 1024
    assert ann.nlist_for(100) == 2 and ann.nlist_for(10) == 1
    assert ann.factory_for(1_000_000) == "IVF4096,Flat"
    assert ann.factory_for(10_000_000) == "IVF16384,SQ8"
