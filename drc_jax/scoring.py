"""DRC scoring: pure, jit-able functions over unit-norm CLIP embeddings.

Shapes: ``images`` is (N, D); ``aff``, ``neg``, ``cf``, ``full`` are (Q, D); ``strength`` is (Q,)
int32 indexing :data:`STRENGTHS`. Every score function returns (Q, N). Nothing here does I/O or
reads globals beyond the constants below, so all of it composes with ``jit``, ``vmap`` and sharding.

The method (SpaceVLM-DRC):
- eq. 2, plain CLIP: ``s = images . full``. Used for captions without negation (strength 0).
- SpaceVLM's angular operator (eq. 8 as in SpaceVLM's public code, :func:`compose`) turns an
  affirmative direction ``a`` and a negated direction ``b`` into a unit direction rotated away
  from ``b``.
- Three directions, each from the operator with the strength's threshold ``t``:
  ``d1 = compose(aff, neg)``, ``d2 = compose(aff, cf)``, ``dctx = compose(full, neg)``.
- The score of a negated caption is
  ``w1 s1 + w2 s2 + wctx sctx - w_base * rho * max(images.neg, 0)`` with ``s_i = images . d_i``,
  (w1, w2, wctx) = (0.35, 0.35, 0.30), rho = 1.5, and (t, w_base) per strength:
  weak (0.94, 0.10), moderate (0.92, 0.20), strong (0.90, 0.30).

The three angular terms are linear in the image embedding, so they are scored as *one* matmul
against ``q = w1 d1 + w2 d2 + wctx dctx``; with the repulsion matmul, DRC costs two GEMMs.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

STRENGTHS = ("none", "weak", "moderate", "strong")
"""Negation strengths; a query's ``strength`` int is the index in this tuple."""

METHODS = ("clip", "spacevlm", "drc")
"""Scoring methods the paper compares (Table 1 rows)."""

OPERATORS = ("spacevlm", "paper_eq8")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["w1", "w2", "wctx", "rho", "t", "w_base"],
    meta_fields=["use_d1", "use_d2", "use_dctx", "use_repulsion", "operator"],
)
@dataclasses.dataclass(frozen=True)
class DRCParams:
    """Every constant of DRC, plus the switches of the paper's ablations.

    Numbers are pytree leaves (a sweep over ``rho`` can be traced or vmapped); switches are static.
    ``t`` and ``w_base`` are indexed by strength (:data:`STRENGTHS`); index 0 ("none") is unused.

    Ablations (paper Table 3): ``use_d1``, ``use_d2``, ``use_dctx`` select angular terms and
    ``use_repulsion`` the image-space repulsion. The weights of the enabled angular terms are
    renormalised to sum to one, so "d1 only" is exactly SpaceVLM's single direction and the
    repulsion keeps its scale relative to the angular part. Table 4 varies ``rho``.

    ``operator="spacevlm"`` is the operator of SpaceVLM's public code, which repels the negated
    concept; ``operator="paper_eq8"`` is the paper's printed eq. 8 (``+sin(alpha - theta/2)`` on
    the negated direction), which pulls toward it; kept only as a named ablation.
    """

    w1: float = 0.35
    w2: float = 0.35
    wctx: float = 0.30
    rho: float = 1.5
    t: tuple[float, float, float, float] = (1.0, 0.94, 0.92, 0.90)
    w_base: tuple[float, float, float, float] = (0.0, 0.10, 0.20, 0.30)
    use_d1: bool = True
    use_d2: bool = True
    use_dctx: bool = True
    use_repulsion: bool = True
    operator: str = "spacevlm"

    def __post_init__(self):
        if self.operator not in OPERATORS:
            raise ValueError(
                f"DRCParams.operator must be one of {OPERATORS}, got {self.operator!r}"
            )
        if not (self.use_d1 or self.use_d2 or self.use_dctx):
            raise ValueError("DRCParams needs at least one of use_d1, use_d2, use_dctx")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["aff", "neg", "cf", "full", "strength"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Queries:
    """Text embeddings of decomposed captions: (Q, D) unit-norm each, and strength (Q,) int32."""

    aff: jax.Array
    neg: jax.Array
    cf: jax.Array
    full: jax.Array
    strength: jax.Array

    def __len__(self) -> int:
        return self.full.shape[0]

    def take(self, idx) -> Queries:
        """Rows ``idx`` of every field (a slice or an index array)."""
        return jax.tree_util.tree_map(lambda x: x[idx], self)


def _dot(x: jax.Array, y: jax.Array) -> jax.Array:
    """Row-wise dot product of (..., D) arrays, accumulated in f32."""
    return jnp.sum(x.astype(jnp.float32) * y.astype(jnp.float32), axis=-1)


def _unit(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """``x / |x|`` along the last axis (zero rows stay zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


_DEGENERATE_SIN = 1e-4
"""Below this ``sin(theta)`` the operator leaves ``a`` unchanged (see :func:`compose`)."""


def compose(a: jax.Array, b: jax.Array, t, operator: str = "spacevlm") -> jax.Array:
    """SpaceVLM's angular operator, batched over leading axes (paper eq. 8, SpaceVLM's sign).

    alpha = acos(t), theta = acos(a.b). Where theta < 2 alpha the result is
    ``[sin(alpha + theta/2) a + sin(theta/2 - alpha) b] / sin(theta)``: the unit vector on the
    great circle through a and b at angle ``phi = alpha + theta/2`` from b, i.e. rotated *away*
    from b (its angle to a is ``alpha - theta/2``); elsewhere (a and b already at least
    ``2 alpha`` apart) it is ``a``. At theta = 2 alpha both branches give ``a``, so the operator
    is continuous there.

    It is evaluated in the equivalent, numerically stable form ``cos(phi) b + sin(phi) u`` with
    ``u`` the unit component of ``a`` orthogonal to ``b`` (substitute
    ``a = cos(theta) b + sin(theta) u`` into the formula above), and ``theta`` from
    ``atan2(|a - (a.b) b|, a.b)`` (orthogonalised twice), which stays accurate for nearly
    parallel a and b where ``acos`` of a rounded dot product does not. The result is unit-norm
    by construction.

    ``operator="paper_eq8"`` uses the paper's printed ``+sin(alpha - theta/2)`` on b, which
    moves the direction *toward* b (both coefficients are positive). That vector is not
    unit-norm, so it is renormalised; it is kept only as a named ablation.

    Inputs are renormalised, computation is f32. Degenerate pairs are safe: where
    ``sin(theta) < 1e-4`` (a == b, a == -b, or equal up to rounding, where the rotation plane
    is undefined) the result is ``a``, so it is always finite and unit-norm.
    """
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator {operator!r}; expected one of {OPERATORS}")
    a32 = _unit(a.astype(jnp.float32))
    b32 = _unit(b.astype(jnp.float32))
    t = jnp.asarray(t, jnp.float32)
    alpha = jnp.arccos(jnp.clip(t, -1.0, 1.0))
    cos_theta = jnp.clip(_dot(a32, b32), -1.0, 1.0)
    ortho = a32 - cos_theta[..., None] * b32  # sin(theta) u
    # A second Gram-Schmidt pass: for nearly parallel a, b the rounding of a.b leaves a component
    # along b of relative size eps / sin(theta) in the first, which would cost unit norm.
    ortho = ortho - _dot(ortho, b32)[..., None] * b32
    sin_theta = jnp.linalg.norm(ortho, axis=-1)
    theta = jnp.arctan2(sin_theta, cos_theta)
    active = (theta < 2.0 * alpha) & (sin_theta > _DEGENERATE_SIN)
    u = ortho / jnp.where(active, sin_theta, 1.0)[..., None]
    if operator == "spacevlm":
        phi = alpha + theta / 2.0
        d = jnp.cos(phi)[..., None] * b32 + jnp.sin(phi)[..., None] * u
    else:  # "paper_eq8": [sin(alpha + theta/2) a + sin(alpha - theta/2) b] / sin(theta)
        safe_sin = jnp.where(active, sin_theta, 1.0)
        ca = jnp.sin(alpha + theta / 2.0) / safe_sin
        cb = jnp.sin(alpha - theta / 2.0) / safe_sin
        d = _unit(ca[..., None] * a32 + cb[..., None] * b32)
    return jnp.where(active[..., None], d, a32)


def _strength_table(params: DRCParams, strength: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(t, w_base) per query from the strength table (paper, Sec. 3: strength-adaptive t)."""
    t = jnp.asarray(params.t, jnp.float32)[strength]
    w_base = jnp.asarray(params.w_base, jnp.float32)[strength]
    return t, w_base


def query_directions(
    aff: jax.Array,
    neg: jax.Array,
    cf: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    params: DRCParams = DRCParams(),
) -> tuple[jax.Array, jax.Array]:
    """The two per-query vectors DRC scores against: ``(q, w_rep)``.

    ``q`` (Q, D) is ``w1 d1 + w2 d2 + wctx dctx`` (enabled terms, weights renormalised) for negated
    queries and ``full`` for strength 0 (eq. 2); ``w_rep`` (Q,) is ``w_base * rho`` (0 without
    negation or with repulsion off). Then ``score = images.q - w_rep * max(images.neg, 0)``.
    """
    t, w_base = _strength_table(params, strength)
    terms = []
    if params.use_d1:
        terms.append((params.w1, compose(aff, neg, t, params.operator)))
    if params.use_d2:
        terms.append((params.w2, compose(aff, cf, t, params.operator)))
    if params.use_dctx:
        terms.append((params.wctx, compose(full, neg, t, params.operator)))
    total = sum(w for w, _ in terms)
    q = sum((w / total) * d for w, d in terms)
    negated = strength > 0
    q = jnp.where(negated[:, None], q, full.astype(jnp.float32))
    w_rep = w_base * params.rho if params.use_repulsion else jnp.zeros_like(w_base)
    w_rep = jnp.where(negated, w_rep, 0.0)
    return q, w_rep


def _compute_dtype(image_dtype) -> jnp.dtype:
    """The dtype the similarity GEMM's inputs take for images stored as ``image_dtype``.

    bf16 (and f16) images multiply in that dtype with f32 accumulation on every backend: the query
    vectors are rounded to it too, so the dot runs on half-precision units (GPU/TPU tensor cores,
    AVX512-BF16 or AMX on CPU). On a Zen 4 CPU with AVX512-BF16, XLA's bf16 x bf16 -> f32 GEMM runs
    ~1.6x its f32 GEMM; on CPUs without bf16 arithmetic it is about as fast as f32
    (benchmarks/RESULTS.md). Anything else is scored in f32.
    """
    image_dtype = jnp.dtype(image_dtype)
    if image_dtype in (jnp.bfloat16, jnp.float16):  # half-precision storage: half-precision GEMM
        return image_dtype
    return jnp.dtype(jnp.float32)


def _sim(images: jax.Array, q: jax.Array) -> jax.Array:
    """(Q, N) similarities ``q . images``, accumulated in f32 (inputs may be bf16)."""
    cd = _compute_dtype(images.dtype)
    # Contract D with D directly (no transposed operand) and ask for an f32 result: that is the
    # form XLA:CPU hands to its bf16 GEMM kernel; ``q @ images.T`` or a bf16 result makes it
    # upcast both operands to f32 first (~2.5x slower on AVX512-BF16; benchmarks/RESULTS.md).
    return jax.lax.dot_general(
        q.astype(cd),
        images.astype(cd),
        (((1,), (1,)), ((), ())),
        preferred_element_type=jnp.float32,
    )


def _row_sim(images: jax.Array, q: jax.Array) -> jax.Array:
    """(Q,) similarities of row ``i`` of ``images`` with row ``i`` of ``q``, rounded as :func:`_sim`
    rounds them (inputs in the compute dtype, exact products and f32 sums), so a ground-truth score
    computed here ranks consistently against streamed ones.
    """
    cd = _compute_dtype(images.dtype)
    return _dot(images.astype(cd), q.astype(cd))


def _linear_minus_repulsion(
    images: jax.Array, q: jax.Array, neg: jax.Array, w_rep: jax.Array, repulsion: bool
) -> jax.Array:
    """``images.q - w_rep * max(images.neg, 0)``: the form every method here takes, (Q, N)."""
    s = _sim(images, q)
    if not repulsion:
        return s
    return s - w_rep[:, None] * jnp.maximum(_sim(images, neg), 0.0)


def spacevlm_direction(
    aff: jax.Array, neg: jax.Array, strength: jax.Array, params: DRCParams = DRCParams()
) -> jax.Array:
    """SpaceVLM's single query direction: ``compose(aff, neg, t)`` for negated captions, (Q, D).

    Captions without negation keep ``aff``, which the decomposers set to the whole caption.
    """
    t, _ = _strength_table(params, strength)
    d = compose(aff, neg, t, params.operator)
    return jnp.where((strength > 0)[:, None], d, aff.astype(jnp.float32))


def method_vectors(
    method: str, queries: Queries, params: DRCParams = DRCParams()
) -> tuple[jax.Array, jax.Array, bool]:
    """``(q, w_rep, repulsion)``: a method's score is ``images.q - w_rep max(images.neg, 0)``.

    CLIP: q = full. SpaceVLM: :func:`spacevlm_direction`.
    DRC: :func:`query_directions`. ``repulsion`` is static: False skips the second GEMM.
    """
    zeros = jnp.zeros(queries.strength.shape, jnp.float32)
    if method == "clip":
        return queries.full.astype(jnp.float32), zeros, False
    if method == "spacevlm":
        return spacevlm_direction(queries.aff, queries.neg, queries.strength, params), zeros, False
    if method == "drc":
        q, w_rep = query_directions(
            queries.aff, queries.neg, queries.cf, queries.full, queries.strength, params
        )
        return q, w_rep, params.use_repulsion
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


@jax.jit
def drc_score(
    images: jax.Array,
    aff: jax.Array,
    neg: jax.Array,
    cf: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    params: DRCParams = DRCParams(),
) -> jax.Array:
    """SpaceVLM-DRC scores (Q, N) of Q decomposed captions against N images.

    ``images`` (N, D) and ``aff``/``neg``/``cf``/``full`` (Q, D) are unit-norm; ``strength`` (Q,)
    int32 with 0 = no negation, 1 = weak, 2 = moderate, 3 = strong. Rows with strength 0 are the
    plain CLIP score ``images.full`` (eq. 2). Two GEMMs: one against the combined direction
    (:func:`query_directions`), one for the repulsion ``max(images.neg, 0)``.
    ``images`` may be bfloat16: products then run in bf16 with f32 accumulation.
    """
    q, w_rep = query_directions(aff, neg, cf, full, strength, params)
    return _linear_minus_repulsion(images, q, neg, w_rep, params.use_repulsion)


@jax.jit
def clip_score(images: jax.Array, full: jax.Array) -> jax.Array:
    """Plain CLIP cosine similarity (eq. 2) of the full captions, (Q, N)."""
    return _sim(images, full)


@jax.jit
def spacevlm_score(
    images: jax.Array,
    aff: jax.Array,
    neg: jax.Array,
    strength: jax.Array,
    params: DRCParams = DRCParams(),
) -> jax.Array:
    """SpaceVLM's single direction (baseline row; :func:`spacevlm_direction`), (Q, N)."""
    return _sim(images, spacevlm_direction(aff, neg, strength, params))


def score(
    method: str, images: jax.Array, queries: Queries, params: DRCParams = DRCParams()
) -> jax.Array:
    """Dispatch to one of :data:`METHODS`; (Q, N)."""
    if method == "clip":
        return clip_score(images, queries.full)
    if method == "spacevlm":
        return spacevlm_score(images, queries.aff, queries.neg, queries.strength, params)
    if method == "drc":
        return drc_score(
            images, queries.aff, queries.neg, queries.cf, queries.full, queries.strength, params
        )
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def _check_queries(queries: Queries, dim: int) -> None:
    """Shape/range checks for concrete queries, with an actionable message (outside jit only)."""
    nq = len(queries)
    for name in ("aff", "neg", "cf", "full"):
        shape = getattr(queries, name).shape
        if shape != (nq, dim):
            raise ValueError(
                f"Queries.{name} has shape {shape}, expected ({nq}, {dim}) to match the "
                f"{dim}-d image embeddings; were queries and images encoded by the same CLIP?"
            )
    strength = queries.strength
    if strength.shape != (nq,):
        raise ValueError(f"Queries.strength has shape {strength.shape}, expected ({nq},)")
    if not isinstance(strength, jax.core.Tracer):
        st = np.asarray(strength)
        bad = np.flatnonzero((st < 0) | (st >= len(STRENGTHS)))
        if bad.size:
            raise ValueError(
                f"Queries.strength must index STRENGTHS {STRENGTHS} (0..{len(STRENGTHS) - 1}); "
                f"query {bad[0]} has {st[bad[0]]} ({bad.size} bad rows)"
            )


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
    """bf16 images as their raw uint16 bits (other dtypes unchanged), for :func:`top_k`'s loop.

    XLA's CPU backend rewrites a bf16 while-loop operand to f32 up front, materialising an f32
    copy of the whole image set (memory O(N), not O(chunk)); uint16 bits pass through untouched
    and :func:`_from_bits` restores each chunk exactly and for free.
    """
    if images.dtype == jnp.bfloat16:
        return jax.lax.bitcast_convert_type(images, jnp.uint16)
    return images


def _from_bits(x: jax.Array) -> jax.Array:
    """Inverse of :func:`_to_bits`."""
    if x.dtype == jnp.uint16:
        return jax.lax.bitcast_convert_type(x, jnp.bfloat16)
    return x


def _stream_shard(
    images,
    n_valid,
    offset,
    q,
    neg,
    w_rep,
    gt_score,
    gt_index,
    *,
    k,
    chunk,
    repulsion,
    axis_name=None,
):
    """Scan one shard of images (M, D) in chunks, keeping a running top-k and ground-truth count.

    Memory is O(Q k + Q chunk): no (Q, M) matrix is ever built. ``offset`` is the shard's first
    global image index; rows at or past ``n_valid`` (global) are padding and never retrieved.
    """
    m, dim = images.shape
    nq = q.shape[0]
    chunks = images.reshape(m // chunk, chunk, dim)

    def step(carry, xs):
        best, best_idx, above = carry
        block, start = xs
        block = _from_bits(block)
        s = _linear_minus_repulsion(block, q, neg, w_rep, repulsion)
        idx = offset + start + jnp.arange(chunk, dtype=jnp.int32)
        s = jnp.where((idx < n_valid)[None, :], s, -jnp.inf)
        if gt_score is not None:
            beats = (s > gt_score[:, None]) & (idx[None, :] != gt_index[:, None])
            above = above + jnp.sum(beats, axis=1, dtype=jnp.int32)
        kk = min(k, chunk)
        cs, cpos = jax.lax.top_k(s, kk)
        best, best_idx = _merge_top_k(best, best_idx, cs, idx[cpos], k)
        return (best, best_idx, above), None

    init = (
        jnp.full((nq, k), -jnp.inf, jnp.float32),
        jnp.full((nq, k), -1, jnp.int32),
        jnp.zeros((nq,), jnp.int32),
    )
    if axis_name is not None:  # inside shard_map the carry varies over the mesh axis
        init = jax.tree_util.tree_map(lambda x: jax.lax.pcast(x, axis_name, to="varying"), init)
    starts = jnp.arange(0, m, chunk, dtype=jnp.int32)
    (best, best_idx, above), _ = jax.lax.scan(step, init, (chunks, starts))
    return best, best_idx, above


@functools.partial(jax.jit, static_argnames=("method", "k", "chunk", "mesh", "with_gt", "n_valid"))
def _top_k_jit(images, queries, params, gt_index, *, method, k, chunk, mesh, with_gt, n_valid):
    q, w_rep, repulsion = method_vectors(method, queries, params)
    neg = queries.neg
    gt_score = None
    if with_gt:
        gt_img = _from_bits(images[gt_index])
        gt_score = _row_sim(gt_img, q)
        if repulsion:
            gt_score = gt_score - w_rep * jnp.maximum(_row_sim(gt_img, neg), 0.0)
    stream = functools.partial(_stream_shard, k=k, chunk=chunk, repulsion=repulsion)
    if mesh is None:
        best, best_idx, above = stream(images, n_valid, 0, q, neg, w_rep, gt_score, gt_index)
    else:
        from jax.sharding import PartitionSpec as P

        from drc_jax.parallel import DATA_AXIS

        shard_rows = images.shape[0] // mesh.size

        def local(img, q, neg, w_rep, gt_score, gt_index):
            offset = jax.lax.axis_index(DATA_AXIS) * shard_rows
            b, bi, ab = stream(
                img, n_valid, offset, q, neg, w_rep, gt_score, gt_index, axis_name=DATA_AXIS
            )
            return b[None], bi[None], jax.lax.psum(ab, DATA_AXIS)

        best, best_idx, above = jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(P(DATA_AXIS), P(), P(), P(), P(), P()),
            out_specs=(P(DATA_AXIS), P(DATA_AXIS), P()),
        )(images, q, neg, w_rep, gt_score, gt_index)
        # Merge the per-device top-k lists: (devices, Q, k) -> (Q, devices * k) -> (Q, k).
        nq = q.shape[0]
        best = jnp.moveaxis(best, 0, 1).reshape(nq, -1)
        best_idx = jnp.moveaxis(best_idx, 0, 1).reshape(nq, -1)
        best, pos = jax.lax.top_k(best, k)
        best_idx = jnp.take_along_axis(best_idx, pos, axis=1)
    return best, best_idx, (above + 1 if with_gt else None)


def _plan(n: int, nq: int, chunk_size: int, n_dev: int, query_block: int):
    """``(chunk, padded_n, block, n_blocks)``: the image chunk, the image count padded to whole
    chunks on every device, and the equal query blocks a search of ``nq`` queries runs as."""
    per_dev = -(-n // n_dev)
    chunk = int(max(1, min(chunk_size, per_dev)))
    padded = -(-per_dev // chunk) * chunk * n_dev
    n_blocks = -(-nq // max(1, query_block))
    return chunk, padded, -(-nq // n_blocks), n_blocks


def top_k_memory(
    num_queries: int,
    num_images: int,
    dim: int,
    k: int = 10,
    *,
    method: str = "drc",
    chunk_size: int = 8192,
    image_dtype=jnp.float32,
    query_block: int = 4096,
    with_gt: bool = True,
) -> dict[str, int]:
    """Bytes one query block of a single-device :func:`top_k` search needs, read from the compiled
    executable (compiled from shapes only: nothing of that size is allocated).

    ``temp`` is the scratch memory, O(block k + block chunk) whatever ``num_images``; ``argument``
    is dominated by the images; ``block``/``blocks`` say how the queries are split. Use it to size
    a search before running it (benchmarks/bench_topk.py prints it for corpus-scale N).
    """
    chunk, padded, block, n_blocks = _plan(num_images, num_queries, chunk_size, 1, query_block)
    shape = jax.ShapeDtypeStruct
    images = jax.eval_shape(_to_bits, shape((padded, dim), image_dtype))  # as top_k carries them
    queries = Queries(
        *(shape((block, dim), jnp.float32) for _ in range(4)), shape((block,), jnp.int32)
    )
    compiled = _top_k_jit.lower(
        images,
        queries,
        DRCParams(),
        shape((block,), jnp.int32),
        method=method,
        k=int(min(k, num_images)),
        chunk=chunk,
        mesh=None,
        with_gt=with_gt,
        n_valid=num_images,
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


def top_k(
    images,
    queries: Queries,
    k: int,
    *,
    method: str = "drc",
    params: DRCParams = DRCParams(),
    gt_index=None,
    chunk_size: int = 8192,
    mesh=None,
    image_dtype=None,
    query_block: int = 4096,
) -> TopK:
    """Streamed top-``k`` retrieval of every query over ``images`` (N, D), best first.

    Images are scored ``chunk_size`` at a time and merged into a running top-k, so memory stays
    O(Q k + Q chunk) however large N is; queries go ``query_block`` at a time. With a ``mesh``
    the image set is sharded over its ``"data"`` axis, each device streams its shard and the
    per-device lists are merged, so corpora larger than one device's memory work.

    ``gt_index`` (Q,) gives each query's ground-truth image; ``gt_rank`` is then
    ``1 + #{images scoring strictly higher}`` (NegBench's 1-indexed rank; ties resolve in the
    ground truth's favour). ``image_dtype=jnp.bfloat16`` halves image memory and bandwidth, with
    f32 accumulation (query vectors rounded to bf16 for the GEMM: :func:`_compute_dtype`).

    Inputs are checked before anything is compiled: a ``gt_index`` outside ``[0, N)``, query
    fields whose width differs from the images', or a strength outside :data:`STRENGTHS` raise
    ``ValueError`` naming the first bad query.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    images = jnp.asarray(images, dtype=image_dtype)
    if images.ndim != 2 or images.shape[0] == 0:
        raise ValueError(f"top_k needs images of shape (N >= 1, D), got {images.shape}")
    n = images.shape[0]
    nq = len(queries)
    _check_queries(queries, images.shape[1])
    if k < 1:
        raise ValueError(f"top_k needs k >= 1, got {k}")
    k = int(min(k, n))
    with_gt = gt_index is not None
    if with_gt:
        gt_np = np.asarray(gt_index)
        if gt_np.shape != (nq,) or not np.issubdtype(gt_np.dtype, np.integer):
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

    if images.dtype not in (jnp.float32, jnp.bfloat16):
        raise ValueError(
            f"top_k scores float32 or bfloat16 images, got {images.dtype}; pass "
            "image_dtype=jnp.float32 or jnp.bfloat16"
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
    if pad_q:
        queries = jax.tree_util.tree_map(
            lambda x: jnp.pad(x, ((0, pad_q),) + ((0, 0),) * (x.ndim - 1)), queries
        )
        gt_all = jnp.pad(gt_all, (0, pad_q))
    outs = []
    for lo in range(0, nq + pad_q, block):
        outs.append(
            _top_k_jit(
                images,
                queries.take(slice(lo, lo + block)),
                params,
                gt_all[lo : lo + block],
                method=method,
                k=k,
                chunk=chunk,
                mesh=mesh,
                with_gt=with_gt,
                n_valid=n,
            )
        )
    scores = jnp.concatenate([o[0] for o in outs])[:nq]
    indices = jnp.concatenate([o[1] for o in outs])[:nq]
    gt_rank = jnp.concatenate([o[2] for o in outs])[:nq] if with_gt else None
    return TopK(scores, indices, gt_rank)
