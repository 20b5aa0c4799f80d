"""A search index's ANN file: searched like the exact scan, kept in step, crash-safe, distrusted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from benchmarks.sphere import centres, clustered
from drc_jax.search import Searcher, ann_file, build_index
from drc_jax.search.index import index_meta
from drc_jax.search.roots import record_roots
from drc_jax.store import Store, StoreError
from tests.conftest import REPO
from tests.scenes import make_scene_folder

WEIGHTS = "random:test-tiny"


@pytest.fixture(scope="module")
def tiny_clip():
    from drc_jax.clip import load_clip

    return load_clip(WEIGHTS)


def write_index(index, clip, n: int, *, seed: int = 0, ann: str | None = "ivf"):
    """An index of ``n`` clustered unit vectors under fake file names (no images decoded)."""
    x, _ = clustered(n, centres(24, clip.embed_dim, seed=seed), spread=0.8, seed=seed)
    root = index.parent / "photos"
    keys = [f"sha1:{seed:04d}{i:036x}" for i in range(n)]
    with Store.open(index, index_meta(clip, "spacevlm"), dtype="bfloat16") as store:
        store.put(keys, keys, x)
        with store.transaction():
            store.update_names(
                {f"{root}/{seed}-{i:06d}.jpg": (k, "0:0") for i, k in enumerate(keys)}
            )
            store.set_setting("roots", [str(root)])
            store.set_setting("weights", WEIGHTS)
        if ann:
            ann_file.sync(store, ann)
    record_roots(index, [root])
    return index


def _ranked(res):
    return [(h.path, round(h.score, 4)) for h in res.hits]


QUERIES = ["a dog not on a beach", "a cat without a sofa", "a car", "a boat, but no water"]


def test_a_tiny_index_with_an_ann_file_answers_as_the_exact_scan_and_says_so(tmp_path, tiny_clip):
    root = tmp_path / "photos"
    make_scene_folder(root, per_combination=1)
    build_index(root, tmp_path / "index", clip=tiny_clip, progress=False, ann="ivf")
    assert list((tmp_path / "index").glob("ann-*.faiss"))
    searcher = Searcher.open(tmp_path / "index", clip=tiny_clip)
    n = len(searcher.store)
    for method in ("drc", "clip", "spacevlm"):
        fast = searcher.search(QUERIES, k=5, methods=(method,))[method]
        scan = searcher.search(QUERIES, k=5, methods=(method,), exact=True)[method]
        for a, b in zip(fast, scan, strict=True):
            # the same rows in the same order; scores equal up to float summation order (the
            # scan's product over every row and the re-ranking's over 16 take other kernels)
            assert [h.path for h in a.hits] == [h.path for h in b.hits]
            np.testing.assert_allclose(
                [h.score for h in a.hits], [h.score for h in b.hits], rtol=0, atol=2e-5
            )
            assert a.exact and a.candidates == n  # one list, every row fetched: exhaustive
            assert b.exact and b.candidates == n


def test_an_approximate_search_says_so_and_scores_its_hits_exactly(tmp_path, tiny_clip):
    index = write_index(tmp_path / "index", tiny_clip, 4000)
    searcher = Searcher.open(index, clip=tiny_clip)
    assert searcher.ann_status()["used"]
    fast = searcher.search(QUERIES, k=10, methods=("drc",))["drc"]
    scan = searcher.search(QUERIES, k=10, methods=("drc",), exact=True)["drc"]
    for a, b in zip(fast, scan, strict=True):
        assert not a.exact and 10 < a.candidates < 4000
        assert b.exact and b.candidates == 4000
        truth = dict(_ranked(b))
        top = [p for p, _ in _ranked(a) if p in truth]  # every exact top hit it found ...
        assert all(truth[p] == s for p, s in _ranked(a) if p in truth)  # ... scored alike
        assert len(top) >= 8
    searcher.ann_nprobe, searcher.ann_candidates = 10_000, 4000  # exhaustive: the scan's answer
    for a, b in zip(searcher.search(QUERIES, k=10)["drc"], scan, strict=True):
        assert _ranked(a) == _ranked(b) and a.exact


def test_a_reload_while_a_search_runs_does_not_pull_the_ann_index_from_under_it(
    tmp_path, tiny_clip
):
    index = write_index(tmp_path / "index", tiny_clip, 4000)
    searcher = Searcher.open(index, clip=tiny_clip)
    want = [_ranked(r) for r in searcher.search(QUERIES, k=10, methods=("drc",))["drc"]]
    read = searcher._ann_index

    def read_then_reload():  # the watcher's thread swaps the index right after the check
        got = read()
        searcher._ann, searcher.ann_note = None, None
        return got

    searcher._ann_index = read_then_reload
    got = searcher.search(QUERIES, k=10, methods=("drc",))["drc"]
    assert [_ranked(r) for r in got] == want and not any(r.exact for r in got)


def test_the_server_answers_exact_and_candidates_and_scans_on_request(tmp_path, tiny_clip):
    from fastapi.testclient import TestClient

    from drc_jax.search.server import create_app

    index = write_index(tmp_path / "index", tiny_clip, 4000)
    client = TestClient(
        create_app(Searcher.open(index, clip=tiny_clip)), base_url="http://127.0.0.1:8000"
    )
    fast = client.get("/api/search", params={"q": "a dog not on a beach", "k": 5}).json()
    scan = client.get("/api/search", params={"q": "a dog not on a beach", "exact": "true"}).json()
    assert fast["exact"] is False and 5 < fast["candidates"] < 4000
    assert scan["exact"] is True and scan["candidates"] == 4000
    assert client.get("/api/health").json()["ann"]["used"] is True


def test_reindexing_updates_the_ann_file_and_a_stale_one_falls_back_to_the_scan(
    tmp_path, tiny_clip
):
    index = write_index(tmp_path / "index", tiny_clip, 3000)
    with Store.open(index, None) as store:
        first = ann_file.info(store)
        x, _ = clustered(500, centres(24, tiny_clip.embed_dim), seed=9)
        keys = [f"sha1:new{i:036x}" for i in range(500)]
        store.put(keys, keys, x)
    searcher = Searcher.open(index, clip=tiny_clip)
    res = searcher.search("a dog", k=3)["drc"][0]
    assert res.exact and res.candidates == 3000 and "added" in searcher.ann_note  # named rows
    with Store.open(index, None) as store:
        old_keys = [k for k in store._known() if not k.startswith("sha1:new")]
        store.prune(keys[:200] + old_keys)  # 300 dead rows: no compaction
        meta = ann_file.sync(store, "auto")  # auto keeps (and updates) an existing ANN file
        rows, _ = store.rows()
        assert meta["ntotal"] == len(rows) == 3200 and meta["trained_on"] == first["trained_on"]
        assert meta["file"] != first["file"]
        assert [p.name for p in index.glob("ann-*")] == [meta["file"]]
        store.prune(old_keys[:1000])  # compacted: rows renumbered, so the file is rebuilt
        meta = ann_file.sync(store, "auto")
        assert meta["ntotal"] == meta["trained_on"] == 1000
    hits = Searcher.open(index, clip=tiny_clip).search("a dog", k=3)["drc"][0]
    assert not hits.exact and len(hits.hits) == 3
    with Store.open(index, None) as store:
        assert ann_file.sync(store, "none") is None and not list(index.glob("ann-*"))
        assert ann_file.sync(store, "auto") is None  # below AUTO_MIN_ROWS: none is built


def _swap_file(index, data: bytes | None = None, *, link_to=None, **setting):
    with Store.open(index, None) as store:
        meta = ann_file.info(store)
        path = index / meta["file"]
        if data is not None:
            path.write_bytes(data)
        if link_to is not None:
            path.unlink()
            os.symlink(link_to, path)
        if setting:
            store.set_setting("ann", {**meta, **setting})
        return meta


@pytest.mark.parametrize("how", ["garbage", "truncated", "size", "link", "setting", "count"])
def test_a_crafted_ann_file_is_refused_with_a_message_and_never_crashes(tmp_path, tiny_clip, how):
    index = write_index(tmp_path / "index", tiny_clip, 2000)
    meta = _swap_file(index)
    data = (index / meta["file"]).read_bytes()
    if how == "garbage":  # a faiss header, then bytes that claim huge sizes
        _swap_file(index, data[:4] + b"\xff" * (len(data) - 4))
    elif how == "truncated":
        _swap_file(index, data[: len(data) // 2], size=len(data) // 2)
    elif how == "size":
        _swap_file(index, data + b"\0")
    elif how == "link":
        (tmp_path / "elsewhere.faiss").write_bytes(data)
        _swap_file(index, link_to=tmp_path / "elsewhere.faiss")
    elif how == "setting":
        _swap_file(index, file="../x.faiss")
    else:
        _swap_file(index, ntotal=meta["ntotal"] + 1)
    searcher = Searcher.open(index, clip=tiny_clip)
    with pytest.raises(StoreError, match="damaged or was crafted|symbolic link|plain file name"):
        searcher.search("a dog", k=3)


@pytest.mark.parametrize("stage", ["training", "writing"])
def test_a_build_killed_midway_leaves_the_old_ann_file_in_use_and_a_rerun_finishes(
    tmp_path, tiny_clip, stage
):
    index = write_index(tmp_path / "index", tiny_clip, 3000)
    with Store.open(index, None) as store:
        old = ann_file.info(store)
    code = f"""
        import sys, time, faiss
        from drc_jax import ann
        from drc_jax.search import ann_file
        from drc_jax.store import Store
        real_build, real_write = ann.build, faiss.write_index
        def build(*a, **kw):  # kill point 1: inside the build, nothing written yet
            print("building", flush=True)
            if {stage!r} == "training":
                time.sleep(60)
            return real_build(*a, **kw)
        def write(index, path):  # kill point 2: the new file half written, not yet renamed
            real_write(index, path)
            with open(path, "r+b") as f:
                f.truncate(100)
            print("writing", flush=True)
            time.sleep(60)
        ann.build, faiss.write_index = build, write
        with Store.open({str(index)!r}, None) as store:
            store.set_setting("ann", {{**ann_file.info(store), "trained_on": 1}})  # force a rebuild
            ann_file.sync(store, "ivf")
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        for line in proc.stdout:
            if line.strip() == stage.replace("training", "building"):
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with Store.open(index, None) as store:  # the catalogue still names the old, intact file
        meta = ann_file.info(store)
        assert meta["file"] == old["file"] and meta["trained_on"] == 1
        store.set_setting("ann", old)
    searcher = Searcher.open(index, clip=tiny_clip)
    assert searcher.ann_status()["used"] and searcher.search("a cat")["drc"][0].hits
    with Store.open(index, None) as store:
        again = ann_file.sync(store, "ivf")
    assert sorted(p.name for p in index.iterdir() if "ann" in p.name) == [again["file"]]
