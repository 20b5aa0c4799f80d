"""A small real index (generated scenes, random test-tiny CLIP) and a warmed Searcher over it, for
the search server's HTTP and browser tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.scenes import draw_scene, make_scene_folder

WEIGHTS = "random:test-tiny"


def build_server_index(base: Path):
    """Scenes under ``base/photos`` plus a symlink in that folder pointing at a photo outside it
    (indexed like any file, never served); returns ``(root, index, outside_photo)``."""
    from drc_jax.clip import load_clip
    from drc_jax.search import build_index

    root = base / "photos"
    make_scene_folder(root, per_combination=1)
    outside = base / "private" / "secret.png"
    outside.parent.mkdir()
    draw_scene("cat", "street", seed=7).save(outside)
    (root / "escape.png").symlink_to(outside)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "wide red.png")  # a space in the id
    index = base / "index"
    build_index(root, index, weights=WEIGHTS, clip=load_clip(WEIGHTS), progress=False)
    return root, index, outside


def open_warm_searcher(index: Path):
    from drc_jax.search import Searcher

    searcher = Searcher.open(index, image_dtype="bfloat16")
    searcher.warm(k=24)
    return searcher
