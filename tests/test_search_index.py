"""Indexing folders: incremental updates, moves, unreadable files, settings (random tiny CLIP)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from drc_jax.media import read_image
from drc_jax.search import build_index, read_info, scan_media
from drc_jax.search.index import indexed_files
from drc_jax.store import Store, StoreError, StoreMismatchError
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
    """``id (path relative to its root) -> embedding`` of every indexed file."""
    info = read_info(index)
    with Store.open(index, None) as store:
        indexed_files(store, info.roots)  # every stored path lies inside a root
        keys, vectors = store.vectors()
        by_hash = dict(zip(keys, np.asarray(vectors), strict=True))
        names = store.names()
    out = {}
    for name, (key, _) in names.items():
        root = next(r for r in info.roots if Path(name).is_relative_to(r))
        if key in by_hash:
            out[Path(name).relative_to(root).as_posix()] = by_hash[key]
    return out


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
    assert clip.images_encoded == 3 and report.embedded == 3
    after = stored(index)
    assert "street/street_0.png" not in after
    assert {"park/new_dog.png", "trips/2024/cat.jpg"} <= set(after)
    for id_, emb in before.items():  # untouched files keep their exact embeddings
        if id_ not in ("street/street_0.png", "beach/beach_0.png"):
            np.testing.assert_array_equal(after[id_], emb)
    assert not np.allclose(after["beach/beach_0.png"], before["beach/beach_0.png"])


@pytest.mark.parametrize("store_dtype", [None, "float32"])
def test_index_embedding_is_the_clip_embedding_of_that_file(
    tmp_path, scenes, tiny_clip, store_dtype
):
    """bf16 by default (to its rounding), float32 on request."""
    root, _ = scenes
    build_index(root, tmp_path / "index", clip=tiny_clip, progress=False, store_dtype=store_dtype)
    with Store.open(tmp_path / "index", None) as store:
        assert store.dtype.name == (store_dtype or "bfloat16")
    emb = stored(tmp_path / "index")
    for rel in ("park/dog_on_park_0.png", "street/cat_on_street_0.png"):
        img = read_image(root / rel)
        want = tiny_clip.encode_images(tiny_clip.preprocess([img], mode="spacevlm"))[0]
        np.testing.assert_allclose(emb[rel], want, atol=1e-5 if store_dtype else 2**-8)


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
    found = [p.relative_to(root).as_posix() for p in scan_media(root)]
    assert sorted(found) == sorted([*contents, "UPPER.JPG"])
    assert found == [p.relative_to(root).as_posix() for p in scan_media(root)]


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


def test_moving_or_renaming_the_indexed_folder_embeds_nothing(tmp_path, scenes, tiny_clip):
    root, contents = scenes
    index = tmp_path / "index"
    clip = CountingClip(tiny_clip)
    build_index(root, index, clip=clip, progress=False)
    before = stored(index)
    moved = tmp_path / "elsewhere" / "renamed photos"
    moved.parent.mkdir()
    root.rename(moved)
    (moved / "park" / "park_0.png").rename(moved / "park" / "renamed.png")
    clip.images_encoded = 0
    report = build_index(moved, index, clip=clip, progress=False)
    assert clip.images_encoded == 0 and report.embedded == 0
    assert (report.added, report.removed) == (len(contents), len(contents))
    after = stored(index)
    assert read_info(index).roots == (moved.resolve(),)
    np.testing.assert_array_equal(after["park/renamed.png"], before["park/park_0.png"])
    assert {k: v.tolist() for k, v in after.items() if k != "park/renamed.png"} == {
        k: v.tolist() for k, v in before.items() if k != "park/park_0.png"
    }


def test_an_index_mirrors_several_roots_and_equal_files_share_one_embedding(
    tmp_path, scenes, tiny_clip
):
    root, contents = scenes
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(root / "park" / "park_0.png", other / "copy.png")
    draw_scene("cat", "park", seed=90).save(other / "new.png")
    clip = CountingClip(tiny_clip)
    report = build_index([root, other], tmp_path / "index", clip=clip, progress=False)
    assert report.added == len(contents) + 2 and clip.images_encoded == len(contents) + 1
    info = read_info(tmp_path / "index")
    assert info.roots == (root.resolve(), other.resolve()) and info.root == root.resolve()
    emb = stored(tmp_path / "index")
    np.testing.assert_array_equal(emb["copy.png"], emb["park/park_0.png"])
    with Store.open(tmp_path / "index", None) as store:
        assert len(store) == len(contents) + 1

    report = build_index(other, tmp_path / "index", clip=clip, progress=False)  # one root left
    assert (report.removed, report.unchanged) == (len(contents), 2)
    assert sorted(stored(tmp_path / "index")) == ["copy.png", "new.png"]
    with Store.open(tmp_path / "index", None) as store:
        assert len(store) == 2  # contents no file has any more are dropped


def test_export_parquet_has_one_row_per_file_with_path_hash_and_embedding(
    tmp_path, scenes, tiny_clip
):
    import pyarrow.parquet as pq

    from drc_jax.search.export import export_index

    root, contents = scenes
    build_index(root, tmp_path / "index", clip=tiny_clip, progress=False)
    n = export_index(tmp_path / "index", tmp_path / "out" / "index.parquet")
    table = pq.read_table(tmp_path / "out" / "index.parquet").to_pydict()
    assert n == len(contents) and sorted(table) == ["embedding", "hash", "id", "path"]
    assert table["id"] == list(range(n))
    emb = stored(tmp_path / "index")
    for path, digest, vector in zip(table["path"], table["hash"], table["embedding"], strict=True):
        rel = Path(path).relative_to(root.resolve()).as_posix()
        np.testing.assert_array_equal(np.asarray(vector, np.float32), emb[rel])
        assert digest.startswith("sha1:")


def test_export_without_pyarrow_says_what_to_install(tmp_path, scenes, tiny_clip, monkeypatch):
    import sys

    from drc_jax.search.export import export_index

    root, _ = scenes
    build_index(root, tmp_path / "index", clip=tiny_clip, progress=False)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(ImportError, match=r"needs pyarrow: pip install 'drc-jax\[parquet\]'"):
        export_index(tmp_path / "index", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_an_interrupted_reindex_keeps_the_index_usable_and_resumes_bit_identically(
    tmp_path, scenes, tiny_clip
):
    from drc_jax.search import Searcher

    root, contents = scenes
    build_index(root, tmp_path / "clean", clip=tiny_clip, batch_size=4, progress=False)

    class Interrupting(CountingClip):
        def encode_images(self, pixels, *a, **kw):
            if self.images_encoded >= 4:  # the second batch of 4
                raise KeyboardInterrupt
            return super().encode_images(pixels, *a, **kw)

    index = tmp_path / "index"
    build_index(root, index, clip=tiny_clip, progress=False)
    moved = tmp_path / "moved"
    root.rename(moved)
    draw_scene("dog", "beach", seed=5).save(moved / "a.png")
    draw_scene("cat", "park", seed=6).save(moved / "b.png")
    for i in range(6):
        draw_scene("dog", "street", seed=10 + i).save(moved / f"new_{i}.png")
    with pytest.raises(KeyboardInterrupt):
        build_index(moved, index, clip=Interrupting(tiny_clip), batch_size=4, progress=False)
    # the interrupted run changed nothing a query sees: the old files, inside the old root
    hits = Searcher.open(index, clip=tiny_clip).search("a dog", k=len(contents))["drc"][0].hits
    assert sorted(h.id for h in hits) == sorted(contents)
    assert all(h.path.startswith(str(root.resolve())) for h in hits)

    clip = CountingClip(tiny_clip)
    report = build_index(moved, index, clip=clip, batch_size=4, progress=False)
    assert clip.images_encoded == 4 and report.embedded == 4  # the first batch of 4 was kept
    build_index(moved, tmp_path / "clean", clip=tiny_clip, batch_size=4, progress=False)
    resumed, clean = stored(index), stored(tmp_path / "clean")
    assert (
        sorted(resumed)
        == sorted(clean)
        == sorted([*contents, "a.png", "b.png"] + [f"new_{i}.png" for i in range(6)])
    )
    for id_, emb in clean.items():
        np.testing.assert_array_equal(resumed[id_], emb)


def test_symlinks_are_followed_only_on_request_and_what_the_walk_skips_is_reported(
    tmp_path, tiny_clip
):
    root, outside = tmp_path / "photos", tmp_path / "elsewhere"
    make_scene_folder(root, per_combination=1)
    make_scene_folder(outside, per_combination=1)
    n = len(list(root.rglob("*.png")))
    (root / "linked").symlink_to(outside, target_is_directory=True)  # 9 more images, via a link
    (root / "loop").symlink_to(root, target_is_directory=True)  # a link loop
    os.mkfifo(root / "pipe.jpg")  # never opened
    index = tmp_path / "index"

    report = build_index(root, index, clip=tiny_clip, progress=False)
    assert report.added == n and not report.failed
    assert sorted(report.skipped) == [
        ("linked", "symbolic link not followed (follow_symlinks=True follows)"),
        ("loop", "symbolic link not followed (follow_symlinks=True follows)"),
        ("pipe.jpg", "a FIFO, not a regular file; not opened"),
    ]

    report = build_index(root, index, clip=tiny_clip, progress=False, follow_symlinks=True)
    assert report.added == n and report.unchanged == n  # the linked folder's images, once each
    assert sorted(report.skipped) == [
        ("loop", "folder already walked (symbolic link loop or duplicate)"),
        ("pipe.jpg", "a FIFO, not a regular file; not opened"),
    ]
    assert {k.split("/")[0] for k in stored(index)} >= {"linked"}

    # a run that does not say (the server's watcher) follows links as the last run did
    report = build_index(root, index, clip=tiny_clip, progress=False)
    assert report.unchanged == 2 * n and report.removed == 0
    report = build_index(root, index, clip=tiny_clip, progress=False, follow_symlinks=False)
    assert report.removed == n and "linked" not in {k.split("/")[0] for k in stored(index)}


@pytest.mark.parametrize("deleted", ["copy.png", "park/park_0.png"])
def test_deleting_one_of_two_equal_files_keeps_the_embedding_for_the_other(
    tmp_path, scenes, tiny_clip, deleted
):
    root, contents = scenes
    shutil.copy(root / "park" / "park_0.png", root / "copy.png")  # one content, two paths
    index = tmp_path / "index"
    clip = CountingClip(tiny_clip)
    build_index(root, index, clip=clip, progress=False)
    before = stored(index)
    (root / deleted).unlink()  # whichever file the embedding was decoded from
    clip.images_encoded = 0
    report = build_index(root, index, clip=clip, progress=False)
    assert clip.images_encoded == 0 and (report.removed, report.added) == (1, 0)
    survivor = ({"copy.png", "park/park_0.png"} - {deleted}).pop()
    np.testing.assert_array_equal(stored(index)[survivor], before[survivor])
    with Store.open(index, None) as store:
        assert len(store) == len(contents)  # the content is still held, once


def test_fingerprint_stat_trusts_size_and_mtime_and_sha1_catches_a_same_size_rewrite(
    tmp_path, tiny_clip
):
    """The documented choice: "stat" (the default) does not read a file whose size and mtime are
    unchanged, so a rewrite that keeps both (a tool restoring mtime) keeps the old embedding until
    ``fingerprint_by="sha1"``, which reads every file, is asked for."""
    root, index = tmp_path / "photos", tmp_path / "index"
    root.mkdir()
    target = root / "a.bmp"  # BMPs of one size have one file size
    draw_scene("dog", "beach", seed=1).save(target)
    build_index(root, index, clip=tiny_clip, progress=False)
    st = target.stat()
    draw_scene("cat", "street", seed=2).save(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size
    clip = CountingClip(tiny_clip)
    assert build_index(root, index, clip=clip, progress=False).embedded == 0
    report = build_index(root, index, clip=clip, fingerprint_by="sha1", progress=False)
    assert report.embedded == 1 and report.changed == 1
    want = tiny_clip.encode_images(tiny_clip.preprocess([read_image(target)]))[0]
    np.testing.assert_allclose(stored(index)["a.bmp"], want, atol=2**-8)  # bf16 by default


def test_a_folder_moved_after_an_interrupted_first_index_run_resumes_without_re_embedding(
    tmp_path, scenes, tiny_clip
):
    root, contents = scenes

    class Interrupting(CountingClip):
        def encode_images(self, pixels, *a, **kw):
            if self.images_encoded >= 4:  # the second batch of 4
                raise KeyboardInterrupt
            return super().encode_images(pixels, *a, **kw)

    index = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        build_index(root, index, clip=Interrupting(tiny_clip), batch_size=4, progress=False)
    moved = tmp_path / "moved"
    root.rename(moved)
    clip = CountingClip(tiny_clip)
    report = build_index(moved, index, clip=clip, batch_size=4, progress=False)
    assert clip.images_encoded == report.embedded == len(contents) - 4  # the first 4 were kept
    assert read_info(index).roots == (moved.resolve(),)
    build_index(moved, tmp_path / "clean", clip=tiny_clip, batch_size=4, progress=False)
    resumed, clean = stored(index), stored(tmp_path / "clean")
    assert sorted(resumed) == sorted(clean) == sorted(contents)
    for id_, emb in clean.items():
        np.testing.assert_array_equal(resumed[id_], emb)


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [("user.roots", "[5]", "roots=[5]"), ("user.roots", '"/tmp"', "roots='/tmp'"),
     ("user.roots", "[]", "roots=[]"), ("user.weights", "7", "weights=7"),
     ("meta", '{"dtype": "float32"}', "meta weights=None, meta preprocess=None")],
)  # fmt: skip
def test_index_settings_of_the_wrong_type_are_a_message_naming_them(
    tmp_path, scenes, tiny_clip, name, value, shown
):
    import sqlite3

    root, _ = scenes
    build_index(root, tmp_path / "index", clip=tiny_clip, progress=False)
    with sqlite3.connect(tmp_path / "index" / "catalogue.sqlite") as db:
        db.execute("UPDATE settings SET value=? WHERE name=?", (value, name))
    with pytest.raises(StoreError, match=re.escape(f"not a readable search index ({shown})")):
        read_info(tmp_path / "index")
