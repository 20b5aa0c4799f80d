"""Where a DRC query's time goes on the ANN path: faiss's probe, the rows' reads, re-ranking.

Writes (or reuses, under ``--dir``) the clustered bf16 map and IVF index of
:mod:`benchmarks.bench_ann`, then times over ``--rounds`` rounds of the same queries: faiss's
plain-CLIP search (k = 10 and 256), the concept probe ``q - w n`` alone, the full
:func:`drc_jax.ann.search`, reading the candidates' rows from the map and re-ranking them. A
first round that is much slower than the next is pages of the map being read in.

Run:  .venv/bin/python -m benchmarks.bench_ann_parts --n 10000000 --dir /tmp/ann-parts
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from absl import app, flags

from benchmarks import bench_ann

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 2, "Rounds of the same queries.")
flags.DEFINE_bool("keep", True, "Keep the map and the index under --dir for the next run.")


def p50(fn, items) -> float:
    """:func:`benchmarks.bench_ann.timed`'s p50 ms of ``fn`` over ``items``."""
    return bench_ann.stats(bench_ann.timed(fn, items)[1])["p50_ms"]


def main(argv):
    del argv
    import faiss
    import jax
    import ml_dtypes

    from benchmarks.sphere import nearby_cluster_queries, nested_centres
    from drc_jax import ann
    from drc_jax.scoring import query_vectors

    n, d = int(FLAGS.n[0]), FLAGS.dim
    folder = Path(FLAGS.dir or "/tmp/ann-parts")
    folder.mkdir(parents=True, exist_ok=True)
    centre, group = nested_centres(FLAGS.groups, FLAGS.per_group, d)
    vec, idx = folder / f"vectors-{n}.bin", folder / f"ivf-{n}.faiss"
    if vec.exists() and vec.stat().st_size == n * d * 2:
        array = np.memmap(vec, dtype=ml_dtypes.bfloat16, mode="r", shape=(n, d))
    else:
        array = bench_ann.write_memmap(vec, n, centre)
    index = faiss.read_index(str(idx)) if idx.exists() else ann.build(array, np.arange(n))
    if FLAGS.keep and not idx.exists():
        faiss.write_index(index, str(idx))
    queries = nearby_cluster_queries(centre, group, FLAGS.queries, concepts=1)
    drc, clip = query_vectors("drc", queries), query_vectors("clip", queries)
    each = [jax.tree_util.tree_map(lambda x, i=i: np.asarray(x[i : i + 1]), drc)
            for i in range(FLAGS.queries)]  # fmt: skip
    probe = [np.asarray(ann.probes(v)[0][1:2], np.float32) for v in each]
    plain = [np.asarray(clip.q[i : i + 1], np.float32) for i in range(FLAGS.queries)]
    ann.set_nprobe(index, ann.nprobe_for(ann.faiss_nlist(index)))
    rows = [np.unique(index.search(p, ann.DEFAULT_CANDIDATES)[1][0]) for p in probe]
    out = {"n": n, "factory": ann.factory_for(n, "auto"), "nprobe": ann.faiss_nprobe(index)}
    for r in range(FLAGS.rounds):
        with ann._one_thread():
            got = {
                "faiss_clip_k10": p50(lambda q: index.search(q, 10), plain),
                "faiss_clip_k256": p50(lambda q: index.search(q, 256), plain),
                "faiss_probe_k256": p50(lambda q: index.search(q, 256), probe),
            }
        got["ann_search"] = p50(lambda v: ann.search(index, array, v, FLAGS.k), each)
        got["read_rows"] = p50(lambda i: np.asarray(array[i]), rows)
        pairs = [(np.asarray(array[i]), v) for i, v in zip(rows, each, strict=True)]
        got["rerank"] = p50(lambda xv: ann.rerank(*xv, FLAGS.k), pairs)
        got["ann_vs_faiss_clip"] = round(got["ann_search"] / got["faiss_clip_k10"], 2)
        out[f"round_{r}_p50_ms"] = got
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    app.run(main)
