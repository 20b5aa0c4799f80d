"""Scoring every variant on shared embeddings, and the metrics of the report.

Images are sharded over all devices and each device streams its shard through
:func:`drc_jax.scoring.top_k`, whose per-device top-k lists are merged, so the corpus may be far
larger than one device's memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from drc_jax.data.negbench import Benchmark
from drc_jax.launch.config import RunConfig, Variant

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


def score_variants(variants: list[Variant], images, queries, bench: Benchmark, opts, timing):
    import jax
    import jax.numpy as jnp

    from drc_jax.metrics import retrieval_metrics
    from drc_jax.parallel import make_mesh
    from drc_jax.retrieval import top_k
    from drc_jax.scoring import query_vectors

    mesh = make_mesh() if jax.device_count() > 1 else None
    gt = np.asarray([q.gt for q in bench.queries], np.int32)
    image_dtype = jnp.bfloat16 if opts.image_dtype == "bfloat16" else None
    images = jnp.asarray(images)
    results, tops = {}, {}
    for v in variants:
        t0 = time.perf_counter()
        res = top_k(
            images,
            query_vectors(v.method, queries, v.params),
            TOP_K,
            gt_index=gt,
            chunk_size=opts.chunk_size,
            mesh=mesh,
            image_dtype=image_dtype,
        )
        ranks = np.asarray(jax.device_get(res.gt_rank))
        idx = np.asarray(jax.device_get(res.indices))
        timing[f"score_{v.name}_s"] = time.perf_counter() - t0
        m = retrieval_metrics(ranks)
        share, coverage = negated_in_top5(bench, idx)
        if share is not None:
            m["neg@5"] = share
        results[v.name] = (m, coverage)
        tops[v.name] = idx
        tops[f"{v.name}/gt_rank"] = ranks
    return results, tops


def score_all(config: RunConfig, default_weights, encoded, bench, opts, timing):
    """Metrics of every variant (on its backbone's embeddings), top-10 lists, neg@5 coverage."""
    methods, tops, coverage = {}, {}, None
    for weights, (emb, queries) in encoded.items():
        group = [v for v in config.variants if (v.weights or default_weights) == weights]
        res, top = score_variants(group, emb, queries, bench, opts, timing)
        tops.update(top)
        for v in group:
            m, coverage = res[v.name]
            base = config.baseline_of(v)
            methods[v.name] = {
                **m,
                "label": v.label,
                "method": v.method,
                "weights": weights,
                **({"baseline": base.name} if base else {}),
            }
    methods = {v.name: methods[v.name] for v in config.variants}  # the config's row order
    return methods, tops, (coverage if bench.objects_complete else None)


def save_rankings(output_dir: str, bench: Benchmark, tops: dict) -> Path:
    """``rankings.npz``: per variant the top-10 media indices (Q, 10) and the ground truth's
    1-indexed rank (Q,), plus each query's ground truth and CSV line, for later analysis."""
    path = Path(output_dir).expanduser() / "rankings.npz"
    arrays = {
        "gt": np.asarray([q.gt for q in bench.queries], np.int32),
        "line": np.asarray([q.line for q in bench.queries], np.int32),
        "media_id": np.asarray([m.id for m in bench.media]),
    }
    for key, value in tops.items():
        name, _, what = key.partition("/")
        arrays[f"{name}/{what or 'top10'}"] = value
    np.savez_compressed(path, **arrays)
    return path
