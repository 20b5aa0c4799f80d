"""The retrieval engine: streamed, device-sharded top-k over any method's query vectors.

Method-agnostic: it scores :class:`~drc_jax.scoring.QueryVectors` ``(q, neg, w_rep)`` as
``images.q - w_rep * max(images.neg, 0)`` (:func:`~drc_jax.scoring.score_vectors`), whichever
method made them (:func:`~drc_jax.scoring.query_vectors`). Images are scored a chunk at a time and
merged into a running top-k, so memory stays O(Q k + Q chunk) however large N is; with a mesh each
device streams its shard. A search whose whole score matrix is small (a person's handful of
queries, up to :data:`ONE_PASS_SCORES` scores per shard) is planned as one pass instead: one GEMM
over the images as they lie, q and neg rows stacked (``score_vectors(..., stacked=True)``), and one
``lax.top_k``. :func:`top_k_memory` plans a search from shapes alone.

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

from drc_jax.scoring import QueryVectors, score_vectors

STORAGE_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
"""Image dtypes searched as stored; anything else is searched in float32."""
DEFAULT_CHUNK = 8192
"""Images per streamed step when the whole score matrix is too large for one pass."""
ONE_PASS_SCORES = 1 << 25
"""Largest (GEMM rows x shard images) score matrix searched in one pass (128 MiB of f32): e.g. 16
DRC queries (32 rows) over 1M images. Larger searches stream :data:`DEFAULT_CHUNK` at a time."""
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
    """Half-precision images as their raw uint16 bits (other dtypes unchanged), for the loop.

    XLA's CPU backend rewrites a bf16/f16 while-loop operand to f32 up front, materialising an
    f32 copy of the whole image set (memory O(N), not O(chunk)); uint16 bits pass through
    untouched and :func:`_from_bits` restores each chunk exactly and for free. It runs before the
    jit (one copy): inside it, XLA:CPU materialises the converted set as a temporary as well.
    """
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


def _one_pass(images, n_valid, offset, vectors, gt_index, valid=None, *, k, dtype, axis):
    """Score a whole shard (M, D) at once: one GEMM, one ``lax.top_k``; the same outputs as
    :func:`_stream_shard`. The ground truth's score is read from the very matrix it is ranked in
    (the shard that holds it broadcasts it), so its duplicates tie with it bit for bit."""
    m = images.shape[0]
    idx = offset + jnp.arange(m, dtype=jnp.int32)
    s = _score(images, vectors, dtype)
    bad = ~jnp.isfinite(s[0])  # see _stream_shard
    if axis is not None:  # shards of a mesh end in padding rows; a single device has none
        real = idx < n_valid
        bad = bad & real
        s = jnp.where(real[None, :], s, -jnp.inf)
    if valid is not None:  # rows outside the caller's filter are never retrieved
        s = jnp.where(valid[None, :], s, -jnp.inf)
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
    if m < k:  # a shard smaller than k (several devices, tiny corpus): fill as _stream_shard does
        fill = ((0, 0), (0, k - m))
        best = jnp.pad(best, fill, constant_values=-jnp.inf)
        best_idx = jnp.pad(best_idx, fill, constant_values=-1)
    return best, best_idx, above, n_bad, first_bad


def _stream_shard(
    images, n_valid, offset, vectors, valid=None, *, gt_score, gt_index, k, chunk, dtype, axis
):
    """Scan one shard of images (M, D), M >= chunk, in chunks, keeping a running top-k and
    ground-truth count.

    Memory is O(Q k + Q chunk): no (Q, M) matrix is ever built, and the images are sliced where
    they lie (M need not be a multiple of ``chunk``: the last ``chunk`` rows are scored once more
    and only their unseen rows kept), so they are never copied. ``offset`` is the shard's first
    global image index; rows at or past ``n_valid`` (global) are padding and never retrieved.

    Non-finite image rows are found on the way, at no extra pass over the images: with finite
    query vectors (checked by :func:`top_k`) a NaN or inf anywhere in an image row makes its score
    non-finite for every query (``NaN * 0`` and ``inf * 0`` are NaN), so query 0's scores, which a
    real query always fills, tell. Returns their count and the first such global row too.
    """
    m = images.shape[0]
    nq = vectors.q.shape[0]
    full = m - m % chunk  # rows in whole chunks

    def update(carry, block, start, seen=0):
        best, best_idx, above, n_bad, first_bad = carry
        s = _score(block, vectors, dtype)
        local = start + jnp.arange(chunk, dtype=jnp.int32)
        idx = offset + local
        real = (idx < n_valid) & (local >= seen)  # not padding, not scored before
        bad = real & ~jnp.isfinite(s[0])
        n_bad = n_bad + jnp.sum(bad, dtype=jnp.int32)
        first_bad = jnp.minimum(first_bad, jnp.min(jnp.where(bad, idx, _NO_ROW)))
        if valid is not None:
            real = real & jax.lax.dynamic_slice_in_dim(valid, start, chunk)
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
    if full < m:  # the remainder: the last chunk rows, of which those before ``full`` were seen
        out = update(out, images[m - chunk :], m - chunk, seen=full)
    return out


def _gt_scores(gt_rows, vectors, chunk, dtype):
    """(Q,) score of query i against its ground-truth row ``gt_rows[i]``, computed by the very
    (Q, D) x (D, chunk) product the stream scores images with, so that the ground truth and an
    exact duplicate of it score bit for bit the same and the tie goes to the ground truth. (A
    row-wise dot product sums in another order: about half the duplicated ground truths would
    then lose a rank to their own copy.)"""
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
def _top_k_jit(images, n_valid, vectors, gt_index, valid=None, *, k, chunk, mesh, with_gt, dtype):
    """One query block's search; ``n_valid`` (the unpadded image count) is traced, so on a mesh
    a corpus that grows within one padded shape reuses the executable. A ``chunk`` as large as a
    shard searches it in one pass (:func:`_one_pass`), else streamed (:func:`_stream_shard`).
    Returns ``(best, best_idx, gt_rank, n_bad, first_bad)``."""
    one_pass = chunk >= images.shape[0] // (1 if mesh is None else mesh.size)
    if one_pass:
        gt_score = None  # read from the shard's score matrix itself
        gt_index = gt_index if with_gt else None
        stream = functools.partial(_one_pass, k=k, dtype=dtype)
    else:
        gt_score = _gt_scores(images[gt_index], vectors, chunk, dtype) if with_gt else None
        stream = functools.partial(_stream_shard, gt_score=gt_score, k=k, chunk=chunk, dtype=dtype)
    if mesh is None:
        best, best_idx, above, n_bad, first_bad = stream(
            images, n_valid, 0, vectors, gt_index=gt_index, valid=valid, axis=None
        )
    else:
        from jax.sharding import PartitionSpec as P

        from drc_jax.parallel import DATA_AXIS

        shard_rows = images.shape[0] // mesh.size

        def local(img, n_valid, vectors, gt_index, valid):
            offset = jax.lax.axis_index(DATA_AXIS) * shard_rows
            b, bi, ab, nb, fb = stream(
                img, n_valid, offset, vectors, gt_index=gt_index, valid=valid, axis=DATA_AXIS
            )
            psum = functools.partial(jax.lax.psum, axis_name=DATA_AXIS)
            return b[None], bi[None], psum(ab), psum(nb), jax.lax.pmin(fb, DATA_AXIS)

        best, best_idx, above, n_bad, first_bad = jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P(DATA_AXIS), P(), P(), P(), P(DATA_AXIS) if valid is not None else P()),
            out_specs=(P(DATA_AXIS), P(DATA_AXIS), P(), P(), P()),
        )(images, n_valid, vectors, gt_index, valid)
        # Merge the per-device top-k lists: (devices, Q, k) -> (Q, devices * k) -> (Q, k).
        nq = vectors.q.shape[0]
        best = jnp.moveaxis(best, 0, 1).reshape(nq, -1)
        best_idx = jnp.moveaxis(best_idx, 0, 1).reshape(nq, -1)
        best, pos = jax.lax.top_k(best, k)
        best_idx = jnp.take_along_axis(best_idx, pos, axis=1)
    return best, best_idx, (above + 1 if with_gt else None), n_bad, first_bad


def _plan(n: int, nq: int, rows_per_query: int, chunk_size, n_dev: int, query_block: int):
    """``(chunk, padded_n, block, n_blocks)``: the image chunk, the image count padded to equal
    shards (no padding on one device), and the equal query blocks a search of ``nq >= 1``
    queries runs as. ``chunk_size=None`` picks one pass (chunk = shard) when a block's
    ``block * rows_per_query`` GEMM rows times the shard's images are at most
    :data:`ONE_PASS_SCORES`, else :data:`DEFAULT_CHUNK`."""
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
    """Bytes one query block of a single-device :func:`top_k` search needs, read from the compiled
    executable (compiled from shapes only: nothing of that size is allocated).

    ``repulsion`` says whether the query vectors carry a repulsion term (DRC: yes; CLIP and
    SpaceVLM: no). ``temp`` is the scratch memory, O(block k + block chunk) whatever
    ``num_images``; ``argument`` is dominated by the images; ``block``/``blocks`` say how the
    queries are split; ``chunk`` equal to ``num_images`` means one pass. ``chunk_size`` as in
    :func:`top_k`. Use it to size a search before running it (benchmarks/bench_topk.py prints it
    for corpus-scale N).
    """
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
    if chunk < padded:  # streamed: as top_k carries them
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
    """Per field of ``vectors``: (count, first) of rows (axis 0) holding a NaN or inf, fused on
    device so that only these scalars come back to the host."""

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
    """Streamed top-``k`` retrieval of every query over ``images`` (N, D), best first.

    ``vectors`` are any method's :class:`~drc_jax.scoring.QueryVectors` (from
    :func:`~drc_jax.scoring.query_vectors`). Images are scored ``chunk_size`` at a time and merged
    into a running top-k, so memory stays O(Q k + Q chunk) however large N is; queries go
    ``query_block`` at a time. With a ``mesh`` the image set is sharded over its ``"data"`` axis,
    each device streams its shard and the per-device lists are merged, so corpora larger than one
    device's memory work. ``chunk_size=None`` (the default) plans it: each shard in one pass when
    a query block's score matrix over it holds at most :data:`ONE_PASS_SCORES` scores (a few
    queries: one GEMM over the images as stored, no copy), else :data:`DEFAULT_CHUNK` images at a
    time. Both plans rank identically.

    ``gt_index`` (Q,) gives each query's ground-truth image; ``gt_rank`` is then
    ``1 + #{images scoring strictly higher}`` (NegBench's 1-indexed rank; ties resolve in the
    ground truth's favour). ``image_dtype=jnp.bfloat16`` (or float16) halves image memory and
    bandwidth, with f32 accumulation; other dtypes than f32/bf16/f16 are searched in f32.

    Validated (``ValueError`` naming the first bad row): query vectors finite and as wide as the
    images and ``gt_index`` inside ``[0, N)``, before anything is compiled; images finite (a NaN
    row would otherwise win every query, and a NaN ground truth would get rank 1: drop or
    re-encode such items first), found while they are streamed, so clean images cost no extra
    pass. No queries give empty results.

    ``valid`` (N,) bool restricts the search to those images (a filter applied inside the
    search, so each query still gets its best ``k`` valid images); slots beyond the valid count
    come back with score ``-inf``.
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
    n_dev = 1 if mesh is None else mesh.size
    rows = _gemm_rows(vectors) // nq
    chunk, padded, block, n_blocks = _plan(n, nq, rows, chunk_size, n_dev, query_block)
    if chunk < padded // n_dev:
        # Streamed: f32 images are searched where they lie; half-precision ones cost one
        # bit-copy (_to_bits). One pass reads them as they lie whatever the dtype.
        images = _to_bits(images)
    if valid is not None:
        valid = np.asarray(valid, bool)
        if valid.shape != (n,):
            raise ValueError(f"valid must be a ({n},) bool mask of the images, got {valid.shape}")
        valid = jnp.asarray(np.pad(valid, (0, padded - n)))
    if padded != n:
        images = jnp.pad(images, ((0, padded - n), (0, 0)))
    if mesh is not None:
        from drc_jax.parallel import batch_sharding

        images = jax.device_put(images, batch_sharding(mesh))
        if valid is not None:
            valid = jax.device_put(valid, batch_sharding(mesh))

    # Equal query blocks (one compiled shape); the last is zero-padded and its extra rows dropped.
    # A single block (a person's query) goes in as it is: no eager op before the search.
    pad_q = n_blocks * block - nq
    if pad_q:
        pad = lambda x: jnp.pad(x, ((0, pad_q),) + ((0, 0),) * (x.ndim - 1))  # noqa: E731
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
                valid,
                k=k,
                chunk=chunk,
                mesh=mesh,
                with_gt=with_gt,
                dtype=dtype,
            )
        )
    # Every block streams every image, so the first block's count says it (two scalars).
    n_bad, first_bad = jax.device_get(outs[0][3:])
    if n_bad:
        raise ValueError(
            f"image row {first_bad} is not finite ({n_bad} such rows): it would outrank every "
            "finite image; drop or re-encode those items before searching"
        )
    if n_blocks == 1 and not pad_q:  # nothing to join
        return TopK(*outs[0][:2], outs[0][2] if with_gt else None)
    scores = jnp.concatenate([o[0] for o in outs])[:nq]
    indices = jnp.concatenate([o[1] for o in outs])[:nq]
    gt_rank = jnp.concatenate([o[2] for o in outs])[:nq] if with_gt else None
    return TopK(scores, indices, gt_rank)
