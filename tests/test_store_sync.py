"""EmbeddingStore: incremental sync, failures, crash safety and meta checks."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from drc_jax.store import EmbeddingStore, ItemError, StoreError, StoreMismatchError

META = {"weights": "fake", "preprocess": "spacevlm", "kind": "image"}
DIM = 8


def vec(id_: str, fp: str) -> np.ndarray:
    """A deterministic embedding that depends on id and fingerprint."""
    rng = np.random.default_rng(zlib.crc32(f"{id_}|{fp}".encode()))
    return rng.standard_normal(DIM).astype(np.float32)


class Embedder:
    """Records every id it embeds; raises ItemError for ids in ``bad``; may crash after N calls."""

    def __init__(self, items: dict[str, str], bad=(), crash_after: int | None = None):
        self.items, self.bad, self.crash_after = items, set(bad), crash_after
        self.calls: list[list[str]] = []
        self.embedded: list[str] = []

    def __call__(self, ids: list[str]) -> np.ndarray:
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("simulated interrupt")
        self.calls.append(list(ids))
        for i in ids:
            if i in self.bad:
                raise ItemError(i, "cannot decode")
        self.embedded.extend(ids)
        return np.stack([vec(i, self.items[i]) for i in ids])


def items_of(n: int, start: int = 0, fp: str = "v1") -> dict[str, str]:
    return {f"img/{i:03d}.png": fp for i in range(start, start + n)}


def expected(store: EmbeddingStore, items: dict[str, str]) -> None:
    assert sorted(store.ids) == sorted(items)
    ids = sorted(items)
    np.testing.assert_array_equal(store.get(ids), np.stack([vec(i, items[i]) for i in ids]))
    # ``embeddings`` rows follow ``ids``
    np.testing.assert_array_equal(store.embeddings, np.stack([vec(i, items[i]) for i in store.ids]))


def test_sync_embeds_only_new_and_changed_ids_and_drops_removed(tmp_path):
    items = items_of(10)
    store = EmbeddingStore.open(tmp_path / "s", META)
    emb = Embedder(items)
    report = store.sync(items, emb, batch_size=3, progress=False)
    assert (report.added, report.changed, report.removed, report.unchanged) == (10, 0, 0, 0)
    assert sorted(emb.embedded) == sorted(items)
    expected(store, items)

    # add 2, change 1, delete 3
    items2 = {
        k: v for k, v in items.items() if k not in ("img/000.png", "img/001.png", "img/002.png")
    }
    items2["img/005.png"] = "v2"
    items2.update(items_of(2, start=50))
    emb2 = Embedder(items2)
    report = EmbeddingStore.open(tmp_path / "s", META).sync(items2, emb2, progress=False)
    assert (report.added, report.changed, report.removed, report.unchanged) == (2, 1, 3, 6)
    assert sorted(emb2.embedded) == ["img/005.png", "img/050.png", "img/051.png"]
    reopened = EmbeddingStore.open(tmp_path / "s", META)
    expected(reopened, items2)

    # nothing changed: no embed call at all
    emb3 = Embedder(items2)
    report = reopened.sync(items2, emb3, progress=False)
    assert emb3.calls == [] and report.unchanged == len(items2)


def test_interrupted_sync_keeps_finished_batches_and_resumes(tmp_path):
    items = items_of(10)
    store = EmbeddingStore.open(tmp_path / "s", META)
    with pytest.raises(KeyboardInterrupt):
        store.sync(items, Embedder(items, crash_after=2), batch_size=3, progress=False)
    # a torn journal line, as a crash mid-append would leave it
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    with open(tmp_path / "s" / manifest["log"], "ab") as f:
        f.write(b'{"add": "shard-dead')
    resumed = EmbeddingStore.open(tmp_path / "s", META)
    assert len(resumed) == 6
    emb = Embedder(items)
    report = resumed.sync(items, emb, batch_size=3, progress=False)
    assert sorted(emb.embedded) == sorted(items)[6:]
    assert (report.added, report.unchanged) == (4, 6)
    expected(EmbeddingStore.open(tmp_path / "s", META), items)


def test_orphan_files_from_a_crashed_writer_are_removed(tmp_path):
    items = items_of(4)
    store = EmbeddingStore.open(tmp_path / "s", META)
    store.sync(items, Embedder(items), progress=False)
    (tmp_path / "s" / "shard-0123456789abcdef.npy").write_bytes(b"partial")
    (tmp_path / "s" / ".manifest.json.1234.tmp").write_bytes(b"partial")
    store.sync(items, Embedder(items), progress=False)
    names = {p.name for p in (tmp_path / "s").iterdir()}
    assert "shard-0123456789abcdef.npy" not in names and ".manifest.json.1234.tmp" not in names
    expected(store, items)


def test_bad_item_is_skipped_listed_and_not_retried_until_it_changes(tmp_path):
    items = items_of(7)
    bad = {"img/002.png", "img/003.png"}
    store = EmbeddingStore.open(tmp_path / "s", META)
    report = store.sync(items, Embedder(items, bad=bad), batch_size=4, progress=False)
    assert sorted(i for i, _ in report.failed) == sorted(bad)
    assert all(reason == "cannot decode" for _, reason in report.failed)
    assert report.added == 5
    good = {k: v for k, v in items.items() if k not in bad}
    expected(store, good)

    emb = Embedder(items, bad=bad)
    report = EmbeddingStore.open(tmp_path / "s", META).sync(items, emb, progress=False)
    assert emb.calls == [] and sorted(i for i, _ in report.failed) == sorted(bad)

    fixed = dict(items, **{"img/002.png": "v2"})  # the file was repaired (new mtime)
    emb = Embedder(fixed, bad={"img/003.png"})
    report = store.sync(fixed, emb, progress=False)
    assert emb.embedded == ["img/002.png"] and [i for i, _ in report.failed] == ["img/003.png"]

    emb = Embedder(fixed)
    store.sync(fixed, emb, retry_failed=True, progress=False)
    assert emb.embedded == ["img/003.png"]
    expected(store, fixed)


def test_on_error_fail_raises_and_keeps_earlier_batches(tmp_path):
    items = items_of(6)
    store = EmbeddingStore.open(tmp_path / "s", META)
    with pytest.raises(ItemError, match="img/004.png"):
        store.sync(
            items,
            Embedder(items, bad={"img/004.png"}),
            batch_size=2,
            on_error="fail",
            progress=False,
        )
    assert sorted(EmbeddingStore.open(tmp_path / "s", META).ids) == sorted(items)[:4]


def test_changed_item_that_became_unreadable_loses_its_stale_embedding(tmp_path):
    items = items_of(3)
    store = EmbeddingStore.open(tmp_path / "s", META)
    store.sync(items, Embedder(items), progress=False)
    broken = dict(items, **{"img/001.png": "v2"})
    report = store.sync(broken, Embedder(broken, bad={"img/001.png"}), progress=False)
    assert [i for i, _ in report.failed] == ["img/001.png"]
    assert "img/001.png" not in EmbeddingStore.open(tmp_path / "s", META)


def test_other_meta_is_refused_with_the_difference_or_reset_on_request(tmp_path):
    items = items_of(3)
    EmbeddingStore.open(tmp_path / "s", META).sync(items, Embedder(items), progress=False)
    other = dict(META, weights="other")
    with pytest.raises(StoreMismatchError, match="weights: store has 'fake', asked for 'other'"):
        EmbeddingStore.open(tmp_path / "s", other)
    fresh = EmbeddingStore.open(tmp_path / "s", other, on_mismatch="reset")
    assert len(fresh) == 0 and fresh.meta == other
    assert len(EmbeddingStore.open(tmp_path / "s", other)) == 0


def test_refuses_a_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(StoreError, match="not an embedding store"):
        EmbeddingStore.open(tmp_path / "photos", META)
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["cat.jpg"]


def test_embed_output_of_wrong_shape_or_width_is_a_clear_error(tmp_path):
    items = items_of(2)
    store = EmbeddingStore.open(tmp_path / "s", META)
    with pytest.raises(ValueError, match="shape"):
        store.sync(items, lambda ids: np.zeros((1, DIM)), progress=False)
    store.sync(items, Embedder(items), progress=False)
    more = items_of(3)
    with pytest.raises(ValueError, match="width 4 but store"):
        store.sync(more, lambda ids: np.zeros((len(ids), 4)), progress=False)


def test_get_unknown_id_names_it(tmp_path):
    store = EmbeddingStore.open(tmp_path / "s", META)
    with pytest.raises(KeyError, match="nope"):
        store.get(["nope"])
    assert store.get([]).shape == (0, 0)


def test_many_syncs_with_churn_stay_compact_and_correct(tmp_path):
    rng = np.random.default_rng(0)
    store = EmbeddingStore.open(tmp_path / "s", META)
    universe = [f"t{i}" for i in range(40)]
    for step in range(12):
        chosen = rng.choice(universe, size=int(rng.integers(5, 40)), replace=False)
        items = {str(i): f"v{int(rng.integers(0, 3))}" for i in chosen}
        store.sync(items, Embedder(items), batch_size=4, progress=False)
        expected(store, items)
        expected(EmbeddingStore.open(tmp_path / "s", META), items)
        shards = [p for p in (tmp_path / "s").glob("shard-*.npy")]
        assert len(shards) <= 3, step
    stored_rows = sum(np.load(p).shape[0] for p in (tmp_path / "s").glob("shard-*.npy"))
    assert stored_rows <= 2 * len(items) + 4
    store.compact()
    assert sum(np.load(p).shape[0] for p in (tmp_path / "s").glob("shard-*.npy")) == len(items)
    expected(EmbeddingStore.open(tmp_path / "s", META), items)


def test_readers_open_while_a_writer_holds_the_lock_but_a_second_writer_is_refused(tmp_path):
    items = items_of(3)
    store = EmbeddingStore.open(tmp_path / "s", META)
    store.sync(items, Embedder(items), progress=False)
    with store._locked():  # as a concurrent sync would
        reader = EmbeddingStore.open(tmp_path / "s", META)
        expected(reader, items)
        with pytest.raises(StoreError, match="being written by another process"):
            reader.sync(items, Embedder(items), progress=False)
