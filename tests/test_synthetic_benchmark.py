"""The offline synthetic benchmark: NegBench-format files that the real loaders read back."""

from __future__ import annotations

from drc_jax import media as media_io
from drc_jax.data.synthetic import OBJECTS, SyntheticSpec, build, load_synthetic

SMALL = SyntheticSpec(num_images=6, captions_per_image=2, num_videos=3, frames_per_video=6)


def test_synthetic_images_negate_an_absent_object_and_show_the_present_ones(tmp_path):
    bench = load_synthetic(tmp_path, "image", SMALL)
    assert bench.kind == "image" and len(bench.media) == 6 and len(bench.queries) == 12
    index = media_io.MediaIndex(tmp_path)
    for q in bench.queries:
        item = bench.media[q.gt]
        assert q.negated in OBJECTS and q.negated not in item.positive_objects
        assert q.negated in q.caption
        assert all(obj in q.caption for obj in item.positive_objects)
        # Recorded paths are another machine's; the file is still found by name.
        assert item.recorded_path.startswith("/datasets/elsewhere/")
        img = media_io.read_image(index.find(item.recorded_path))
        assert img.size == (SMALL.size, SMALL.size)


def test_synthetic_videos_decode_to_the_requested_frames(tmp_path):
    bench = load_synthetic(tmp_path, "video", SMALL)
    assert bench.kind == "video" and len(bench.media) == len(bench.queries) == 3
    index = media_io.MediaIndex(tmp_path)
    frames = media_io.read_video_frames(index.find(bench.media[0].recorded_path), 4)
    assert len(frames) == 4 and frames[0].size == (SMALL.size, SMALL.size)


def test_synthetic_set_is_deterministic_and_not_rewritten_when_present(tmp_path):
    a_csv, _ = build(tmp_path / "a", SMALL)
    b_csv, _ = build(tmp_path / "b", SMALL)
    assert a_csv.read_text() == b_csv.read_text()
    img = next((tmp_path / "a" / "images").iterdir())
    mtime = img.stat().st_mtime_ns
    build(tmp_path / "a", SMALL)  # same spec: files kept, so cache fingerprints stay valid
    assert img.stat().st_mtime_ns == mtime
    other = build(tmp_path / "a", SyntheticSpec(num_images=4, num_videos=2, seed=1))[0]
    assert other.read_text() != b_csv.read_text()
