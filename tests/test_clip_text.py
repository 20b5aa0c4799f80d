"""CLIP tokenisation and text encoding: OpenAI ids, truncation keeping EOT, length buckets."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drc_jax.clip import load_clip
from drc_jax.clip.model import CLIP
from drc_jax.clip.tokenizer import (
    LENGTH_BUCKETS,
    BackendTokenizer,
    ClipTokenizer,
    find_bpe_vocab,
    load_tokenizer,
    tokenizer_from_bpe,
)
from tests.clip_fixtures import negbench_captions

EOT = 49407


@pytest.fixture(scope="module")
def clip():
    return load_clip("random:test-tiny", use_cache=False)


@pytest.fixture(scope="module")
def tok():
    return ClipTokenizer(tokenizer_from_bpe())


def test_bpe_vocab_tokenizer_reproduces_openai_ids(tok):
    # OpenAI CLIP README: clip.tokenize("a photo of a cat") -> 49406 320 1125 539 320 2368 49407
    ids = tok(["a photo of a cat", "A  Photo of a CAT"])
    assert ids[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, EOT]
    np.testing.assert_array_equal(ids[0], ids[1])  # lower-cased, whitespace folded
    assert len(tokenizer_from_bpe().get_vocab()) == 49408
    assert find_bpe_vocab().name == "bpe_simple_vocab_16e6.txt.gz"


def test_long_text_is_truncated_to_77_tokens_ending_in_eot(tok):
    text = "there is no dog on the sunny beach today " * 20
    assert tok.count_tokens(text) > 77
    ids = tok([text, "short"])
    assert ids.shape == (2, 77)
    assert ids[0, 0] == 49406 and ids[0, 76] == EOT and (ids[0, 1:76] != EOT).all()


def test_batch_is_padded_to_the_shortest_bucket_that_fits(tok):
    for n_content, bucket in [(0, 16), (14, 16), (15, 32), (46, 48), (62, 64), (63, 77), (500, 77)]:
        ids = tok(["", " ".join(["cat"] * n_content)])
        assert ids.shape[1] == bucket, (n_content, ids.shape)
    assert LENGTH_BUCKETS[-1] == 77


def test_count_tokens_includes_bos_and_eot(clip):
    assert clip.count_tokens("a photo of a cat") == 7
    assert clip.count_tokens("") == 2


@functools.partial(jax.jit, static_argnums=0)
def _encode_text(config, params, ids):
    return CLIP(config).apply({"params": params}, ids, method=CLIP.encode_text)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(0, EOT - 2), min_size=0, max_size=75), min_size=4, max_size=4))
def test_bucketed_length_gives_the_same_embedding_as_padding_to_77(clip, contents):
    """Causal mask + EOT pooling: positions after EOT cannot change the EOT output, so encoding
    at the shortest bucket equals OpenAI's fixed 77-token padding."""
    ids77 = np.zeros((len(contents), 77), np.int32)
    for i, c in enumerate(contents):
        ids77[i, : len(c) + 2] = [49406, *c, EOT]
    need = max(len(c) for c in contents) + 2
    bucket = next(b for b in LENGTH_BUCKETS if b >= need)
    full = _encode_text(clip.config, clip.params, jnp.asarray(ids77))
    short = _encode_text(clip.config, clip.params, jnp.asarray(ids77[:, :bucket]))
    np.testing.assert_allclose(np.asarray(short), np.asarray(full), atol=2e-6)
    # and through the public API, which buckets each row on its own
    np.testing.assert_allclose(clip.encode_token_ids(ids77), np.asarray(full), atol=2e-6)


def test_encode_texts_equals_encode_token_ids_of_the_tokenised_texts(clip, negbench_dir):
    texts = negbench_captions(negbench_dir, 40)
    ids = clip.tokenizer(texts, length=77)
    np.testing.assert_allclose(clip.encode_texts(texts), clip.encode_token_ids(ids), atol=1e-6)
    order = np.random.default_rng(0).permutation(len(texts))
    np.testing.assert_allclose(
        clip.encode_texts([texts[i] for i in order]), clip.encode_texts(texts)[order], atol=1e-6
    )


def test_token_ids_without_eot_are_rejected(clip):
    with pytest.raises(ValueError, match=r"rows \[1\] contain no EOT"):
        clip.encode_token_ids(np.array([[49406, 320, EOT], [49406, 320, 0]], np.int32))
    with pytest.raises(TypeError, match="list of strings"):
        clip.encode_texts("a single string")


def test_cached_bpe_tokenizer_gives_transformers_ids_and_survives_a_damaged_file(
    tmp_path, negbench_dir
):
    # load_tokenizer reads the BPE tokenizer back with `tokenizers` alone (no transformers
    # import on a query's start-up); its ids must be transformers' CLIPTokenizer's, byte for byte.
    texts = negbench_captions(negbench_dir, 200) + [
        "A  Photo of a CAT",
        "naïve café, 'tis   the résumé!!",
        "don't\tstop\nnow 123 ½ 😀",
        "",
    ]
    reference = ClipTokenizer(tokenizer_from_bpe())
    first = load_tokenizer(cache_dir=tmp_path)  # builds and writes the cache file
    (cached,) = (tmp_path / "tokenizers").iterdir()
    second = load_tokenizer(cache_dir=tmp_path)  # reads it
    assert isinstance(second, BackendTokenizer)
    for hf in (first, second):
        tok = ClipTokenizer(hf)
        assert tok.vocab_size == reference.vocab_size == 49408
        np.testing.assert_array_equal(tok(texts), reference(texts))
        np.testing.assert_array_equal(tok(texts, length=77), reference(texts, length=77))
    cached.write_text("{not json")
    rebuilt = ClipTokenizer(load_tokenizer(cache_dir=tmp_path))
    np.testing.assert_array_equal(rebuilt(texts), reference(texts))
