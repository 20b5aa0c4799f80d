"""An index that stays current while serving: files copied in are found, other runs picked up."""

from __future__ import annotations

import shutil
import time

import pytest
from fastapi.testclient import TestClient

from drc_jax.search import Searcher, build_index
from drc_jax.search.server import create_app
from drc_jax.search.watch import IndexWatcher
from tests.scenes import draw_scene, make_scene_folder

WEIGHTS = "random:test-tiny"
APPEAR_S = 60  # the contract: a file copied in is searchable within a minute


@pytest.fixture
def photos(tmp_path):
    from drc_jax.clip import load_clip

    root = tmp_path / "photos"
    make_scene_folder(root, per_combination=1)
    clip = load_clip(WEIGHTS)
    build_index(root, tmp_path / "index", weights=WEIGHTS, clip=clip, progress=False)
    return root, tmp_path / "index", clip


def _until(predicate, timeout_s: float = APPEAR_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.25)
    pytest.fail(f"not true within {timeout_s} s")


def test_a_file_copied_in_while_serving_appears_in_searches(photos, tmp_path):
    root, index, clip = photos
    searcher = Searcher.open(index, clip=clip)
    watcher = IndexWatcher(searcher, clip).start()
    try:
        with TestClient(
            create_app(searcher, watcher=watcher), base_url="http://127.0.0.1:8000"
        ) as client:
            before = client.get("/api/health").json()
            assert before["indexing"]["watching"] is True and before["images"] == 9
            draw_scene("cat", "beach", seed=99).save(tmp_path / "staged.png")
            shutil.copy(tmp_path / "staged.png", root / "new arrival.png")

            def found():
                r = client.get("/api/search", params={"q": "a cat", "name": "arrival"}).json()
                return r["hits"]

            hits = _until(found)
            assert hits[0]["id"] == "new arrival.png"
            health = client.get("/api/health").json()
            assert health["images"] == 10 and health["generation"] > before["generation"]
            assert health["last_indexed"] >= before["last_indexed"]
            assert health["indexing"]["state"] == "idle" and health["indexing"]["error"] is None
    finally:
        watcher.stop()


def test_a_concurrent_index_run_is_picked_up_without_watching(photos):
    root, index, clip = photos
    searcher = Searcher.open(index, clip=clip)
    watcher = IndexWatcher(searcher, watch=False, poll_s=0.2).start()
    try:
        old = searcher.snapshot()
        draw_scene("dog", "street", seed=5).save(root / "street" / "late.png")
        build_index(root, index, weights=WEIGHTS, clip=clip, progress=False)  # another "process"
        _until(lambda: searcher.snapshot() is not old)
        assert searcher.catalogue.files == 10 and old.catalogue.files == 9  # swapped whole
        assert searcher.search("a dog", k=10, methods=("clip",))["clip"][0].total == 10
    finally:
        watcher.stop()


def test_a_missing_root_is_never_indexed_away(photos, tmp_path):
    root, index, clip = photos
    searcher = Searcher.open(index, clip=clip)
    watcher = IndexWatcher(searcher, clip)
    root.rename(tmp_path / "unmounted")
    watcher._index()
    assert "missing" in watcher.progress()["error"]
    assert searcher.catalogue.files == 9 and len(searcher.store.names()) == 9


def test_searches_during_an_index_run_see_one_whole_index(photos):
    import threading

    root, index, clip = photos
    searcher = Searcher.open(index, clip=clip)
    for i in range(12):
        draw_scene("cat", "park", seed=200 + i).save(root / "park" / f"burst_{i}.png")
    done = threading.Event()

    def index_then_reload():
        build_index(root, index, weights=WEIGHTS, clip=clip, batch_size=2, progress=False)
        searcher.reload()
        done.set()

    worker = threading.Thread(target=index_then_reload)
    worker.start()
    seen = set()
    while not done.is_set() or not seen:
        snap = searcher.snapshot()
        r = searcher.search("a cat", k=30, methods=("clip",))["clip"][0]
        seen.add(r.total)
        assert r.total in (9, 21) and len(r.hits) == r.total  # old or new, never in between
        assert {h.path for h in r.hits} <= snap.path_set | searcher.snapshot().path_set
    worker.join()
    assert searcher.search("a cat", k=30, methods=("clip",))["clip"][0].total == 21
