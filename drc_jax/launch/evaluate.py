"""Scoring every variant on shared embeddings, and the metrics of the report.

Images are sharded over all devices and each device streams its shard through
:func:`drc_jax.retrieval.top_k`, whose per-device top-k lists are merged, so the corpus may be far
larger than one device's memory.
"""

from __future__ import annotations

import time

import numpy as np

from drc_jax.data.negbench import Benchmark
from drc_jax.launch.config import Table, Variant
from drc_jax.launch.stages import Encoded, Ranking
from drc_jax.texts import text_set

TOP_K = 10


def negated_in_top5(bench: Benchmark, top_indices: np.ndarray) -> tuple[float | None, float]:
    """Share of top-5 results that show the query's negated object (Figure 1's failure)."""
    from drc_jax.metrics import negated_in_top_k

    if not bench.objects_complete:
        return None, 0.0
    named = [i for i, q in enumerate(bench.queries) if q.negated]
    if not named:
        return None, 0.0
    objects = [set(m.positive_objects) for m in bench.media]
    negs = [bench.queries[i].negated for i in named]
    share = negated_in_top_k(
        top_indices[named], lambda q, img: negs[q] in objects[img], k=min(5, top_indices.shape[1])
    )
    return share, 100.0 * len(named) / len(bench.queries)


def top_from_scores(scores: np.ndarray, gt: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` media (best first, ties to the lower index) and the ground truth's 1-indexed rank
    (ties in its favour, as :func:`drc_jax.retrieval.top_k`) from a full (Q, N) score matrix."""
    from drc_jax.metrics import ranks_from_scores

    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, ranks_from_scores(scores, gt)


def score(variants: list[Variant], encoded: Encoded, bench: Benchmark, opts) -> list[Ranking]:
    """Rank ``encoded``'s media for every query under each of ``variants`` (one backbone)."""
    import jax
    import jax.numpy as jnp

    from drc_jax.metrics import retrieval_metrics
    from drc_jax.parallel import make_mesh
    from drc_jax.retrieval import top_k
    from drc_jax.scoring import query_vectors

    mesh = make_mesh() if jax.device_count() > 1 else None
    gt = np.asarray([q.gt for q in bench.queries], np.int32)
    image_dtype = jnp.bfloat16 if opts.image_dtype == "bfloat16" else None
    images = {m: jnp.asarray(encoded.media.for_mean(m)) for m in {v.video_mean for v in variants}}
    out = []
    for v in variants:
        t0 = time.perf_counter()
        if v.method == "neat":  # scored by the adapted encoder itself (pipeline.adapt_neat)
            idx, ranks = top_from_scores(encoded.neat_scores[v.name], gt, TOP_K)
        else:
            res = top_k(
                images[v.video_mean],
                query_vectors(v.method, encoded.queries[text_set(v)], v.params),
                TOP_K,
                gt_index=gt,
                chunk_size=opts.chunk_size,
                mesh=mesh,
                image_dtype=image_dtype,
            )
            ranks = np.asarray(jax.device_get(res.gt_rank))
            idx = np.asarray(jax.device_get(res.indices))
        seconds = time.perf_counter() - t0
        metrics = retrieval_metrics(ranks, medr=opts.medr)
        share, coverage = negated_in_top5(bench, idx)
        if share is not None:
            metrics["neg@5"] = share
        out.append(Ranking(v, encoded.weights, idx, ranks, metrics, coverage, seconds))
    return out


def score_all(table: Table, default_weights: str, encoded: list[Encoded], bench, opts):
    """Every row of ``table`` scored on its backbone's embeddings, in the table's row order."""
    by_name = {}
    for enc in encoded:
        group = [v for v in table.variants if (v.weights or default_weights) == enc.weights]
        by_name.update((r.variant.name, r) for r in score(group, enc, bench, opts))
    return [by_name[v.name] for v in table.variants]


def rankings_npz(bench: Benchmark, rankings: list[Ranking]):
    """``rankings.npz``'s writer: per variant top-10 media (Q, 10) and the ground truth's rank
    (Q,), plus each query's ground truth and CSV line."""
    arrays = {
        "gt": np.asarray([q.gt for q in bench.queries], np.int32),
        "line": np.asarray([q.line for q in bench.queries], np.int32),
        "media_id": np.asarray([m.id for m in bench.media]),
    }
    for r in rankings:
        arrays[f"{r.variant.name}/top10"] = r.top
        arrays[f"{r.variant.name}/gt_rank"] = r.gt_rank
    return lambda f: np.savez_compressed(f, **arrays)
