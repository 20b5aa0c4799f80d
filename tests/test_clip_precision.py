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
