"""Decoding and embedding media: one photo embeds identically in the benchmark and in search,
EXIF orientation applied; bombs, missing decoders, unreadable files and broken weights fail
per file with a message naming it."""

from __future__ import annotations

import struct
import sys
import zlib
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from ml_dtypes import bfloat16
from PIL import Image, ImageOps

from drc_jax.clip import ClipEncoder, load_clip
from drc_jax.launch.encode import media_embedder
from drc_jax.media import MediaEmbedder, MediaError, read_image
from drc_jax.media import image as media_image
from drc_jax.search import build_index
from drc_jax.store import ItemError
from tests.test_search_index import stored

ROTATE_90_CW = 6  # EXIF Orientation: the stored pixels must be turned 90 degrees clockwise


@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip("random:test-tiny", use_cache=False)


def sideways_photo(path):
    """A JPEG stored sideways (a phone held upright) with the EXIF tag that says so."""
    rng = np.random.default_rng(0)
    pixels = np.kron(rng.integers(0, 255, (6, 8, 3), np.uint8), np.ones((20, 20, 1), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = ROTATE_90_CW
    Image.fromarray(pixels).save(path, format="JPEG", quality=95, exif=exif)
    return path


def png_bomb(path, side=100_000):
    """A PNG whose header claims ``side`` x ``side`` pixels (1e10) over a few bytes of data."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat))
    return path


def test_a_sideways_photo_embeds_upright_and_identically_in_benchmark_and_search(
    tmp_path, tiny_clip
):
    photos = tmp_path / "photos"
    photos.mkdir()
    jpeg = sideways_photo(photos / "phone.jpg")
    with Image.open(jpeg) as as_stored:
        upright = ImageOps.exif_transpose(as_stored)
        upright.save(tmp_path / "upright.png")  # the pixels a viewer shows, losslessly
        raw_size = as_stored.size
    assert read_image(jpeg).size == raw_size[::-1] == upright.size

    opts = SimpleNamespace(
        preprocess="spacevlm", video_frames=4, video_sampling="spacevlm", video_renormalize=True
    )
    with media_embedder(tiny_clip, SimpleNamespace(kind="image"), opts) as bench_embed:
        benchmark = bench_embed([str(jpeg), str(tmp_path / "upright.png")])
    build_index(photos, tmp_path / "index", clip=tiny_clip, progress=False)
    search = stored(tmp_path / "index")["phone.jpg"]

    as_stored = benchmark[0].astype(bfloat16).astype(np.float32)  # the index stores bfloat16
    np.testing.assert_array_equal(as_stored, np.asarray(search, np.float32))
    np.testing.assert_allclose(benchmark[0], benchmark[1], atol=1e-6)  # upright pixels
    with Image.open(jpeg) as sideways:  # what ignoring the tag would give: another embedding
        ignored = tiny_clip.encode_images(tiny_clip.preprocess([sideways.convert("RGB")]))[0]
    assert not np.allclose(ignored, search, atol=1e-3)


def test_a_decompression_bomb_is_a_media_error_naming_the_file(tmp_path, tiny_clip):
    bomb = png_bomb(tmp_path / "huge.png")
    with pytest.raises(MediaError, match=r"huge\.png: refused as a possible decompression bomb"):
        read_image(bomb)
    Image.new("RGB", (40, 30), "blue").save(tmp_path / "fine.png")
    with MediaEmbedder(tiny_clip, root=tmp_path) as embed:
        out = embed.embed(["huge.png", "fine.png"])
    assert out.keys == ["fine.png"] and out.vectors.shape == (1, tiny_clip.embed_dim)
    assert "MAX_IMAGE_PIXELS" in out.failed["huge.png"]


def test_heic_without_pillow_heif_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # an import of it fails
    media_image._register_heif.cache_clear()
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(b"\0\0\0\x18ftypheic")
    with pytest.raises(MediaError, match=r"IMG_0001\.HEIC: .*pip install 'drc-jax\[heif\]'"):
        read_image(photo)
    media_image._register_heif.cache_clear()


def test_heic_decodes_through_pillow_heif_once_it_is_registered(tmp_path, monkeypatch):
    """The heif extra's opener is registered on the first HEIC file, once; Pillow then reads it
    (here a PNG under a .heic name: Pillow identifies files by content)."""
    calls = []

    fake = SimpleNamespace(register_heif_opener=lambda: calls.append("heif"))
    monkeypatch.setitem(sys.modules, "pillow_heif", fake)  # stands in for the heif extra
    media_image._register_heif.cache_clear()
    Image.new("RGB", (10, 8), "red").save(tmp_path / "a.heic", format="PNG")
    try:
        assert read_image(tmp_path / "a.heic").getpixel((0, 0)) == (255, 0, 0)
        read_image(tmp_path / "a.heic")
        assert calls == ["heif"]
    finally:
        media_image._register_heif.cache_clear()


def test_unreadable_files_fail_alone_and_the_store_retry_decodes_nothing_twice(tmp_path, tiny_clip):
    Image.new("RGB", (40, 30), "red").save(tmp_path / "ok.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    decoded, encoded = [], []

    class Counting(MediaEmbedder):
        def _decode(self, key):
            decoded.append(key)
            return super()._decode(key)

        def _encode(self, keys, images):
            encoded.extend(keys)
            return super()._encode(keys, images)

    with Counting(tiny_clip, root=tmp_path) as embed:
        out = embed.embed(["broken.jpg", "ok.png", "absent.png"])
        assert out.keys == ["ok.png"]
        assert out.failed["absent.png"] == "file not found"
        assert out.failed["broken.jpg"].startswith("not a readable image (UnidentifiedImageError")
        with pytest.raises(ItemError) as e:
            embed(["broken.jpg", "ok.png"])
        assert e.value.id == "broken.jpg"
        np.testing.assert_array_equal(embed(["ok.png"]), out.vectors)
    assert sorted(decoded) == ["absent.png", "broken.jpg", "ok.png"]  # each decoded once
    assert encoded == ["ok.png"]  # and encoded once


def test_weights_that_give_non_finite_embeddings_fail_each_item_by_name(tmp_path, tiny_clip):
    params = jax.tree.map(np.array, tiny_clip.params)
    params["visual_projection"]["kernel"][0, 0] = np.nan
    broken = ClipEncoder(
        tiny_clip.config, params, tiny_clip.tokenizer, "float32", weights_id="nan-weights"
    )
    Image.new("RGB", (40, 30), "red").save(tmp_path / "a.png")
    with MediaEmbedder(broken, root=tmp_path) as embed:
        out = embed.embed(["a.png"])
    assert out.keys == [] and "non-finite embedding" in out.failed["a.png"]


def test_a_photo_folder_with_a_video_indexes_it_with_the_benchmark_video_decoder(
    tmp_path, tiny_clip
):
    from drc_jax.media import read_video_frames
    from tests.test_clip_video import write_counting_video

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), "red").save(photos / "a.png")
    write_counting_video(photos / "clip.mp4", 12)
    report = build_index(photos, tmp_path / "index", clip=tiny_clip, progress=False)
    assert report.added == 2 and not report.failed
    embeddings = stored(tmp_path / "index")
    frames = tiny_clip.preprocess(read_video_frames(photos / "clip.mp4"))
    expected = tiny_clip.encode_videos(frames[None])[0].astype(bfloat16)  # as the index stores
    np.testing.assert_array_equal(embeddings["clip.mp4"], expected)


def test_a_large_jpeg_embeds_from_its_full_decode_as_the_reference_preprocessing_does(
    tmp_path, tiny_clip
):
    """No reduced-scale (draft) JPEG decoding unless asked: SpaceVLM and OpenAI resize the full
    decode, and libjpeg's DCT-scaled decode of a large photo gives other pixels."""
    rng = np.random.default_rng(1)
    big = np.kron(rng.integers(0, 255, (60, 80, 3), np.uint8), np.ones((16, 16, 1), np.uint8))
    Image.fromarray(big).save(tmp_path / "big.jpg", format="JPEG", quality=90)  # 1280 x 960
    with Image.open(tmp_path / "big.jpg") as img:
        full = tiny_clip.encode_images(tiny_clip.preprocess([img.convert("RGB")]))[0]
    with MediaEmbedder(tiny_clip, root=tmp_path) as embed:
        exact = embed.embed(["big.jpg"]).vectors[0]
    with MediaEmbedder(tiny_clip, root=tmp_path, draft=True) as embed:
        drafted = embed.embed(["big.jpg"]).vectors[0]
    np.testing.assert_array_equal(exact, full)
    assert not np.array_equal(drafted, full)  # the option is real: it decodes other pixels
