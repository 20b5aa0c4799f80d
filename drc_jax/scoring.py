"""The method: SpaceVLM-DRC and its baselines as pure, jit-able functions of CLIP embeddings.

Shapes: ``images`` is (N, D); ``aff``, ``neg``, ``cf``, ``full`` are (Q, D); ``strength`` is (Q,)
int32 indexing :data:`STRENGTHS`. Every score function returns (Q, N). Nothing here does I/O or
reads globals beyond the paper's constants below, so all of it composes with ``jit``, ``vmap``
and sharding. Retrieval over large corpora (streamed, sharded top-k) is :mod:`drc_jax.retrieval`.

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

Every method is *one matmul minus a repulsion*: ``images.q - w_rep * max(images.neg, 0)`` for
per-query :class:`QueryVectors` ``(q, neg, w_rep)``. The three angular terms of DRC are linear in
the image, so they fold into ``q = w1 d1 + w2 d2 + wctx dctx``; DRC costs two GEMMs, CLIP and
SpaceVLM one. :func:`query_vectors` is the one place that maps a method name to its vectors.

Assumed of the inputs (these functions are jitted and cannot raise on values): rows are finite
and unit-norm (directions are renormalised; images are not: a score is a dot product). A
``strength`` outside 0..3 gives NaN scores for that query, never a clamped strength; the
non-jitted edges (:func:`check_queries`, :func:`query_vectors`, :func:`drc_jax.retrieval.top_k`)
raise on it instead.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

STRENGTHS = ("none", "weak", "moderate", "strong")
"""Negation strengths; a query's ``strength`` int is the index in this tuple."""

METHODS = ("clip", "spacevlm", "drc")
"""Scoring methods the paper compares (Table 1 rows)."""

OPERATORS = ("spacevlm", "paper_eq8")

SPACEVLM_T = 0.92
"""SpaceVLM's one threshold for every negated caption (its retrieval script's ``--threshold``)."""


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["w1", "w2", "wctx", "rho", "t", "w_base", "spacevlm_t"],
    meta_fields=["use_d1", "use_d2", "use_dctx", "use_repulsion", "operator"],
)
@dataclasses.dataclass(frozen=True)
class DRCParams:
    """Every constant of DRC, plus the switches of the paper's ablations.

    Numbers are pytree leaves (a sweep over ``rho`` can be traced or vmapped); switches are static.
    ``t`` and ``w_base`` are indexed by strength (:data:`STRENGTHS`); index 0 ("none") is unused.

    Ablations (paper Table 3): ``use_d1``, ``use_d2``, ``use_dctx`` select angular terms and
    ``use_repulsion`` the image-space repulsion. The weights of the enabled angular terms are
    renormalised to sum to one, so "d1 only" is SpaceVLM's single direction *with DRC's
    strength-dependent t* (Table 3's "+d1" row) and the repulsion keeps its scale relative to the
    angular part. Table 4 varies ``rho``. Enabled weights summing to zero are a ``ValueError``.

    ``operator="spacevlm"`` is the operator of SpaceVLM's public code, which repels the negated
    concept; ``operator="paper_eq8"`` is the paper's printed eq. 8 (``+sin(alpha - theta/2)`` on
    the negated direction), which pulls toward it; kept only as a named ablation.

    ``spacevlm_t`` is the SpaceVLM *baseline's* fixed threshold (method ``"spacevlm"`` only; DRC
    never reads it), kept here so one params object describes every row of a table.
    """

    w1: float = 0.35
    w2: float = 0.35
    wctx: float = 0.30
    rho: float = 1.5
    t: tuple[float, float, float, float] = (1.0, 0.94, 0.92, 0.90)
    w_base: tuple[float, float, float, float] = (0.0, 0.10, 0.20, 0.30)
    spacevlm_t: float = SPACEVLM_T
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
        enabled = {
            name: getattr(self, name)
            for name, on in (("w1", self.use_d1), ("w2", self.use_d2), ("wctx", self.use_dctx))
            if on
        }
        # Only concrete numbers can be checked (under a traced sweep the leaves are tracers).
        concrete = all(isinstance(w, numbers.Real) for w in enabled.values())
        if concrete and sum(enabled.values()) == 0:
            raise ValueError(
                f"DRCParams: the enabled angular weights {enabled} sum to zero, so they "
                "cannot be renormalised; give one of them a non-zero weight or disable it"
            )


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["aff", "neg", "cf", "full", "strength", "neg_mask"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Queries:
    """Text embeddings of decomposed captions: (Q, D) unit-norm each, and strength (Q,) int32.

    Several negated concepts per caption (:func:`drc_multi_vectors`): ``neg`` and ``cf`` are
    (Q, M, D) and ``neg_mask`` (Q, M) bool marks the concepts present (None: all of them).
    """

    aff: jax.Array
    neg: jax.Array
    cf: jax.Array
    full: jax.Array
    strength: jax.Array
    neg_mask: jax.Array | None = None

    def __len__(self) -> int:
        return self.full.shape[0]

    def take(self, idx) -> Queries:
        """Rows ``idx`` of every field (a slice or an index array)."""
        return jax.tree_util.tree_map(lambda x: x[idx], self)


class QueryVectors(NamedTuple):
    """What any method scores with: ``score = images.q - w_rep * max(images.neg, 0)``.

    ``q`` (Q, D); ``neg`` (Q, D), or (Q, M, D) for several negated concepts (absent ones zero
    rows; the repulsion then takes the largest over concepts); ``w_rep`` (Q,). ``neg`` and
    ``w_rep`` are None for methods without repulsion, which then cost a single GEMM.
    """

    q: jax.Array
    neg: jax.Array | None = None
    w_rep: jax.Array | None = None


# ----------------------------------------------------------------------- the operator (eq. 8)


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
    is undefined) the result is ``a``, so it is always finite and unit-norm. A NaN ``t`` leaves
    ``a`` unchanged too (callers mark such rows themselves).
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


def compose_each(a: jax.Array, bs: jax.Array, mask, t, operator: str = "spacevlm") -> jax.Array:
    """:func:`compose` away from each of several negated directions in turn, (Q, D).

    ``bs`` (Q, M, D), ``mask`` (Q, M) bool (None: all present): ``d <- compose(d, b_m, t)`` for
    m = 0..M-1 where ``mask[:, m]``, starting from ``a``; absent concepts leave ``d`` as it is,
    so a single present concept gives exactly ``compose(a, b, t)``. Each step acts only on a
    concept within ``2 alpha`` of the current direction, so concepts far from the query (the
    usual case) do not interact; for concepts near each other the order (the decomposition's)
    can matter slightly, and the max-repulsion of :func:`drc_multi_vectors` covers the rest.
    """
    d = a.astype(jnp.float32)
    if bs.shape[1] <= 2:  # unrolled: the common cases compile and run as before
        for m in range(bs.shape[1]):
            step = compose(d, bs[:, m], t, operator)
            d = step if mask is None else jnp.where(mask[:, m, None], step, d)
        return d
    present = jnp.ones(bs.shape[:2], bool) if mask is None else mask

    def one(d, concept):  # a loop, not M copies: compile time stays flat in M
        b, keep = concept
        return jnp.where(keep[:, None], compose(d, b, t, operator), d), None

    return jax.lax.scan(one, d, (jnp.swapaxes(bs, 0, 1), jnp.swapaxes(present, 0, 1)))[0]


# ----------------------------------------------------------------------- per-method vectors


def _strength_table(params: DRCParams, strength: jax.Array):
    """(t, w_base, valid) per query from the strength table (paper, Sec. 3: strength-adaptive t).

    Out-of-range strengths are not clamped: ``valid`` is False there and t, w_base are NaN.
    """
    valid = (strength >= 0) & (strength < len(STRENGTHS))
    idx = jnp.clip(strength, 0, len(STRENGTHS) - 1)
    t = jnp.where(valid, jnp.asarray(params.t, jnp.float32)[idx], jnp.nan)
    w_base = jnp.where(valid, jnp.asarray(params.w_base, jnp.float32)[idx], jnp.nan)
    return t, w_base, valid


def clip_vectors(full: jax.Array) -> QueryVectors:
    """CLIP (eq. 2): ``q = full``, no repulsion."""
    return QueryVectors(full.astype(jnp.float32))


def _negated(strength: jax.Array, neg: jax.Array, neg_mask) -> jax.Array:
    """(Q,) bool: the caption excludes something. Strength 0 does not; with several concepts
    (``neg`` (Q, M, D)) neither does a caption none of whose concepts is present (all masked, or
    M = 0): nothing is left to turn away from, so it is scored as eq. 2 on ``full``."""
    negated = strength > 0
    if neg.ndim == 3:
        present = neg.shape[1] > 0 if neg_mask is None else jnp.any(neg_mask, axis=1)
        negated = negated & present
    return negated


def _spacevlm(aff, neg, full, strength, t, operator, neg_mask=None) -> QueryVectors:
    valid = (strength >= 0) & (strength < len(STRENGTHS))
    if neg.ndim == 3:
        d = compose_each(aff, neg, neg_mask, t, operator)
    else:
        d = compose(aff, neg, t, operator)
    negated = _negated(strength, neg, neg_mask)
    q = jnp.where(negated[:, None], d, full.astype(jnp.float32))
    return QueryVectors(jnp.where(valid[:, None], q, jnp.nan))


def spacevlm_vectors(
    aff: jax.Array,
    neg: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    t=SPACEVLM_T,
    operator: str = "spacevlm",
) -> QueryVectors:
    """SpaceVLM as SpaceVLM does it: ``q = compose(aff, neg, t)`` with *one* ``t`` (0.92, its
    retrieval script's ``--threshold``) for every negated caption whatever its strength, and no
    repulsion. Captions without negation (strength 0) score eq. 2 on ``full``.

    This differs from DRC's "+d1" ablation (``DRCParams(use_d2=False, use_dctx=False,
    use_repulsion=False)``), which uses DRC's strength-dependent ``t``.
    """
    return _spacevlm(aff, neg, full, strength, t, operator)


def _drc(aff, neg, cf, full, strength, params: DRCParams, neg_mask=None) -> QueryVectors:
    t, w_base, valid = _strength_table(params, strength)
    multi = neg.ndim == 3

    def turn(a, b):  # a away from one concept b (Q, D), or from each of several (Q, M, D)
        if multi:
            return compose_each(a, b, neg_mask, t, params.operator)
        return compose(a, b, t, params.operator)

    terms = []
    if params.use_d1:
        terms.append((params.w1, turn(aff, neg)))
    if params.use_d2:
        terms.append((params.w2, turn(aff, cf)))
    if params.use_dctx:
        terms.append((params.wctx, turn(full, neg)))
    total = sum(w for w, _ in terms)
    q = sum((w / total) * d for w, d in terms)
    negated = _negated(strength, neg, neg_mask)
    q = jnp.where(negated[:, None], q, full.astype(jnp.float32))
    q = jnp.where(valid[:, None], q, jnp.nan)
    if not params.use_repulsion:
        return QueryVectors(q)
    w_rep = jnp.where(negated | ~valid, w_base * params.rho, 0.0)
    if multi and neg_mask is not None:  # absent concepts: zero rows, so max(images.0, 0) = 0
        neg = jnp.where(neg_mask[..., None], neg, 0.0)
    return QueryVectors(q, neg, w_rep)


def drc_vectors(
    aff: jax.Array,
    neg: jax.Array,
    cf: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    params: DRCParams = DRCParams(),
) -> QueryVectors:
    """DRC's per-query vectors: ``q = w1 d1 + w2 d2 + wctx dctx`` (enabled terms, weights
    renormalised) for negated queries and ``full`` for strength 0 (eq. 2); ``neg`` and
    ``w_rep = w_base * rho`` (0 without negation; both None with repulsion off).
    """
    return _drc(aff, neg, cf, full, strength, params)


def drc_multi_vectors(
    aff: jax.Array,
    negs: jax.Array,
    cfs: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    params: DRCParams = DRCParams(),
    neg_mask: jax.Array | None = None,
) -> QueryVectors:
    """DRC with several negated concepts per caption: ``negs``, ``cfs`` (Q, M, D), ``neg_mask``
    (Q, M) bool (None: all present); one strength per caption.

    Composition: each angular direction turns away from every concept in turn
    (:func:`compose_each`: ``d1`` from aff over the negs, ``d2`` from aff over the cfs, ``dctx``
    from full over the negs), and the repulsion is the *largest* over the concepts,
    ``w_rep * max_m max(images.neg_m, 0)``. Why the largest: "X without Y and without Z" is
    violated by an image showing Y *or* Z, so an image is penalised as much as its worst
    violation, and the penalty keeps the scale ``rho`` was set for (a sum would grow with M and
    punish every image a little for each unrelated concept; a mean would dilute a clear
    violation). With one present concept every step reduces to :func:`drc_vectors` exactly; a
    caption with no concept present (all masked, or M = 0) is scored like one without negation
    (eq. 2 on ``full``).
    """
    return _drc(aff, negs, cfs, full, strength, params, neg_mask)


# ----------------------------------------------------------------------- one matmul - repulsion


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


def similarity(images: jax.Array, q: jax.Array) -> jax.Array:
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


ROW_MULTIPLE = 4
"""Rows a stacked GEMM is zero-padded to a multiple of (:func:`score_vectors`)."""


def _repulsion(neg_sims: jax.Array, neg: jax.Array) -> jax.Array:
    """``max(images.neg, 0)`` (Q, N) from the similarities (Q [* M], N) of the ``neg`` rows; for
    (Q, M, D) concepts the largest over M."""
    if neg.ndim == 2:
        return jnp.maximum(neg_sims, 0.0)
    nq, m, _ = neg.shape
    n = neg_sims.shape[-1]
    return jnp.max(neg_sims.reshape(nq, m, n), axis=1, initial=0.0)  # max_m max(s_m, 0); 0 if M=0


def score_vectors(images: jax.Array, vectors: QueryVectors, *, stacked: bool = False) -> jax.Array:
    """``images.q - w_rep * max(images.neg, 0)``: the form every method takes, (Q, N).

    ``stacked`` scores the q and neg rows with one GEMM over ``[q; neg]``, zero-padded to a
    multiple of :data:`ROW_MULTIPLE` rows: for a handful of queries the GEMM is bound by reading
    the images, which it then reads once, and XLA:CPU runs a bf16 GEMM of one row as a GEMV ~10x
    slower than four rows. For many queries two GEMMs are faster (the stacked result is sliced
    apart again), hence the default. Both give each query's scores from the same per-row dots
    (benchmarks/RESULTS.md, search section).
    """
    q, neg = vectors.q, vectors.neg
    nq, dim = q.shape
    if not stacked:
        s = similarity(images, q)
        if neg is None:
            return s
        rep = _repulsion(similarity(images, neg.reshape(-1, dim)), neg)
        return s - vectors.w_rep[:, None] * rep
    rows = q if neg is None else jnp.concatenate([q, neg.reshape(-1, dim).astype(q.dtype)])
    n_rows = rows.shape[0]
    rows = jnp.pad(rows, ((0, -(-n_rows // ROW_MULTIPLE) * ROW_MULTIPLE - n_rows), (0, 0)))
    sims = similarity(images, rows)
    if neg is None:
        return sims[:nq]
    return sims[:nq] - vectors.w_rep[:, None] * _repulsion(sims[nq:n_rows], neg)


# ----------------------------------------------------------------------- the one dispatch point


def check_queries(queries: Queries) -> None:
    """Shapes and strength range of concrete queries, with an actionable message (outside jit).

    Raises ``ValueError`` naming the field or the first bad query; traced values are skipped.
    """
    nq = len(queries)
    dim = queries.full.shape[-1]
    multi = queries.neg.ndim == 3
    m = queries.neg.shape[1] if multi else None
    for name in ("aff", "neg", "cf", "full"):
        shape = getattr(queries, name).shape
        want = (nq, m, dim) if multi and name in ("neg", "cf") else (nq, dim)
        if shape != want:
            raise ValueError(
                f"Queries.{name} has shape {shape}, expected {want} to match Queries.full; "
                "were all text fields encoded by the same CLIP?"
            )
    if queries.neg_mask is not None and queries.neg_mask.shape != (nq, m):
        raise ValueError(f"Queries.neg_mask has shape {queries.neg_mask.shape}, expected {(nq, m)}")
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


@functools.partial(jax.jit, static_argnames="method")
def _vectors(method: str, queries: Queries, params: DRCParams) -> QueryVectors:
    if method == "clip":
        return clip_vectors(queries.full)
    if method == "spacevlm":
        return _spacevlm(
            queries.aff,
            queries.neg,
            queries.full,
            queries.strength,
            params.spacevlm_t,
            params.operator,
            queries.neg_mask,
        )
    return _drc(
        queries.aff,
        queries.neg,
        queries.cf,
        queries.full,
        queries.strength,
        params,
        queries.neg_mask,
    )


def query_vectors(method: str, queries: Queries, params: DRCParams = DRCParams()) -> QueryVectors:
    """The :class:`QueryVectors` of one of :data:`METHODS` (the one dispatch over methods).

    CLIP: :func:`clip_vectors` of ``full``. SpaceVLM: :func:`spacevlm_vectors` with
    ``params.spacevlm_t`` and ``params.operator``. DRC: :func:`drc_vectors`, or
    :func:`drc_multi_vectors` when ``queries.neg`` is (Q, M, D). Concrete queries are checked
    first (:func:`check_queries`).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    check_queries(queries)
    return _vectors(method, queries, params)


_score_vectors = jax.jit(score_vectors)


def score(
    method: str, images: jax.Array, queries: Queries, params: DRCParams = DRCParams()
) -> jax.Array:
    """Full (Q, N) scores of one of :data:`METHODS`: its :func:`query_vectors`, scored."""
    return _score_vectors(images, query_vectors(method, queries, params))


# ----------------------------------------------------------------------- the score functions


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

    ``images`` (N, D) and ``aff``/``neg``/``cf``/``full`` (Q, D) are unit-norm and finite;
    ``strength`` (Q,) int32 with 0 = no negation, 1 = weak, 2 = moderate, 3 = strong (any other
    value gives a NaN row). Rows with strength 0 are the plain CLIP score ``images.full`` (eq. 2).
    Two GEMMs: one against the combined direction (:func:`drc_vectors`), one for the repulsion
    ``max(images.neg, 0)``. ``images`` may be bfloat16 or float16: products then run in that dtype
    with f32 accumulation.
    """
    return score_vectors(images, _drc(aff, neg, cf, full, strength, params))


@jax.jit
def drc_score_multi(
    images: jax.Array,
    aff: jax.Array,
    negs: jax.Array,
    cfs: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    params: DRCParams = DRCParams(),
    neg_mask: jax.Array | None = None,
) -> jax.Array:
    """:func:`drc_score` for captions with several negated concepts, (Q, N).

    ``negs``, ``cfs`` (Q, M, D), ``neg_mask`` (Q, M) bool (None: all present); the composition
    (turn away from each concept in turn, subtract the largest repulsion) and why are in
    :func:`drc_multi_vectors`. One present concept gives exactly :func:`drc_score`'s scores.
    """
    return score_vectors(images, _drc(aff, negs, cfs, full, strength, params, neg_mask))


@jax.jit
def clip_score(images: jax.Array, full: jax.Array) -> jax.Array:
    """Plain CLIP cosine similarity (eq. 2) of the full captions, (Q, N)."""
    return score_vectors(images, clip_vectors(full))


@functools.partial(jax.jit, static_argnames="operator")
def spacevlm_score(
    images: jax.Array,
    aff: jax.Array,
    neg: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    t=SPACEVLM_T,
    operator: str = "spacevlm",
) -> jax.Array:
    """SpaceVLM's baseline row, (Q, N): one direction ``compose(aff, neg, t)`` per negated
    caption with one fixed ``t`` (:func:`spacevlm_vectors`), eq. 2 on ``full`` otherwise."""
    return score_vectors(images, _spacevlm(aff, neg, full, strength, t, operator))
