"""Negation-aware ANN search: candidates from a faiss inner-product index, re-ranked exactly.

For ``w >= 0`` DRC's ``x.q - w max_m max(x.n_m, 0)`` is ``min(x.q, min_m x.(q - w n_m))``, so each
probe (``q``, every ``q - w n_m``) bounds it from above. File I/O: :mod:`drc_jax.search.ann_file`.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.scoring import QueryVectors, score_vectors, similarity

FLAT_MAX_ROWS = 2_000_000  # above: IVF-SQ8 codes
TRAIN_PER_LIST = 40  # faiss asks >= 39 training vectors per list
MAX_TRAIN = 1 << 20
ADD_CHUNK = 1 << 16
DEFAULT_CANDIDATES = 256  # per probe (at least 4 k)
MIN_RERANK = 256  # re-ranked rows are padded to a power of two >= this: few compiled shapes


class AnnResult(NamedTuple):
    """Per query: best ``k`` scores and rows (-1: none), candidates re-ranked, certified exact."""

    scores: np.ndarray
    rows: np.ndarray
    candidates: np.ndarray
    exact: np.ndarray


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
    """``IVF<nlist>,Flat|SQ8|PQ64`` for ``n`` vectors; ``auto``: Flat to :data:`FLAT_MAX_ROWS`."""
    if codes == "auto":
        codes = "flat" if n <= FLAT_MAX_ROWS else "sq8"
    tail = {"flat": "Flat", "sq8": "SQ8", "pq": "PQ64"}.get(codes)
    if tail is None:
        raise ValueError(f"codes must be auto, flat, sq8 or pq, got {codes!r}")
    return f"IVF{nlist_for(n)},{tail}"


def build(array, rows: np.ndarray, *, codes: str = "auto", seed: int = 0, progress=None):
    """A faiss IVF inner-product index over ``array[rows]`` with ids ``rows``, seeded."""
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
    """Per query its probes (P, D): ``q``, then ``q - w_rep n_m`` per present (non-zero) concept."""
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
def _rerank(x, valid, vectors: QueryVectors, concept, *, k: int):
    s = score_vectors(x, vectors, stacked=True)[0]
    binding = jnp.zeros((), jnp.int32)
    if vectors.neg is not None:
        dots = similarity(x, vectors.neg[0].reshape(-1, x.shape[1]))  # (M, C)
        mine = dots[concept]
        binding = jnp.sum(valid & (mine >= 0) & (mine >= dots.max(axis=0)), dtype=jnp.int32)
    return *jax.lax.top_k(jnp.where(valid, s, -jnp.inf), k), binding


def rerank(
    x: np.ndarray, vectors: QueryVectors, k: int, concept: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact top-``k`` (scores, positions) of one query over candidate rows ``x``, as the scan,
    and how many rows' DRC score is their inner product with concept ``concept``'s probe."""
    c = len(x)
    size = max(MIN_RERANK, 1 << max(0, c - 1).bit_length())
    k_run = min(k, size)
    padded = np.zeros((size, x.shape[1]), x.dtype)
    padded[:c] = x
    s, pos, binding = _rerank(padded, np.arange(size) < c, vectors, np.int32(concept), k=k_run)
    s, pos = np.asarray(s), np.asarray(pos)
    keep = pos < c
    return s[keep][:k], pos[keep][:k], int(binding)


def _fetch(index, p: np.ndarray, per_probe: int, n_rows: int, live) -> tuple[np.ndarray, float]:
    """Live candidate rows of probes ``p`` (P, D) and the lowest bound no fetched row is under
    (``-inf`` where a probe saw every row it could reach)."""
    with _one_thread():
        bound, ids = index.search(np.ascontiguousarray(p, np.float32), per_probe)
    got = np.unique(ids[(ids >= 0) & (ids < n_rows)])
    if live is not None:
        got = got[live[got]]
    # a probe that fetched every row, or fewer than it asked for, saw them all
    full = (ids >= 0).all(axis=1) & (per_probe < index.ntotal)
    return got, float(np.where(full, bound[:, -1], -np.inf).min())


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
    """Top-``k`` per query through ``index`` (ids: rows of ``array``, ``live`` ones kept),
    ``max(candidates, 4 k)`` per probe, re-ranked as ``dtype``; ``exact`` only with
    ``exhaustive_exact`` and some probe's last fetched score <= the k-th exact score.

    The first concept's probe ``q - w n_1`` runs alone first. Every row of the DRC top-k has
    ``x.p >= s_k`` for each probe ``p``, so one an exhaustive search by ``p`` missed ranks below
    all of its candidates; if ``k`` of those score ``x.p`` (their DRC equals it), they already
    fill the top-k and the other probes cannot add to it. Under IVF that holds for the lists
    ``p`` probed: a row in another list that ``q``'s probe would reach can be missed, one more
    approximation that recall against the exact scan measures. Otherwise ``q`` and the other
    concepts' probes run too (``x.n < 0`` for most candidates: DRC is ``x.q`` there)."""
    n_rows = array.shape[0]
    per_probe = int(min(max(candidates, 4 * k), max(1, index.ntotal)))
    if nprobe is not None:
        set_nprobe(index, nprobe)
    # on the host once: slicing device arrays per query costs more than a probe at 100k
    vectors = QueryVectors(*(None if v is None else np.asarray(v, np.float32) for v in vectors))
    plist, concepts = probes(vectors), _first_concepts(vectors)
    nq = len(plist)
    scores = np.full((nq, k), -np.inf, np.float32)
    rows = np.full((nq, k), -1, np.int64)
    counts = np.zeros(nq, np.int64)
    exact = np.zeros(nq, bool)

    def ranked(got, one, concept):
        x = np.asarray(array[got])
        if dtype is not None:
            x = x.astype(dtype, copy=False)
        return x.dtype, *rerank(x, one, k, concept)

    for i, p in enumerate(plist):
        one = QueryVectors(*(None if v is None else v[i : i + 1] for v in vectors))
        alone = len(p) > 1
        got, last = _fetch(index, p[1:2] if alone else p, per_probe, n_rows, live)
        if len(got):
            kind, s, pos, binding = ranked(got, one, concepts[i])
        if alone and (not len(got) or binding < k):
            more, more_last = _fetch(index, np.delete(p, 1, axis=0), per_probe, n_rows, live)
            got, last = np.union1d(got, more), min(last, more_last)
            if len(got):
                kind, s, pos, _ = ranked(got, one, concepts[i])
        counts[i] = len(got)
        if not len(got):
            continue
        scores[i, : len(s)], rows[i, : len(s)] = s, got[pos]
        tol = 0.0 if kind == np.float32 else 2e-2  # half-precision rounding
        # a probe that saw every row (``last`` -inf) leaves nothing out, even with fewer than k
        exact[i] = exhaustive_exact and (
            last == -np.inf or (len(s) == k and bool(s[-1] >= last + tol))
        )
    return AnnResult(scores, rows, counts, exact)


def _first_concepts(vectors: QueryVectors) -> list[int]:
    """Per query the index of its first present (non-zero) concept, 0 without one."""
    if vectors.neg is None:
        return [0] * len(vectors.q)
    neg = np.asarray(vectors.neg, np.float32)
    neg = neg[:, None] if neg.ndim == 2 else neg
    present = np.any(neg != 0, axis=2)
    return [int(np.argmax(row)) for row in present]


@contextlib.contextmanager
def _one_thread():
    """faiss on one thread. Splitting one query's lists over threads (``parallel_mode = 1``) is
    faster on an idle machine but stalls tens of ms whenever another process holds a core
    (benchmarks/RESULTS.md "ANN search"); by default faiss splits only a batch's queries."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def faiss_nlist(index) -> int:
    """IVF lists of ``index``, behind any transform."""
    import faiss

    return int(faiss.extract_index_ivf(index).nlist)


def faiss_nprobe(index) -> int:
    import faiss

    return int(faiss.extract_index_ivf(index).nprobe)


def set_nprobe(index, nprobe: int) -> None:
    import faiss

    faiss.extract_index_ivf(index).nprobe = int(nprobe)
