"""The embedding store: incremental fills, failures, crash safety, concurrency, hostile input."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from drc_jax.store import ItemError, Store, StoreError, StoreMismatchError, fill

META = {"weights": "fake", "preprocess": "spacevlm", "kind": "image"}
DIM = 8
REPO = Path(__file__).resolve().parents[1]


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


def mirror(store: Store, items: dict[str, str], embed, **kw):
    """A search-index style sync: fill what is missing, then drop what is gone."""
    report = fill(store, items, embed, progress=False, **kw)
    report.removed = store.prune(items)
    return report


def expected(store: Store, items: dict[str, str]) -> None:
    keys, all_vectors = store.vectors()
    assert sorted(keys) == sorted(items)
    np.testing.assert_array_equal(all_vectors, np.stack([vec(k, items[k]) for k in keys]))
    ids = sorted(items)
    np.testing.assert_array_equal(store.vectors(ids)[1], np.stack([vec(i, items[i]) for i in ids]))


def test_fill_embeds_only_new_and_changed_items_and_prune_drops_removed(tmp_path):
    items = items_of(10)
    store = Store.open(tmp_path / "s", META)
    emb = Embedder(items)
    report = mirror(store, items, emb, batch_size=3)
    assert (report.added, report.changed, report.removed, report.unchanged) == (10, 0, 0, 0)
    assert sorted(emb.embedded) == sorted(items)
    expected(store, items)

    # add 2, change 1, delete 3
    items2 = {k: v for k, v in items.items() if k not in ("img/000.png", "img/001.png")}
    del items2["img/002.png"]
    items2["img/005.png"] = "v2"
    items2.update(items_of(2, start=50))
    emb2 = Embedder(items2)
    report = mirror(Store.open(tmp_path / "s", META), items2, emb2)
    assert (report.added, report.changed, report.removed, report.unchanged) == (2, 1, 3, 6)
    assert sorted(emb2.embedded) == ["img/005.png", "img/050.png", "img/051.png"]
    reopened = Store.open(tmp_path / "s", META)
    expected(reopened, items2)

    # nothing changed: no embed call at all
    emb3 = Embedder(items2)
    report = mirror(reopened, items2, emb3)
    assert emb3.calls == [] and report.unchanged == len(items2)


def test_a_cache_keeps_items_of_other_runs(tmp_path):
    first, second = items_of(3), items_of(3, start=10)
    store = Store.open(tmp_path / "s", META)
    fill(store, first, Embedder(first), progress=False)
    fill(store, second, Embedder(second), progress=False)
    expected(store, {**first, **second})


def test_interrupted_fill_keeps_finished_batches_and_resumes(tmp_path):
    items = items_of(10)
    store = Store.open(tmp_path / "s", META)
    with pytest.raises(KeyboardInterrupt):
        fill(store, items, Embedder(items, crash_after=2), batch_size=3, progress=False)
    resumed = Store.open(tmp_path / "s", META)
    assert len(resumed) == 6
    emb = Embedder(items)
    report = fill(resumed, items, emb, batch_size=3, progress=False)
    assert sorted(emb.embedded) == sorted(items)[6:]
    assert (report.added, report.unchanged) == (4, 6)
    expected(Store.open(tmp_path / "s", META), items)


# A writer killed with SIGKILL at a chosen point: while embedding, half way through writing the
# array bytes, after writing them but before the commit, or in the middle of a compaction.
WRITER = """
import os, signal, sys, zlib
import numpy as np
from drc_jax import store as store_mod
from drc_jax.store import Store, fill

directory, point, log, n = sys.argv[1], sys.argv[2], sys.argv[3], 10
kill = point if sys.argv[4] == "kill" else None
done = open(log, "a")

def vec(id_, fp):
    rng = np.random.default_rng(zlib.crc32(f"{id_}|{fp}".encode()))
    return rng.standard_normal(8).astype(np.float32)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

calls = 0
def embed(ids):
    global calls
    calls += 1
    if kill == "embedding" and calls == 3:
        die()
    done.write("".join(i + "\\n" for i in ids)); done.flush()
    return np.stack([vec(i, "v1") for i in ids])

real_write = Store._write
def write(self, start_row, data):
    if kill == "torn_write" and start_row >= 4:
        real_write(self, start_row, data[: len(data) // 2 + 3])
        die()
    real_write(self, start_row, data)
    if kill == "before_commit" and start_row >= 4:
        die()
    if kill == "compaction" and self._setting("vectors") != "vectors-0.bin":
        die()
Store._write = write

real_sweep = Store._sweep
def sweep(self):
    if kill == "after_compaction_commit" and self._setting("vectors") != "vectors-0.bin":
        die()
    real_sweep(self)
Store._sweep = sweep

# the compaction case: 10 items, then 5 are deleted (a re-run has only those 5)
compaction = point in ("compaction", "after_compaction_commit")
n = n // 2 if compaction and not kill else n
items = {f"img/{i:03d}.png": "v1" for i in range(n)}
store = Store.open(directory, {"weights": "fake", "preprocess": "spacevlm", "kind": "image"})
fill(store, items, embed, batch_size=2, progress=False)
if compaction:
    store.prune(list(items)[:5])
"""


@pytest.mark.parametrize(
    "point", ["embedding", "torn_write", "before_commit", "compaction", "after_compaction_commit"]
)
def test_sigkill_at_any_write_point_then_a_rerun_gives_the_complete_store(tmp_path, point):
    directory = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def writer(run: str, kill: str) -> tuple[int, list[str]]:
        log = tmp_path / f"{run}.txt"
        log.touch()
        cmd = [sys.executable, "-c", WRITER, str(directory), point, str(log), kill]
        proc = subprocess.run(cmd, env=env, timeout=120, capture_output=True, text=True)
        return proc.returncode, log.read_text().split()

    compaction = point in ("compaction", "after_compaction_commit")
    rc, _ = writer("first", "kill")
    assert rc == -signal.SIGKILL
    committed = sorted(Store.open(directory, META).vectors()[0])
    items = items_of(10)
    # finished batches (2 of 2 items) survive; a compaction's prune committed before it started
    assert committed == (sorted(items)[:5] if compaction else sorted(items)[:4])

    rc, embedded = writer("rerun", "no")
    assert rc == 0
    if compaction:
        items = dict(list(items.items())[:5])
    expected(Store.open(directory, META), items)
    # completed work is not redone: the re-run embeds exactly what was not committed
    assert sorted(embedded) == sorted(set(items) - set(committed))
    # a crashed write leaves no stray array file; the re-run finished the compaction
    want = "vectors-1.bin" if compaction else "vectors-0.bin"
    assert [p.name for p in directory.glob("vectors-*.bin")] == [want]


CONCURRENT = """
import sys, time, zlib
import numpy as np
from drc_jax.store import Store, fill

directory, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def embed(ids):
    time.sleep(0.01)
    out = []
    for i in ids:
        rng = np.random.default_rng(zlib.crc32(f"{i}|v1".encode()))
        out.append(rng.standard_normal(8).astype(np.float32))
    return np.stack(out)

store = Store.open(directory, {"weights": "fake", "preprocess": "spacevlm", "kind": "image"})
items = {f"img/{i:03d}.png": "v1" for i in range(start, start + n)}
fill(store, items, embed, batch_size=1, progress=False)
"""


def test_two_processes_writing_one_store_lose_nothing(tmp_path):
    directory = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # overlapping ranges: 0..59 and 40..99
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(directory), start, "60"], env=env)
        for start in ("0", "40")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    store = Store.open(directory, META)
    expected(store, items_of(100))


def test_bad_item_is_skipped_listed_and_not_retried_until_it_changes(tmp_path):
    items = items_of(7)
    bad = {"img/002.png", "img/003.png"}
    store = Store.open(tmp_path / "s", META)
    report = fill(store, items, Embedder(items, bad=bad), batch_size=4, progress=False)
    assert sorted(i for i, _ in report.failed) == sorted(bad)
    assert all(reason == "cannot decode" for _, reason in report.failed)
    assert report.added == 5
    assert store.errors() == {k: ("v1", "cannot decode") for k in bad}
    good = {k: v for k, v in items.items() if k not in bad}
    expected(store, good)

    emb = Embedder(items, bad=bad)
    report = fill(Store.open(tmp_path / "s", META), items, emb, progress=False)
    assert emb.calls == [] and sorted(i for i, _ in report.failed) == sorted(bad)

    fixed = dict(items, **{"img/002.png": "v2"})  # the file was repaired (new mtime)
    emb = Embedder(fixed, bad={"img/003.png"})
    report = fill(store, fixed, emb, progress=False)
    assert emb.embedded == ["img/002.png"] and [i for i, _ in report.failed] == ["img/003.png"]

    emb = Embedder(fixed)
    fill(store, fixed, emb, retry_failed=True, progress=False)
    assert emb.embedded == ["img/003.png"]
    expected(store, fixed)


def test_on_error_fail_raises_and_keeps_earlier_batches(tmp_path):
    items = items_of(6)
    store = Store.open(tmp_path / "s", META)
    with pytest.raises(ItemError, match="img/004.png"):
        fill(
            store,
            items,
            Embedder(items, bad={"img/004.png"}),
            batch_size=2,
            on_error="fail",
            progress=False,
        )
    assert sorted(Store.open(tmp_path / "s", META).vectors()[0]) == sorted(items)[:4]


def test_changed_item_that_became_unreadable_loses_its_stale_embedding(tmp_path):
    items = items_of(3)
    store = Store.open(tmp_path / "s", META)
    fill(store, items, Embedder(items), progress=False)
    broken = dict(items, **{"img/001.png": "v2"})
    report = fill(store, broken, Embedder(broken, bad={"img/001.png"}), progress=False)
    assert [i for i, _ in report.failed] == ["img/001.png"]
    assert "img/001.png" not in Store.open(tmp_path / "s", META).vectors()[0]


def test_other_meta_or_dtype_is_refused_with_the_difference_or_reset_on_request(tmp_path):
    items = items_of(3)
    fill(Store.open(tmp_path / "s", META), items, Embedder(items), progress=False)
    other = dict(META, weights="other")
    with pytest.raises(StoreMismatchError, match="weights: store has 'fake', asked for 'other'"):
        Store.open(tmp_path / "s", other)
    with pytest.raises(StoreMismatchError, match="dtype: store has 'float32'"):
        Store.open(tmp_path / "s", META, dtype="bfloat16")
    fresh = Store.open(tmp_path / "s", other, on_mismatch="reset")
    assert len(fresh) == 0 and fresh.meta == other
    assert len(Store.open(tmp_path / "s", other)) == 0


def test_refuses_a_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(StoreError, match="not an embedding store"):
        Store.open(tmp_path / "photos", META)
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["cat.jpg"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text('{"format": 1}')
    with pytest.raises(StoreError, match="older drc-jax .*delete .*old and re-run"):
        Store.open(tmp_path / "old", META)


def test_embed_output_of_wrong_shape_width_or_non_finite_is_a_clear_error(tmp_path):
    items = items_of(2)
    store = Store.open(tmp_path / "s", META)
    with pytest.raises(ValueError, match="shape"):
        fill(store, items, lambda ids: np.zeros((1, DIM)), progress=False)
    fill(store, items, Embedder(items), progress=False)
    more = items_of(3)
    with pytest.raises(ValueError, match="width 4 but store"):
        fill(store, more, lambda ids: np.zeros((len(ids), 4)), progress=False)
    with pytest.raises(
        ValueError, match=r"non-finite vectors for 1 key\(s\), e.g. \['img/002.png'"
    ):
        fill(store, more, lambda ids: np.full((len(ids), DIM), np.nan), progress=False)


def test_vectors_of_an_unknown_key_names_it(tmp_path):
    store = Store.open(tmp_path / "s", META)
    with pytest.raises(KeyError, match="nope"):
        store.vectors(["nope"])
    assert store.vectors([])[1].shape == (0, 0)


def test_many_fills_with_churn_stay_compact_and_correct(tmp_path):
    rng = np.random.default_rng(0)
    store = Store.open(tmp_path / "s", META)
    universe = [f"t{i}" for i in range(40)]
    for step in range(12):
        chosen = rng.choice(universe, size=int(rng.integers(5, 40)), replace=False)
        items = {str(i): f"v{int(rng.integers(0, 3))}" for i in chosen}
        mirror(store, items, Embedder(items), batch_size=4)
        expected(store, items)
        expected(Store.open(tmp_path / "s", META), items)
        assert len(list((tmp_path / "s").glob("vectors-*.bin"))) == 1, step
        assert store._setting("rows") <= 2 * len(items) + 40, step
    store.compact()
    assert store._setting("rows") == len(items)
    keys, arr = store.vectors()
    assert isinstance(arr, np.memmap) and len(keys) == len(items)  # no copy when compact
    expected(Store.open(tmp_path / "s", META), items)


def test_bfloat16_store_keeps_vectors_at_bfloat16_precision(tmp_path):
    import ml_dtypes

    items = items_of(4)
    store = Store.open(tmp_path / "s", META, dtype="bfloat16")
    fill(store, items, Embedder(items), progress=False)
    keys, arr = store.vectors()
    assert arr.dtype == ml_dtypes.bfloat16
    want = np.stack([vec(k, "v1") for k in keys]).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(arr.astype(np.float32), want.astype(np.float32))
    assert (tmp_path / "s" / "vectors-0.bin").stat().st_size == 4 * DIM * 2


def test_a_damaged_array_file_or_catalogue_is_a_message_saying_what_to_delete(tmp_path):
    items = items_of(4)
    fill(Store.open(tmp_path / "s", META), items, Embedder(items), progress=False)
    array = tmp_path / "s" / "vectors-0.bin"
    array.write_bytes(array.read_bytes()[:50])  # truncated
    with pytest.raises(StoreError, match=r"vectors-0.bin is damaged: 50 bytes.*Delete .*re-run"):
        Store.open(tmp_path / "s", META).vectors()
    array.unlink()
    with pytest.raises(StoreError, match="missing; delete"):
        Store.open(tmp_path / "s", META).vectors()

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "catalogue.sqlite").write_bytes(b"garbage " * 1000)
    for meta in (META, None):
        with pytest.raises(StoreError, match="the store is damaged: delete"):
            Store.open(tmp_path / "t", meta)
    sqlite3.connect(tmp_path / "u.sqlite").close()
    (tmp_path / "u").mkdir()
    (tmp_path / "u.sqlite").rename(tmp_path / "u" / "catalogue.sqlite")  # empty, no tables
    with pytest.raises(StoreError, match="the store is damaged: delete"):
        Store.open(tmp_path / "u", None)


PRUNER = """
import sys, zlib
import numpy as np
from drc_jax.store import Store

directory, keep_n = sys.argv[1], int(sys.argv[2])

def vec(i):
    rng = np.random.default_rng(zlib.crc32(f"{i}|v1".encode()))
    return rng.standard_normal(8).astype(np.float32)

store = Store.open(directory, {"weights": "fake", "preprocess": "spacevlm", "kind": "image"})
keep = [f"img/{i:03d}.png" for i in range(keep_n)]
for round_ in range(30):  # churn: each round adds 6 doomed rows, and its prune compacts them away
    doomed = [f"tmp/{round_}-{j}" for j in range(6)]
    store.put(doomed, ["v1"] * 6, np.stack([vec(k) for k in doomed]))
    store.prune(keep)
"""


def test_a_prune_with_compactions_in_one_process_loses_no_put_of_another(tmp_path):
    directory = tmp_path / "s"
    Store.open(directory, META).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # the writer puts 0..59 one by one while the pruner keeps exactly those and compacts
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(directory), "0", "60"], env=env),
        subprocess.Popen([sys.executable, "-c", PRUNER, str(directory), "60"], env=env),
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    store = Store.open(directory, META)
    assert store._setting("vectors") != "vectors-0.bin"  # compactions did run meanwhile
    expected(store, items_of(60))


def test_a_reader_sees_whole_snapshots_while_another_thread_puts_prunes_and_compacts(tmp_path):
    import threading

    store = Store.open(tmp_path / "s", META)  # one connection shared by both threads
    items = items_of(60)
    stop, seen, errors = threading.Event(), [], []

    def read():
        try:
            while not stop.is_set():
                keys, arr = store.vectors()
                want = [vec(k, "v1") for k in keys]
                np.testing.assert_array_equal(arr, np.stack(want) if want else arr)
                seen.append(len(keys))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for start in range(0, 60, 6):
            batch = dict(list(items.items())[start : start + 6])
            fill(store, batch, Embedder(batch), batch_size=2, progress=False)
            store.prune(list(items)[start // 2 : start + 6])  # drops rows: compactions
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not errors, errors[0]
    assert len(seen) > 1
    expected(store, dict(list(items.items())[27:60]))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_finite_vector_that_overflows_the_store_dtype_is_refused_not_stored_as_inf(
    tmp_path, dtype
):
    import ml_dtypes

    store = Store.open(tmp_path / "s", META, dtype=dtype)
    big = np.float32(1e5 if dtype == "float16" else 3.4e38)
    with pytest.raises(ValueError, match=rf"non-finite vectors for 1 key.*\['b'\] \(as {dtype}\)"):
        store.put(["a", "b"], ["v1", "v1"], np.array([[1.0, 2.0], [big, 0.0]], np.float32))
    assert len(store) == 0
    # what fits round-trips as the store's dtype rounds it (round to nearest even)
    x = np.array([[1.00390625, -3.1415927], [65000.0, 1e-3]], np.float32)
    store.put(["a", "b"], ["v1", "v1"], x)
    want = x.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16)
    for keys in (None, ["b", "a"]):
        got_keys, got = store.vectors(keys)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want[[0, 1] if keys is None else [1, 0]])


READER = """
import sys, time, zlib
import numpy as np
from drc_jax.store import Store

directory, stop = sys.argv[1], sys.argv[2]
store = Store.open(directory, None)  # a searcher: opened to read, never writes
snapshots = 0
while True:
    done = __import__("os").path.exists(stop)
    keys, arr = store.vectors()
    for k, row in zip(keys, arr, strict=True):
        want = np.random.default_rng(zlib.crc32(f"{k}|v1".encode())).standard_normal(8)
        assert np.array_equal(row, want.astype(np.float32)), k
    snapshots += 1
    if done:
        break
print(snapshots)
"""


def test_a_reader_process_sees_whole_snapshots_while_a_writer_puts_and_compacts(tmp_path):
    directory, stop = tmp_path / "s", tmp_path / "stop"
    items = items_of(60)
    store = Store.open(directory, META)
    fill(store, items_of(6), Embedder(items_of(6)), progress=False)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", READER, str(directory), str(stop)]
    reader = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for start in range(6, 60, 6):
            batch = dict(list(items.items())[start : start + 6])
            fill(store, batch, Embedder(batch), batch_size=2, progress=False)
            store.prune(list(items)[start // 2 : start + 6])  # drops rows: compactions
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=120)
    assert reader.returncode == 0 and int(out) >= 1
    expected(store, dict(list(items.items())[27:60]))


@pytest.mark.parametrize(
    ("name", "value"),
    [("meta", "{}"), ("meta", "[1]"), ("meta", '{"dtype": "int8"}'), ("dim", '"x"'),
     ("dim", "0"), ("rows", "-3"), ("rows", "true"), ("vectors", "5"), ("rows", "not json")],
)  # fmt: skip
def test_a_setting_of_the_wrong_type_is_a_damaged_store_naming_the_setting(tmp_path, name, value):
    items = items_of(2)
    fill(Store.open(tmp_path / "s", META), items, Embedder(items), progress=False)
    with sqlite3.connect(tmp_path / "s" / "catalogue.sqlite") as db:
        db.execute("UPDATE settings SET value=? WHERE name=?", (value, name))
    for meta in (None, META):
        with pytest.raises(StoreError, match=f"setting {name} is .*the store is damaged: delete"):
            Store.open(tmp_path / "s", meta)


def test_opening_waits_for_another_process_holding_a_new_catalogue_instead_of_failing(tmp_path):
    """Two processes creating one store at once both switch it to WAL; SQLite answers the loser
    "database is locked" at once (no busy handler), which must not end the run or be called a
    damaged store."""
    import sqlite3
    import threading

    from drc_jax.store import _set_wal

    path = tmp_path / "catalogue.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    db = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    _set_wal(db)
    release.join()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
