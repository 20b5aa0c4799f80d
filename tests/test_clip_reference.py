"""Parity of the Flax CLIP with transformers' PyTorch CLIPModel on full-size random weights,
loaded from a save_pretrained directory and from OpenAI/open_clip-format state dicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from drc_jax.clip import load_clip
from tests.clip_fixtures import (
    hf_to_openai_state_dict,
    make_hf_clip,
    negbench_captions,
    photos,
    save_openai_torchscript,
    torch_reference,
)

pytestmark = pytest.mark.slow


def _texts(negbench_dir):
    long = "a very long caption about a kitchen with no chair " * 12  # > 77 tokens
    return [*negbench_captions(negbench_dir, 10), long, "a dog", ""]


_BUILT: dict[int, dict] = {}


def _build(patch: int, tmp_path_factory, negbench_dir) -> dict:
    """A full-size random CLIP saved by transformers, its reference embeddings, and its
    OpenAI-format state dict saved as a wrapped .pt and as .safetensors (built once per module)."""
    if patch in _BUILT:
        return _BUILT[patch]
    from transformers import CLIPTokenizer

    root = tmp_path_factory.mktemp(f"clip_p{patch}")
    hf_dir = root / "hf"
    model = make_hf_clip(hf_dir, patch_size=patch)
    tok = CLIPTokenizer.from_pretrained(hf_dir)
    clip = load_clip(hf_dir, cache_dir=root / "cache")
    pixels = clip.preprocess(photos(), mode="openai")
    texts = _texts(negbench_dir)
    ref_img, ref_txt, ref_ids = torch_reference(model, tok, pixels, texts)

    oa = hf_to_openai_state_dict(model.state_dict())
    wrapped = {"state_dict": {f"module.{k}": v for k, v in oa.items()}, "epoch": 3}
    torch.save(wrapped, root / "negclip_style.pt")
    save_file(oa, str(root / "openai_format.safetensors"))
    save_openai_torchscript(oa, root / "openai_torchscript.pt")
    del model, oa, wrapped
    _BUILT[patch] = dict(
        root=root,
        hf_dir=hf_dir,
        clip=clip,
        pixels=pixels,
        texts=texts,
        ref_img=ref_img,
        ref_txt=ref_txt,
        ref_ids=ref_ids,
    )
    return _BUILT[patch]


@pytest.fixture(scope="module", params=[32, 16], ids=["ViT-B-32", "ViT-B-16"])
def checkpoint(request, tmp_path_factory, negbench_dir):
    return _build(request.param, tmp_path_factory, negbench_dir)


@pytest.fixture(scope="module")
def b32(tmp_path_factory, negbench_dir):
    """The ViT-B/32 checkpoint only: the format and cache tests need one backbone."""
    yield _build(32, tmp_path_factory, negbench_dir)
    _BUILT.clear()


def _assert_close(ours, ref, atol):
    np.testing.assert_allclose(np.linalg.norm(ours, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours, ref, atol=atol, rtol=0)


def test_hf_directory_matches_transformers_in_float32(checkpoint):
    clip = checkpoint["clip"]
    _assert_close(clip.encode_images(checkpoint["pixels"]), checkpoint["ref_img"], 1e-4)
    _assert_close(clip.encode_texts(checkpoint["texts"]), checkpoint["ref_txt"], 1e-4)


def test_truncated_token_ids_match_transformers_tokenizer(b32):
    clip, ref_ids = b32["clip"], b32["ref_ids"]
    checkpoint = b32
    ours = clip.tokenizer(checkpoint["texts"], length=77)
    for row, ref in zip(ours, ref_ids, strict=True):
        n = int(np.argmax(row == 49407)) + 1
        np.testing.assert_array_equal(row[:n], ref[:n])
    assert clip.count_tokens(checkpoint["texts"][-3]) > 77


def test_bfloat16_matches_transformers_float32_to_cosine_0999(checkpoint):
    clip = load_clip(checkpoint["hf_dir"], dtype="bfloat16", cache_dir=checkpoint["root"] / "cache")
    img = clip.encode_images(checkpoint["pixels"])
    txt = clip.encode_texts(checkpoint["texts"])
    assert (np.sum(img * checkpoint["ref_img"], -1) >= 0.999).all()
    assert (np.sum(txt * checkpoint["ref_txt"], -1) >= 0.999).all()
    assert clip.weights_id != checkpoint["clip"].weights_id


@pytest.mark.parametrize(
    "name", ["negclip_style.pt", "openai_format.safetensors", "openai_torchscript.pt"]
)
def test_openai_format_state_dict_matches_transformers(b32, name):
    checkpoint = b32
    clip = load_clip(checkpoint["root"] / name, cache_dir=checkpoint["root"] / "cache")
    assert clip.config.vision == checkpoint["clip"].config.vision
    _assert_close(clip.encode_images(checkpoint["pixels"]), checkpoint["ref_img"], 1e-4)
    _assert_close(clip.encode_texts(checkpoint["texts"]), checkpoint["ref_txt"], 1e-4)


def test_second_load_restores_cached_params_with_same_embeddings(b32):
    checkpoint = b32
    first = checkpoint["clip"]
    again = load_clip(checkpoint["hf_dir"], cache_dir=checkpoint["root"] / "cache")
    assert not first.loaded_from_cache and again.loaded_from_cache
    assert again.weights_id == first.weights_id
    np.testing.assert_array_equal(
        again.encode_images(checkpoint["pixels"][:2]), first.encode_images(checkpoint["pixels"][:2])
    )


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_written_out_attention_equals_jax_dot_product_attention(causal, dtype):
    """bf16 encoders on CPU use a written-out attention (f32 logits, probabilities in the compute
    dtype) to stay on the bf16 GEMM kernels; everything else uses jax.nn.dot_product_attention.
    Both must give the same result, causal mask included."""
    import jax
    import jax.numpy as jnp

    from drc_jax.clip.model import attention, written_out_attention

    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((3, 9, 4, 16)), dtype) for _ in range(3))
    got = written_out_attention(q, k, v, scale=0.25, causal=causal)
    assert got.dtype == jnp.dtype(dtype)
    if dtype == "bfloat16":  # what the encoders call on CPU in bf16
        np.testing.assert_array_equal(attention(q, k, v, scale=0.25, causal=causal), got)
    want = jax.nn.dot_product_attention(
        q.astype(jnp.float32),
        k.astype(jnp.float32),
        v.astype(jnp.float32),
        scale=0.25,
        is_causal=causal,
    )
    tol = 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want), atol=tol)
