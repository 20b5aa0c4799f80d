"""The files behind an index snapshot's rows (one per content), and filters as row masks.

A filtered search ranks only the selected rows (``top_k``'s ``valid``), so it still returns ``k``.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from drc_jax.media import media_kind

TYPES = ("image", "video")


@dataclass(frozen=True)
class Filter:
    """Which files a search may return; ``None`` fields do not filter."""

    type: str | None = None  # "image" | "video"
    folder: str | None = None  # absolute, or relative to an indexed root
    name: str | None = None  # a substring of the file name, any case
    taken_after: date | None = None  # inclusive, as is taken_before
    taken_before: date | None = None

    def __post_init__(self):
        if self.type is not None and self.type not in TYPES:
            raise ValueError(f"type must be one of {TYPES}, got {self.type!r}")
        if self.taken_after and self.taken_before and self.taken_after > self.taken_before:
            raise ValueError(
                f"taken_after {self.taken_after} is later than taken_before {self.taken_before}"
            )

    @property
    def empty(self) -> bool:
        return not any(vars(self).values())


def _epoch(d: date, end: bool) -> float:
    return datetime.combine(d, datetime.max.time() if end else datetime.min.time()).timestamp()


def _lower_name(path: str) -> str:
    """A path's file name, lower-cased: what the ``name`` filter matches."""
    return path.rsplit("/", 1)[-1].lower()


@dataclass
class Catalogue:
    """Rows (content keys, the shown file of each) and every file, sorted by path."""

    roots: tuple[Path, ...]
    keys: list[str]  # content key per row
    paths: list[str]
    ids: list[str]
    row_of_file: np.ndarray
    info: dict[str, dict[str, Any]]  # content key -> media facts
    stamps: list[str]  # "size:mtime_ns" per file
    seg_content: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (S,) row
    seg_start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _files_of_row: list[list[int]] = field(default_factory=list, repr=False)
    _masks: Any = field(default=None, repr=False)

    @classmethod
    def build(
        cls, roots, keys, names: dict[str, tuple[str, str]], info, id_of, segments=()
    ) -> Catalogue:
        """``segments``: ``(content key, start s)`` of the rows after the content rows."""
        row = {k: i for i, k in enumerate(keys)}
        paths = sorted(n for n, (k, _) in names.items() if k in row)
        cat = cls(
            roots=tuple(roots),
            keys=list(keys),
            paths=paths,
            ids=[id_of(p) for p in paths],
            row_of_file=np.asarray([row[names[p][0]] for p in paths], np.int64),
            info=info,
            stamps=[names[p][1] for p in paths],
            seg_content=np.asarray([row[k] for k, _ in segments], np.int64),
            seg_start=np.asarray([t for _, t in segments], np.float64),
        )
        cat._files_of_row = [[] for _ in keys]
        for f, r in enumerate(cat.row_of_file.tolist()):
            cat._files_of_row[r].append(f)
        cat._masks = functools.lru_cache(maxsize=32)(cat._row_mask)
        return cat

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def rows(self) -> int:
        """Rows searched: one per content, then one per video segment."""
        return len(self.keys) + len(self.seg_content)

    @functools.cached_property
    def _segmented(self) -> np.ndarray:
        out = np.zeros(len(self.keys), bool)
        out[self.seg_content] = True
        return out

    def searchable(self, contents: np.ndarray | None) -> np.ndarray | None:
        """(rows,) bool of rows to rank: a segmented video by its segments, not its own row."""
        if contents is None and not len(self.seg_content):
            return None
        contents = np.ones(len(self.keys), bool) if contents is None else contents
        return np.concatenate([contents & ~self._segmented, contents[self.seg_content]])

    def content_row(self, row: int) -> tuple[int, float | None]:
        """The content of search row ``row`` and, for a segment row, its start in seconds."""
        if row < len(self.keys):
            return row, None
        s = row - len(self.keys)
        return int(self.seg_content[s]), float(self.seg_start[s])

    @property
    def files(self) -> int:
        """Indexed files with a vector."""
        return len(self.paths)

    def row_of_path(self, path: str) -> int | None:
        """The row of the indexed file ``path`` (None: not indexed)."""
        f = bisect.bisect_left(self.paths, path)
        return int(self.row_of_file[f]) if f < len(self.paths) and self.paths[f] == path else None

    def files_of(self, row: int) -> list[int]:
        return self._files_of_row[row]

    def facts(self, f: int) -> dict[str, Any]:
        """File ``f``'s kind, size, dimensions, duration and date taken (else its mtime)."""
        info = self.info.get(self.keys[int(self.row_of_file[f])], {})
        out = {k: info[k] for k in ("width", "height", "duration") if info.get(k)}
        out["kind"] = info.get("kind") or media_kind(self.paths[f])
        size, _, mtime_ns = self.stamps[f].partition(":")
        out["bytes"] = int(size) if size.isdigit() else None
        if info.get("taken"):
            out["taken"], out["taken_source"] = info["taken"], "exif"
        elif mtime_ns.lstrip("-").isdigit():
            when = datetime.fromtimestamp(int(mtime_ns) / 1e9).isoformat(timespec="seconds")
            out["taken"], out["taken_source"] = when, "mtime"
        return out

    @functools.cached_property
    def _taken(self) -> np.ndarray:
        out = np.full(len(self.paths), np.nan)
        for f in range(len(self.paths)):
            taken = self.facts(f).get("taken")
            if taken:
                out[f] = datetime.fromisoformat(taken).timestamp()
        return out

    @functools.cached_property
    def _video(self) -> np.ndarray:
        return np.asarray([media_kind(p) == "video" for p in self.paths], bool)

    @functools.cached_property
    def _name_columns(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Lower-cased UTF-8 file names as fixed-width arrays, one per power-of-two width (so
        none holds more than twice its names' bytes), with their file numbers."""
        names = [_lower_name(p).encode(errors="surrogateescape") for p in self.paths]
        width = np.asarray([len(n).bit_length() for n in names], np.int64)
        return [
            (files, np.asarray([names[f] for f in files], f"S{1 << w}"))
            for w in np.unique(width).tolist()
            for files in [np.flatnonzero(width == w)]
        ]

    def _named(self, sub: str) -> np.ndarray:
        """Files whose name holds ``sub``, any case (a vectorised scan: a new filter is cheap)."""
        out = np.zeros(len(self.paths), bool)
        try:
            key = sub.lower().encode()
        except UnicodeEncodeError:  # a surrogate (a non-UTF-8 argument): compare code points
            sub = sub.lower()
            return np.asarray([sub in _lower_name(p) for p in self.paths], bool)
        if b"\0" in key:  # no file name holds NUL, and numpy's bytes would read it as padding
            return out
        for files, names in self._name_columns:
            out[files] = np.strings.find(names, key) >= 0
        return out

    def recent(self, k: int) -> list[int]:
        """The ``k`` files taken (or, without a date, modified) last, newest first."""
        taken = np.nan_to_num(self._taken, nan=-np.inf)
        return [int(f) for f in np.argsort(-taken, kind="stable")[:k]]

    def _folder(self, folder: str) -> np.ndarray:
        """Files under ``folder`` (absolute, or relative to any root)."""
        out = np.zeros(len(self.paths), bool)
        rel = folder.strip().strip("/")
        starts = [folder.rstrip("/") + "/"] if folder.startswith("/") else []
        starts += [f"{str(r).rstrip('/')}/{rel}/" if rel else f"{r}/" for r in self.roots]
        for prefix in starts:
            lo = bisect.bisect_left(self.paths, prefix)
            hi = bisect.bisect_left(self.paths, prefix[:-1] + chr(ord("/") + 1))
            out[lo:hi] = True
        return out

    def file_mask(self, where: Filter) -> np.ndarray:
        ok = np.ones(len(self.paths), bool)
        if where.type is not None:
            ok &= self._video if where.type == "video" else ~self._video
        if where.folder:
            ok &= self._folder(where.folder)
        if where.name:
            ok &= self._named(where.name)
        if where.taken_after:
            ok &= self._taken >= _epoch(where.taken_after, end=False)  # NaN fails
        if where.taken_before:
            ok &= self._taken <= _epoch(where.taken_before, end=True)
        return ok

    def _row_mask(self, where: Filter) -> tuple[np.ndarray, np.ndarray]:
        files = self.file_mask(where)
        rows = np.zeros(len(self.keys), bool)
        rows[self.row_of_file[files]] = True
        return rows, files

    def row_mask(self, where: Filter | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(contents, files)`` selected by ``where`` (both None: no filter), cached per filter."""
        if where is None or where.empty:
            return None, None
        return self._masks(where)
