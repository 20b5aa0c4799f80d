"""``key -> vector`` on disk: a SQLite catalogue (``catalogue.sqlite``) and a raw array file.

``vectors-<n>.bin`` holds ``(rows, dim)`` in the store's dtype. Each write is one ``BEGIN
IMMEDIATE`` transaction; array bytes go past the committed end (or into a new file when
compacting) and are fsynced before the catalogue points at them, so a crash loses nothing
committed and a reader's memory map of its snapshot stays valid.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ml_dtypes
import numpy as np

from drc_jax import atomic
from drc_jax.errors import UserError
from drc_jax.progress import progress_bar

CATALOGUE = "catalogue.sqlite"
DTYPES = ("float32", "float16", "bfloat16")
DEAD_FRACTION_TO_COMPACT = 0.25
_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')), error TEXT, row INTEGER UNIQUE,
    CHECK ((status = 'ok') = (row IS NOT NULL)));
CREATE INDEX IF NOT EXISTS live ON items (row, key) WHERE status = 'ok';  -- vectors(): one scan
CREATE INDEX IF NOT EXISTS failed ON items (key) WHERE status = 'error';  -- errors(): no scan
CREATE TABLE IF NOT EXISTS names (name TEXT PRIMARY KEY, key TEXT NOT NULL, stamp TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS names_by_key ON names (key);  -- a hit's names, by its row's key
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ItemError(Exception):
    """Raised by an ``embed`` callable for one item it cannot embed (e.g. an unreadable file)."""

    def __init__(self, id: str, reason: str):  # noqa: A002 - the contract names it ``id``
        super().__init__(f"{id}: {reason}")
        self.id, self.reason = id, reason


class StoreError(UserError, RuntimeError):
    """The store directory cannot be used as asked (damaged, foreign, ...)."""


class StoreMismatchError(StoreError, ValueError):
    """An existing store was built with other meta (weights, preprocessing, ...)."""


@dataclass
class SyncReport:
    """What one :func:`fill` (and the caller's prune) did. ``failed`` lists ``(key, reason)``."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.changed} changed, {self.removed} removed, "
            f"{self.unchanged} unchanged, {len(self.failed)} failed"
        )


def plain_name(name: str, where: Path) -> str:
    """``name`` if it is a plain file name (no folder, not absolute, not ``..``), else an error."""
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
        raise StoreError(
            f"the catalogue of {where} names the file {name!r}, which is not a plain file name "
            f"inside it; the store is damaged or was crafted: delete {where} and re-run"
        )
    return name


def own_file(path: Path) -> Path:
    """``path`` unless it is a symbolic link: a store reads and writes only its own files."""
    if path.is_symlink():
        raise StoreError(
            f"{path} is a symbolic link (to {os.readlink(path)}); a store reads and writes only "
            f"its own files, so the store is damaged or was crafted: delete {path.parent} and "
            "re-run"
        )
    return path


def _damaged(directory: Path, error: object) -> StoreError:
    if isinstance(error, BaseException) and (said := atomic.advice(error, directory, "directory")):
        return StoreError(f"the embedding store {directory}: {said}")
    return StoreError(
        f"cannot read the catalogue {directory / CATALOGUE} ({error}); the store is damaged: "
        f"delete {directory} and re-run to rebuild it"
    )


WAL_SWITCH_WAIT_S = 120.0


def _set_wal(db: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, retried while locked (no busy handler covers the switch)."""
    deadline = time.monotonic() + WAL_SWITCH_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _connect(path: Path, query: str = "") -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + query
    return sqlite3.connect(
        uri, uri=True, timeout=600, isolation_level=None, check_same_thread=False
    )


def unusable_rows(vectors: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Mask of rows that are not finite or whose squared norm overflows float32."""
    bad = np.zeros(len(vectors), bool)
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(0, len(vectors), chunk):
            v = np.asarray(vectors[s : s + chunk], np.float32)
            bad[s : s + chunk] = ~np.isfinite(np.einsum("ij,ij->i", v, v))
    return bad


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection, else an immutable one (a read-only medium)."""
    try:
        db = _connect(path, "?mode=ro")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        return _connect(path, "?immutable=1")


class Store:
    """``key -> vector`` on disk; open with :meth:`open`."""

    def __init__(self, directory: Path, *, read_only: bool = False):
        self.directory = directory
        self._lock = threading.RLock()
        for name in (CATALOGUE, f"{CATALOGUE}-wal", f"{CATALOGUE}-shm"):
            own_file(directory / name)
        try:
            try:
                self._db = _connect(directory / CATALOGUE)
                _set_wal(self._db)
            except sqlite3.OperationalError as e:
                if not (read_only and atomic.write_problem(e) == "read-only"):
                    raise
                self._db = _read_only(directory / CATALOGUE)
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as e:
            if "locked" in str(e):
                raise StoreError(
                    f"{directory / CATALOGUE} stayed locked by another process for "
                    f"{WAL_SWITCH_WAIT_S:.0f} s; wait for it to finish and re-run"
                ) from e
            raise _damaged(directory, e) from e
        except sqlite3.DatabaseError as e:
            raise _damaged(directory, e) from e

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike,
        meta: Mapping[str, Any] | None,
        *,
        dtype: str = "float32",
        on_mismatch: Literal["error", "reset"] = "error",
    ) -> Store:
        """Open (or create) the store in ``directory`` for vectors like ``meta``, kept as ``dtype``.

        Other ``meta``/``dtype`` than stored raise :class:`StoreMismatchError`, or with
        ``on_mismatch="reset"`` empty the store. ``meta=None`` opens an existing store to read.
        """
        directory = Path(directory)
        if on_mismatch not in ("error", "reset"):
            raise ValueError(f"on_mismatch must be 'error' or 'reset', got {on_mismatch!r}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if not (directory / CATALOGUE).is_file():
            if meta is None:
                raise FileNotFoundError(f"no embedding store at {directory}")
            if directory.exists() and not directory.is_dir():
                raise StoreError(f"{directory} exists and is not a directory")
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                if atomic.write_problem(e):
                    raise _damaged(directory, e) from e
                raise
            foreign = [p.name for p in directory.iterdir()]
            foreign = sorted(n for n in foreign if not n.startswith((CATALOGUE, "vectors-")))
            if "manifest.json" in foreign:
                raise StoreError(
                    f"{directory} holds an embedding store of an older drc-jax (manifest.json and "
                    f"shards), which this version does not read: delete {directory} and re-run "
                    "to rebuild it"
                )
            if foreign:
                raise StoreError(
                    f"{directory} is not an embedding store (no {CATALOGUE}) and is not empty "
                    f"(e.g. {foreign[:3]}); pick an empty or new directory"
                )
        store = cls(directory, read_only=meta is None)
        try:
            if meta is None:
                store._check_tables()
                if store._setting("meta") is None:
                    raise _damaged(directory, "no settings")
                store._check_settings()
                store._check_rows()
                return store
            with store.transaction():
                for statement in _SCHEMA.split(";")[:-1]:
                    store._db.execute(statement)
                store._check_tables()
                store._check_settings()
                store._check_rows()
                store._check_meta(store._setting("meta"), {**meta, "dtype": dtype}, on_mismatch)
                store._sweep()
        except (sqlite3.DatabaseError, StoreError) as e:
            store.close()
            raise e if isinstance(e, StoreError) else _damaged(directory, e) from e
        return store

    def _check_meta(self, stored: dict | None, meta: dict, on_mismatch: str) -> None:
        """Inside a write transaction: record ``meta``, or compare it with the ``stored`` one."""
        meta = json.loads(json.dumps(meta, sort_keys=True))
        if stored is None:
            self._set("meta", meta)
            self._set("vectors", "vectors-0.bin")
            return
        diff = [
            f"{k}: store has {stored.get(k, '<missing>')!r}, asked for {meta.get(k, '<missing>')!r}"
            for k in sorted(set(stored) | set(meta))
            if stored.get(k) != meta.get(k)
        ]
        if diff and on_mismatch == "error":
            raise StoreMismatchError(
                f"embedding store {self.directory} was built with other settings:\n  "
                + "\n  ".join(diff)
                + "\nUse another directory, or reset it (on_mismatch='reset') to re-embed "
                "everything."
            )
        if diff:
            self._db.execute("DELETE FROM items")
            self._db.execute("DELETE FROM names")
            self._db.execute("DELETE FROM info")
            self._db.execute("DELETE FROM settings WHERE name != 'vectors'")
            self._set("vectors", self._next_file())
            self._set("meta", meta)

    def _check_settings(self) -> None:
        """The store's own settings have this version's types (a crafted catalogue may not)."""
        rows = self._db.execute(
            "SELECT name, value FROM settings WHERE name IN ('meta', 'dim', 'rows', 'vectors')"
        )
        for name, text in rows:
            try:
                value = json.loads(text)
            except ValueError:
                value = ...
            ok = {
                "meta": lambda v: isinstance(v, dict) and v.get("dtype") in DTYPES,
                "dim": lambda v: type(v) is int and v > 0,
                "rows": lambda v: type(v) is int and v >= 0,
                "vectors": lambda v: isinstance(v, str),
            }[name](value)
            if not ok:
                raise _damaged(self.directory, f"setting {name} is {text!r}")

    def _check_tables(self) -> None:
        """The catalogue has this version's tables and columns (a crafted one may not)."""
        want = {
            "settings": {"name", "value"},
            "items": {"key", "fingerprint", "status", "error", "row"},
            "names": {"name", "key", "stamp"},
        }
        for table, columns in want.items():
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if not columns <= have:
                what = "is missing" if not have else f"lacks {sorted(columns - have)}"
                raise _damaged(self.directory, f"table {table} {what}")

    def _check_rows(self) -> None:
        """Each stored vector has its own row within the committed rows (crafted catalogues)."""
        n, rows, distinct, low, high = self._db.execute(
            "SELECT count(*), count(row), count(DISTINCT row), min(row), max(row) FROM items "
            "WHERE status='ok'"
        ).fetchone()
        committed = self._setting("rows", 0)
        if n and not (n == rows == distinct and low >= 0 and high < committed):
            raise _damaged(
                self.directory,
                f"{n} stored items point at {distinct} distinct rows in {low}..{high}, but the "
                f"array holds rows 0..{committed - 1} and each item needs its own",
            )

    def _setting(self, name: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM settings WHERE name=?", (name,)).fetchone()
        return default if row is None else json.loads(row[0])

    def _set(self, name: str, value: Any) -> None:
        value = json.dumps(value, sort_keys=True)
        self._db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (name, value))

    @property
    def meta(self) -> dict[str, Any]:
        return {k: v for k, v in self._setting("meta").items() if k != "dtype"}

    @property
    def dtype(self) -> np.dtype:
        name = self._setting("meta")["dtype"]
        return np.dtype(ml_dtypes.bfloat16 if name == "bfloat16" else name)

    @property
    def dim(self) -> int | None:
        """Vector width, ``None`` until the first vector is stored."""
        return self._setting("dim")

    def setting(self, name: str, default: Any = None) -> Any:
        """A caller's own setting (JSON value) kept beside the catalogue, e.g. an index's roots."""
        return self._setting(f"user.{name}", default)

    def set_setting(self, name: str, value: Any) -> None:
        with self.transaction():
            self._set(f"user.{name}", value)

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM items WHERE status='ok'").fetchone()[0]

    def _known(self) -> dict[str, tuple[str, str, str | None]]:
        """``key -> (fingerprint, status, error)`` of every item."""
        rows = self._db.execute("SELECT key, fingerprint, status, error FROM items")
        return {k: (fp, status, error) for k, fp, status, error in rows}

    def errors(self) -> dict[str, tuple[str, str]]:
        """Items that could not be embedded: ``key -> (fingerprint, error)``."""
        rows = self._db.execute("SELECT key, fingerprint, error FROM items WHERE status='error'")
        return {k: (fp, error) for k, fp, error in rows}

    def missing(self, items: Mapping[str, str], *, retry_errors: bool = False) -> list[str]:
        """Keys of ``items`` (``key -> fingerprint``) with no vector or error for that fingerprint.

        Recorded errors count as missing only with ``retry_errors``.
        """
        known, retry = self._known(), "error" if retry_errors else None
        return [
            k
            for k, fp in items.items()
            if known.get(k, (None,))[0] != str(fp) or known[k][1] == retry
        ]

    def vectors(self, keys: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """``(keys, (len(keys), dim) array)`` of ``keys`` (default: every stored key, by row).

        One snapshot: a read-only memory map when all keys are asked and every row is live, else
        a copy.
        """
        for attempt in range(3):  # a compaction may delete the array file of our snapshot
            try:
                with self.transaction("BEGIN"):
                    q = "SELECT key, row FROM items WHERE status='ok' ORDER BY row"
                    pairs = self._db.execute(q).fetchall()
                    array = self._array()
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise StoreError(
                        f"the array file of {self.directory} is missing; delete "
                        f"{self.directory} and re-run to rebuild it"
                    ) from None
        stored, rows = [k for k, _ in pairs], [r for _, r in pairs]
        if keys is None:
            if len(stored) == len(array):
                return stored, array
            keys, take = stored, rows
        else:
            row_of = dict(zip(stored, rows, strict=True))
            absent = [k for k in keys if k not in row_of]
            if absent:
                raise KeyError(
                    f"{len(absent)} key(s) not in embedding store {self.directory}, e.g. "
                    f"{absent[:3]}; embed them first"
                )
            take = [row_of[k] for k in keys]
        return list(keys), np.asarray(array[np.asarray(take, np.int64)])

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(live rows int64 ascending, memory-mapped array file)``, one snapshot."""
        with self.transaction("BEGIN"):
            q = "SELECT row FROM items WHERE status='ok' ORDER BY row"
            rows = np.fromiter((r for (r,) in self._db.execute(q)), np.int64)
            return rows, self._array()

    def names_of_rows(self, rows: Iterable[int]) -> dict[int, list[str]]:
        """``row -> sorted names`` of the keys stored at ``rows`` (rows without a name absent)."""
        out: dict[int, list[str]] = {}
        with self._lock:
            found = self._db.execute(
                "SELECT items.row, names.name FROM items JOIN names ON names.key = items.key "
                "WHERE items.row IN (SELECT value FROM json_each(?)) ORDER BY names.name",
                (json.dumps([int(r) for r in rows]),),
            ).fetchall()
        for row, name in found:
            out.setdefault(row, []).append(name)
        return out

    def has_name(self, name: str) -> bool:
        with self._lock:
            q = "SELECT 1 FROM names WHERE name=?"
            return self._db.execute(q, (name,)).fetchone() is not None

    @property
    def array_file(self) -> str:
        """The array file's name: it changes when a compaction renumbers the rows."""
        return self._file().name

    def iter_names(self, batch: int = 1 << 16):
        """Batches of ``(name, key, row)`` of every named live key, by name (streamed)."""
        last = ""
        while True:
            got = self._db.execute(
                "SELECT names.name, names.key, items.row FROM names JOIN items ON "
                "items.key = names.key WHERE items.status='ok' AND names.name > ? "
                "ORDER BY names.name LIMIT ?",
                (last, batch),
            ).fetchall()
            if not got:
                return
            yield got
            last = got[-1][0]

    def _array(self) -> np.ndarray:
        """The committed rows of the array file, memory-mapped (inside a transaction)."""
        n, dim, dtype = self._setting("rows", 0), self._setting("dim") or 0, self.dtype
        if n == 0:
            return np.zeros((0, dim), dtype)
        path = self._file()
        size, need = path.stat().st_size, n * dim * dtype.itemsize
        if size < need:
            raise StoreError(
                f"the array file {path} is damaged: {size} bytes, but the catalogue holds {n} "
                f"rows of {dim} {dtype.name} ({need} bytes). Delete {self.directory} and re-run "
                "to rebuild it"
            )
        return np.memmap(path, dtype=dtype, mode="r", shape=(n, dim))

    def _file(self) -> Path:
        """The array file the catalogue names: a plain name inside the store, not a link, a file."""
        path = own_file(self.directory / plain_name(self._setting("vectors"), self.directory))
        if path.exists() and not path.is_file():
            raise _damaged(self.directory, f"its array file {path.name} is not a regular file")
        return path

    @contextlib.contextmanager
    def transaction(self, begin: str = "BEGIN IMMEDIATE"):
        """Several writes as one; waits for other writers, joins an open one of this store."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute(begin)
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException as e:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                if atomic.write_problem(e):
                    raise _damaged(self.directory, e) from e
                raise

    def put(self, keys: Sequence[str], fingerprints: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` for ``keys[i]`` (replacing an older vector or error), atomically."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(keys) or len(fingerprints) != len(keys):
            raise ValueError(
                f"put got {len(keys)} keys, {len(fingerprints)} fingerprints and vectors of "
                f"shape {vectors.shape}; expected ({len(keys)}, D)"
            )
        with self.transaction():
            dim = self._setting("dim")
            if dim is not None and vectors.shape[1] != dim:
                raise ValueError(
                    f"vectors of width {vectors.shape[1]} but store {self.directory} holds width "
                    f"{dim}; this store was built with another model"
                )
            with np.errstate(over="ignore"):  # checked as stored: 1e5 is inf in float16
                data = np.ascontiguousarray(vectors, self.dtype)
            bad = unusable_rows(data)
            if bad.any():
                raise ValueError(
                    f"non-finite vectors for {int(bad.sum())} key(s), e.g. "
                    f"{[keys[i] for i in np.flatnonzero(bad)[:3]]} (as {self.dtype.name}); "
                    "a norm too large to score in float32 counts as non-finite"
                )
            self._set("dim", int(vectors.shape[1]))
            start = self._setting("rows", 0)
            self._write(start, data.tobytes())
            self._db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, 'ok', NULL, ?)",
                zip(keys, map(str, fingerprints), range(start, start + len(keys)), strict=True),
            )
            self._set("rows", start + len(keys))

    def _write(self, start_row: int, data: bytes) -> None:
        """Write ``data`` at row ``start_row`` of the array file and make it durable."""
        fd = os.open(self._file(), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.pwrite(fd, data, start_row * self.dim * self.dtype.itemsize)
            os.fsync(fd)
        finally:
            os.close(fd)

    def put_errors(self, errors: Mapping[str, tuple[str, str]]) -> None:
        """Record ``key -> (fingerprint, error)`` for items that could not be embedded."""
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, 'error', ?, NULL)",
                [(k, str(fp), err) for k, (fp, err) in errors.items()],
            )

    def prune(self, keep: Iterable[str]) -> int:
        """Drop items not in ``keep`` and return how many; compacts once many rows are dead."""
        with self.transaction():
            keep = json.dumps(list(keep))
            gone = self._db.execute(
                "DELETE FROM items WHERE key NOT IN (SELECT value FROM json_each(?))", (keep,)
            ).rowcount
            self._db.execute(
                "DELETE FROM info WHERE key NOT IN (SELECT value FROM json_each(?))", (keep,)
            )
            rows = self._setting("rows", 0)
            dead = rows - len(self)
        if dead > DEAD_FRACTION_TO_COMPACT * rows:
            self.compact()
        return gone

    def compact(self) -> None:
        """Copy the live rows into a new array file; the old one goes after the commit."""
        with self.transaction():
            keys, array = self.vectors()
            if len(keys) == self._setting("rows", 0):
                return
            self._set("vectors", self._next_file())
            self._db.execute("UPDATE items SET row = -row - 1 WHERE status='ok'")  # row is UNIQUE
            self._db.execute(
                "UPDATE items SET row = n - 1 FROM (SELECT key AS k, row_number() OVER "
                "(ORDER BY row DESC) AS n FROM items WHERE status='ok') WHERE key = k"
            )
            if keys:
                self._write(0, np.ascontiguousarray(array).tobytes())
            self._set("rows", len(keys))
        with self._lock:
            if not self._db.in_transaction:
                with self.transaction():
                    self._sweep()

    def _next_file(self) -> str:
        name = plain_name(self._setting("vectors"), self.directory)
        return f"vectors-{int(name.removeprefix('vectors-').removesuffix('.bin')) + 1}.bin"

    def _sweep(self) -> None:
        """Inside a write transaction: delete array files the catalogue does not name."""
        current = self._file().name
        for p in self.directory.glob("vectors-*.bin"):
            if p.name != current:
                p.unlink(missing_ok=True)

    def names(self) -> dict[str, tuple[str, str]]:
        """Other names of keys (e.g. file path -> content hash): ``name -> (key, stamp)``."""
        return {n: (k, s) for n, k, s in self._db.execute("SELECT name, key, stamp FROM names")}

    def update_names(self, names: Mapping[str, tuple[str, str]], drop: Iterable[str] = ()) -> None:
        """Add or change ``name -> (key, stamp)`` and remove ``drop``, in one transaction."""
        with self.transaction():
            self._db.executemany("DELETE FROM names WHERE name=?", ((n,) for n in drop))
            self._db.executemany(
                "INSERT OR REPLACE INTO names VALUES (?, ?, ?)",
                ((n, k, s) for n, (k, s) in names.items()),
            )

    def set_names(self, names: Mapping[str, tuple[str, str]]) -> None:
        """Replace all names with ``name -> (key, stamp)`` (one transaction)."""
        with self.transaction():
            self._db.execute("DELETE FROM names")
            self._db.executemany(
                "INSERT INTO names VALUES (?, ?, ?)", ((n, k, s) for n, (k, s) in names.items())
            )

    def info(self) -> dict[str, Any]:
        """``key -> JSON value`` the caller recorded with :meth:`put_info` (older stores: none)."""
        try:
            rows = self._db.execute("SELECT key, value FROM info").fetchall()
        except sqlite3.OperationalError:  # an older store without the table, opened to read
            return {}
        return {k: json.loads(v) for k, v in rows}

    def put_info(self, info: Mapping[str, Any]) -> None:
        """Record ``key -> JSON value`` facts; :meth:`prune` drops them with their key."""
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO info VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in info.items()],
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fill(
    store: Store,
    items: Mapping[str, str],
    embed: Callable[[list[str]], np.ndarray],
    *,
    batch_size: int = 64,
    on_error: Literal["skip", "fail"] = "skip",
    retry_failed: bool = False,
    desc: str = "encoding",
    progress: bool = True,
) -> SyncReport:
    """Embed the items (``key -> fingerprint``) that ``store`` lacks, committing each batch.

    An :class:`ItemError` from ``embed`` retries the batch without that item and records it
    (``on_error="skip"``; retried later only with ``retry_failed``) or re-raises (``"fail"``).
    Keys not in ``items`` stay; call :meth:`Store.prune` to mirror.
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    known = store._known()
    todo = store.missing(items, retry_errors=retry_failed or on_error == "fail")
    retried = set(todo)
    report = SyncReport(
        failed=[
            (k, known[k][2])
            for k in items
            if k in known and known[k][1] == "error" and k not in retried
        ]
    )
    report.unchanged = len(items) - len(todo) - len(report.failed)
    with progress_bar(len(todo), desc, progress) as bar:
        for start in range(0, len(todo), batch_size):
            pending, failed = todo[start : start + batch_size], {}
            while pending:
                try:
                    out = np.asarray(embed(list(pending)), np.float32)
                    break
                except ItemError as e:
                    if e.id not in pending:
                        raise ValueError(
                            f"embed raised ItemError for {e.id!r}, which is not in the batch it "
                            f"was given ({pending[:3]}...)"
                        ) from e
                    if on_error == "fail":
                        raise
                    failed[e.id] = (str(items[e.id]), e.reason)
                    pending = [k for k in pending if k != e.id]
            if failed:
                store.put_errors(failed)
                report.failed.extend((k, reason) for k, (_, reason) in failed.items())
            if pending:
                if out.ndim != 2 or out.shape[0] != len(pending):
                    raise ValueError(
                        f"embed returned shape {out.shape} for {len(pending)} keys; expected "
                        f"({len(pending)}, D)"
                    )
                store.put(pending, [str(items[k]) for k in pending], out)
                report.embedded += len(pending)
                report.changed += sum(known.get(k, ("", ""))[1] == "ok" for k in pending)
                report.added += sum(known.get(k, ("", ""))[1] != "ok" for k in pending)
            bar.update(min(batch_size, len(todo) - start))
    return report
