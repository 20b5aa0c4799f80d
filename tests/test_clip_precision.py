"""float32 means float32 on every backend: no TF32 for the encoders' products on GPUs."""

import jax
import jax.numpy as jnp
import numpy as np

from drc_jax.clip.model import Dense, written_out_attention


def _lowered_text(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


def test_f32_dense_asks_for_highest_precision_and_bf16_does_not():
    x = jnp.ones((2, 8), jnp.float32)
    for dtype, want in ((jnp.float32, "HIGHEST"), (jnp.bfloat16, None)):
        layer = Dense(4, dtype=dtype)
        params = layer.init(jax.random.key(0), x)
        text = _lowered_text(lambda p, x, layer=layer: layer.apply(p, x), params, x)
        assert "dot_general" in text
        if want:
            assert f"precision = [{want}, {want}]" in text
        else:
            assert "HIGHEST" not in text


def test_f32_written_out_attention_asks_for_highest_precision_and_matches_the_generic_one():
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((2, 5, 2, 4)), jnp.float32) for _ in range(3))
    fn = lambda q, k, v: written_out_attention(q, k, v, scale=0.5, causal=True)
    assert _lowered_text(fn, q, k, v).count("precision = [HIGHEST, HIGHEST]") == 2
    want = jax.nn.dot_product_attention(q, k, v, scale=0.5, is_causal=True)
    np.testing.assert_allclose(fn(q, k, v), want, atol=1e-6)


def test_bf16_backward_products_run_in_bf16_and_match_f32_gradients():
    """NEAT differentiates through the bf16 text tower: the backward products must take bf16
    operands (f32 accumulation), not pair an f32 cotangent with a bf16 kernel (run in f32)."""
    from drc_jax.clip.model import lowp_dot

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 5, 16)), jnp.bfloat16)
    k = jnp.asarray(rng.standard_normal((16, 8)) / 4, jnp.bfloat16)
    w = jnp.asarray(rng.standard_normal((3, 5, 8)), jnp.float32)
    loss = lambda x, k: jnp.sum(jnp.tanh(lowp_dot(x, k)) * w)
    ref = lambda x, k: jnp.sum(jnp.tanh(jnp.dot(x.astype(jnp.float32), k.astype(jnp.float32))) * w)
    np.testing.assert_array_equal(lowp_dot(x, k), jnp.dot(x, k, preferred_element_type=jnp.float32))
    got = jax.grad(loss, argnums=(0, 1))(x, k)
    want = jax.grad(ref, argnums=(0, 1))(x, k)
    for g, r in zip(got, want, strict=True):
        assert g.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(r), rtol=0.05, atol=0.05)
    text = _lowered_text(jax.grad(loss, argnums=(0, 1)), x, k)
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert len(dots) == 3 and all("bf16>, tensor<" in d and "xbf16>) ->" in d for d in dots), dots


def test_bf16_attention_backward_products_run_in_bf16_and_match_f32_gradients():
    """The written-out bf16 attention's backward (QK^T and PV transposed) contracts bf16 operands
    with f32 accumulation, and its gradients track the f32 attention's."""
    rng = np.random.default_rng(1)
    q, k, v = (jnp.asarray(rng.standard_normal((2, 6, 2, 8)), jnp.bfloat16) for _ in range(3))
    w = jnp.asarray(rng.standard_normal((2, 6, 2, 8)), jnp.float32)

    def loss(q, k, v):
        out = written_out_attention(q, k, v, scale=8**-0.5, causal=True)
        return jnp.sum(out.astype(jnp.float32) * w)

    f32 = lambda *a: tuple(x.astype(jnp.float32) for x in a)
    got = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(loss, argnums=(0, 1, 2))(*f32(q, k, v))
    for g, r in zip(got, want, strict=True):
        g, r = np.asarray(g, np.float32).ravel(), np.asarray(r).ravel()
        assert g.dtype == np.float32 and np.abs(g - r).max() < 0.05 * np.abs(r).max()
        assert g @ r / np.linalg.norm(g) / np.linalg.norm(r) > 0.999
    assert all(x.dtype == jnp.bfloat16 for x in got)
    text = _lowered_text(jax.value_and_grad(loss, argnums=(0, 1, 2)), q, k, v)
    dots = [line for line in text.splitlines() if "dot_general" in line]
    # forward QK^T and PV, backward dV, dP, dQ, dK
    assert len(dots) == 6 and all("bf16>, tensor<" in d and "xbf16>) ->" in d for d in dots), dots
