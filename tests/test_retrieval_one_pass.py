"""A handful of queries (the search server's case) is searched in one pass over the index as it
lies, q and neg stacked into one GEMM, and ranks exactly as the streamed top_k."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from drc_jax import top_k, top_k_memory
from drc_jax.metrics import ranks_from_scores
from drc_jax.retrieval import DEFAULT_CHUNK
from drc_jax.scoring import METHODS, Queries, query_vectors, score, score_vectors
from tests.conftest import run_with_devices
from tests.test_scoring_topk import duplicate_case


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _queries(rng, nq: int, dim: int) -> Queries:
    fields = [jnp.asarray(_unit(rng.standard_normal((nq, dim))), jnp.float32) for _ in range(4)]
    strength = jnp.asarray(np.arange(nq) % 4, jnp.int32)  # none, weak, moderate, strong
    return Queries(*fields, strength)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("nq", [1, 3, 5])
@pytest.mark.parametrize("method", METHODS)
def test_one_pass_ranks_as_the_streamed_search(method, nq, dtype):
    rng = np.random.default_rng(nq)
    images = jnp.asarray(_unit(rng.standard_normal((3001, 64))), dtype)
    gt = rng.integers(0, 3001, nq)
    vectors = query_vectors(method, _queries(rng, nq, 64))
    one = top_k(images, vectors, 37, gt_index=gt)  # planned: one pass
    ref = top_k(images, vectors, 37, gt_index=gt, chunk_size=512)  # streamed, 6 chunks
    assert one.scores.shape == one.indices.shape == (nq, 37)
    np.testing.assert_array_equal(np.asarray(one.indices), np.asarray(ref.indices))
    np.testing.assert_allclose(np.asarray(one.scores), np.asarray(ref.scores), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(one.gt_rank), np.asarray(ref.gt_rank))


def test_one_pass_ranks_as_the_streamed_search_with_several_negated_concepts():
    rng = np.random.default_rng(7)
    images = jnp.asarray(_unit(rng.standard_normal((2000, 32))), jnp.float32)
    nq, m = 3, 2
    aff, full = (jnp.asarray(_unit(rng.standard_normal((nq, 32))), jnp.float32) for _ in "ab")
    neg, cf = (jnp.asarray(_unit(rng.standard_normal((nq, m, 32))), jnp.float32) for _ in "ab")
    mask = jnp.asarray([[True, True], [True, False], [True, True]])
    queries = Queries(aff, neg, cf, full, jnp.asarray([3, 2, 1], jnp.int32), mask)
    for method in METHODS:
        vectors = query_vectors(method, queries)
        one = top_k(images, vectors, 20)
        ref = top_k(images, vectors, 20, chunk_size=256)
        np.testing.assert_array_equal(np.asarray(one.indices), np.asarray(ref.indices))
        np.testing.assert_allclose(np.asarray(one.scores), np.asarray(ref.scores), atol=1e-6)


@pytest.mark.parametrize("image_dtype", [None, jnp.bfloat16])
def test_one_pass_gives_a_duplicated_ground_truth_its_full_sort_rank(image_dtype):
    """The ground truth's score is read from the very score matrix it is ranked in, so its exact
    copy ties with it and the tie goes to the ground truth."""
    images, queries, gt = duplicate_case()
    stored = images if image_dtype is None else jnp.asarray(images, image_dtype)
    for method in ("clip", "drc"):
        full = np.asarray(score(method, stored, queries))
        vectors = query_vectors(method, queries)
        got = top_k(images, vectors, 10, gt_index=gt, image_dtype=image_dtype)
        np.testing.assert_array_equal(np.asarray(got.gt_rank), ranks_from_scores(full, gt))


def test_the_planner_searches_few_queries_in_one_pass_and_many_streamed():
    """A person's query over 1M bf16 images is one pass whose scratch holds no copy of the images
    (no bit-cast, no padding); 256 queries stream DEFAULT_CHUNK images at a time. Compiled from
    shapes only."""
    n, dim = 1_000_000, 512
    one = top_k_memory(1, n, dim, 64, image_dtype=jnp.bfloat16, with_gt=False)
    assert one["chunk"] == n
    assert one["temp"] < n * dim * 2 / 8  # the (4, N) f32 scores and top-k, not the images
    many = top_k_memory(256, n, dim, 10, image_dtype=jnp.bfloat16)
    assert many["chunk"] == DEFAULT_CHUNK


def test_few_rows_are_stacked_into_one_bf16_gemm_padded_to_four_rows():
    """XLA:CPU runs a one-row bf16 GEMM as a GEMV ~10x slower than four rows, and DRC's repulsion
    would read the images a second time: q and neg go through one padded GEMM instead."""
    images = jnp.ones((64, 16), jnp.bfloat16)
    q = jnp.ones((1, 16), jnp.float32)
    vectors = query_vectors("drc", Queries(q, q, q, q, jnp.ones(1, jnp.int32)))
    stacked = functools.partial(score_vectors, stacked=True)
    text = jax.jit(stacked).lower(images, vectors).as_text()
    dots = [ln for ln in text.splitlines() if "dot_general" in ln]
    assert len(dots) == 1, dots
    assert "(tensor<4x16xbf16>, tensor<64x16xbf16>) -> tensor<4x64xf32>" in dots[0], dots[0]
    np.testing.assert_allclose(
        np.asarray(stacked(images, vectors)), np.asarray(score_vectors(images, vectors)), atol=1e-6
    )


def test_sharded_one_pass_matches_single_device():
    out = run_with_devices(
        """
        import numpy as np, jax, jax.numpy as jnp
        from drc_jax.parallel import make_mesh
        from drc_jax.retrieval import top_k
        from drc_jax.scoring import query_vectors
        from tests.test_scoring_topk import random_case, duplicate_case
        mesh = make_mesh()
        images, queries, gt = random_case(nq=3, n=1003)  # not a multiple of 8
        for method, dtype in [("drc", None), ("clip", None), ("drc", jnp.bfloat16)]:
            vectors = query_vectors(method, queries)
            kw = dict(gt_index=gt, image_dtype=dtype)
            ref = top_k(images, vectors, 10, chunk_size=64, **kw)  # streamed, one device
            many = top_k(images, vectors, 10, mesh=mesh, **kw)  # one pass per shard
            np.testing.assert_array_equal(np.asarray(ref.indices), np.asarray(many.indices))
            np.testing.assert_array_equal(np.asarray(ref.gt_rank), np.asarray(many.gt_rank))
            np.testing.assert_allclose(np.asarray(ref.scores), np.asarray(many.scores), atol=1e-6)
        # Shards smaller than k (7 images, one per device) still give the k = 7 best.
        vectors = query_vectors("drc", queries)
        small = top_k(images[:7], vectors, 50, mesh=mesh)
        ref = top_k(images[:7], vectors, 50)
        np.testing.assert_array_equal(np.asarray(small.indices), np.asarray(ref.indices))
        d_images, d_queries, d_gt = duplicate_case(nq=8)
        vectors = query_vectors("drc", d_queries)
        one = top_k(d_images, vectors, 10, gt_index=d_gt).gt_rank
        many = top_k(d_images, vectors, 10, gt_index=d_gt, mesh=mesh).gt_rank
        np.testing.assert_array_equal(np.asarray(one), np.asarray(many))
        print("ok")
        """
    )
    assert out.strip().endswith("ok")


MASK_CASE = """
import numpy as np, jax, jax.numpy as jnp
from drc_jax.retrieval import top_k
from drc_jax.scoring import Queries, query_vectors
from drc_jax.parallel import make_mesh
rng = np.random.default_rng(3)
unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
images = unit(rng.standard_normal((61, 16))).astype(np.float32)
q = Queries(*[jnp.asarray(unit(rng.standard_normal((3, 16))), jnp.float32) for _ in range(4)],
            jnp.asarray([0, 2, 3], jnp.int32))
vectors = query_vectors("drc", q)
valid = rng.random(61) < 0.25
s = np.asarray(images @ np.asarray(vectors.q).T).T - np.asarray(vectors.w_rep)[:, None] * (
    np.maximum(images @ np.asarray(vectors.neg).T, 0).T)
s[:, ~valid] = -np.inf
want = np.argsort(-s, axis=1, kind="stable")[:, :20]
mesh = make_mesh(jax.local_devices()) if jax.local_device_count() > 1 else None
for chunk in (None, 4):
    r = top_k(images, vectors, 20, valid=valid, chunk_size=chunk, mesh=mesh)
    got, scores = np.asarray(r.indices), np.asarray(r.scores)
    n = int(valid.sum())
    assert (got[:, :n] == want[:, :n]).all(), (chunk, got, want)
    assert np.isinf(scores[:, n:]).all() and np.isfinite(scores[:, :n]).all()
print("ok")
"""


def test_a_validity_mask_ranks_only_the_valid_images_in_every_plan():
    exec(compile(MASK_CASE, "mask_case", "exec"), {})  # one device: one pass and streamed
    assert run_with_devices(MASK_CASE).strip().endswith("ok")  # sharded over 8 devices
