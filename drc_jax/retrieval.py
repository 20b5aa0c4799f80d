"""The retrieval engine: streamed, device-sharded top-k over any method's query vectors.

Method-agnostic: it scores :class:`~drc_jax.scoring.QueryVectors` ``(q, neg, w_rep)`` as
``images.q - w_rep * max(images.neg, 0)`` (:func:`~drc_jax.scoring.score_vectors`), whichever
method made them (:func:`~drc_jax.scoring.query_vectors`). Images are scored a chunk at a time and
merged into a running top-k, so memory stays O(Q k + Q chunk) however large N is; with a mesh each
device streams its shard. :func:`top_k_memory` plans a search from shapes alone.

Usage::

    vectors = query_vectors("drc", queries, DRCParams())
    result = top_k(images, vectors, 10, gt_index=gt)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.scoring import QueryVectors, score_rows, score_vectors

STORAGE_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
"""Image dtypes searched as stored; anything else is searched in float32."""


class TopK(NamedTuple):
    """Streamed retrieval result: best ``k`` (Q, k) scores and image indices, best first, and the
    1-indexed rank of each query's ground-truth image (Q,) when ``gt_index`` was given."""

    scores: jax.Array
    indices: jax.Array
    gt_rank: jax.Array | None


def _merge_top_k(scores_a, idx_a, scores_b, idx_b, k):
    s = jnp.concatenate([scores_a, scores_b], axis=1)
    i = jnp.concatenate([idx_a, idx_b], axis=1)
    best, pos = jax.lax.top_k(s, k)
    return best, jnp.take_along_axis(i, pos, axis=1)


def _to_bits(images: jax.Array) -> jax.Array:
    """Half-precision images as their raw uint16 bits (other dtypes unchanged), for the loop.

    XLA's CPU backend rewrites a bf16/f16 while-loop operand to f32 up front, materialising an
    f32 copy of the whole image set (memory O(N), not O(chunk)); uint16 bits pass through
    untouched and :func:`_from_bits` restores each chunk exactly and for free.
    """
    if images.dtype in (jnp.bfloat16, jnp.float16):
        return jax.lax.bitcast_convert_type(images, jnp.uint16)
    return images


def _from_bits(x: jax.Array, dtype) -> jax.Array:
    """Inverse of :func:`_to_bits` for images stored as ``dtype``."""
    if x.dtype == jnp.uint16:
        return jax.lax.bitcast_convert_type(x, dtype)
    return x


def _stream_shard(images, n_valid, offset, vectors, gt_score, gt_index, *, k, chunk, dtype, axis):
    """Scan one shard of images (M, D) in chunks, keeping a running top-k and ground-truth count.

    Memory is O(Q k + Q chunk): no (Q, M) matrix is ever built. ``offset`` is the shard's first
    global image index; rows at or past ``n_valid`` (global) are padding and never retrieved.
    """
    m, dim = images.shape
    nq = vectors.q.shape[0]
    chunks = images.reshape(m // chunk, chunk, dim)

    def step(carry, xs):
        best, best_idx, above = carry
        block, start = xs
        s = score_vectors(_from_bits(block, dtype), vectors)
        idx = offset + start + jnp.arange(chunk, dtype=jnp.int32)
        s = jnp.where((idx < n_valid)[None, :], s, -jnp.inf)
        if gt_score is not None:
            beats = (s > gt_score[:, None]) & (idx[None, :] != gt_index[:, None])
            above = above + jnp.sum(beats, axis=1, dtype=jnp.int32)
        cs, cpos = jax.lax.top_k(s, min(k, chunk))
        best, best_idx = _merge_top_k(best, best_idx, cs, idx[cpos], k)
        return (best, best_idx, above), None

    init = (
        jnp.full((nq, k), -jnp.inf, jnp.float32),
        jnp.full((nq, k), -1, jnp.int32),
        jnp.zeros((nq,), jnp.int32),
    )
    if axis is not None:  # inside shard_map the carry varies over the mesh axis
        init = jax.tree_util.tree_map(lambda x: jax.lax.pcast(x, axis, to="varying"), init)
    starts = jnp.arange(0, m, chunk, dtype=jnp.int32)
    (best, best_idx, above), _ = jax.lax.scan(step, init, (chunks, starts))
    return best, best_idx, above


@functools.partial(jax.jit, static_argnames=("k", "chunk", "mesh", "with_gt", "n_valid", "dtype"))
def _top_k_jit(images, vectors, gt_index, *, k, chunk, mesh, with_gt, n_valid, dtype):
    gt_score = score_rows(_from_bits(images[gt_index], dtype), vectors) if with_gt else None
    stream = functools.partial(_stream_shard, k=k, chunk=chunk, dtype=dtype)
    if mesh is None:
        best, best_idx, above = stream(images, n_valid, 0, vectors, gt_score, gt_index, axis=None)
    else:
        from jax.sharding import PartitionSpec as P

        from drc_jax.parallel import DATA_AXIS

        shard_rows = images.shape[0] // mesh.size

        def local(img, vectors, gt_score, gt_index):
            offset = jax.lax.axis_index(DATA_AXIS) * shard_rows
            b, bi, ab = stream(img, n_valid, offset, vectors, gt_score, gt_index, axis=DATA_AXIS)
            return b[None], bi[None], jax.lax.psum(ab, DATA_AXIS)

        best, best_idx, above = jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P(DATA_AXIS), P(), P(), P()),
            out_specs=(P(DATA_AXIS), P(DATA_AXIS), P()),
        )(images, vectors, gt_score, gt_index)
        # Merge the per-device top-k lists: (devices, Q, k) -> (Q, devices * k) -> (Q, k).
        nq = vectors.q.shape[0]
        best = jnp.moveaxis(best, 0, 1).reshape(nq, -1)
        best_idx = jnp.moveaxis(best_idx, 0, 1).reshape(nq, -1)
        best, pos = jax.lax.top_k(best, k)
        best_idx = jnp.take_along_axis(best_idx, pos, axis=1)
    return best, best_idx, (above + 1 if with_gt else None)


def _plan(n: int, nq: int, chunk_size: int, n_dev: int, query_block: int):
    """``(chunk, padded_n, block, n_blocks)``: the image chunk, the image count padded to whole
    chunks on every device, and the equal query blocks a search of ``nq >= 1`` queries runs as."""
    per_dev = -(-n // n_dev)
    chunk = int(max(1, min(chunk_size, per_dev)))
    padded = -(-per_dev // chunk) * chunk * n_dev
    n_blocks = -(-nq // max(1, query_block))
    return chunk, padded, -(-nq // n_blocks), n_blocks


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
    chunk_size: int = 8192,
    image_dtype=jnp.float32,
    query_block: int = 4096,
    with_gt: bool = True,
) -> dict[str, int]:
    """Bytes one query block of a single-device :func:`top_k` search needs, read from the compiled
    executable (compiled from shapes only: nothing of that size is allocated).

    ``repulsion`` says whether the query vectors carry a repulsion term (DRC: yes; CLIP and
    SpaceVLM: no). ``temp`` is the scratch memory, O(block k + block chunk) whatever
    ``num_images``; ``argument`` is dominated by the images; ``block``/``blocks`` say how the
    queries are split. Use it to size a search before running it (benchmarks/bench_topk.py
    prints it for corpus-scale N).
    """
    if num_queries < 1 or num_images < 1:
        raise ValueError(
            f"top_k_memory needs >= 1 query and image, got {num_queries} and {num_images}"
        )
    chunk, padded, block, n_blocks = _plan(num_images, num_queries, chunk_size, 1, query_block)
    shape = jax.ShapeDtypeStruct
    dtype = _storage_dtype(image_dtype)
    images = jax.eval_shape(_to_bits, shape((padded, dim), dtype))  # as top_k carries them
    vec = shape((block, dim), jnp.float32)
    vectors = (
        QueryVectors(vec, vec, shape((block,), jnp.float32)) if repulsion else (QueryVectors(vec))
    )
    compiled = _top_k_jit.lower(
        images,
        vectors,
        shape((block,), jnp.int32),
        k=int(min(k, num_images)),
        chunk=chunk,
        mesh=None,
        with_gt=with_gt,
        n_valid=num_images,
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


def _first_nonfinite_rows(x: jax.Array) -> np.ndarray:
    """Indices of rows (axis 0) of ``x`` holding a NaN or inf."""
    axes = tuple(range(1, x.ndim))
    return np.flatnonzero(~np.asarray(jnp.isfinite(x).all(axis=axes) if axes else jnp.isfinite(x)))


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
    for name, x in zip(QueryVectors._fields, vectors, strict=True):
        bad = [] if x is None else _first_nonfinite_rows(x)
        if len(bad):
            raise ValueError(
                f"query {bad[0]} has a non-finite {name} ({len(bad)} such queries): a strength "
                "outside 0..3 or a NaN/inf text embedding; check the decomposition and encoder"
            )
    return vectors


def top_k(
    images,
    vectors: QueryVectors,
    k: int,
    *,
    gt_index=None,
    chunk_size: int = 8192,
    mesh=None,
    image_dtype=None,
    query_block: int = 4096,
) -> TopK:
    """Streamed top-``k`` retrieval of every query over ``images`` (N, D), best first.

    ``vectors`` are any method's :class:`~drc_jax.scoring.QueryVectors` (from
    :func:`~drc_jax.scoring.query_vectors`). Images are scored ``chunk_size`` at a time and merged
    into a running top-k, so memory stays O(Q k + Q chunk) however large N is; queries go
    ``query_block`` at a time. With a ``mesh`` the image set is sharded over its ``"data"`` axis,
    each device streams its shard and the per-device lists are merged, so corpora larger than one
    device's memory work.

    ``gt_index`` (Q,) gives each query's ground-truth image; ``gt_rank`` is then
    ``1 + #{images scoring strictly higher}`` (NegBench's 1-indexed rank; ties resolve in the
    ground truth's favour). ``image_dtype=jnp.bfloat16`` (or float16) halves image memory and
    bandwidth, with f32 accumulation; other dtypes than f32/bf16/f16 are searched in f32.

    Validated before anything is compiled (``ValueError`` naming the first bad row): images must
    be finite (a NaN row would otherwise win every query, and a NaN ground truth would get rank
    1: drop or re-encode such items first), query vectors finite and as wide as the images,
    ``gt_index`` inside ``[0, N)``. No queries give empty results.
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
        gt_all = jnp.zeros((nq,), jnp.int32)
    if nq == 0:
        empty = jnp.zeros((0, k), jnp.float32), jnp.zeros((0, k), jnp.int32)
        return TopK(*empty, jnp.zeros((0,), jnp.int32) if with_gt else None)
    bad = _first_nonfinite_rows(images)
    if bad.size:
        raise ValueError(
            f"image row {bad[0]} is not finite ({bad.size} such rows): it would outrank every "
            "finite image; drop or re-encode those items before searching"
        )

    images = _to_bits(images)
    n_dev = 1 if mesh is None else mesh.size
    chunk, padded, block, n_blocks = _plan(n, nq, chunk_size, n_dev, query_block)
    if padded != n:
        images = jnp.pad(images, ((0, padded - n), (0, 0)))
    if mesh is not None:
        from drc_jax.parallel import batch_sharding

        images = jax.device_put(images, batch_sharding(mesh))

    # Equal query blocks (one compiled shape); the last is zero-padded and its extra rows dropped.
    pad_q = n_blocks * block - nq
    pad = lambda x: jnp.pad(x, ((0, pad_q),) + ((0, 0),) * (x.ndim - 1))  # noqa: E731
    vectors, gt_all = jax.tree_util.tree_map(pad, (vectors, gt_all))
    outs = []
    for lo in range(0, nq + pad_q, block):
        outs.append(
            _top_k_jit(
                images,
                QueryVectors(*(None if x is None else x[lo : lo + block] for x in vectors)),
                gt_all[lo : lo + block],
                k=k,
                chunk=chunk,
                mesh=mesh,
                with_gt=with_gt,
                n_valid=n,
                dtype=dtype,
            )
        )
    scores = jnp.concatenate([o[0] for o in outs])[:nq]
    indices = jnp.concatenate([o[1] for o in outs])[:nq]
    gt_rank = jnp.concatenate([o[2] for o in outs])[:nq] if with_gt else None
    return TopK(scores, indices, gt_rank)
