"""Negation-aware approximate search: candidates from a faiss inner-product index, exact re-ranking.

For ``w >= 0``, ``x.q - w max(x.n, 0) = min(x.q, x.(q - w n))``, and with several concepts DRC's
score is ``min(x.q, min_m x.(q - w_m n_m))``: the minimum of a few inner products, each an upper
bound of it. So each query's *probes* (``q`` and every ``q - w_m n_m``; ``q`` alone for CLIP and
SpaceVLM) fetch candidates from an inner-product ANN index, and the merged candidates are scored
exactly by :func:`drc_jax.scoring.score_vectors` on the stored vectors. The answer is exact when
the index search was exhaustive and certified (:func:`search`), otherwise its recall against the
exact scan (:func:`drc_jax.retrieval.top_k`) is what benchmarks/bench_ann.py measures.

Pure functions over vectors and a faiss index; the index file is written and read by
:mod:`drc_jax.search.ann_file`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.scoring import QueryVectors, score_vectors

FLAT_MAX_ROWS = 2_000_000
"""Up to this many vectors the IVF lists hold them as float32 (IVF-Flat); above, 8-bit codes
(IVF-SQ8, a quarter of the memory), so a 10M index fits beside its memory-mapped bf16 store."""
TRAIN_PER_LIST = 40  # k-means training sample: this many vectors per list (faiss asks >= 39)
MAX_TRAIN = 1 << 20
ADD_CHUNK = 1 << 16
DEFAULT_CANDIDATES = 256
"""Candidates fetched per probe (raised to ``4 k`` for a large ``k``)."""
MIN_RERANK = 256  # re-ranked rows are padded to a power of two >= this: few compiled shapes


class AnnResult(NamedTuple):
    """Per query: best ``k`` scores and rows (``-1`` past the candidates), how many candidates
    were re-ranked, and whether the top-k is certified exact."""

    scores: np.ndarray  # (Q, k) float32
    rows: np.ndarray  # (Q, k) int64
    candidates: np.ndarray  # (Q,) int64
    exact: np.ndarray  # (Q,) bool


def require_faiss():
    """The faiss module, or an ImportError saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "ANN search needs faiss: pip install 'drc-jax[ann]' (faiss-cpu; faiss-gpu on a CUDA "
            "machine), or pass --ann none to scan every vector"
        ) from None
    return faiss


def nlist_for(n: int) -> int:
    """IVF lists for ``n`` vectors: the power of two nearest ``4 sqrt(n)``, >= 39 vectors each."""
    if n < 1:
        raise ValueError(f"an ANN index needs at least one vector, got {n}")
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    return int(max(1, min(nlist, n // 39, 1 << 16)))


def nprobe_for(nlist: int) -> int:
    """Lists searched per probe by default."""
    return int(min(nlist, max(16, nlist // 64)))


def factory_for(n: int, codes: str = "auto") -> str:
    """The faiss factory string for ``n`` vectors: ``IVF<nlist>,Flat`` (``codes="flat"``),
    ``,SQ8`` or ``,PQ<m>``; ``auto`` is Flat up to :data:`FLAT_MAX_ROWS`, else SQ8."""
    if codes == "auto":
        codes = "flat" if n <= FLAT_MAX_ROWS else "sq8"
    tail = {"flat": "Flat", "sq8": "SQ8", "pq": "PQ64"}.get(codes)
    if tail is None:
        raise ValueError(f"codes must be auto, flat, sq8 or pq, got {codes!r}")
    return f"IVF{nlist_for(n)},{tail}"


def build(array, rows: np.ndarray, *, codes: str = "auto", seed: int = 0, progress=None):
    """A trained faiss IVF inner-product index over ``array[rows]`` with ids ``rows``.

    ``array`` may be a memory map of any float dtype: it is read in chunks as float32, so memory
    is the index plus one chunk. k-means trains on a seeded sample of the rows."""
    faiss = require_faiss()

    rows = np.asarray(rows, np.int64)
    n, dim = len(rows), array.shape[1]
    index = faiss.index_factory(dim, factory_for(n, codes), faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = seed
    take = min(n, MAX_TRAIN, TRAIN_PER_LIST * ivf.nlist)
    sample = np.sort(np.random.default_rng(seed).choice(rows, take, replace=False))
    index.train(np.ascontiguousarray(array[sample], np.float32))
    add(index, array, rows, progress=progress)
    ivf.nprobe = nprobe_for(ivf.nlist)
    return index


def add(index, array, rows: np.ndarray, *, progress=None) -> None:
    """Add ``array[rows]`` to ``index`` under ids ``rows``, a chunk at a time."""
    for start in range(0, len(rows), ADD_CHUNK):
        ids = np.asarray(rows[start : start + ADD_CHUNK], np.int64)
        index.add_with_ids(np.ascontiguousarray(array[ids], np.float32), ids)
        if progress is not None:
            progress(len(ids))


def probes(vectors: QueryVectors) -> list[np.ndarray]:
    """Per query, its probe directions (P, D): ``q`` then ``q - w_rep n_m`` for every present
    concept (a zero ``neg`` row or ``w_rep = 0`` adds none)."""
    q = np.asarray(vectors.q, np.float32)
    if vectors.neg is None:
        return [q[i : i + 1] for i in range(len(q))]
    neg = np.asarray(vectors.neg, np.float32)
    neg = neg[:, None] if neg.ndim == 2 else neg
    w = np.asarray(vectors.w_rep, np.float32)
    out = []
    for i in range(len(q)):
        present = neg[i][np.any(neg[i] != 0, axis=1)] if w[i] > 0 else neg[i][:0]
        out.append(np.concatenate([q[i : i + 1], q[i] - w[i] * present]))
    return out


@functools.partial(jax.jit, static_argnames="k")
def _rerank(x, valid, vectors: QueryVectors, *, k: int):
    s = score_vectors(x, vectors, stacked=True)[0]
    return jax.lax.top_k(jnp.where(valid, s, -jnp.inf), k)


def rerank(x: np.ndarray, vectors: QueryVectors, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` (scores, positions into ``x``) of one query's vectors over candidate rows
    ``x`` (C, D), scored as the exhaustive scan scores them, in ``x``'s dtype."""
    c = len(x)
    size = max(MIN_RERANK, 1 << max(0, c - 1).bit_length())
    k_run = min(k, size)
    padded = np.zeros((size, x.shape[1]), x.dtype)
    padded[:c] = x
    s, pos = _rerank(padded, np.arange(size) < c, vectors, k=k_run)
    s, pos = np.asarray(s), np.asarray(pos)
    keep = pos < c
    return s[keep][:k], pos[keep][:k]


def search(
    index,
    array,
    vectors: QueryVectors,
    k: int,
    *,
    candidates: int = DEFAULT_CANDIDATES,
    nprobe: int | None = None,
    live=None,
    dtype=None,
    exhaustive_exact: bool = False,
) -> AnnResult:
    """DRC/CLIP/SpaceVLM top-``k`` of each query through ``index`` (ids: rows of ``array``).

    Each probe fetches ``max(candidates, 4 k)`` rows; their union (rows outside ``array`` or
    not ``live`` (a bool mask over rows) dropped) is re-ranked exactly (:func:`rerank`), the
    vectors read as ``dtype`` (default: as stored). ``exact`` is True only where the search was
    exhaustive (``exhaustive_exact``: every list probed, uncompressed codes) and the bound holds:
    for some probe, the k-th exact score is at least the last score it fetched, so no row it did
    not fetch can score higher (each probe's score bounds DRC's from above).
    """
    n_rows = array.shape[0]
    per_probe = int(min(max(candidates, 4 * k), max(1, index.ntotal)))
    if nprobe is not None:
        set_nprobe(index, nprobe)
    plist = probes(vectors)
    nq = len(plist)
    scores = np.full((nq, k), -np.inf, np.float32)
    rows = np.full((nq, k), -1, np.int64)
    counts = np.zeros(nq, np.int64)
    exact = np.zeros(nq, bool)
    for i, p in enumerate(plist):
        with _one_thread():
            bound, ids = index.search(np.ascontiguousarray(p, np.float32), per_probe)
        got = np.unique(ids[(ids >= 0) & (ids < n_rows)])
        if live is not None:
            got = got[live[got]]
        counts[i] = len(got)
        if not len(got):
            continue
        x = np.asarray(array[got])
        if dtype is not None:
            x = x.astype(dtype, copy=False)
        one = jax.tree_util.tree_map(lambda v, i=i: None if v is None else v[i : i + 1], vectors)
        s, pos = rerank(x, QueryVectors(*one), k)
        scores[i, : len(s)], rows[i, : len(s)] = s, got[pos]
        # a probe that fetched every row, or fewer than it asked for, saw them all
        full = (ids >= 0).all(axis=1) & (per_probe < index.ntotal)
        last = np.where(full, bound[:, -1], -np.inf)
        tol = 0.0 if x.dtype == np.float32 else 2e-2  # half-precision scores round the query
        exact[i] = exhaustive_exact and len(s) == k and bool((s[-1] >= last + tol).any())
    return AnnResult(scores, rows, counts, exact)


@contextlib.contextmanager
def _one_thread():
    """faiss on one thread: a search of a few probes gains nothing from OpenMP, whose idle
    threads spin against XLA's (and on a busy CPU cost 10-30x; benchmarks/RESULTS.md)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def faiss_nlist(index) -> int:
    """The number of IVF lists of ``index`` (an IVF index, possibly behind a transform)."""
    import faiss

    return int(faiss.extract_index_ivf(index).nlist)


def faiss_nprobe(index) -> int:
    import faiss

    return int(faiss.extract_index_ivf(index).nprobe)


def set_nprobe(index, nprobe: int) -> None:
    import faiss

    faiss.extract_index_ivf(index).nprobe = int(nprobe)
