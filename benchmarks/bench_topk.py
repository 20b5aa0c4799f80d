"""Streamed top-k at corpus scale: memory independent of N, and a real 1,000,000-image search.

1. Compile-only (nothing of that size is allocated): the search executable for one query block of
   a 25,000-query run (7 equal blocks of 3,572) over N = 100k, 1M and 10M images, f32 and bf16;
   its ``memory_analysis()`` temp bytes stay flat while the argument (the images) grows with N.
2. ``--run``: an actual search of ``--queries`` DRC queries over ``--images`` random images with
   ground-truth ranks, reporting time, query-image pairs per second, the peak resident memory of
   this process, and the extrapolated time of the full 25,000 x 1,000,000 search.

Run:  .venv/bin/python -m benchmarks.bench_topk --run --queries 1024 --images 1000000
Writes benchmarks/results/bench_topk_<backend>.json.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.retrieval import top_k, top_k_memory
from drc_jax.scoring import Queries, drc_score, query_vectors

MIB = 2**20


def compiled_memory(nq_total: int, n: int, dim: int, image_dtype, chunk: int) -> dict:
    """One query block's compiled memory for an ``nq_total``-query search over ``n`` images."""
    m = top_k_memory(nq_total, n, dim, 10, chunk_size=chunk, image_dtype=image_dtype)
    return {
        "N": n,
        "images": "bf16" if image_dtype == jnp.bfloat16 else "f32",
        "temp_MiB": m["temp"] / MIB,
        "argument_MiB": m["argument"] / MIB,
        "output_MiB": m["output"] / MIB,
        "full_QxN_f32_MiB": m["block"] * n * 4 / MIB,
        "query_block": m["block"],
        "query_blocks": m["blocks"],
    }


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def real_search(nq: int, n: int, dim: int, chunk: int, image_dtype) -> dict:
    rng = np.random.default_rng(0)
    images = np.empty((n, dim), np.float32)
    for lo in range(0, n, 100_000):  # generate in slices to keep peak memory low
        images[lo : lo + 100_000] = unit(rng.standard_normal((min(100_000, n - lo), dim)))
    aff = unit(rng.standard_normal((nq, dim)))
    near = lambda x, s: unit(x + s * rng.standard_normal(x.shape) / np.sqrt(dim) * 8)
    queries = Queries(
        *(
            jnp.asarray(v, jnp.float32)
            for v in (aff, near(aff, 0.1), near(aff, 0.08), near(aff, 0.05))
        ),
        strength=jnp.asarray(rng.integers(1, 4, nq), jnp.int32),
    )
    gt = rng.integers(0, n, nq)
    vectors = query_vectors("drc", queries)
    # The first call includes compilation; the second is the steady-state search.
    t0 = time.perf_counter()
    res = top_k(images, vectors, 10, gt_index=gt, chunk_size=chunk, image_dtype=image_dtype)
    jax.block_until_ready(res)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = top_k(images, vectors, 10, gt_index=gt, chunk_size=chunk, image_dtype=image_dtype)
    jax.block_until_ready(res)
    second = time.perf_counter() - t0
    # Spot-check against exact scores for a few queries.
    few = slice(0, 4)
    exact = np.asarray(
        drc_score(
            jnp.asarray(images[:200_000], image_dtype or jnp.float32),
            queries.aff[few],
            queries.neg[few],
            queries.cf[few],
            queries.full[few],
            queries.strength[few],
        )
    )
    assert res.indices.shape == (nq, 10)
    # The top score over all N images can be no lower than the best over a prefix of them.
    prefix_gap = float(np.max(exact.max(axis=1) - np.asarray(res.scores)[few, 0]))
    assert prefix_gap <= 1e-5, prefix_gap
    return {
        "queries": nq,
        "images": n,
        "dim": dim,
        "image_dtype": "bf16" if image_dtype == jnp.bfloat16 else "f32",
        "first_call_s": first,
        "second_call_s": second,
        "pairs_per_s": nq * n / second,
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "image_bytes_MiB": images.nbytes / MIB,
        "extrapolated_25000x1M_s": 25_000 * 1_000_000 / (nq * n / second),
        "prefix_best_minus_top1": prefix_gap,
    }


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_bool("run", False, "also run a real search (--queries x --images)")
    flags.DEFINE_integer("queries", 1024, "queries for --run")
    flags.DEFINE_integer("images", 1_000_000, "images for --run")
    flags.DEFINE_integer("d", 512, "embedding dimension")
    flags.DEFINE_integer("chunk", 8192, "image chunk size")
    flags.DEFINE_bool("bf16", False, "bf16 images for --run")
    flags.DEFINE_string("out", None, "JSON path")

    def run(_):
        f = flags.FLAGS
        backend = jax.default_backend()
        nq_total = 25_000
        rows = [
            compiled_memory(nq_total, n, f.d, image_dtype, f.chunk)
            for image_dtype in (jnp.float32, jnp.bfloat16)
            for n in (100_000, 1_000_000, 10_000_000)
        ]
        block, n_blocks = rows[0]["query_block"], rows[0]["query_blocks"]
        print(
            f"compiled search: one query block of {block} "
            f"(25,000 queries = {n_blocks} blocks), D={f.d}"
        )
        print("| images | N | temp MiB | argument MiB | a (Q, N) f32 matrix would be MiB |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['images']} | {r['N']:,} | {r['temp_MiB']:.0f} | {r['argument_MiB']:.0f} | "
                f"{r['full_QxN_f32_MiB']:,.0f} |"
            )
        result = {"backend": backend, "query_block": block, "compiled_memory": rows}
        if f.run:
            r = real_search(f.queries, f.images, f.d, f.chunk, jnp.bfloat16 if f.bf16 else None)
            print(json.dumps(r, indent=2))
            result["run"] = r
        out = Path(f.out or f"benchmarks/results/bench_topk_{backend}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")

    app.run(run, argv)


if __name__ == "__main__":
    main()
