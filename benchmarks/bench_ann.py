"""Negation-aware ANN search vs the exact scan, and faiss's own plain-CLIP search as the peer.

For each size N, clustered unit vectors (:func:`benchmarks.sphere.nested_centres`: groups of
nearby clusters, D=512) are written in chunks to a memory-mapped bf16 file (the index's store
format). DRC queries whose negated concept is a nearby cluster of the same group run one at a
time, as the server runs them, from their query vectors (text encoding excluded, the same for
every row):

- ``exact``: drc_jax's exact scan (``retrieval.top_k`` over the bf16 vectors on device);
- ``ann``: :func:`drc_jax.ann.search` through an IVF index built by :func:`drc_jax.ann.build`
  (codes as ``--codes``), candidates re-ranked exactly on the memory map, at each ``--nprobe``;
- ``faiss_flat_clip`` / ``faiss_ivf_clip``: faiss's exhaustive and IVF search of plain CLIP (one
  inner product, no re-ranking) on the same vectors: the peer DRC's ANN path is compared with.

Reported per size: p50/p90 ms per query, recall@k of ANN against the exact scan, candidates
re-ranked, index build time and the process's peak memory. Ratios of one run are what count.

Run:  .venv/bin/python -m benchmarks.bench_ann --n 100000,1000000
Writes benchmarks/results/bench_ann_cpu.json.
"""

from __future__ import annotations

import contextlib
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_list("n", ["100000", "1000000"], "Sizes (10M: --nofaiss_flat --exact_rows).")
flags.DEFINE_integer("dim", 512, "Vector width (CLIP ViT-B/32: 512).")
flags.DEFINE_integer("queries", 50, "Queries, one at a time.")
flags.DEFINE_integer("k", 10, "Results per query.")
flags.DEFINE_integer("concepts", 1, "Negated concepts per query.")
flags.DEFINE_integer("groups", 64, "Groups of nearby clusters.")
flags.DEFINE_integer("per_group", 16, "Clusters per group.")
flags.DEFINE_enum("codes", "auto", ["auto", "flat", "sq8", "pq"], "IVF list codes.")
flags.DEFINE_list("nprobe", [], "IVF lists probed (default: drc_jax.ann.nprobe_for(nlist), x2).")
flags.DEFINE_integer("candidates", 0, "Candidates per probe (0: drc_jax.ann.DEFAULT_CANDIDATES).")
flags.DEFINE_bool("faiss_flat", True, "Time faiss's exhaustive IndexFlatIP (an f32 copy of N).")
flags.DEFINE_integer(
    "exact_rows", 0, "Rows on device at a time for the exact scan (0: all; 10M needs 2000000)."
)
flags.DEFINE_string("dir", None, "Where the bf16 memory map goes (default: a temporary folder).")
flags.DEFINE_string("out", str(REPO / "benchmarks/results/bench_ann_cpu.json"), "JSON out.")

CHUNK = 1 << 18


def release() -> None:
    """Hand freed heap back to the OS (glibc keeps it otherwise), so one stage's copy of the
    vectors does not count against the next in the peak."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def write_memmap(path: Path, n: int, centre: np.ndarray) -> np.memmap:
    """``n`` clustered vectors, written a chunk at a time to a bf16 file; opened read-only."""
    import ml_dtypes

    from benchmarks.sphere import clustered

    out = np.memmap(path, dtype=ml_dtypes.bfloat16, mode="w+", shape=(n, centre.shape[1]))
    for start in range(0, n, CHUNK):
        x, _ = clustered(min(CHUNK, n - start), centre, spread=0.6, start=start)
        out[start : start + len(x)] = x.astype(ml_dtypes.bfloat16)
    out.flush()
    del out
    return np.memmap(path, dtype=ml_dtypes.bfloat16, mode="r", shape=(n, centre.shape[1]))


def one_thread(fn, *args):
    """faiss's peer rows run as the ANN path runs faiss: on one thread (drc_jax.ann._one_thread)."""
    from drc_jax.ann import _one_thread

    with _one_thread():
        return fn(*args)


def timed(fn, items) -> tuple[list, np.ndarray]:
    fn(items[0])  # compile / warm
    outs, ms = [], []
    for item in items:
        t = time.perf_counter()
        outs.append(fn(item))
        ms.append(1000 * (time.perf_counter() - t))
    return outs, np.asarray(ms)


def exact_scan(array, each, k: int, rows: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Per query the exact top-``k`` rows and the scan's ms: ``retrieval.top_k`` over the bf16
    vectors on device, as the server runs it, ``rows`` at a time (the top-k of each slice merged;
    a query's time is the sum of its slices') where all of them would not fit beside the rest."""
    import jax
    import jax.numpy as jnp

    from drc_jax.retrieval import top_k

    scores, ids, ms = [], [], np.zeros(len(each))
    for lo in range(0, array.shape[0], rows):
        images = jax.device_put(jnp.asarray(array[lo : lo + rows]))
        got, part = timed(lambda v, images=images: top_k(images, v, k), each)
        scores.append(np.stack([np.asarray(r.scores)[0] for r in got]))
        ids.append(np.stack([np.asarray(r.indices)[0] for r in got]) + lo)
        ms += part
        images.delete()
        del images, got
        release()
    scores, ids = np.concatenate(scores, 1), np.concatenate(ids, 1)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return list(np.take_along_axis(ids, best, 1)), ms


def stats(ms: np.ndarray) -> dict:
    return {
        "p50_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.quantile(ms, 0.9)), 3),
    }


def recall(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    return float(
        np.mean(
            [
                len(set(g.tolist()) & set(w.tolist())) / len(w)
                for g, w in zip(got, want, strict=True)
            ]
        )
    )


def one_size(n: int, folder: Path) -> dict:
    import faiss
    import jax

    from benchmarks.sphere import nearby_cluster_queries, nested_centres
    from drc_jax import ann
    from drc_jax.scoring import query_vectors

    k = FLAGS.k
    centre, group = nested_centres(FLAGS.groups, FLAGS.per_group, FLAGS.dim)
    t = time.perf_counter()
    array = write_memmap(folder / f"vectors-{n}.bin", n, centre)
    row = {"n": n, "dim": FLAGS.dim, "k": k, "write_s": round(time.perf_counter() - t, 1)}
    queries = nearby_cluster_queries(centre, group, FLAGS.queries, concepts=FLAGS.concepts)
    drc = query_vectors("drc", queries)
    clip = query_vectors("clip", queries)
    one = lambda v, i: jax.tree_util.tree_map(lambda x: x[i : i + 1], v)  # noqa: E731
    drc_each = [one(drc, i) for i in range(FLAGS.queries)]
    clip_q = [np.asarray(clip.q[i : i + 1], np.float32) for i in range(FLAGS.queries)]

    want, ms = exact_scan(array, drc_each, k, FLAGS.exact_rows or n)
    row["exact"] = stats(ms)
    if FLAGS.exact_rows and FLAGS.exact_rows < n:
        row["exact"]["rows_on_device"] = FLAGS.exact_rows

    if FLAGS.faiss_flat:
        flat = faiss.IndexFlatIP(FLAGS.dim)
        for start in range(0, n, CHUNK):
            flat.add(np.asarray(array[start : start + CHUNK], np.float32))
        _, ms = timed(lambda q: one_thread(flat.search, q, k), clip_q)
        row["faiss_flat_clip"] = stats(ms)
        del flat
        release()

    t = time.perf_counter()
    index = ann.build(array, np.arange(n), codes=FLAGS.codes)
    row["build_s"] = round(time.perf_counter() - t, 1)
    row["factory"] = ann.factory_for(n, FLAGS.codes)
    nlist = ann.faiss_nlist(index)
    row["index_bytes"] = int(faiss.serialize_index(index).size) if n <= 2_000_000 else None
    nprobes = [int(p) for p in FLAGS.nprobe] or [ann.nprobe_for(nlist), 2 * ann.nprobe_for(nlist)]
    cands = FLAGS.candidates or ann.DEFAULT_CANDIDATES
    row["ann"] = []
    for nprobe in nprobes:
        res, ms = timed(
            lambda v, p=nprobe: ann.search(index, array, v, k, candidates=cands, nprobe=p), drc_each
        )
        ann_rows = [r.rows[0] for r in res]
        ann.set_nprobe(index, nprobe)
        _, ivf_ms = timed(lambda q: one_thread(index.search, q, k), clip_q)
        row["ann"].append(
            {
                "nprobe": nprobe,
                "candidates_per_probe": cands,
                "candidates_reranked": float(np.mean([r.candidates[0] for r in res])),
                **stats(ms),
                "recall_at_k": round(recall(ann_rows, want), 4),
                "faiss_ivf_clip": stats(ivf_ms),
            }
        )
    row["peak_rss_gb"] = round(peak_gb(), 2)
    return row


def main(argv):
    del argv
    results = []
    with tempfile.TemporaryDirectory(dir=FLAGS.dir, prefix="bench-ann-") as tmp:
        for n in map(int, FLAGS.n):
            row = one_size(n, Path(tmp))
            print(json.dumps(row), flush=True)
            results.append(row)
            (Path(tmp) / f"vectors-{n}.bin").unlink()
    Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(FLAGS.out).write_text(json.dumps({"results": results}, indent=2) + "\n")
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
