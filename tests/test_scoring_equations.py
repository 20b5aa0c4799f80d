"""DRC scoring against an independent NumPy reading of the paper's equations, plus properties.

The reference below is written from the paper (and SpaceVLM's sign of eq. 8), in float64, with the
four similarities computed literally; it deliberately imports nothing from drc_jax.scoring except
the public functions under test.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drc_jax.scoring import (
    STRENGTHS,
    DRCParams,
    Queries,
    clip_score,
    compose,
    drc_score,
    drc_vectors,
    score,
    spacevlm_score,
)

# Paper constants, restated here rather than read from DRCParams.
W1, W2, WCTX, RHO = 0.35, 0.35, 0.30, 1.5
T_AND_W_BASE = {"weak": (0.94, 0.10), "moderate": (0.92, 0.20), "strong": (0.90, 0.30)}


def ref_operator(a, b, t, printed_eq8=False):
    """Eq. 8 literally: alpha = acos(t), theta = acos(a.b); rotate when theta < 2 alpha."""
    alpha = np.arccos(t)
    theta = np.arccos(np.clip(a @ b, -1.0, 1.0))
    if not theta < 2 * alpha:
        return a
    coef_b = np.sin(alpha - theta / 2) if printed_eq8 else np.sin(theta / 2 - alpha)
    d = (np.sin(alpha + theta / 2) * a + coef_b * b) / np.sin(theta)
    return d / np.linalg.norm(d) if printed_eq8 else d


def ref_drc(image, aff, neg, cf, full, strength, terms=("d1", "d2", "dctx"), repulsion=True):
    """The four-similarity DRC score of one image and one query (no matrix tricks)."""
    if strength == "none":
        return image @ full
    t, w_base = T_AND_W_BASE[strength]
    weights = {"d1": W1, "d2": W2, "dctx": WCTX}
    dirs = {
        "d1": ref_operator(aff, neg, t),
        "d2": ref_operator(aff, cf, t),
        "dctx": ref_operator(full, neg, t),
    }
    total = sum(weights[n] for n in terms)
    s1 = image @ dirs["d1"]
    s2 = image @ dirs["d2"]
    sctx = image @ dirs["dctx"]
    srep = image @ neg
    sims = {"d1": s1, "d2": s2, "dctx": sctx}
    angular = sum(weights[n] / total * sims[n] for n in terms)
    return angular - (w_base * RHO * max(srep, 0.0) if repulsion else 0.0)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def at_angle(rng, a, theta):
    """A unit vector at angle ``theta`` from unit ``a``."""
    v = unit(rng.standard_normal(a.shape))
    v = unit(v - (v @ a) * a)
    return np.cos(theta) * a + np.sin(theta) * v


def make_queries(rng, nq, dim):
    """Queries whose aff/neg/cf/full are close enough for the operator to act (theta < 2 alpha)
    as well as far apart, with every strength represented."""
    aff = unit(rng.standard_normal((nq, dim)))
    neg = np.stack([at_angle(rng, a, rng.uniform(0.05, 1.4)) for a in aff])
    cf = np.stack([at_angle(rng, a, rng.uniform(0.05, 1.4)) for a in aff])
    full = np.stack([at_angle(rng, a, rng.uniform(0.05, 0.6)) for a in aff])
    strength = np.arange(nq) % len(STRENGTHS)
    return aff, neg, cf, full, strength.astype(np.int32)


def ref_matrix(images, aff, neg, cf, full, strength, **kw):
    return np.array(
        [
            [
                ref_drc(img, aff[q], neg[q], cf[q], full[q], STRENGTHS[strength[q]], **kw)
                for img in images
            ]
            for q in range(len(aff))
        ]
    )


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(7)
    nq, n, dim = 24, 40, 32
    aff, neg, cf, full, strength = make_queries(rng, nq, dim)
    # Images near the queries' concepts, so repulsion and every angular term matter.
    images = unit(
        np.concatenate(
            [
                unit(rng.standard_normal((n // 2, dim))),
                np.stack([at_angle(rng, neg[i % nq], 0.4) for i in range(n // 2)]),
            ]
        )
    )
    return images, aff, neg, cf, full, strength


def as_f32(*xs):
    return [jnp.asarray(x, jnp.float32) if x.dtype != np.int32 else jnp.asarray(x) for x in xs]


def test_drc_score_matches_four_similarity_reference(case):
    images, aff, neg, cf, full, strength = case
    want = ref_matrix(images, aff, neg, cf, full, strength)
    got = np.asarray(drc_score(*as_f32(images, aff, neg, cf, full, strength)))
    assert got.shape == (len(aff), len(images))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # The case exercises both branches of the operator and the repulsion clamp.
    cos = np.sum(aff * neg, axis=1)
    assert (cos > 0.9).any() and (cos < 0.6).any()
    assert ((images @ neg.T) < 0).any() and ((images @ neg.T) > 0.5).any()


@pytest.mark.parametrize(
    "terms,repulsion",
    [
        (("d1",), False),
        (("d1", "d2"), False),
        (("d1", "d2", "dctx"), False),
        (("d1", "d2", "dctx"), True),
        (("d2", "dctx"), True),
    ],
)
def test_ablation_switches_match_reference(case, terms, repulsion):
    images, aff, neg, cf, full, strength = case
    params = DRCParams(
        use_d1="d1" in terms,
        use_d2="d2" in terms,
        use_dctx="dctx" in terms,
        use_repulsion=repulsion,
    )
    want = ref_matrix(images, aff, neg, cf, full, strength, terms=terms, repulsion=repulsion)
    got = np.asarray(drc_score(*as_f32(images, aff, neg, cf, full, strength), params))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_d1_only_without_repulsion_is_spacevlm_direction_with_drc_t(case):
    """Table 3's "+d1" row is SpaceVLM's single direction, but with DRC's strength-adaptive t."""
    images, aff, neg, cf, full, strength = case
    args = as_f32(images, aff, neg, cf, full, strength)
    d1_only = DRCParams(use_d2=False, use_dctx=False, use_repulsion=False)
    negated = strength > 0
    got = np.asarray(drc_score(*args, d1_only))[negated]
    t = jnp.asarray(DRCParams().t)[args[5]]
    want = np.asarray(spacevlm_score(args[0], args[1], args[2], args[4], args[5], t))[negated]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_two_matmul_form_equals_four_similarity_form(case):
    """score = images.(w1 d1 + w2 d2 + wctx dctx) - w_rep max(images.neg, 0) is the same number as
    w1 s1 + w2 s2 + wctx sctx - w_rep max(srep, 0) with the four similarities taken separately."""
    images, aff, neg, cf, full, strength = case
    x = as_f32(images, aff, neg, cf, full, strength)
    t = jnp.asarray([1.0, 0.94, 0.92, 0.90])[x[5]]
    d1, d2, dctx = compose(x[1], x[2], t), compose(x[1], x[3], t), compose(x[4], x[2], t)
    s1, s2, sctx, srep = (np.asarray(x[0] @ d.T) for d in (d1, d2, dctx, x[2]))
    w_rep = (np.asarray([0.0, 0.10, 0.20, 0.30]) * 1.5)[strength][:, None]
    four = (0.35 * s1 + 0.35 * s2 + 0.30 * sctx).T - w_rep * np.maximum(srep.T, 0)
    four = np.where(strength[:, None] > 0, four, np.asarray(x[0] @ x[4].T).T)
    np.testing.assert_allclose(np.asarray(drc_score(*x)), four, atol=2e-6)


def test_strength_zero_is_plain_clip(case):
    images, aff, neg, cf, full, _ = case
    none = np.zeros(len(aff), np.int32)
    x = as_f32(images, aff, neg, cf, full, none)
    np.testing.assert_array_equal(np.asarray(drc_score(*x)), np.asarray(clip_score(x[0], x[4])))
    np.testing.assert_allclose(np.asarray(drc_score(*x)), full @ images.T, atol=1e-6)


def test_score_dispatch_matches_functions(case):
    images, aff, neg, cf, full, strength = case
    x = as_f32(images, aff, neg, cf, full, strength)
    queries = Queries(aff=x[1], neg=x[2], cf=x[3], full=x[4], strength=x[5])
    np.testing.assert_array_equal(
        np.asarray(score("drc", x[0], queries)), np.asarray(drc_score(*x))
    )
    np.testing.assert_array_equal(
        np.asarray(score("clip", x[0], queries)), np.asarray(clip_score(x[0], x[4]))
    )
    with pytest.raises(ValueError, match="unknown method"):
        score("bm25", x[0], queries)


def test_spacevlm_operator_repels_and_printed_eq8_attracts():
    """SpaceVLM's sign moves the direction away from the negated concept; the paper's printed
    eq. 8 moves it toward it (so it would rank images *with* the negated concept higher)."""
    rng = np.random.default_rng(0)
    a = unit(rng.standard_normal((64, 16)))
    b = np.stack([at_angle(rng, x, rng.uniform(0.1, 0.8)) for x in a])
    t = 0.9
    cos_ab = np.sum(a * b, axis=1)
    away = np.sum(np.asarray(compose(jnp.asarray(a), jnp.asarray(b), t)) * b, axis=1)
    toward = np.sum(np.asarray(compose(jnp.asarray(a), jnp.asarray(b), t, "paper_eq8")) * b, axis=1)
    assert np.all(away < cos_ab - 1e-3)
    assert np.all(toward > cos_ab + 1e-3)
    # And it is the printed formula (renormalised), not just "some vector toward b".
    want = np.stack([ref_operator(x, y, t, printed_eq8=True) for x, y in zip(a, b, strict=True)])
    got = np.asarray(
        compose(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), t, "paper_eq8")
    )
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_unknown_operator_and_empty_ablation_are_rejected():
    with pytest.raises(ValueError, match="operator"):
        DRCParams(operator="eq9")
    with pytest.raises(ValueError, match="at least one"):
        DRCParams(use_d1=False, use_d2=False, use_dctx=False)


def test_params_are_a_pytree_with_static_switches():
    params = DRCParams(rho=2.0, use_d2=False)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    assert len(leaves) == 4 + 4 + 4 + 1  # w1, w2, wctx, rho; t, w_base per strength; spacevlm_t
    assert 2.0 in leaves and not any(isinstance(leaf, bool | str) for leaf in leaves)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt == params
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.rho = 1.0  # type: ignore[misc]


def test_rho_sweep_is_vmappable(case):
    """Table 4 varies rho: a traced sweep gives the same scores as separate calls."""
    images, aff, neg, cf, full, strength = case
    x = as_f32(images, aff, neg, cf, full, strength)
    rhos = jnp.asarray([0.0, 1.0, 1.5, 3.0])
    swept = jax.vmap(lambda r: drc_score(*x, DRCParams(rho=r)))(rhos)
    for i, r in enumerate([0.0, 1.0, 1.5, 3.0]):
        np.testing.assert_allclose(
            np.asarray(swept[i]), np.asarray(drc_score(*x, DRCParams(rho=r))), atol=1e-6
        )


# ---------------------------------------------------------------- hypothesis properties

DIM = 12
pair_kind = st.sampled_from(["generic", "near", "equal", "opposite", "rounding", "far"])


def draw_pair(seed, kind, theta):
    rng = np.random.default_rng(seed)
    a = unit(rng.standard_normal(DIM))
    if kind == "generic":
        b = unit(rng.standard_normal(DIM))
    elif kind == "near":
        b = at_angle(rng, a, theta)
    elif kind == "equal":
        b = a.copy()
    elif kind == "opposite":
        b = -a
    elif kind == "rounding":  # equal up to float32 rounding
        b = (a + rng.standard_normal(DIM) * 1e-7).astype(np.float32)
    else:
        b = at_angle(rng, a, 1.5 + theta)
    return a.astype(np.float32), b.astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    kind=pair_kind,
    theta=st.floats(1e-3, 1.2),
    t=st.sampled_from([0.94, 0.92, 0.90, 0.5]),
    operator=st.sampled_from(["spacevlm", "paper_eq8"]),
)
def test_operator_is_finite_unit_norm_on_any_pair(seed, kind, theta, t, operator):
    a, b = draw_pair(seed, kind, theta)
    d = np.asarray(compose(jnp.asarray(a), jnp.asarray(b), t, operator))
    assert np.all(np.isfinite(d))
    assert abs(np.linalg.norm(d) - 1.0) < 1e-5


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), kind=pair_kind, theta=st.floats(1e-3, 1.2))
def test_operator_never_moves_toward_the_negated_direction(seed, kind, theta):
    a, b = draw_pair(seed, kind, theta)
    d = np.asarray(compose(jnp.asarray(a), jnp.asarray(b), 0.9))
    assert d @ b <= a @ b + 1e-6


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), theta=st.floats(1e-3, 1.5), t=st.floats(0.5, 0.99))
def test_operator_acts_only_inside_twice_alpha_and_matches_eq8_there(seed, theta, t):
    rng = np.random.default_rng(seed)
    a = unit(rng.standard_normal(DIM))
    b = at_angle(rng, a, theta)
    d = np.asarray(compose(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), t))
    alpha = np.arccos(t)
    if theta >= 2 * alpha + 1e-4:
        np.testing.assert_allclose(d, a, atol=1e-6)  # the mask: far pairs are left alone
    else:
        # Inside the mask the result sits at exactly alpha + theta/2 from b ...
        np.testing.assert_allclose(np.arccos(np.clip(d @ b, -1, 1)), alpha + theta / 2, atol=2e-3)
        # ... and is the eq. 8 vector of the reference (away from the theta -> 0 singularity).
        if theta > 1e-2:
            np.testing.assert_allclose(d, ref_operator(a, b, t), atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    kind=pair_kind,
    strength=st.integers(0, 3),
    rho=st.floats(0.0, 3.0),
)
def test_drc_score_is_finite_on_degenerate_queries(seed, kind, strength, rho):
    a, b = draw_pair(seed, kind, 0.3)
    rng = np.random.default_rng(seed + 1)
    images = unit(rng.standard_normal((5, DIM))).astype(np.float32)
    images[0] = b  # an image equal to the negated concept
    q = lambda v: jnp.asarray(v[None])
    # aff == cf == full, neg from the drawn pair: covers a == b, a == -b, rounding-equal.
    s = drc_score(
        jnp.asarray(images),
        q(a),
        q(b),
        q(a),
        q(a),
        jnp.asarray([strength], jnp.int32),
        DRCParams(rho=rho),
    )
    assert np.all(np.isfinite(np.asarray(s)))
    if strength == 0:
        np.testing.assert_allclose(np.asarray(s)[0], images @ a, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), strength=st.integers(1, 3))
def test_repulsion_only_penalises_images_that_look_like_neg(seed, strength):
    """Removing repulsion changes a score by exactly w_base*rho*max(image.neg, 0) >= 0."""
    rng = np.random.default_rng(seed)
    aff, neg, cf, full, _ = make_queries(rng, 3, DIM)
    images = unit(rng.standard_normal((16, DIM)))
    st_ = np.full(3, strength, np.int32)
    x = as_f32(images, aff, neg, cf, full, st_)
    with_rep = np.asarray(drc_score(*x))
    without = np.asarray(drc_score(*x, DRCParams(use_repulsion=False)))
    w_rep = [0.0, 0.10, 0.20, 0.30][strength] * 1.5
    np.testing.assert_allclose(without - with_rep, w_rep * np.maximum(neg @ images.T, 0), atol=1e-5)


def test_drc_vectors_reduce_to_full_without_negation(case):
    _, aff, neg, cf, full, _ = case
    x = as_f32(aff, neg, cf, full)
    q, _, w_rep = drc_vectors(*x, jnp.zeros(len(aff), jnp.int32))
    np.testing.assert_array_equal(np.asarray(q), np.asarray(x[3]))
    assert not np.any(np.asarray(w_rep))


def test_drc_score_jits_once_per_shape_and_accepts_bf16_images(case):
    images, aff, neg, cf, full, strength = case
    x = as_f32(images, aff, neg, cf, full, strength)
    f32 = np.asarray(drc_score(*x))
    bf16 = np.asarray(drc_score(x[0].astype(jnp.bfloat16), *x[1:]))
    assert bf16.dtype == np.float32
    # bf16 images round each coordinate to 8 bits of mantissa: scores move by ~1e-2 at most.
    np.testing.assert_allclose(bf16, f32, atol=2e-2)


def test_bf16_images_are_multiplied_in_bf16_with_f32_accumulation():
    """bf16 images are only faster if the GEMMs see bf16 operands: each dot contracts D with D on
    the stored (N, D) images (no transposed copy, no f32 upcast) and accumulates into f32, the form
    XLA:CPU sends to its AVX512-BF16 kernel and GPUs to their tensor cores."""
    images = jnp.ones((64, 16), jnp.bfloat16)
    q = jnp.ones((8, 16), jnp.float32)
    text = drc_score.lower(images, q, q, q, q, jnp.ones(8, jnp.int32)).as_text()
    dots = [ln for ln in text.splitlines() if "dot_general" in ln]
    assert len(dots) == 2, dots  # the combined direction and the repulsion
    for ln in dots:
        assert "contracting_dims = [1] x [1]" in ln, ln
        assert "(tensor<8x16xbf16>, tensor<64x16xbf16>) -> tensor<8x64xf32>" in ln, ln
    assert "transpose" not in text


def test_benchmark_numpy_baselines_compute_the_same_scores(case):
    """bench_scoring's NumPy versions are the baseline its speed-ups are measured against: they
    must compute DRC, not something cheaper."""
    from benchmarks.bench_scoring import numpy_four_sim, numpy_four_sim_inplace

    images, aff, neg, cf, full, strength = (
        x.astype(np.float32) if x.dtype != np.int32 else x for x in case
    )
    want = np.asarray(drc_score(*as_f32(images, aff, neg, cf, full, strength)))
    for baseline in (numpy_four_sim, numpy_four_sim_inplace):
        np.testing.assert_allclose(baseline(images, aff, neg, cf, full, strength), want, atol=1e-5)
