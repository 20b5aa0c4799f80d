"""Top-k for a handful of queries over a whole index in one pass: the search server's hot path.

:func:`drc_jax.top_k` streams images in chunks so that thousands of queries fit in memory; a
person's query is 1 to 4 rows, for which the (rows, N) score matrix is small (16 MB at N = 1M) and
one jitted GEMM + ``lax.top_k`` over the whole (bf16) index is fastest: the images are read once,
in place (no padding, no bit-cast copy), and every method's score

    score = images . q - w_rep * max(images . neg, 0)        (CLIP and SpaceVLM: w_rep = 0)

takes a single GEMM over the stacked rows [q; neg]. Rows are zero-padded to a multiple of
:data:`ROW_MULTIPLE`: XLA:CPU runs a bf16 GEMM with one row as a slow GEMV (~10x slower than four
rows on a Zen 4; benchmarks/RESULTS.md). Images live on one device here; many queries, or an index
sharded over several devices, go through the streamed top_k.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.scoring import METHODS, DRCParams, Queries, query_vectors

ROW_MULTIPLE = 4
DEFAULT_PARAMS = DRCParams()
MAX_QUERIES = 16  # more queries than this go through the streamed drc_jax.top_k


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@functools.partial(jax.jit, static_argnames=("method", "k"))
def _rank(images, queries: Queries, params: DRCParams, *, method: str, k: int):
    """One jitted program per (method, k, shapes): query vectors, the stacked GEMM, top-k."""
    v = query_vectors(method, queries, params)  # QueryVectors(q, neg, w_rep); neg may be (Q, M, D)
    nq, dim = v.q.shape
    negs = None if v.neg is None else v.neg.reshape(-1, dim)  # (Q * M, D)
    rows = v.q if negs is None else jnp.concatenate([v.q, negs.astype(v.q.dtype)])
    pad = _round_up(max(rows.shape[0], ROW_MULTIPLE), ROW_MULTIPLE) - rows.shape[0]
    rows = jnp.pad(rows, ((0, pad), (0, 0)))
    cd = images.dtype if images.dtype in (jnp.bfloat16, jnp.float16) else jnp.float32
    sims = jax.lax.dot_general(
        rows.astype(cd), images.astype(cd), (((1,), (1,)), ((), ())),
        preferred_element_type=jnp.float32,
    )  # fmt: skip
    s = sims[:nq]
    if negs is not None:  # the repulsion: the most similar negated concept of each query
        rep = sims[nq : nq + negs.shape[0]].reshape(nq, -1, sims.shape[1]).max(axis=1)
        s = s - v.w_rep[:, None] * jnp.maximum(rep, 0.0)
    return jax.lax.top_k(s, k)


def rank_top_k(
    images: jax.Array, queries: Queries, k: int, *, method: str, params: DRCParams = DEFAULT_PARAMS
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` ``(scores, indices)``, each (Q, k), of at most :data:`MAX_QUERIES` queries.

    Same scores as ``drc_jax.top_k(images, query_vectors(method, queries, params), k)``.
    """
    nq, n = len(queries), images.shape[0]
    if not 1 <= nq <= MAX_QUERIES:
        raise ValueError(f"rank_top_k takes 1..{MAX_QUERIES} queries, got {nq}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    scores, indices = _rank(images, queries, params, method=method, k=k)
    return np.asarray(scores), np.asarray(indices)
