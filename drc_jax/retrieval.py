"""Streamed, device-sharded top-k over any method's :class:`~drc_jax.scoring.QueryVectors`.

Images are scored a chunk at a time into a running top-k (memory O(Q k + Q chunk)); a small score
matrix is searched in one pass (one GEMM, one ``lax.top_k``). Usage::

    result = top_k(images, query_vectors("drc", queries, DRCParams()), 10, gt_index=gt)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.scoring import QueryVectors, score_vectors

STORAGE_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
"""Image dtypes searched as stored; anything else is searched in float32."""
DEFAULT_CHUNK = 8192
"""Images per streamed step when the whole score matrix is too large for one pass."""
ONE_PASS_SCORES = 1 << 25
"""Largest (GEMM rows x shard images) score matrix searched in one pass (128 MiB of f32)."""
STACK_ROWS = 32
"""GEMM rows (q and neg, all queries of a block) up to which they are stacked into one GEMM."""


class TopK(NamedTuple):
    """Streamed retrieval result: best ``k`` (Q, k) scores and image indices, best first, and the
    1-indexed rank of each query's ground-truth image (Q,) when ``gt_index`` was given."""

    scores: jax.Array
    indices: jax.Array
    gt_rank: jax.Array | None


_NO_ROW = np.iinfo(np.int32).max
"""The first non-finite image row when there is none."""


def _merge_top_k(scores_a, idx_a, scores_b, idx_b, k):
    s = jnp.concatenate([scores_a, scores_b], axis=1)
    i = jnp.concatenate([idx_a, idx_b], axis=1)
    best, pos = jax.lax.top_k(s, k)
    return best, jnp.take_along_axis(i, pos, axis=1)


def _to_bits(images: jax.Array) -> jax.Array:
    """bf16/f16 images as uint16 bits, outside jit: XLA:CPU copies a half loop operand to f32."""
    if images.dtype in (jnp.bfloat16, jnp.float16):
        return jax.lax.bitcast_convert_type(images, jnp.uint16)
    return images


def _from_bits(x: jax.Array, dtype) -> jax.Array:
    """Inverse of :func:`_to_bits` for images stored as ``dtype``."""
    if x.dtype == jnp.uint16:
        return jax.lax.bitcast_convert_type(x, dtype)
    return x


def _gemm_rows(vectors: QueryVectors) -> int:
    """Rows of a query block's similarity GEMMs: q, plus every neg concept."""
    q, neg = vectors.q, vectors.neg
    return q.shape[0] + (0 if neg is None else int(np.prod(neg.shape[:-1])))


def _score(images, vectors: QueryVectors, dtype) -> jax.Array:
    """(Q, chunk) scores of an image chunk (as :func:`_to_bits` carries it); few rows stacked."""
    return score_vectors(
        _from_bits(images, dtype), vectors, stacked=_gemm_rows(vectors) <= STACK_ROWS
    )


def _one_pass(images, n_valid, offset, vectors, gt_index, *, mask, k, dtype, axis):
    """:func:`_stream_shard`'s outputs in one GEMM; the ground truth's score comes from that matrix,
    so its exact duplicates tie with it."""
    m = images.shape[0]
    idx = offset + jnp.arange(m, dtype=jnp.int32)
    s = _score(images, vectors, dtype)
    bad = ~jnp.isfinite(s[0])
    if axis is not None or mask is not None:
        real = (idx < n_valid) if mask is None else (idx < n_valid) & mask
        bad = bad & real
        s = jnp.where(real[None, :], s, -jnp.inf)
    n_bad = jnp.sum(bad, dtype=jnp.int32)
    first_bad = jnp.min(jnp.where(bad, idx, _NO_ROW), initial=_NO_ROW)
    above = jnp.zeros((s.shape[0],), jnp.int32)
    if gt_index is not None:
        local = gt_index - offset
        mine = (local >= 0) & (local < m)
        got = jnp.take_along_axis(s, jnp.clip(local, 0, m - 1)[:, None], axis=1)[:, 0]
        gt_score = jnp.where(mine, got, -jnp.inf)
        if axis is not None:
            gt_score = jax.lax.pmax(gt_score, axis)
        beats = (s > gt_score[:, None]) & (idx[None, :] != gt_index[:, None])
        above = jnp.sum(beats, axis=1, dtype=jnp.int32)
    best, pos = jax.lax.top_k(s, min(k, m))
    best, best_idx = best, idx[pos]
    if m < k:
        fill = ((0, 0), (0, k - m))
        best = jnp.pad(best, fill, constant_values=-jnp.inf)
        best_idx = jnp.pad(best_idx, fill, constant_values=-1)
    return best, best_idx, above, n_bad, first_bad


def _stream_shard(
    images, n_valid, offset, vectors, *, mask, gt_score, gt_index, k, chunk, dtype, axis
):
    """Running top-k, ground-truth count and non-finite rows (count, first) of a shard (M >= chunk).

    Images are sliced in place; a remainder rescores the last ``chunk`` rows. With finite query
    vectors a non-finite image row makes query 0's score non-finite, so that finds bad rows.
    ``offset`` is the shard's first global row; rows from ``n_valid`` on are padding.
    """
    m = images.shape[0]
    nq = vectors.q.shape[0]
    full = m - m % chunk

    def update(carry, block, start, seen=0):
        best, best_idx, above, n_bad, first_bad = carry
        s = _score(block, vectors, dtype)
        local = start + jnp.arange(chunk, dtype=jnp.int32)
        idx = offset + local
        real = (idx < n_valid) & (local >= seen)
        if mask is not None:
            real = real & jax.lax.dynamic_slice_in_dim(mask, start, chunk)
        bad = real & ~jnp.isfinite(s[0])
        n_bad = n_bad + jnp.sum(bad, dtype=jnp.int32)
        first_bad = jnp.minimum(first_bad, jnp.min(jnp.where(bad, idx, _NO_ROW)))
        s = jnp.where(real[None, :], s, -jnp.inf)
        if gt_score is not None:
            beats = (s > gt_score[:, None]) & (idx[None, :] != gt_index[:, None])
            above = above + jnp.sum(beats, axis=1, dtype=jnp.int32)
        cs, cpos = jax.lax.top_k(s, min(k, chunk))
        best, best_idx = _merge_top_k(best, best_idx, cs, idx[cpos], k)
        return best, best_idx, above, n_bad, first_bad

    def step(carry, start):
        return update(carry, jax.lax.dynamic_slice_in_dim(images, start, chunk), start), None

    init = (
        jnp.full((nq, k), -jnp.inf, jnp.float32),
        jnp.full((nq, k), -1, jnp.int32),
        jnp.zeros((nq,), jnp.int32),
        jnp.zeros((), jnp.int32),
        jnp.full((), _NO_ROW, jnp.int32),
    )
    if axis is not None:  # inside shard_map the carry varies over the mesh axis
        init = jax.tree_util.tree_map(lambda x: jax.lax.pcast(x, axis, to="varying"), init)
    out, _ = jax.lax.scan(step, init, jnp.arange(0, full, chunk, dtype=jnp.int32))
    if full < m:
        out = update(out, images[m - chunk :], m - chunk, seen=full)
    return out


def _gt_scores(gt_rows, vectors, chunk, dtype):
    """(Q,) score of each query's ``gt_rows[i]`` by the stream's own GEMM, so an exact duplicate
    ties with it (a row-wise dot sums in another order)."""
    nq = gt_rows.shape[0]
    blocks = -(-nq // chunk)
    rows = jnp.pad(gt_rows, ((0, blocks * chunk - nq), (0, 0)))
    q = jnp.arange(nq, dtype=jnp.int32)

    def step(acc, start):
        s = _score(jax.lax.dynamic_slice_in_dim(rows, start, chunk), vectors, dtype)
        col = q - start
        mine = (col >= 0) & (col < chunk)
        got = jnp.take_along_axis(s, jnp.clip(col, 0, chunk - 1)[:, None], axis=1)[:, 0]
        return jnp.where(mine, got, acc), None

    init = jnp.zeros((nq,), jnp.float32)
    out, _ = jax.lax.scan(step, init, jnp.arange(0, blocks * chunk, chunk, dtype=jnp.int32))
    return out


@functools.partial(jax.jit, static_argnames=("k", "chunk", "mesh", "with_gt", "dtype"))
def _top_k_jit(images, n_valid, vectors, gt_index, mask, *, k, chunk, mesh, with_gt, dtype):
    """``(best, best_idx, gt_rank, n_bad, first_bad)`` of one query block; ``n_valid`` is traced so
    a corpus growing within one padded shape reuses the executable."""
    one_pass = chunk >= images.shape[0] // (1 if mesh is None else mesh.size)
    if one_pass:
        gt_score = None
        gt_index = gt_index if with_gt else None
        stream = functools.partial(_one_pass, k=k, dtype=dtype)
    else:
        gt_score = _gt_scores(images[gt_index], vectors, chunk, dtype) if with_gt else None
        stream = functools.partial(_stream_shard, gt_score=gt_score, k=k, chunk=chunk, dtype=dtype)
    if mesh is None:
        best, best_idx, above, n_bad, first_bad = stream(
            images, n_valid, 0, vectors, gt_index=gt_index, mask=mask, axis=None
        )
    else:
        from jax.sharding import PartitionSpec as P

        from drc_jax.parallel import DATA_AXIS

        shard_rows = images.shape[0] // mesh.size

        def local(img, n_valid, vectors, gt_index, mask):
            offset = jax.lax.axis_index(DATA_AXIS) * shard_rows
            b, bi, ab, nb, fb = stream(
                img, n_valid, offset, vectors, gt_index=gt_index, mask=mask, axis=DATA_AXIS
            )
            psum = functools.partial(jax.lax.psum, axis_name=DATA_AXIS)
            return b[None], bi[None], psum(ab), psum(nb), jax.lax.pmin(fb, DATA_AXIS)

        best, best_idx, above, n_bad, first_bad = jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P(DATA_AXIS), P(), P(), P(), P() if mask is None else P(DATA_AXIS)),
            out_specs=(P(DATA_AXIS), P(DATA_AXIS), P(), P(), P()),
        )(images, n_valid, vectors, gt_index, mask)
        nq = vectors.q.shape[0]
        best = jnp.moveaxis(best, 0, 1).reshape(nq, -1)
        best_idx = jnp.moveaxis(best_idx, 0, 1).reshape(nq, -1)
        best, pos = jax.lax.top_k(best, k)
        best_idx = jnp.take_along_axis(best_idx, pos, axis=1)
    return best, best_idx, (above + 1 if with_gt else None), n_bad, first_bad


def _plan(n: int, nq: int, rows_per_query: int, chunk_size, n_dev: int, query_block: int):
    """``(chunk, padded_n, block, n_blocks)``; ``chunk_size=None``: one pass (chunk = shard) if the
    block's score matrix fits :data:`ONE_PASS_SCORES`, else :data:`DEFAULT_CHUNK`."""
    per_dev = -(-n // n_dev)
    n_blocks = -(-nq // max(1, query_block))
    block = -(-nq // n_blocks)
    if chunk_size is None:
        fits = block * rows_per_query * per_dev <= ONE_PASS_SCORES
        chunk_size = per_dev if fits else DEFAULT_CHUNK
    chunk = int(max(1, min(chunk_size, per_dev)))
    return chunk, per_dev * n_dev, block, n_blocks


def _storage_dtype(dtype) -> jnp.dtype:
    dtype = jnp.dtype(dtype)
    return dtype if dtype in STORAGE_DTYPES else jnp.dtype(jnp.float32)


def top_k_memory(
    num_queries: int,
    num_images: int,
    dim: int,
    k: int = 10,
    *,
    repulsion: bool = True,
    chunk_size: int | None = None,
    image_dtype=jnp.float32,
    query_block: int = 4096,
    with_gt: bool = True,
) -> dict[str, int]:
    """Bytes (``temp``, ``argument``, ``output``) and plan of one query block of a single-device
    :func:`top_k`, compiled from shapes only. ``repulsion``: the vectors have a neg term (DRC)."""
    if num_queries < 1 or num_images < 1:
        raise ValueError(
            f"top_k_memory needs >= 1 query and image, got {num_queries} and {num_images}"
        )
    rows = 2 if repulsion else 1
    chunk, padded, block, n_blocks = _plan(
        num_images, num_queries, rows, chunk_size, 1, query_block
    )
    shape = jax.ShapeDtypeStruct
    dtype = _storage_dtype(image_dtype)
    images = shape((padded, dim), dtype)
    if chunk < padded:
        images = jax.eval_shape(_to_bits, images)
    vec = shape((block, dim), jnp.float32)
    vectors = (
        QueryVectors(vec, vec, shape((block,), jnp.float32)) if repulsion else (QueryVectors(vec))
    )
    compiled = _top_k_jit.lower(
        images,
        shape((), jnp.int32),
        vectors,
        shape((block,), jnp.int32),
        None,
        k=int(min(k, num_images)),
        chunk=chunk,
        mesh=None,
        with_gt=with_gt,
        dtype=dtype,
    ).compile()
    m = compiled.memory_analysis()
    return {
        "temp": int(m.temp_size_in_bytes),
        "argument": int(m.argument_size_in_bytes),
        "output": int(m.output_size_in_bytes),
        "block": block,
        "blocks": n_blocks,
        "chunk": chunk,
    }


@jax.jit
def _nonfinite_rows(vectors: QueryVectors):
    """Per field of ``vectors``: (count, first) of rows holding a NaN or inf, reduced on device."""

    def count(x):
        bad = ~jnp.isfinite(x).all(axis=tuple(range(1, x.ndim)))
        rows = jnp.arange(x.shape[0], dtype=jnp.int32)
        first = jnp.min(jnp.where(bad, rows, _NO_ROW), initial=_NO_ROW)
        return jnp.sum(bad, dtype=jnp.int32), first

    return jax.tree_util.tree_map(count, vectors)


def _check_vectors(vectors: QueryVectors, dim: int) -> QueryVectors:
    """Shapes and finiteness of query vectors (outside jit); returns them as f32."""
    q, neg, w_rep = vectors
    nq = q.shape[0] if q.ndim == 2 else -1
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(
            f"query vectors q have shape {q.shape}, expected (Q, {dim}) to match the "
            f"{dim}-d image embeddings; were queries and images encoded by the same CLIP?"
        )
    if (neg is None) != (w_rep is None):
        raise ValueError("query vectors need both neg and w_rep for a repulsion term, or neither")
    if neg is not None:
        if neg.shape[0] != nq or neg.shape[-1] != dim or neg.ndim not in (2, 3):
            raise ValueError(
                f"query vectors neg have shape {neg.shape}, expected ({nq}, [M,] {dim})"
            )
        if w_rep.shape != (nq,):
            raise ValueError(f"query vectors w_rep have shape {w_rep.shape}, expected ({nq},)")
    vectors = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), vectors)
    counts = jax.device_get(_nonfinite_rows(vectors))
    for name, found in zip(QueryVectors._fields, counts, strict=True):
        if found is not None and found[0]:
            raise ValueError(
                f"query {found[1]} has a non-finite {name} ({found[0]} such queries): a strength "
                "outside 0..3 or a NaN/inf text embedding; check the decomposition and encoder"
            )
    return vectors


def top_k(
    images,
    vectors: QueryVectors,
    k: int,
    *,
    gt_index=None,
    chunk_size: int | None = None,
    mesh=None,
    image_dtype=None,
    query_block: int = 4096,
    valid=None,
) -> TopK:
    """Top-``k`` of ``images`` (N, D) for each query of ``vectors``, best first.

    ``chunk_size=None`` plans one pass or :data:`DEFAULT_CHUNK` streaming (same ranking); a ``mesh``
    shards the images over ``"data"``. With ``gt_index`` (Q,), ``gt_rank`` is 1 + #{images scoring
    strictly higher} (NegBench's rank). bf16/f16 images are searched as stored, with f32 sums.
    ``valid`` (N,) bool filters the images inside the search (empty slots score ``-inf``).
    Raises ``ValueError`` on non-finite vectors or images, or a ``gt_index`` outside ``[0, N)``.
    """
    images = jnp.asarray(images, dtype=image_dtype)
    if images.ndim != 2 or images.shape[0] == 0:
        raise ValueError(f"top_k needs images of shape (N >= 1, D), got {images.shape}")
    if k < 1:
        raise ValueError(f"top_k needs k >= 1, got {k}")
    dtype = _storage_dtype(images.dtype)
    images = images.astype(dtype)
    n, dim = images.shape
    vectors = _check_vectors(QueryVectors(*vectors), dim)
    nq = vectors.q.shape[0]
    k = int(min(k, n))
    with_gt = gt_index is not None
    if with_gt:
        gt_np = np.asarray(gt_index)
        if gt_np.shape != (nq,) or (nq and not np.issubdtype(gt_np.dtype, np.integer)):
            raise ValueError(
                f"gt_index must be ({nq},) integer image indices, got {gt_np.dtype} {gt_np.shape}"
            )
        bad = np.flatnonzero((gt_np < 0) | (gt_np >= n))
        if bad.size:
            raise ValueError(
                f"gt_index out of range [0, {n}) for {bad.size} queries, first at query "
                f"{bad[0]} (value {gt_np[bad[0]]}); check that it indexes this image set"
            )
        gt_all = jnp.asarray(gt_np, jnp.int32)
    else:
        gt_all = None
    if nq == 0:
        empty = jnp.zeros((0, k), jnp.float32), jnp.zeros((0, k), jnp.int32)
        return TopK(*empty, jnp.zeros((0,), jnp.int32) if with_gt else None)
    mask = None
    if valid is not None:
        mask = np.asarray(valid, bool)
        if mask.shape != (n,):
            raise ValueError(f"valid must be a ({n},) bool mask of the images, got {mask.shape}")
    n_dev = 1 if mesh is None else mesh.size
    rows = _gemm_rows(vectors) // nq
    chunk, padded, block, n_blocks = _plan(n, nq, rows, chunk_size, n_dev, query_block)
    if chunk < padded // n_dev:
        images = _to_bits(images)
    if padded != n:
        images = jnp.pad(images, ((0, padded - n), (0, 0)))
    if mask is not None:
        mask = jnp.asarray(np.pad(mask, (0, padded - n)))
    if mesh is not None:
        from drc_jax.parallel import batch_sharding

        images = jax.device_put(images, batch_sharding(mesh))
        if mask is not None:
            mask = jax.device_put(mask, batch_sharding(mesh))

    # Equal query blocks share one executable; the last is zero-padded.
    pad_q = n_blocks * block - nq
    if pad_q:
        pad = lambda x: jnp.pad(x, ((0, pad_q),) + ((0, 0),) * (x.ndim - 1))
        vectors, gt_all = jax.tree_util.tree_map(pad, (vectors, gt_all))
    outs = []
    for lo in range(0, nq + pad_q, block):
        take = (lambda x: x) if n_blocks == 1 else (lambda x, lo=lo: x[lo : lo + block])
        outs.append(
            _top_k_jit(
                images,
                np.int32(n),
                jax.tree_util.tree_map(take, vectors),
                jax.tree_util.tree_map(take, gt_all),
                mask,
                k=k,
                chunk=chunk,
                mesh=mesh,
                with_gt=with_gt,
                dtype=dtype,
            )
        )
    # Every block streams every image, so the first block's bad-row count covers all.
    n_bad, first_bad = jax.device_get(outs[0][3:])
    if n_bad:
        raise ValueError(
            f"image row {first_bad} is not finite ({n_bad} such rows): it would outrank every "
            "finite image; drop or re-encode those items before searching"
        )
    if n_blocks == 1 and not pad_q:
        return TopK(*outs[0][:2], outs[0][2] if with_gt else None)
    scores = jnp.concatenate([o[0] for o in outs])[:nq]
    indices = jnp.concatenate([o[1] for o in outs])[:nq]
    gt_rank = jnp.concatenate([o[2] for o in outs])[:nq] if with_gt else None
    return TopK(scores, indices, gt_rank)
