"""An on-disk embedding store that only ever embeds what changed.

One concern: keep ``id -> embedding`` for a collection (image files, video files, caption texts) in
sync with the collection, cheaply and without losing work. ``sync(items, embed)`` embeds ids that
are new or whose fingerprint changed, drops ids that are gone and persists after every batch, so an
interrupted run resumes where it stopped.

Layout of a store directory (no pickles; every file is plain ``.npy`` / JSON)::

    manifest.json            {"format", "meta", "dim", "failed": {id: [fingerprint, reason]},
                              "shards": [{"name", "dead": [rows]}], "log": journal name}
    log-<hex>.jsonl          append-only journal replayed after the manifest, one entry a line:
                             {"add": shard} | {"remove": [ids]}
                             | {"fail": {id: [fingerprint, reason]}}
    shard-<hex>.npy          float32 (n, D) embeddings
    shard-<hex>.json         {"ids": [...], "fingerprints": [...], "dim": D} for its rows

Every file is written to a temporary name and moved into place with ``os.replace``. During a sync
each batch becomes a shard, visible once its journal line is appended (fsync'd); a torn last journal
line (a crash mid-append) is ignored, so an interrupted sync keeps every finished batch. A later
shard's row for an id supersedes earlier ones. At the end of a sync the batch shards are merged
into one and a checkpoint writes a new manifest (listing each shard's dead rows) with a fresh
journal. When a quarter of the stored rows are dead, or there are many shards, the checkpoint is a
full compaction into one shard (also :meth:`EmbeddingStore.compact`). Writers hold an exclusive
``flock`` on ``<dir>/lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

FORMAT = 1
MANIFEST = "manifest.json"
LOCK = "lock"
# Compact when this share of stored rows is dead, or when there are more shards than this.
DEAD_FRACTION_TO_COMPACT = 0.25
MAX_SHARDS = 64


class ItemError(Exception):
    """Raised by an ``embed`` callable for one item it cannot embed (e.g. an unreadable file)."""

    def __init__(self, id: str, reason: str):  # noqa: A002 - the contract names it ``id``
        super().__init__(f"{id}: {reason}")
        self.id = id
        self.reason = reason


class StoreError(RuntimeError):
    """The store directory cannot be used as asked (corrupt, foreign, locked, ...)."""


class StoreMismatchError(StoreError, ValueError):
    """An existing store was built with other meta (weights, preprocessing, ...)."""


@dataclass
class SyncReport:
    """What one :meth:`EmbeddingStore.sync` did. ``failed`` lists ``(id, reason)``."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0  # ids passed to a successful ``embed`` call (== added + changed)

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.changed} changed, {self.removed} removed, "
            f"{self.unchanged} unchanged, {len(self.failed)} failed"
        )


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(path, json.dumps(obj, ensure_ascii=False).encode())


def _atomic_write_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _canonical(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Meta as it round-trips through JSON (tuples become lists), so comparisons are exact."""
    try:
        return json.loads(json.dumps(dict(meta), sort_keys=True))
    except TypeError as e:
        raise TypeError(f"store meta must be JSON-serialisable: {e}") from e


def _meta_diff(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [
        f"{k}: store has {stored.get(k, '<missing>')!r}, asked for {wanted.get(k, '<missing>')!r}"
        for k in keys
        if stored.get(k) != wanted.get(k)
    ]


@dataclass
class _Shard:
    name: str
    ids: list[str]
    fingerprints: list[str]
    _array: np.ndarray | None = None

    def array(self, directory: Path) -> np.ndarray:
        if self._array is None:
            # memory-mapped: rows are copied once, into the store's ``embeddings``
            self._array = np.load(directory / f"{self.name}.npy", mmap_mode="r", allow_pickle=False)
        return self._array


class EmbeddingStore:
    """``id -> float32 embedding`` kept on disk; see the module docstring for the layout.

    Open with :meth:`open`; never construct directly. Reading (``ids``, ``embeddings``, ``get``)
    needs no lock; ``sync`` and ``compact`` lock the directory against other writers.
    """

    def __init__(self, directory: Path, meta: dict[str, Any]):
        self.directory = directory
        self._meta = meta
        self._dim: int | None = None
        self._shards: dict[str, _Shard] = {}  # in journal order
        self._live: dict[str, tuple[str, int]] = {}  # id -> (shard, row), insertion ordered
        self._failed: dict[str, tuple[str, str]] = {}  # id -> (fingerprint, reason)
        self._log_name = ""
        self._dirty = False  # journal has entries not yet folded into the manifest
        self._cache: tuple[list[str], np.ndarray] | None = None
        self._pos: dict[str, int] = {}  # id -> row of the cached ``embeddings``

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        directory: str | os.PathLike,
        meta: Mapping[str, Any],
        *,
        on_mismatch: Literal["error", "reset"] = "error",
    ) -> EmbeddingStore:
        """Open the store in ``directory`` (created if missing) for embeddings like ``meta``.

        ``meta`` (e.g. ``{"weights": clip.weights_id, "preprocess": "spacevlm", "kind": "image"}``)
        must equal the meta the store was created with; otherwise :class:`StoreMismatchError` says
        which keys differ, or with ``on_mismatch="reset"`` the store is emptied and re-created.
        """
        if on_mismatch not in ("error", "reset"):
            raise ValueError(f"on_mismatch must be 'error' or 'reset', got {on_mismatch!r}")
        directory = Path(directory)
        meta = _canonical(meta)
        if directory.exists() and not directory.is_dir():
            raise StoreError(f"{directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        store = cls(directory, meta)
        if not (directory / MANIFEST).exists():
            foreign = [
                p.name for p in directory.iterdir() if p.name != LOCK and not _is_ours(p.name)
            ]
            if foreign:
                raise StoreError(
                    f"{directory} is not an embedding store (no {MANIFEST}) and is not empty "
                    f"(e.g. {sorted(foreign)[:3]}); pick an empty or new directory"
                )
        if (directory / MANIFEST).exists():
            diff = _meta_diff(store._read_manifest()["meta"], meta)
            if not diff:
                store._load_unlocked()  # readers need no lock (and no write access)
                return store
            if on_mismatch == "error":
                raise StoreMismatchError(
                    f"embedding store {directory} was built with other settings:\n  "
                    + "\n  ".join(diff)
                    + "\nUse another directory, or reset it (on_mismatch='reset') to "
                    "re-embed everything."
                )
        with store._locked():
            if (directory / MANIFEST).exists():
                if not _meta_diff(store._read_manifest()["meta"], meta):
                    store._load()  # another process created it meanwhile
                    return store
                store._delete_our_files()
            store._write_fresh()
        return store

    # ------------------------------------------------------------------ reading
    @property
    def meta(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._meta))

    @property
    def dim(self) -> int | None:
        """Embedding width, ``None`` until the first embedding is stored."""
        return self._dim

    @property
    def ids(self) -> list[str]:
        """Stored ids; ``embeddings`` rows are in this order."""
        return list(self._live)

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, id: object) -> bool:  # noqa: A002
        return id in self._live

    def fingerprint(self, id: str) -> str:  # noqa: A002
        name, row = self._live[id]
        return self._shards[name].fingerprints[row]

    @property
    def failed(self) -> dict[str, tuple[str, str]]:
        """Ids the last syncs could not embed: ``id -> (fingerprint, reason)``."""
        return dict(self._failed)

    @property
    def embeddings(self) -> np.ndarray:
        """All stored embeddings as one ``(len(ids), D)`` float32 array, rows in ``ids`` order."""
        return self._all()[1]

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Embeddings of ``ids`` as a ``(len(ids), D)`` float32 array, in the order asked."""
        missing = [i for i in ids if i not in self._live]
        if missing:
            raise KeyError(
                f"{len(missing)} id(s) not in embedding store {self.directory}, e.g. "
                f"{missing[:3]}; sync them first"
            )
        if not ids:
            return np.zeros((0, self._dim or 0), np.float32)
        arr = self._all()[1]
        return arr[np.asarray([self._pos[i] for i in ids], dtype=np.int64)]

    def _all(self) -> tuple[list[str], np.ndarray]:
        if self._cache is None:
            ids, _, arr = self._gather(list(self._live.items()))
            self._cache = (ids, arr)
            self._pos = {id_: i for i, id_ in enumerate(ids)}
        return self._cache

    def _gather(
        self, entries: Sequence[tuple[str, tuple[str, int]]]
    ) -> tuple[list[str], list[str], np.ndarray]:
        """Ids, fingerprints and embeddings of ``(id, (shard, row))`` entries."""
        arr = np.empty((len(entries), self._dim or 0), np.float32)
        by_shard: dict[str, tuple[list[int], list[int]]] = {}
        for i, (_, (name, row)) in enumerate(entries):
            dst, rows = by_shard.setdefault(name, ([], []))
            dst.append(i)
            rows.append(row)
        for name, (dst, rows) in by_shard.items():
            arr[np.asarray(dst)] = self._shards[name].array(self.directory)[np.asarray(rows)]
        ids = [id_ for id_, _ in entries]
        fps = [self._shards[name].fingerprints[row] for _, (name, row) in entries]
        return ids, fps, arr

    # ------------------------------------------------------------------ writing
    def sync(
        self,
        items: Mapping[str, str],
        embed: Callable[[list[str]], np.ndarray],
        *,
        batch_size: int = 64,
        on_error: Literal["skip", "fail"] = "skip",
        desc: str = "encoding images",
        retry_failed: bool = False,
        progress: bool = True,
    ) -> SyncReport:
        """Make the store hold exactly ``items`` (``id -> fingerprint``); return what was done.

        Ids that are new, or whose fingerprint changed, are passed to ``embed`` in batches of
        ``batch_size`` (in ``items`` order); ``embed`` returns a ``(len(batch), D)`` array. Each
        batch is persisted before the next starts. Ids not in ``items`` are dropped.

        ``embed`` may raise :class:`ItemError` for one bad item: the batch is retried without it and
        the item is listed in ``report.failed`` (``on_error="skip"``), or the error is re-raised
        (``on_error="fail"``; batches already done stay stored). A skipped item is remembered with
        its fingerprint and not retried while the fingerprint is unchanged (it is still listed in
        ``report.failed``), unless ``retry_failed=True`` or ``on_error="fail"``.
        """
        if on_error not in ("skip", "fail"):
            raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        report = SyncReport()
        with self._locked():
            self._load()  # another process may have written since we opened
            self._remove_orphans()
            removed = [i for i in self._live if i not in items]
            gone_failures = [i for i in self._failed if i not in items]
            if removed or gone_failures:
                self._append({"remove": removed + gone_failures})
            report.removed = len(removed)

            todo: list[str] = []
            changed: set[str] = set()
            for id_, fp in items.items():
                fp = str(fp)
                if id_ in self._live:
                    if self.fingerprint(id_) == fp:
                        report.unchanged += 1
                        continue
                    changed.add(id_)
                elif id_ in self._failed:
                    old_fp, reason = self._failed[id_]
                    if old_fp == fp and not retry_failed and on_error == "skip":
                        report.failed.append((id_, reason))
                        continue
                todo.append(id_)

            new_shards: list[str] = []
            bar = _progress(len(todo), desc, progress)
            try:
                for start in range(0, len(todo), batch_size):
                    batch = todo[start : start + batch_size]
                    ok, emb, failed = self._embed_batch(batch, embed, on_error)
                    fails = {i: [str(items[i]), r] for i, r in failed}
                    stale = [i for i in fails if i in self._live]  # changed, now unreadable
                    if stale:
                        self._append({"remove": stale})
                    if fails:
                        self._append({"fail": fails})
                    report.failed.extend(failed)
                    if ok:
                        name = self._write_shard(ok, [str(items[i]) for i in ok], emb)
                        self._append({"add": name})
                        new_shards.append(name)
                    report.embedded += len(ok)
                    report.changed += sum(i in changed for i in ok)
                    report.added += sum(i not in changed for i in ok)
                    bar.update(len(batch))
            finally:
                bar.close()
            self._tidy(new_shards)
        return report

    def compact(self) -> None:
        """Rewrite all live rows into one shard, dropping dead rows; fresh manifest and journal."""
        with self._locked():
            self._load()
            self._compact()

    def _embed_batch(
        self, batch: list[str], embed: Callable[[list[str]], np.ndarray], on_error: str
    ) -> tuple[list[str], np.ndarray | None, list[tuple[str, str]]]:
        pending = list(batch)
        failed: list[tuple[str, str]] = []
        while pending:
            try:
                out = embed(list(pending))
            except ItemError as e:
                if e.id not in pending:
                    raise ValueError(
                        f"embed raised ItemError for {e.id!r}, which is not in the batch it was "
                        f"given ({pending[:3]}...)"
                    ) from e
                if on_error == "fail":
                    raise
                failed.append((e.id, e.reason))
                pending.remove(e.id)
                continue
            out = np.asarray(out, dtype=np.float32)
            if out.ndim != 2 or out.shape[0] != len(pending):
                raise ValueError(
                    f"embed returned shape {out.shape} for {len(pending)} ids; expected "
                    f"({len(pending)}, D)"
                )
            if self._dim is not None and out.shape[1] != self._dim:
                raise ValueError(
                    f"embed returned width {out.shape[1]} but store {self.directory} holds "
                    f"width {self._dim}; this store was built with another model"
                )
            bad = ~np.isfinite(out).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"embed returned non-finite values for {int(bad.sum())} id(s), e.g. "
                    f"{[pending[i] for i in np.flatnonzero(bad)[:3]]}"
                )
            return pending, out, failed
        return [], None, failed

    # ------------------------------------------------------------------ persistence
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / LOCK, "a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"embedding store {self.directory} is being written by another process; "
                    "wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _write_fresh(self) -> None:
        self._dim, self._shards, self._live, self._failed = None, {}, {}, {}
        self._log_name = f"log-{uuid.uuid4().hex[:16]}.jsonl"
        self._write_manifest()
        self._cache = None

    def _write_manifest(self) -> None:
        (self.directory / self._log_name).touch()
        _atomic_write_json(
            self.directory / MANIFEST,
            {
                "format": FORMAT,
                "meta": self._meta,
                "dim": self._dim,
                "shards": [
                    {"name": name, "dead": self._dead_in(shard)}
                    for name, shard in self._shards.items()
                ],
                "failed": {k: list(v) for k, v in self._failed.items()},
                "log": self._log_name,
            },
        )

    def _read_manifest(self) -> dict[str, Any]:
        path = self.directory / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise StoreError(
                f"cannot read {path} ({e}); the store is damaged: delete {self.directory} "
                "to rebuild it"
            ) from e
        if manifest.get("format") != FORMAT:
            raise StoreError(
                f"{path} has format {manifest.get('format')!r}, this code reads {FORMAT}"
            )
        return manifest

    def _load(self) -> None:
        manifest = self._read_manifest()
        self._dim = manifest["dim"]
        self._shards, self._live = {}, {}
        self._failed = {k: (v[0], v[1]) for k, v in manifest["failed"].items()}
        self._dirty = False
        self._log_name = manifest["log"]
        for entry in manifest["shards"]:
            self._add_shard(self._read_shard(entry["name"]), dead=set(entry["dead"]))
        log = self.directory / self._log_name
        lines = log.read_bytes().split(b"\n") if log.exists() else []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # torn last line: a crash mid-append, nothing committed
                    break
                raise StoreError(
                    f"{log} line {i + 1} is corrupt; delete {self.directory}"
                ) from None
            self._apply(entry)
            self._dirty = True
        self._cache = None

    def _load_unlocked(self, attempts: int = 5) -> None:
        """Load while a writer may be compacting (deleting shards): retry on a vanished file."""
        for attempt in range(attempts):
            try:
                self._load()
                return
            except StoreError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _apply(self, entry: dict[str, Any]) -> None:
        if "add" in entry:
            self._add_shard(self._read_shard(entry["add"]))
        elif "remove" in entry:
            for id_ in entry["remove"]:
                self._live.pop(id_, None)
                self._failed.pop(id_, None)
        elif "fail" in entry:
            for id_, (fp, reason) in entry["fail"].items():
                self._failed[id_] = (fp, reason)
        else:
            raise StoreError(f"unknown journal entry {entry!r} in {self.directory}")
        self._cache = None

    def _add_shard(self, shard: _Shard, dead: set[int] = frozenset()) -> None:
        self._shards[shard.name] = shard
        for row, id_ in enumerate(shard.ids):
            if row not in dead:
                self._live[id_] = (shard.name, row)  # supersedes any earlier row
                self._failed.pop(id_, None)
        self._cache = None

    def _read_shard(self, name: str) -> _Shard:
        try:
            info = json.loads((self.directory / f"{name}.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise StoreError(
                f"shard {name} of {self.directory} is missing or damaged ({e}); delete the "
                "directory to rebuild it"
            ) from e
        shard = _Shard(name, info["ids"], info["fingerprints"])
        if self._dim is None and info.get("dim") is not None:
            self._dim = int(info["dim"])
        return shard

    def _write_shard(self, ids: list[str], fingerprints: list[str], emb: np.ndarray) -> str:
        name = f"shard-{uuid.uuid4().hex[:16]}"
        _atomic_write_npy(self.directory / f"{name}.npy", np.ascontiguousarray(emb, np.float32))
        _atomic_write_json(
            self.directory / f"{name}.json",
            {"ids": ids, "fingerprints": fingerprints, "dim": int(emb.shape[1])},
        )
        return name

    def _append(self, entry: dict[str, Any]) -> None:
        """Commit one journal entry: append a line, fsync, then apply it in memory."""
        with open(self.directory / self._log_name, "ab") as f:
            f.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._apply(entry)
        self._dirty = True

    def _dead_in(self, shard: _Shard) -> list[int]:
        return [
            row for row, id_ in enumerate(shard.ids) if self._live.get(id_) != (shard.name, row)
        ]

    def _dead_rows(self) -> int:
        return sum(len(s.ids) for s in self._shards.values()) - len(self._live)

    def _tidy(self, new_shards: list[str]) -> None:
        """End of a sync: merge its batch shards, then checkpoint (compacting when worthwhile)."""
        stored = sum(len(s.ids) for s in self._shards.values())
        shards_after_merge = len(self._shards) - len(new_shards) + 1
        if shards_after_merge > MAX_SHARDS or self._dead_rows() > DEAD_FRACTION_TO_COMPACT * stored:
            self._compact()
            return
        if not self._dirty:
            return
        if len(new_shards) > 1:
            ids, fps, arr = self._live_rows(new_shards)
            for name in new_shards:
                del self._shards[name]
            if ids:
                name = self._write_shard(ids, fps, arr)
                self._shards[name] = _Shard(name, ids, fps, arr)
                for row, id_ in enumerate(ids):
                    self._live[id_] = (name, row)
        self._checkpoint()

    def _live_rows(self, names: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
        wanted = set(names)
        return self._gather([(i, loc) for i, loc in self._live.items() if loc[0] in wanted])

    def _compact(self) -> None:
        ids, fps, arr = self._live_rows(list(self._shards))
        self._shards = {}
        if ids:
            name = self._write_shard(ids, fps, arr)
            self._shards[name] = _Shard(name, ids, fps, arr)
        self._live = {id_: (name, row) for row, id_ in enumerate(ids)}
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Write the in-memory state as a new manifest with an empty journal; drop old files."""
        for name, shard in list(self._shards.items()):
            if len(self._dead_in(shard)) == len(shard.ids):
                del self._shards[name]
        self._log_name = f"log-{uuid.uuid4().hex[:16]}.jsonl"
        self._write_manifest()  # the commit point
        self._cache = None
        self._dirty = False
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Delete files a crashed writer left behind (never referenced by manifest/journal)."""
        keep = {MANIFEST, LOCK, self._log_name}
        keep |= {f"{n}.npy" for n in self._shards} | {f"{n}.json" for n in self._shards}
        for p in self.directory.iterdir():
            if _is_ours(p.name) and p.name not in keep:
                p.unlink(missing_ok=True)

    def _delete_our_files(self) -> None:
        for p in self.directory.iterdir():
            if _is_ours(p.name) or p.name == MANIFEST:
                p.unlink(missing_ok=True)


def _is_ours(name: str) -> bool:
    return (
        name.startswith(("shard-", "log-"))
        or (name.startswith(".") and name.endswith(".tmp"))
        or name == MANIFEST
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled or total == 0:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True)
