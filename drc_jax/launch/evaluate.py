"""Every row (NEAT's too) ranked by :func:`drc_jax.retrieval.top_k`; the report's metrics."""

from __future__ import annotations

import time

import numpy as np

from drc_jax.data.negbench import Benchmark
from drc_jax.launch.config import Table, Variant
from drc_jax.launch.stages import Encoded, Ranking
from drc_jax.texts import text_set

TOP_K = 10


def negated_in_top5(bench: Benchmark, top_indices: np.ndarray, evaluated: np.ndarray | None = None):
    """Share of top-5 results showing the negated object (Figure 1), over evaluated queries."""
    from drc_jax.metrics import negated_in_top_k

    if evaluated is None:
        evaluated = np.ones(len(bench.queries), bool)
    if not bench.objects_complete or not evaluated.any():
        return None, 0.0
    named = [i for i, q in enumerate(bench.queries) if q.negated and evaluated[i]]
    if not named:
        return None, 0.0
    objects = [set(m.positive_objects) for m in bench.media]
    negs = [bench.queries[i].negated for i in named]
    share = negated_in_top_k(
        top_indices[named], lambda q, img: negs[q] in objects[img], k=min(5, top_indices.shape[1])
    )
    return share, 100.0 * len(named) / int(evaluated.sum())


def readable(encoded: list[Encoded]) -> np.ndarray:
    """(N,) bool: media every backbone could embed (the others score -inf in the engine)."""
    return np.logical_and.reduce([e.media.valid for e in encoded])


def evaluated_queries(bench: Benchmark, valid: np.ndarray) -> np.ndarray:
    """(Q,) bool: queries whose ground truth is readable (the others leave the report)."""
    return valid[np.asarray([q.gt for q in bench.queries], np.int64)]


def _metrics(bench, idx, ranks, evaluated, medr):
    from drc_jax.metrics import retrieval_metrics

    metrics = retrieval_metrics(ranks[evaluated], medr=medr)
    share, coverage = negated_in_top5(bench, idx, evaluated)
    if share is not None:
        metrics["neg@5"] = share
    return metrics, coverage


def score(variants: list[Variant], encoded: Encoded, bench: Benchmark, opts, valid=None):
    """Rank ``encoded``'s media (those in ``valid``) for every query under each of ``variants``."""
    import jax
    import jax.numpy as jnp

    from drc_jax.launch.neat_rows import seed_summary
    from drc_jax.parallel import make_mesh
    from drc_jax.retrieval import top_k
    from drc_jax.scoring import QueryVectors, query_vectors

    mesh = make_mesh() if jax.device_count() > 1 else None
    gt = np.asarray([q.gt for q in bench.queries], np.int32)
    valid = np.asarray(encoded.media.valid if valid is None else valid, bool)
    evaluated = evaluated_queries(bench, valid)
    image_dtype = jnp.bfloat16 if opts.image_dtype == "bfloat16" else None
    images = {m: jnp.asarray(encoded.media.for_mean(m)) for m in {v.video_mean for v in variants}}

    def rank(vectors, video_mean):
        res = top_k(
            images[video_mean],
            vectors,
            min(TOP_K, int(valid.sum())),  # masked media never fill a top-k
            gt_index=gt,
            chunk_size=opts.chunk_size,
            mesh=mesh,
            image_dtype=image_dtype,
            valid=None if valid.all() else valid,
        )
        return np.asarray(jax.device_get(res.indices)), np.asarray(jax.device_get(res.gt_rank))

    out = []
    for v in variants:
        t0 = time.perf_counter()
        per_seed = None
        if v.method == "neat":
            run = encoded.neat[v.name]
            ranked = [rank(QueryVectors(jnp.asarray(e)), v.video_mean) for e in run.embeddings]
            idx, ranks = ranked[0]
            metrics, coverage = _metrics(bench, idx, ranks, evaluated, opts.medr)
            if len(ranked) > 1:
                seeds = {
                    str(s): _metrics(bench, *r, evaluated, opts.medr)[0]
                    for s, r in zip(run.seeds, ranked, strict=True)
                }
                metrics, spread = seed_summary(list(seeds.values()))
                per_seed = {"seeds": seeds, "spread": spread}
        else:
            vectors = query_vectors(v.method, encoded.queries[text_set(v)], v.params)
            idx, ranks = rank(vectors, v.video_mean)
            metrics, coverage = _metrics(bench, idx, ranks, evaluated, opts.medr)
        seconds = time.perf_counter() - t0
        out.append(Ranking(v, encoded.weights, idx, ranks, metrics, coverage, seconds, per_seed))
    return out


def score_all(table: Table, default_weights: str, encoded: list[Encoded], bench, opts):
    """Every row of ``table`` scored on its backbone's embeddings, in the table's row order."""
    valid = readable(encoded)
    by_name = {}
    for enc in encoded:
        group = [v for v in table.variants if (v.weights or default_weights) == enc.weights]
        by_name.update((r.variant.name, r) for r in score(group, enc, bench, opts, valid))
    return [by_name[v.name] for v in table.variants]


def rankings_npz(bench: Benchmark, rankings: list[Ranking], valid):
    """``rankings.npz``: per row top-10 (Q, 10) and gt rank (Q,); per query gt, line, evaluated."""
    arrays = {
        "gt": np.asarray([q.gt for q in bench.queries], np.int32),
        "evaluated": evaluated_queries(bench, valid),
        "line": np.asarray([q.line for q in bench.queries], np.int32),
        "media_id": np.asarray([m.id for m in bench.media]),
    }
    for r in rankings:
        arrays[f"{r.variant.name}/top10"] = r.top
        arrays[f"{r.variant.name}/gt_rank"] = r.gt_rank
    return lambda f: np.savez_compressed(f, **arrays)
