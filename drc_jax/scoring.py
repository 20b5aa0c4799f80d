"""SpaceVLM-DRC and its baselines as pure, jit-able functions of unit-norm CLIP embeddings.

``images`` (N, D); ``aff``, ``full`` (Q, D); ``neg``, ``cf`` (Q, D) or (Q, M, D); ``strength`` (Q,)
indexes :data:`STRENGTHS`. Every method is one :class:`QueryVectors`; scores are (Q, N). A strength
outside 0..3 gives a NaN row (a ``ValueError`` in :func:`query_vectors`).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.queries import Queries
from drc_jax.vocab import STRENGTHS

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
    """DRC's constants and the ablation switches (Tables 3, 4); ``t``, ``w_base`` per strength.

    Enabled angular weights are renormalised; ``operator="paper_eq8"`` takes the printed eq. 8 sign.
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


class QueryVectors(NamedTuple):
    """``score = images.q - w_rep * max(images.neg, 0)``; ``q`` (Q, D), ``w_rep`` (Q,) or None.

    ``neg`` (Q, D), (Q, M, D) (max over M; absent concepts zero rows) or None (no repulsion).
    """

    q: jax.Array
    neg: jax.Array | None = None
    w_rep: jax.Array | None = None


def _dot(x: jax.Array, y: jax.Array) -> jax.Array:
    """Row-wise dot product of (..., D) arrays, accumulated in f32."""
    return jnp.sum(x.astype(jnp.float32) * y.astype(jnp.float32), axis=-1)


def _unit(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """``x / |x|`` along the last axis (zero rows stay zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


_DEGENERATE_SIN = 1e-4
"""Below this ``sin(theta)`` the operator leaves ``a`` unchanged (see :func:`compose`)."""


def compose(a: jax.Array, b: jax.Array, t, operator: str = "spacevlm") -> jax.Array:
    """SpaceVLM's angular operator (eq. 8, SpaceVLM's sign), batched over leading axes; unit f32.

    Where theta = angle(a, b) < 2 acos(t): the unit vector at ``acos(t) + theta/2`` from b on the
    great circle through a, b (away from b); else, or if sin(theta) < 1e-4 or t is NaN, ``a``.
    """
    # theta by atan2: accurate for nearly parallel a, b, where acos of a rounded dot is not.
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator {operator!r}; expected one of {OPERATORS}")
    a32 = _unit(a.astype(jnp.float32))
    b32 = _unit(b.astype(jnp.float32))
    t = jnp.asarray(t, jnp.float32)
    alpha = jnp.arccos(jnp.clip(t, -1.0, 1.0))
    cos_theta = jnp.clip(_dot(a32, b32), -1.0, 1.0)
    ortho = a32 - cos_theta[..., None] * b32
    # Second Gram-Schmidt pass: for nearly parallel a, b the first leaves a residue along b.
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
    """``a`` (Q, D) composed away from each present ``bs[:, m]`` (Q, M, D) in turn; ``mask`` (Q, M)
    or None (all present). One concept gives exactly ``compose(a, b, t)``."""
    d = a.astype(jnp.float32)
    if bs.shape[1] <= 2:
        for m in range(bs.shape[1]):
            step = compose(d, bs[:, m], t, operator)
            d = step if mask is None else jnp.where(mask[:, m, None], step, d)
        return d
    present = jnp.ones(bs.shape[:2], bool) if mask is None else mask

    def one(d, concept):  # a loop, not M copies: compile time stays flat in M
        b, keep = concept
        return jnp.where(keep[:, None], compose(d, b, t, operator), d), None

    return jax.lax.scan(one, d, (jnp.swapaxes(bs, 0, 1), jnp.swapaxes(present, 0, 1)))[0]


def _strength_table(params: DRCParams, strength: jax.Array):
    """(t, w_base, valid) per query (Sec. 3's strength-adaptive t); NaN where out of range."""
    valid = (strength >= 0) & (strength < len(STRENGTHS))
    idx = jnp.clip(strength, 0, len(STRENGTHS) - 1)
    t = jnp.where(valid, jnp.asarray(params.t, jnp.float32)[idx], jnp.nan)
    w_base = jnp.where(valid, jnp.asarray(params.w_base, jnp.float32)[idx], jnp.nan)
    return t, w_base, valid


def clip_vectors(full: jax.Array) -> QueryVectors:
    """CLIP (eq. 2): ``q = full``, no repulsion."""
    return QueryVectors(full.astype(jnp.float32))


def _negated(strength: jax.Array, neg: jax.Array, neg_mask) -> jax.Array:
    """(Q,) bool: strength > 0 and, for (Q, M, D) ``neg``, some concept present (else eq. 2)."""
    negated = strength > 0
    if neg.ndim == 3:
        present = neg.shape[1] > 0 if neg_mask is None else jnp.any(neg_mask, axis=1)
        negated = negated & present
    return negated


def _turn(a, b, mask, t, operator: str) -> jax.Array:
    """``a`` turned away from one concept ``b`` (Q, D), or from each of several (Q, M, D)."""
    if b.ndim == 3:
        return compose_each(a, b, mask, t, operator)
    return compose(a, b, t, operator)


def spacevlm_vectors(
    aff: jax.Array,
    neg: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    t=SPACEVLM_T,
    operator: str = "spacevlm",
    neg_mask: jax.Array | None = None,
) -> QueryVectors:
    """SpaceVLM: ``q = compose(aff, neg, t)``, one ``t`` at every strength (its ``--threshold``),
    no repulsion; eq. 2 on ``full`` at strength 0."""
    valid = (strength >= 0) & (strength < len(STRENGTHS))
    d = _turn(aff, neg, neg_mask, t, operator)
    negated = _negated(strength, neg, neg_mask)
    q = jnp.where(negated[:, None], d, full.astype(jnp.float32))
    return QueryVectors(jnp.where(valid[:, None], q, jnp.nan))


def drc_vectors(
    aff: jax.Array,
    neg: jax.Array,
    cf: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    params: DRCParams = DRCParams(),
    neg_mask: jax.Array | None = None,
) -> QueryVectors:
    """DRC: ``q = w1 d1 + w2 d2 + wctx dctx`` (enabled terms, renormalised), ``w_rep = w_base rho``.

    ``full`` at strength 0 (eq. 2). With (Q, M, D) concepts and ``neg_mask`` each direction turns
    away from every concept (:func:`compose_each`) and the repulsion takes the worst.
    """
    t, w_base, valid = _strength_table(params, strength)
    terms = []
    if params.use_d1:
        terms.append((params.w1, _turn(aff, neg, neg_mask, t, params.operator)))
    if params.use_d2:
        terms.append((params.w2, _turn(aff, cf, neg_mask, t, params.operator)))
    if params.use_dctx:
        terms.append((params.wctx, _turn(full, neg, neg_mask, t, params.operator)))
    total = sum(w for w, _ in terms)
    q = sum((w / total) * d for w, d in terms)
    negated = _negated(strength, neg, neg_mask)
    q = jnp.where(negated[:, None], q, full.astype(jnp.float32))
    q = jnp.where(valid[:, None], q, jnp.nan)
    if not params.use_repulsion:
        return QueryVectors(q)
    w_rep = jnp.where(negated | ~valid, w_base * params.rho, 0.0)
    if neg.ndim == 3 and neg_mask is not None:
        neg = jnp.where(neg_mask[..., None], neg, 0.0)
    return QueryVectors(q, neg, w_rep)


def _compute_dtype(image_dtype) -> jnp.dtype:
    """The GEMM input dtype: bf16/f16 for images stored so (queries rounded to it), else f32."""
    image_dtype = jnp.dtype(image_dtype)
    if image_dtype in (jnp.bfloat16, jnp.float16):
        return image_dtype
    return jnp.dtype(jnp.float32)


def similarity(images: jax.Array, q: jax.Array) -> jax.Array:
    """(Q, N) similarities ``q . images``, accumulated in f32 (inputs may be bf16)."""
    cd = _compute_dtype(images.dtype)
    # D with D and an f32 result: XLA:CPU upcasts ``q @ images.T`` instead of using its bf16 GEMM.
    return jax.lax.dot_general(
        q.astype(cd),
        images.astype(cd),
        (((1,), (1,)), ((), ())),
        preferred_element_type=jnp.float32,
    )


ROW_MULTIPLE = 4
"""Rows a stacked GEMM is zero-padded to a multiple of (:func:`score_vectors`)."""


def _repulsion(neg_sims: jax.Array, neg: jax.Array) -> jax.Array:
    """``max(images.neg, 0)`` (Q, N) from the ``neg`` rows' similarities; max over M."""
    if neg.ndim == 2:
        return jnp.maximum(neg_sims, 0.0)
    nq, m, _ = neg.shape
    n = neg_sims.shape[-1]
    return jnp.max(neg_sims.reshape(nq, m, n), axis=1, initial=0.0)


def score_vectors(images: jax.Array, vectors: QueryVectors, *, stacked: bool = False) -> jax.Array:
    """``images.q - w_rep * max(images.neg, 0)``, (Q, N); ``stacked``: one GEMM over ``[q; neg]``
    padded to :data:`ROW_MULTIPLE` rows, reading the images once."""
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


def check_queries(queries: Queries) -> None:
    """Raises ``ValueError`` on a bad shape or strength (concrete values only), outside jit."""
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
        return spacevlm_vectors(
            queries.aff,
            queries.neg,
            queries.full,
            queries.strength,
            params.spacevlm_t,
            params.operator,
            queries.neg_mask,
        )
    return drc_vectors(
        queries.aff,
        queries.neg,
        queries.cf,
        queries.full,
        queries.strength,
        params,
        queries.neg_mask,
    )


def query_vectors(method: str, queries: Queries, params: DRCParams = DRCParams()) -> QueryVectors:
    """The :class:`QueryVectors` of one of :data:`METHODS`, after :func:`check_queries`."""
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


@jax.jit
def drc_score(
    images: jax.Array,
    aff: jax.Array,
    neg: jax.Array,
    cf: jax.Array,
    full: jax.Array,
    strength: jax.Array,
    params: DRCParams = DRCParams(),
    neg_mask: jax.Array | None = None,
) -> jax.Array:
    """SpaceVLM-DRC scores (Q, N) of unit-norm images (N, D); arguments as :func:`drc_vectors`."""
    return score_vectors(images, drc_vectors(aff, neg, cf, full, strength, params, neg_mask))


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
    """SpaceVLM's baseline row, (Q, N) (:func:`spacevlm_vectors`)."""
    return score_vectors(images, spacevlm_vectors(aff, neg, full, strength, t, operator))
