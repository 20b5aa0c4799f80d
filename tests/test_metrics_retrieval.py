"""NegBench text-to-image metrics on hand-built cases."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from drc_jax.metrics import negated_in_top_k, ranks_from_scores, retrieval_metrics


def test_ranks_are_one_indexed_positions_of_the_ground_truth():
    scores = np.array(
        [
            [0.9, 0.1, 0.5, 0.3],  # gt 0 is best -> rank 1
            [0.9, 0.1, 0.5, 0.3],  # gt 3: 0.9 and 0.5 are higher -> rank 3
            [
                0.2,
                0.2,
                0.2,
                0.9,
            ],  # gt 1 ties with two others, 0.9 higher -> rank 2 (ties favour gt)
        ]
    )
    np.testing.assert_array_equal(ranks_from_scores(scores, [0, 3, 1]), [1, 3, 2])


def test_recall_and_median_rank_from_known_ranks():
    ranks = np.array([1, 2, 5, 6, 10, 11, 100, 1])
    m = retrieval_metrics(ranks)
    assert m["R@1"] == pytest.approx(100 * 2 / 8)
    assert m["R@5"] == pytest.approx(100 * 4 / 8)
    assert m["R@10"] == pytest.approx(100 * 6 / 8)
    assert m["medR"] == pytest.approx(5.5)  # even count: mean of the middle ranks 5 and 6
    assert m["meanR"] == pytest.approx(ranks.mean())
    assert retrieval_metrics([3, 1, 2])["medR"] == 2.0


def test_metrics_from_scores_match_a_literal_argsort_reading():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((50, 200))
    gt = rng.integers(0, 200, 50)
    order = np.argsort(-scores, axis=1)
    literal = 1 + np.array([int(np.flatnonzero(order[q] == gt[q])[0]) for q in range(50)])
    np.testing.assert_array_equal(ranks_from_scores(scores, gt), literal)
    m = retrieval_metrics(literal)
    assert m["R@10"] == pytest.approx(100 * np.mean(literal <= 10))


def test_bad_ranks_and_scores_are_rejected():
    with pytest.raises(ValueError, match="1-indexed"):
        retrieval_metrics([0, 1])
    with pytest.raises(ValueError, match="non-empty"):
        retrieval_metrics([])
    with pytest.raises(ValueError, match="out of range"):
        ranks_from_scores(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="non-finite"):
        ranks_from_scores(np.array([[np.nan, 0.0]]), [0])
    with pytest.raises(ValueError, match=r"\(Q, N\)"):
        ranks_from_scores(np.zeros(3), [0])


def test_negated_share_counts_top_k_images_showing_the_negated_concept():
    top = np.array([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]])
    shows_negated = {(0, 1), (0, 3), (1, 5), (1, 0)}  # (query, image)
    share = negated_in_top_k(top, lambda q, i: (q, i) in shows_negated, k=5)
    assert share == pytest.approx(100 * 3 / 10)  # (1, 0) is at position 6, outside the top 5


def test_ranks_are_read_at_the_scores_own_precision():
    """float64 scores are compared as given: rounding them to float32 first would turn a higher
    score into a tie that the ground truth then wins."""
    scores = np.array([[1.0, 1.0 + 1e-12, 0.5]])
    np.testing.assert_array_equal(ranks_from_scores(scores, [0]), [2])
    bf16 = np.asarray(jnp.asarray([[0.5, 0.25, 0.75]], jnp.bfloat16))  # ml_dtypes, not np.floating
    np.testing.assert_array_equal(ranks_from_scores(bf16, [0]), [2])


def test_medr_is_np_median_by_default_and_neats_lower_middle_rank_on_request():
    import torch

    ranks = np.asarray([1, 2, 7, 40])
    assert retrieval_metrics(ranks)["medR"] == 4.5
    assert retrieval_metrics(ranks, medr="lower")["medR"] == 2.0
    for seed in range(5):
        r = np.random.default_rng(seed).integers(1, 100, size=20 + seed)
        want = float(torch.median(torch.as_tensor(r)).item())  # NEAT's median_rank
        assert retrieval_metrics(r, medr="lower")["medR"] == want
    with pytest.raises(ValueError, match="medr must be one of"):
        retrieval_metrics(ranks, medr="mean")
