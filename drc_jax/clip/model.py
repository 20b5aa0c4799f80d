"""OpenAI CLIP's image and text towers in Flax (linen).

Parameter names mirror Hugging Face's ``CLIPModel`` (``layers.3.self_attn.q_proj.weight`` ->
``layers_3/self_attn/q_proj/kernel``) so :mod:`drc_jax.clip.convert` is a short table. Matmuls
run in ``dtype`` with f32 accumulation; residuals, norms, softmax and outputs stay float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn

from drc_jax.clip.config import CLIPConfig, TextConfig, VisionConfig

Dtype = jnp.dtype
TOWERS = ("image", "text")
TOWER_PARAMS = {
    "image": ("vision_model", "visual_projection"),
    "text": ("text_model", "text_projection"),
}


def quick_gelu(x):
    """OpenAI CLIP's activation, ``x * sigmoid(1.702 x)``."""
    return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS = {
    "quick_gelu": quick_gelu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
}


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported hidden_act {name!r}; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def matmul_precision(dtype) -> jax.lax.Precision:
    """``HIGHEST`` for float32 compute (else NVIDIA GPUs run it as TF32), ``DEFAULT`` else."""
    return (
        jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else jax.lax.Precision.DEFAULT
    )


@jax.custom_vjp
def lowp_dot(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x @ kernel`` of bf16/f16 operands, f32 result; the backward products stay in that dtype."""
    return jnp.dot(x, kernel, preferred_element_type=jnp.float32)


def _lowp_dot_fwd(x, kernel):
    return lowp_dot(x, kernel), (x, kernel)


def _lowp_dot_bwd(res, g):
    x, kernel = res
    g = g.astype(x.dtype)
    last = g.ndim - 1
    dx = jax.lax.dot_general(
        g, kernel, (((last,), (1,)), ((), ())), preferred_element_type=jnp.float32
    )
    lead = tuple(range(last))
    dk = jax.lax.dot_general(x, g, ((lead, lead), ((), ())), preferred_element_type=jnp.float32)
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


lowp_dot.defvjp(_lowp_dot_fwd, _lowp_dot_bwd)


class Dense(nn.Module):
    """``x @ kernel + bias`` in ``dtype`` with a float32 result (bf16/f16: :func:`lowp_dot`)."""

    features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kernel = self.param(
            "kernel", nn.initializers.normal(0.02), (x.shape[-1], self.features), jnp.float32
        )
        if jnp.dtype(self.dtype) == jnp.float32:
            y = jnp.dot(
                x.astype(jnp.float32),
                kernel,
                preferred_element_type=jnp.float32,
                precision=matmul_precision(self.dtype),
            )
        else:
            y = lowp_dot(x.astype(self.dtype), kernel.astype(self.dtype))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return y


def layer_norm(eps: float, name: str) -> nn.LayerNorm:
    """LayerNorm computed in float32 whatever the compute dtype (params ``scale``/``bias``)."""
    return nn.LayerNorm(epsilon=eps, dtype=jnp.float32, param_dtype=jnp.float32, name=name)


def attention(q, k, v, *, scale: float, causal: bool):
    """Multi-head softmax attention over (B, T, heads, head_dim) inputs, in ``q.dtype``.

    Written out for bf16 on CPU (XLA:CPU's bf16 GEMMs) and f32 on accelerators (``HIGHEST``
    precision, not TF32); else ``jax.nn.dot_product_attention``.
    """
    cpu = jax.default_backend() == "cpu"
    if (cpu and q.dtype == jnp.bfloat16) or (not cpu and q.dtype == jnp.float32):
        return written_out_attention(q, k, v, scale=scale, causal=causal)
    return jax.nn.dot_product_attention(q, k, v, scale=scale, is_causal=causal)


def written_out_attention(q, k, v, *, scale: float, causal: bool):
    """Attention as two einsums, f32 logits and softmax, products accumulated in f32."""
    if jnp.dtype(q.dtype) != jnp.float32:
        return lowp_attention(q, k, v, scale, causal)
    return _attention_fwd(q, k, v, scale, causal)[0]


def _attention_fwd(q, k, v, scale, causal):
    prec = matmul_precision(q.dtype)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32, precision=prec)
    logits = logits * scale
    if causal:
        t = q.shape[1]
        logits = jnp.where(jnp.tril(jnp.ones((t, t), bool)), logits, -jnp.inf)
    p = jax.nn.softmax(logits, axis=-1)
    pv = p.astype(v.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", pv, v, preferred_element_type=jnp.float32, precision=prec)
    return out.astype(v.dtype), p


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def lowp_attention(q, k, v, scale: float, causal: bool):
    """Low-precision attention whose backward products run in that dtype too (as ``lowp_dot``)."""
    return _attention_fwd(q, k, v, scale, causal)[0]


def _lowp_attention_fwd(q, k, v, scale, causal):
    out, p = _attention_fwd(q, k, v, scale, causal)
    return out, (q, k, v, p)


def _lowp_attention_bwd(scale, causal, res, g):
    q, k, v, p = res
    dt, f32 = v.dtype, jnp.float32
    g = g.astype(dt)
    dv = jnp.einsum("bhqk,bqhd->bkhd", p.astype(dt), g, preferred_element_type=f32)
    dp = jnp.einsum("bqhd,bkhd->bhqk", g, v, preferred_element_type=f32)
    dlogits = (p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True)) * scale).astype(dt)
    dq = jnp.einsum("bhqk,bkhd->bqhd", dlogits, k, preferred_element_type=f32)
    dk = jnp.einsum("bhqk,bqhd->bkhd", dlogits, q, preferred_element_type=f32)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(dt)


lowp_attention.defvjp(_lowp_attention_fwd, _lowp_attention_bwd)


class Attention(nn.Module):
    hidden_size: int
    num_heads: int
    causal: bool
    dtype: Dtype

    @nn.compact
    def __call__(self, x):
        b, t, d = x.shape
        h = d // self.num_heads
        xd = x.astype(self.dtype)

        def heads(name):
            y = Dense(d, dtype=self.dtype, name=name)(xd)
            return y.astype(self.dtype).reshape(b, t, self.num_heads, h)

        q, k, v = heads("q_proj"), heads("k_proj"), heads("v_proj")
        o = attention(q, k, v, scale=h**-0.5, causal=self.causal)
        return Dense(d, dtype=self.dtype, name="out_proj")(o.reshape(b, t, d))


class MLP(nn.Module):
    hidden_size: int
    intermediate_size: int
    act: str
    dtype: Dtype

    @nn.compact
    def __call__(self, x):
        y = Dense(self.intermediate_size, dtype=self.dtype, name="fc1")(x)
        y = _activation(self.act)(y).astype(self.dtype)
        return Dense(self.hidden_size, dtype=self.dtype, name="fc2")(y)


class EncoderLayer(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    cfg: VisionConfig | TextConfig
    causal: bool
    dtype: Dtype

    @nn.compact
    def __call__(self, x):
        c = self.cfg
        y = layer_norm(c.layer_norm_eps, "layer_norm1")(x.astype(jnp.float32))
        x = x + Attention(
            c.hidden_size, c.num_attention_heads, self.causal, self.dtype, name="self_attn"
        )(y)
        y = layer_norm(c.layer_norm_eps, "layer_norm2")(x.astype(jnp.float32))
        return x + MLP(c.hidden_size, c.intermediate_size, c.hidden_act, self.dtype, name="mlp")(y)


class Encoder(nn.Module):
    """``num_hidden_layers`` blocks; ``remat`` recomputes each block in the backward pass."""

    cfg: VisionConfig | TextConfig
    causal: bool
    dtype: Dtype
    remat: bool = False

    @nn.compact
    def __call__(self, x):
        layer = nn.remat(EncoderLayer) if self.remat else EncoderLayer
        for i in range(self.cfg.num_hidden_layers):
            x = layer(self.cfg, self.causal, self.dtype, name=f"layers_{i}")(x)
        return x


class VisionTransformer(nn.Module):
    cfg: VisionConfig
    dtype: Dtype

    @nn.compact
    def __call__(self, pixels):
        c = self.cfg
        x = _VisionEmbeddingsScope(c, self.dtype, name="embeddings")(pixels)
        x = layer_norm(c.layer_norm_eps, "pre_layrnorm")(x.astype(jnp.float32))
        x = Encoder(c, causal=False, dtype=self.dtype, name="encoder")(x)
        return layer_norm(c.layer_norm_eps, "post_layernorm")(x[:, 0])


class _VisionEmbeddingsScope(nn.Module):
    """``embeddings/{class_embedding, patch_embedding/kernel, position_embedding/embedding}``."""

    cfg: VisionConfig
    dtype: Dtype

    @nn.compact
    def __call__(self, pixels):
        c = self.cfg
        b, hh, ww, ch = pixels.shape
        p = c.patch_size
        if hh != c.image_size or ww != c.image_size:
            raise ValueError(
                f"expected {c.image_size}x{c.image_size} images, got {hh}x{ww} "
                f"(shape {pixels.shape})"
            )
        g = c.image_size // p
        kernel = _Param((p, p, ch, c.hidden_size), name="patch_embedding")()
        x = pixels.astype(self.dtype).reshape(b, g, p, g, p, ch).transpose(0, 1, 3, 2, 4, 5)
        x = jnp.dot(
            x.reshape(b, g * g, p * p * ch),
            kernel.reshape(p * p * ch, c.hidden_size).astype(self.dtype),
            preferred_element_type=jnp.float32,
        )
        cls = self.param("class_embedding", nn.initializers.normal(0.02), (c.hidden_size,))
        x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, c.hidden_size)), x], axis=1)
        pos = nn.Embed(g * g + 1, c.hidden_size, name="position_embedding").embedding
        return x + pos[None]


class _Param(nn.Module):
    shape: tuple[int, ...]

    @nn.compact
    def __call__(self):
        return self.param("kernel", nn.initializers.normal(0.02), self.shape, jnp.float32)


class TextTransformer(nn.Module):
    cfg: TextConfig
    dtype: Dtype
    remat: bool = False

    @nn.compact
    def __call__(self, ids):
        c = self.cfg
        b, t = ids.shape
        if t > c.max_position_embeddings:
            raise ValueError(
                f"token ids of length {t} exceed the context of {c.max_position_embeddings}"
            )
        x = _TextEmbeddingsScope(c, name="embeddings")(ids)
        x = Encoder(c, causal=True, dtype=self.dtype, remat=self.remat, name="encoder")(x)
        x = layer_norm(c.layer_norm_eps, "final_layer_norm")(x.astype(jnp.float32))
        # EOT pooling: under the causal mask, padding after EOT cannot change the pooled vector.
        if c.eos_token_id is None:
            eot = jnp.argmax(ids, axis=-1)
        else:
            eot = jnp.argmax(ids == c.eos_token_id, axis=-1)
        return jnp.take_along_axis(x, eot[:, None, None], axis=1)[:, 0]


class _TextEmbeddingsScope(nn.Module):
    """``embeddings/{token_embedding, position_embedding}/embedding``."""

    cfg: TextConfig

    @nn.compact
    def __call__(self, ids):
        c = self.cfg
        tok = nn.Embed(c.vocab_size, c.hidden_size, name="token_embedding")
        pos = nn.Embed(c.max_position_embeddings, c.hidden_size, name="position_embedding")
        return tok(ids) + pos.embedding[None, : ids.shape[1]]


class CLIP(nn.Module):
    """Both towers and their projections; ``encode_*`` return unit-norm float32 embeddings."""

    config: CLIPConfig
    dtype: Dtype = jnp.float32
    remat_text: bool = False

    def setup(self):
        c = self.config
        self.vision_model = VisionTransformer(c.vision, self.dtype)
        self.text_model = TextTransformer(c.text, self.dtype, self.remat_text)
        self.visual_projection = Dense(c.projection_dim, use_bias=False, dtype=self.dtype)
        self.text_projection = Dense(c.projection_dim, use_bias=False, dtype=self.dtype)

    def encode_image(self, pixels):
        """``pixels``: (B, H, W, 3) CLIP-normalised NHWC -> (B, projection_dim) unit-norm f32."""
        return _l2_normalize(self.visual_projection(self.vision_model(pixels)))

    def encode_text(self, ids):
        """``ids``: (B, L) int32 CLIP BPE ids with EOT -> (B, projection_dim) unit-norm f32."""
        return _l2_normalize(self.text_projection(self.text_model(ids)))

    def __call__(self, pixels, ids):
        return self.encode_image(pixels), self.encode_text(ids)


def _l2_normalize(x):
    x = x.astype(jnp.float32)
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))
