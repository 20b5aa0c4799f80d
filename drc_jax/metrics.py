"""Retrieval metrics from 1-indexed ground-truth ranks: R@K (percent, as NegBench), medR, meanR."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_KS = (1, 5, 10)
MEDR = {
    "median": "np.median of the ground-truth ranks (the mean of the two middle ranks for an even "
    "query count)",
    "lower": "the lower of the two middle ranks for an even query count (torch.median, as NEAT's "
    "median_rank)",
}


def ranks_from_scores(scores, gt_index) -> np.ndarray:
    """1 + #{images scoring strictly higher} than each query's ground truth, as ``top_k`` ranks.

    A non-finite ground-truth score is a ``ValueError``; other NaN scores never count above it.
    """
    scores = np.asarray(scores)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float32)
    gt_index = np.asarray(gt_index)
    if scores.ndim != 2 or gt_index.shape != (scores.shape[0],):
        raise ValueError(
            f"scores must be (Q, N) and gt_index (Q,); got {scores.shape} and {gt_index.shape}"
        )
    n = scores.shape[1]
    bad = np.flatnonzero((gt_index < 0) | (gt_index >= n))
    if bad.size:
        raise ValueError(
            f"gt_index out of range [0, {n}) for {bad.size} queries, first at query {bad[0]} "
            f"(value {gt_index[bad[0]]})"
        )
    gt_scores = scores[np.arange(scores.shape[0]), gt_index]
    if not np.all(np.isfinite(gt_scores)):
        q = int(np.flatnonzero(~np.isfinite(gt_scores))[0])
        raise ValueError(
            f"non-finite ground-truth score {gt_scores[q]} at query {q}: a rank from it would be "
            "meaningless; check the embeddings for NaN/inf"
        )
    return 1 + np.sum(scores > gt_scores[:, None], axis=1)


def retrieval_metrics(
    gt_rank, ks: Sequence[int] = RECALL_KS, *, medr: str = "median"
) -> dict[str, float]:
    """``{"R@1", "R@5", "R@10", "medR", "meanR"}`` of ranks (Q,); medR as :data:`MEDR` ``medr``."""
    if medr not in MEDR:
        raise ValueError(f"medr must be one of {sorted(MEDR)}, got {medr!r}")
    ranks = np.asarray(gt_rank)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(f"gt_rank must be a non-empty (Q,) array, got shape {ranks.shape}")
    if not np.all(np.isfinite(ranks)):
        q = int(np.flatnonzero(~np.isfinite(ranks))[0])
        raise ValueError(
            f"gt_rank of query {q} is {ranks[q]}: ranks must be finite; a NaN rank comes from a "
            "non-finite embedding, which must be dropped or re-encoded before scoring"
        )
    if np.any(ranks < 1):
        raise ValueError("ranks are 1-indexed: every rank must be >= 1")
    out = {f"R@{k}": float(100.0 * np.mean(ranks <= k)) for k in ks}
    if medr == "median":
        out["medR"] = float(np.median(ranks))
    else:
        out["medR"] = float(np.sort(ranks)[(ranks.size - 1) // 2])
    out["meanR"] = float(np.mean(ranks))
    return out


def negated_in_top_k(top_indices, contains_negated, k: int = 5) -> float:
    """Percent of top-``k`` results (``top_indices`` (Q, >=k)) showing the query's negated concept.

    ``contains_negated(q, image) -> bool``; the paper's Figure 1 failure, which R@K hides.
    """
    top = np.asarray(top_indices)[:, :k]
    hits = [contains_negated(q, int(i)) for q in range(top.shape[0]) for i in top[q] if i >= 0]
    return float(100.0 * np.mean(hits)) if hits else 0.0


def paired_bootstrap(
    base_rank,
    rank,
    ks: Sequence[int] = RECALL_KS,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    block: int = 100,
) -> dict[str, dict[str, float]]:
    """Paired bootstrap percentile interval of ``R@K(rank) - R@K(base_rank)`` (points), seeded.

    Both are ranks (Q,) of the same queries. Returns ``{"R@K": {"delta", "lo", "hi"}}``.
    """
    a, b = np.asarray(base_rank), np.asarray(rank)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"paired ranks must be two non-empty (Q,) arrays of the same queries; got {a.shape} "
            f"and {b.shape}"
        )
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1; got {resamples}, {level}")
    diff = np.stack([100.0 * ((b <= k).astype(np.float64) - (a <= k)) for k in ks])  # (K, Q)
    rng = np.random.default_rng(seed)
    q = a.size
    means = []
    for start in range(0, resamples, block):
        idx = rng.integers(0, q, size=(min(block, resamples - start), q))
        means.append(diff[:, idx].mean(axis=-1))  # (K, block)
    means = np.concatenate(means, axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail], axis=1)
    return {
        f"R@{k}": {"delta": float(diff[i].mean()), "lo": float(lo[i]), "hi": float(hi[i])}
        for i, k in enumerate(ks)
    }
