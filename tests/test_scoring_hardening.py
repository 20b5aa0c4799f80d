"""Silent wrong answers in the scoring API are errors (issue 12 item 6): non-finite images, a NaN
ground truth, out-of-range strengths, zero weights, no queries, and f16 images in top_k."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from drc_jax.metrics import ranks_from_scores, retrieval_metrics
from drc_jax.retrieval import top_k
from drc_jax.scoring import DRCParams, Queries, drc_score, query_vectors, score
from tests.conftest import run_with_devices
from tests.test_scoring_topk import random_case


def test_a_nan_image_row_is_refused_instead_of_ranking_first():
    images, queries, _ = random_case(n=50)
    images[17, 3] = np.nan
    with pytest.raises(ValueError, match="image row 17 is not finite"):
        top_k(images, query_vectors("drc", queries), 5)


def test_a_nan_ground_truth_gets_no_rank_one():
    images, queries, gt = random_case(n=50)
    images[gt[0]] = np.inf
    with pytest.raises(ValueError, match=f"image row {gt[0]} is not finite"):
        top_k(images, query_vectors("clip", queries), 5, gt_index=gt)
    scores = np.asarray(score("clip", images, queries))
    with pytest.raises(ValueError, match="non-finite ground-truth score"):
        ranks_from_scores(scores, gt)
    with pytest.raises(ValueError, match="query 1 is nan"):
        retrieval_metrics(np.asarray([1.0, np.nan, 3.0]))


@pytest.mark.parametrize("bad", [4, -1, 9])
def test_strengths_outside_0_to_3_are_not_clamped(bad):
    images, queries, _ = random_case(n=20, nq=4)
    st = queries.strength.at[2].set(bad)
    args = (jnp.asarray(images), queries.aff, queries.neg, queries.cf, queries.full)
    got = np.asarray(drc_score(*args, st))  # jitted: a NaN row, never another strength's score
    assert np.all(np.isnan(got[2]))
    assert np.all(np.isfinite(np.delete(got, 2, axis=0)))
    # The non-jitted edges raise, naming the query.
    bad_q = Queries(queries.aff, queries.neg, queries.cf, queries.full, st)
    for method in ("drc", "spacevlm", "clip"):
        with pytest.raises(ValueError, match="query 2 has"):
            query_vectors(method, bad_q)
    # Vectors computed under jit from a bad strength are refused by top_k.
    from drc_jax.scoring import drc_vectors

    vectors = drc_vectors(queries.aff, queries.neg, queries.cf, queries.full, st)
    with pytest.raises(ValueError, match="query 2 has a non-finite q"):
        top_k(images, vectors, 3)


def test_weights_summing_to_zero_are_an_error():
    with pytest.raises(ValueError, match="sum to zero"):
        DRCParams(w1=0.0, w2=0.0, wctx=0.0)
    with pytest.raises(ValueError, match="sum to zero"):
        DRCParams(w1=0.0, use_d2=False, use_dctx=False)
    DRCParams(w1=0.0, use_d1=True)  # w2, wctx still carry the angular part


def test_top_k_with_no_queries_returns_empty_results():
    images, queries, _ = random_case(n=30)
    none = queries.take(slice(0, 0))
    res = top_k(images, query_vectors("drc", none), 5, gt_index=np.zeros(0, np.int32))
    assert res.scores.shape == (0, 5) and res.indices.shape == (0, 5)
    assert res.gt_rank.shape == (0,)
    assert top_k(images, query_vectors("clip", none), 5).gt_rank is None


def test_f16_images_search_like_f16_full_scores():
    images, queries, gt = random_case(seed=4)
    images16 = jnp.asarray(images, jnp.float16)
    full = np.asarray(score("drc", images16, queries))
    got = top_k(images16, query_vectors("drc", queries), 5, gt_index=gt, chunk_size=256)
    np.testing.assert_array_equal(np.asarray(got.gt_rank), ranks_from_scores(full, gt))
    order = np.argsort(-full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(np.asarray(got.indices), order)
    np.testing.assert_allclose(
        np.asarray(got.scores), np.take_along_axis(full, order, 1), atol=1e-6
    )


def test_non_finite_images_are_named_by_global_row_on_any_shard_and_dtype():
    """The check runs inside the streamed search: a bad row on any device's shard, in the padded
    last chunk's range or with an inf where the query is 0, is named by its global row."""
    out = run_with_devices(
        """
        import numpy as np, jax.numpy as jnp
        from drc_jax.parallel import make_mesh
        from drc_jax.retrieval import top_k
        from drc_jax.scoring import query_vectors
        from tests.test_scoring_topk import random_case
        images, queries, gt = random_case(n=1003)  # 8 shards of 128 rows; rows 1003.. padding
        images[[980, 1002], 5] = np.nan  # 980: in the remainder chunk's overlap, counted once
        images[701, 2] = np.inf
        for method in ("drc", "clip"):
            vectors = query_vectors(method, queries)
            vectors = vectors._replace(q=vectors.q.at[0, 2].set(0.0))  # inf * 0 is NaN too
            for mesh in (None, make_mesh()):
                for dtype in (None, jnp.bfloat16, jnp.float16):
                    try:
                        top_k(images, vectors, 5, gt_index=gt, chunk_size=32, mesh=mesh,
                              image_dtype=dtype, query_block=8)
                    except ValueError as e:
                        assert "image row 701 is not finite (3 such rows)" in str(e), e
                    else:
                        raise AssertionError("non-finite images were searched")
        print("ok")
        """
    )
    assert out.strip().endswith("ok")
