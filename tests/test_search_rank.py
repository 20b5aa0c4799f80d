"""The server's one-pass top-k (drc_jax.search.rank) ranks exactly as the streamed top_k."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from drc_jax import top_k
from drc_jax.scoring import METHODS, Queries, query_vectors
from drc_jax.search.rank import MAX_QUERIES, rank_top_k


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _queries(rng, nq: int, dim: int) -> Queries:
    fields = [jnp.asarray(_unit(rng.standard_normal((nq, dim))), jnp.float32) for _ in range(4)]
    strength = jnp.asarray(np.arange(nq) % 4, jnp.int32)  # none, weak, moderate, strong
    return Queries(*fields, strength)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("nq", [1, 3, 5])
@pytest.mark.parametrize("method", METHODS)
def test_one_pass_top_k_matches_the_streamed_top_k(method, nq, dtype):
    rng = np.random.default_rng(nq)
    images = jnp.asarray(_unit(rng.standard_normal((3001, 64))), dtype)
    queries = _queries(rng, nq, 64)
    scores, indices = rank_top_k(images, queries, 37, method=method)
    ref = top_k(images, query_vectors(method, queries), 37, chunk_size=512)
    assert scores.shape == indices.shape == (nq, 37)
    np.testing.assert_array_equal(indices, np.asarray(ref.indices))
    np.testing.assert_allclose(scores, np.asarray(ref.scores), rtol=0, atol=1e-6)


def test_one_pass_top_k_matches_with_several_negated_concepts_per_query():
    rng = np.random.default_rng(7)
    images = jnp.asarray(_unit(rng.standard_normal((2000, 32))), jnp.float32)
    nq, m = 3, 2
    aff, full = (jnp.asarray(_unit(rng.standard_normal((nq, 32))), jnp.float32) for _ in "ab")
    neg, cf = (jnp.asarray(_unit(rng.standard_normal((nq, m, 32))), jnp.float32) for _ in "ab")
    mask = jnp.asarray([[True, True], [True, False], [True, True]])
    queries = Queries(aff, neg, cf, full, jnp.asarray([3, 2, 1], jnp.int32), mask)
    for method in METHODS:
        scores, indices = rank_top_k(images, queries, 20, method=method)
        ref = top_k(images, query_vectors(method, queries), 20, chunk_size=256)
        np.testing.assert_array_equal(indices, np.asarray(ref.indices))
        np.testing.assert_allclose(scores, np.asarray(ref.scores), rtol=0, atol=1e-6)


def test_one_pass_top_k_refuses_what_it_is_not_for():
    rng = np.random.default_rng(0)
    images = jnp.asarray(_unit(rng.standard_normal((10, 8))), jnp.float32)
    with pytest.raises(ValueError, match=f"1..{MAX_QUERIES} queries"):
        rank_top_k(images, _queries(rng, MAX_QUERIES + 1, 8), 3, method="drc")
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\]"):
        rank_top_k(images, _queries(rng, 1, 8), 11, method="drc")
