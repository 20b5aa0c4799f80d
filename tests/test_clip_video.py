"""Video frames: PyAV decoding, SpaceVLM/NegBench sampling, clear errors, embedding average."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drc_jax.clip import load_clip
from drc_jax.media import MediaError, VideoReadError, frame_indices, read_video_frames


def write_counting_video(path, n_frames: int, codec: str = "mpeg4", size=(64, 48)):
    """A video whose frame ``i`` is a flat grey of level ``8 * i + 20`` (index readable back)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"} if codec == "mpeg4" else {"crf": "0"}
        for i in range(n_frames):
            img = np.full((size[1], size[0], 3), 8 * i + 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _indices(frames) -> list[int]:
    return [int(round((np.asarray(f, np.float32).mean() - 20) / 8)) for f in frames]


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
def test_spacevlm_and_negbench_sampling_pick_the_documented_frames(tmp_path, codec):
    path = tmp_path / f"count_{codec}.mp4"
    write_counting_video(path, 23, codec)
    spacevlm = read_video_frames(path)  # linspace(0, 22, 4) = 0, 7.33, 14.67, 22
    negbench = read_video_frames(path, sampling="negbench")  # (i + .5) * 23 / 4
    assert _indices(spacevlm) == [0, 7, 14, 22]
    assert _indices(negbench) == [2, 8, 14, 20]
    assert all(f.mode == "RGB" and f.size == (64, 48) for f in spacevlm)
    assert _indices(read_video_frames(path, num_frames=8)) == list(
        np.linspace(0, 22, 8).astype(int)
    )


@given(st.integers(1, 5000), st.integers(1, 16), st.sampled_from(["spacevlm", "negbench"]))
def test_frame_indices_are_sorted_and_in_range(n, k, sampling):
    idx = frame_indices(n, k, sampling)
    assert len(idx) == k and (np.diff(idx) >= 0).all() and idx.min() >= 0 and idx.max() < n
    if sampling == "spacevlm" and k > 1:
        assert idx[0] == 0 and idx[-1] == n - 1


def test_short_video_repeats_frames_rather_than_failing(tmp_path):
    path = tmp_path / "two.mp4"
    write_counting_video(path, 2)
    assert _indices(read_video_frames(path)) == [0, 0, 0, 1]


def test_corrupt_truncated_and_missing_videos_raise_errors_naming_the_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(VideoReadError, match="junk.mp4"):
        read_video_frames(junk)
    good = tmp_path / "good.mp4"
    write_counting_video(good, 30)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[:600])
    with pytest.raises(VideoReadError, match="cut.mp4"):
        read_video_frames(cut)
    with pytest.raises(VideoReadError, match="missing.mp4: no such video file"):
        read_video_frames(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="unknown frame sampling 'middle'"):
        read_video_frames(good, sampling="middle")
    assert issubclass(VideoReadError, MediaError)  # one except clause for every media failure


def test_video_embedding_is_mean_of_unit_frame_embeddings(tmp_path):
    clip = load_clip("random:test-tiny", use_cache=False)
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((3, 4, 224, 224, 3)).astype(np.float32)
    per_frame = clip.encode_images(frames.reshape(12, 224, 224, 3)).reshape(3, 4, -1)
    mean = per_frame.mean(axis=1)
    raw = clip.encode_videos(frames, renormalize=False)  # SpaceVLM
    np.testing.assert_allclose(raw, mean, atol=1e-6)
    assert (np.linalg.norm(raw, axis=-1) < 1).all()
    normed = clip.encode_videos(frames)  # NegBench (default)
    np.testing.assert_allclose(
        normed, mean / np.linalg.norm(mean, axis=-1, keepdims=True), atol=1e-6
    )
    path = tmp_path / "v.mp4"
    write_counting_video(path, 10)
    pixels = clip.preprocess(read_video_frames(path))
    assert clip.encode_videos(pixels[None]).shape == (1, clip.embed_dim)
