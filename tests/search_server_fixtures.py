"""A small real index (generated scenes, random test-tiny CLIP) and a warmed Searcher over it, for
the search server's HTTP and browser tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.scenes import draw_scene, make_scene_folder

WEIGHTS = "random:test-tiny"


def build_server_index(base: Path, video: bool = False):
    """Scenes under ``base/photos`` and ``escape.png``, an indexed photo that is then replaced by
    a symlink to a photo outside the folder (listed by the index, never served); with ``video``
    also ``clips/dusk.mp4`` (H.264, 12 s, dark from 8 s: the segment the random test CLIP
    prefers, so a hit seeks past the start) and ``clips/old camera.mp4`` (MPEG-4 Part 2, 3 s);
    returns ``(root, index, outside_photo)``."""
    from drc_jax.clip import load_clip
    from drc_jax.search import build_index

    root = base / "photos"
    make_scene_folder(root, per_combination=1)
    if video:
        from tests.test_search_video import write_video

        (root / "clips").mkdir()
        write_video(root / "clips" / "dusk.mp4", [220] * 4 + [120] * 4 + [30] * 4, codec="libx264")
        write_video(
            root / "clips" / "old camera.mp4", [150] * 3
        )  # MPEG-4 Part 2: no browser plays it
    outside = base / "private" / "secret.png"
    outside.parent.mkdir()
    draw_scene("cat", "street", seed=7).save(outside)
    draw_scene("dog", "park", seed=8).save(root / "escape.png")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "wide red.png")  # a space in the id
    index = base / "index"
    build_index(root, index, weights=WEIGHTS, clip=load_clip(WEIGHTS), progress=False)
    (root / "escape.png").unlink()
    (root / "escape.png").symlink_to(outside)
    return root, index, outside


def open_warm_searcher(index: Path):
    from drc_jax.search import Searcher

    searcher = Searcher.open(index, image_dtype="bfloat16")
    searcher.warm(k=24)
    return searcher
