"""Indexing a folder: incremental updates, unreadable files, settings checks (random tiny CLIP)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from drc_jax.media import read_image
from drc_jax.search import build_index, read_info, scan_images
from drc_jax.store import EmbeddingStore, StoreMismatchError
from tests.conftest import run_with_devices
from tests.scenes import draw_scene, make_scene_folder

WEIGHTS = "random:test-tiny"


class CountingClip:
    """A real CLIP whose ``encode_images`` counts the images it is given."""

    def __init__(self, clip):
        self._clip = clip
        self.images_encoded = 0

    def __getattr__(self, name):
        return getattr(self._clip, name)

    def encode_images(self, pixels, *a, **kw):
        self.images_encoded += len(pixels)
        return self._clip.encode_images(pixels, *a, **kw)


@pytest.fixture(scope="module")
def tiny_clip():
    from drc_jax.clip import load_clip

    return load_clip(WEIGHTS)


@pytest.fixture
def scenes(tmp_path):
    root = tmp_path / "photos"
    contents = make_scene_folder(root, per_combination=1)
    return root, contents


def stored(index) -> dict[str, np.ndarray]:
    store = EmbeddingStore.open(index, read_info(index).meta)
    return dict(zip(store.ids, store.embeddings, strict=True))


def test_reindex_embeds_only_added_and_changed_files_and_drops_deleted(tmp_path, scenes, tiny_clip):
    root, contents = scenes
    index = tmp_path / "index"
    clip = CountingClip(tiny_clip)
    report = build_index(root, index, clip=clip, batch_size=4, progress=False)
    assert report.added == len(contents) and clip.images_encoded == len(contents)
    before = stored(index)
    assert sorted(before) == sorted(contents)

    clip.images_encoded = 0
    report = build_index(root, index, clip=clip, progress=False)
    assert clip.images_encoded == 0 and report.unchanged == len(contents)

    # add two files (one in a new nested folder), delete one, change one
    draw_scene("dog", "park", seed=77).save(root / "park" / "new_dog.png")
    (root / "trips" / "2024").mkdir(parents=True)
    draw_scene("cat", "beach", seed=78).save(root / "trips" / "2024" / "cat.jpg")
    (root / "street" / "street_0.png").unlink()
    changed = root / "beach" / "beach_0.png"
    draw_scene("dog", "beach", seed=79).save(changed)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    clip.images_encoded = 0
    report = build_index(root, index, clip=clip, progress=False)
    assert (report.added, report.changed, report.removed) == (2, 1, 1)
    assert clip.images_encoded == 3
    after = stored(index)
    assert "street/street_0.png" not in after
    assert {"park/new_dog.png", "trips/2024/cat.jpg"} <= set(after)
    for id_, emb in before.items():  # untouched files keep their exact embeddings
        if id_ not in ("street/street_0.png", "beach/beach_0.png"):
            np.testing.assert_array_equal(after[id_], emb)
    assert not np.allclose(after["beach/beach_0.png"], before["beach/beach_0.png"])


def test_index_embedding_is_the_clip_embedding_of_that_file(tmp_path, scenes, tiny_clip):
    root, _ = scenes
    build_index(root, tmp_path / "index", clip=tiny_clip, progress=False)
    emb = stored(tmp_path / "index")
    for rel in ("park/dog_on_park_0.png", "street/cat_on_street_0.png"):
        img = read_image(root / rel, draft_size=2 * tiny_clip.image_size)
        want = tiny_clip.encode_images(tiny_clip.preprocess([img], mode="spacevlm"))[0]
        np.testing.assert_allclose(emb[rel], want, atol=1e-5)


def test_unreadable_files_are_listed_not_fatal_and_not_retried_until_changed(
    tmp_path, scenes, tiny_clip
):
    root, contents = scenes
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "park" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image, not indexed")
    (root / ".thumbs").mkdir()
    shutil.copy(root / "park" / "park_0.png", root / ".thumbs" / "park_0.png")  # hidden: skipped
    clip = CountingClip(tiny_clip)
    report = build_index(root, tmp_path / "index", clip=clip, batch_size=3, progress=False)
    failed = dict(report.failed)
    assert sorted(failed) == ["broken.jpg", "park/empty.png"]
    assert all("Error" in reason for reason in failed.values())
    assert sorted(stored(tmp_path / "index")) == sorted(contents)

    clip.images_encoded = 0
    report = build_index(root, tmp_path / "index", clip=clip, progress=False)
    assert clip.images_encoded == 0 and sorted(dict(report.failed)) == sorted(failed)

    draw_scene("dog", "street", seed=5).save(root / "broken.jpg", format="JPEG")  # repaired
    report = build_index(root, tmp_path / "index", clip=clip, progress=False)
    assert clip.images_encoded == 1 and [i for i, _ in report.failed] == ["park/empty.png"]
    assert "broken.jpg" in stored(tmp_path / "index")


def test_index_built_with_other_settings_is_refused_unless_reset(tmp_path, scenes, tiny_clip):
    root, contents = scenes
    build_index(root, tmp_path / "index", clip=tiny_clip, progress=False)
    with pytest.raises(StoreMismatchError, match="preprocess: store has 'spacevlm'"):
        build_index(root, tmp_path / "index", clip=tiny_clip, preprocess="openai", progress=False)
    report = build_index(
        root, tmp_path / "index", clip=tiny_clip, preprocess="openai", reset=True, progress=False
    )
    assert report.added == len(contents)
    assert read_info(tmp_path / "index").preprocess == "openai"


def test_scan_finds_images_recursively_in_a_stable_order(tmp_path, scenes):
    root, contents = scenes
    (root / "a.TXT").write_text("x")
    (root / "UPPER.JPG").write_bytes(b"x")
    found = [p.relative_to(root).as_posix() for p in scan_images(root)]
    assert sorted(found) == sorted([*contents, "UPPER.JPG"])
    assert found == [p.relative_to(root).as_posix() for p in scan_images(root)]


def test_missing_folder_or_index_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        build_index(tmp_path / "nope", tmp_path / "index", clip=object(), progress=False)
    with pytest.raises(FileNotFoundError, match="python -m drc_jax.search index"):
        read_info(tmp_path / "index")


def test_index_built_on_8_devices_matches_single_device(tmp_path, scenes, tiny_clip):
    root, contents = scenes
    code = f"""
    import jax, numpy as np
    from drc_jax.search import build_index
    assert jax.local_device_count() == 8
    # batch 5: not a multiple of the device count, so padding is exercised
    build_index({str(root)!r}, {str(tmp_path / "idx8")!r}, weights={WEIGHTS!r}, batch_size=5,
                progress=False)
    """
    run_with_devices(code)
    build_index(root, tmp_path / "idx1", clip=tiny_clip, progress=False)
    one, eight = stored(tmp_path / "idx1"), stored(tmp_path / "idx8")
    assert sorted(eight) == sorted(one) == sorted(contents)
    for id_ in one:
        np.testing.assert_allclose(eight[id_], one[id_], atol=1e-5)
