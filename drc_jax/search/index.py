"""Index folders of images: embed every content once, keep the index in sync with the folders.

A :class:`drc_jax.store.Store` keyed by content hash (``"sha1:<hex>"``), its names mapping each
path to its hash (stamped ``"size:mtime_ns"``), so moving files re-embeds nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drc_jax import defaults
from drc_jax.media import (
    FINGERPRINTS,
    MEDIA_SUFFIXES,
    MediaEmbedder,
    MediaError,
    fingerprint,
    media_kind,
)
from drc_jax.media import walk_files as scan_media
from drc_jax.media.embed import embed_video_segments
from drc_jax.media.info import media_info
from drc_jax.search import ann_file
from drc_jax.search.roots import record_roots
from drc_jax.search.thumbs import disk_path, save_thumb
from drc_jax.store import ItemError, Store, StoreError, StoreMismatchError, SyncReport, fill

DEFAULT_WEIGHTS = defaults.PAPER_WEIGHTS
PREPROCESS_MODES = defaults.PREPROCESS_MODES
DEFAULT_STORE_DTYPE = "bfloat16"


def existing_dtype(index: Path) -> str | None:
    """The dtype an existing index keeps its vectors in (``None`` if there is none yet)."""
    try:
        with Store.open(index, None) as store:
            return store.dtype.name
    except (FileNotFoundError, StoreError):
        return None


@dataclass(frozen=True)
class IndexInfo:
    """What a search index was built from (read back by :func:`drc_jax.search.search`)."""

    index: Path
    roots: tuple[Path, ...]
    weights: str  # how to load the weights (the --weights argument)
    weights_id: str
    preprocess: str
    meta: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.roots[0]

    @property
    def random_weights(self) -> bool:
        return is_random(self.weights_id) or is_random(self.weights)


def is_random(weights: str) -> bool:
    """Random (untrained) weights: load_clip ids such as "random:test-tiny:seed0:float32"."""
    return weights.startswith("random:")


def weights_to_load(info: IndexInfo, weights: str | None = None) -> str:
    """``weights`` if given, else the index's own when a ``random:`` spec, a hub id or a path
    inside the index; any other local path raises ``ValueError`` (an index may be someone
    else's, so it never picks which local file is loaded as weights)."""
    if weights is not None:
        return weights
    named = info.weights
    from drc_jax.clip.load import is_hub_id

    if is_random(named) or is_hub_id(named):
        return named
    if Path(named).expanduser().resolve().is_relative_to(info.index.resolve()):
        return named
    raise ValueError(
        f"index {info.index} names the local weights {named!r}, outside the index; an index "
        "does not choose which file on this machine is loaded as weights. If you trust them, pass "
        f"them yourself: --weights {named} (Searcher.open(..., weights=...)), or any weights with "
        f"the id {info.weights_id!r}"
    )


def index_meta(clip, preprocess: str) -> dict[str, Any]:
    return {"kind": "image", "weights": clip.weights_id, "preprocess": preprocess}


def read_info(index: str | os.PathLike) -> IndexInfo:
    """The :class:`IndexInfo` of an existing index; a clear error when there is none."""
    index = Path(index)
    try:
        store = Store.open(index, None)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no search index at {index}; build one with "
            f"`python -m drc_jax.search index --images DIR --index {index}`"
        ) from None
    with store:
        meta, weights, roots = store.meta, store.setting("weights"), store.setting("roots")
    if weights is None and roots is None:
        raise StoreError(f"{index} is an embedding store but not a search index (no roots)")
    fields = {"weights": weights, "meta weights": meta.get("weights")}
    fields["meta preprocess"] = meta.get("preprocess")
    bad = [f"{k}={v!r}" for k, v in fields.items() if not isinstance(v, str)]
    if not isinstance(roots, list) or not roots or not all(isinstance(r, str) for r in roots):
        bad.append(f"roots={roots!r}")
    if bad:
        raise StoreError(
            f"{index} is not a readable search index ({', '.join(bad)}); the index is damaged or "
            f"was crafted: delete it and re-run `python -m drc_jax.search index`"
        )
    return IndexInfo(
        index=index,
        roots=tuple(Path(r) for r in roots),
        weights=weights,
        weights_id=meta["weights"],
        preprocess=meta["preprocess"],
        meta=meta,
    )


def _root_prefixes(roots: Sequence[Path]) -> list[str]:
    return [str(r).rstrip("/") + "/" for r in roots]


def listed_name(name: str, prefixes: list[str]) -> str | None:
    """The root prefix of ``name`` if indexing could have written it, else ``None``."""
    prefix = next((p for p in prefixes if name.startswith(p)), None)
    inside = prefix is not None and "/../" not in f"{name}/" and "/./" not in f"{name}/"
    if not inside or os.path.splitext(name)[1].lower() not in MEDIA_SUFFIXES:
        return None
    return prefix


def _checked(store: Store, name: str, prefixes: list[str], roots) -> str:
    prefix = listed_name(name, prefixes)
    if prefix is None:
        raise StoreError(
            f"index {store.directory} lists the file {name!r}, which is not inside its roots "
            f"{[str(r) for r in roots]} (or is not named like a media file); the index is "
            "damaged or was crafted: delete it and re-run `python -m drc_jax.search index`"
        )
    return prefix


def indexed_files(store: Store, roots: tuple[Path, ...]) -> dict[str, tuple[str, str]]:
    """``content hash -> (path, id)``: each hash's first indexed file.

    A name :func:`listed_name` rejects means a damaged or crafted index: ``StoreError``.
    """
    prefixes = _root_prefixes(roots)
    out: dict[str, tuple[str, str]] = {}
    for name, (key, _) in sorted(store.names().items()):
        prefix = _checked(store, name, prefixes, roots)
        out.setdefault(key, (name, name[len(prefix) :]))
    return out


def files_of_rows(store: Store, rows, roots: tuple[Path, ...]) -> dict[int, tuple[str, str]]:
    """``row -> (path, id)`` of each row's first file, checked as :func:`indexed_files` does."""
    prefixes = _root_prefixes(roots)
    out = {}
    for row, names in store.names_of_rows(rows).items():
        prefix = [_checked(store, name, prefixes, roots) for name in names][0]
        out[row] = (names[0], names[0][len(prefix) :])
    return out


def _scan(
    roots: list[Path], known: dict[str, tuple[str, str]], how: str, follow_symlinks: bool = False
):
    """``path -> (hash, stamp)`` under ``roots``, then ``(id, reason)`` failures and skips.

    With ``how="stat"`` an unchanged stamp keeps its known hash; others are hashed again.
    """
    names, failed, skipped, to_hash = {}, [], [], []
    for root in roots:

        def on_skip(path: Path, reason: str, root: Path = root) -> None:
            where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
            skipped.append((where, reason))

        for path in scan_media(root, follow_symlinks=follow_symlinks, on_skip=on_skip):
            try:
                stamp = fingerprint(path, "stat")
            except (OSError, MediaError) as e:
                failed.append((path.relative_to(root).as_posix(), f"{type(e).__name__}: {e}"))
                continue
            old = known.get(str(path))
            names[str(path)] = None  # keeps walk order
            if old is not None and old[1] == stamp and how == "stat":
                names[str(path)] = (old[0], stamp)
            else:
                to_hash.append((path, root, stamp))
    for (path, root, stamp), got in zip(to_hash, _hashes([p for p, _, _ in to_hash]), strict=True):
        if got.startswith("sha1:"):
            names[str(path)] = (got, stamp)
        else:
            del names[str(path)]
            failed.append((path.relative_to(root).as_posix(), got))
    return names, failed, skipped


def _hash(path: Path) -> str:
    try:
        return fingerprint(path, "sha1")
    except (OSError, MediaError) as e:
        return f"{type(e).__name__}: {e}"


def _hashes(paths: list[Path]) -> list[str]:
    """``sha1:<hex>`` (or the reason it failed) of each file; split over a multi-host run."""
    import jax

    if jax.process_count() == 1:
        return [_hash(p) for p in paths]
    from drc_jax.parallel import allgather_text, my_share

    mine, share = my_share(paths)
    return allgather_text([_hash(p) for p in mine], share)[: len(paths)] if paths else []


def build_index(
    images: str | os.PathLike | Sequence[str | os.PathLike],
    index: str | os.PathLike,
    *,
    weights: str | None = None,
    clip=None,
    dtype: str = "float32",
    preprocess: Literal["spacevlm", "openai"] = "spacevlm",
    batch_size: int | None = None,
    fingerprint_by: Literal["stat", "sha1"] = "stat",
    reset: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    store_dtype: str | None = None,
    follow_symlinks: bool | None = None,
    ann: str = "auto",
    on_progress: Callable[[int, int], None] | None = None,
) -> SyncReport:
    """Make ``index`` mirror the folder(s) ``images``, embedding only new contents; the report.

    ``weights`` (default :data:`DEFAULT_WEIGHTS`) loads unless ``clip`` is given. An index of
    other weights or preprocessing is refused unless ``reset``. Unreadable files go to
    ``report.failed``, entries the walk left out to ``report.skipped``, as ``(id, reason)``.
    ``ann`` is as :func:`~drc_jax.search.ann_file.sync`'s ``mode``; ``follow_symlinks=None``
    follows links as the index's last run did. A finished run bumps the index's ``generation``.
    """
    given = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    for p in given:
        if not Path(p).expanduser().is_dir():
            raise FileNotFoundError(f"--images {p}: not a folder")
    roots = list(dict.fromkeys(Path(p).expanduser().resolve() for p in given))
    if not roots:
        raise ValueError("no folder to index given")
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
    if fingerprint_by not in FINGERPRINTS:
        raise ValueError(f"fingerprint must be one of {FINGERPRINTS}, got {fingerprint_by!r}")
    index = Path(index).expanduser()
    if ann not in ann_file.MODES:
        raise ValueError(f"ann must be one of {ann_file.MODES}, got {ann!r}")
    if store_dtype is None:
        store_dtype = existing_dtype(index) or DEFAULT_STORE_DTYPE
    if clip is None:
        from drc_jax.clip import load_clip

        weights = weights or DEFAULT_WEIGHTS
        clip = load_clip(weights, dtype=dtype)
    import jax

    from drc_jax.parallel import barrier

    if batch_size is None:
        batch_size = 64 * jax.local_device_count()
    lead = jax.process_index() == 0  # multi-host: process 0 writes
    try:
        if lead:
            store = Store.open(
                index,
                index_meta(clip, preprocess),
                dtype=store_dtype,
                on_mismatch="reset" if reset else "error",
            )
    except StoreMismatchError as e:
        raise StoreMismatchError(
            f"{e}\nTo rebuild this index with the new settings pass --reset (CLI) or reset=True."
        ) from None
    finally:
        barrier("drc_jax.search.index: opened")
    if not lead:
        store = Store.open(index, None)
    with store:
        old = store.names()
        if follow_symlinks is None:  # as the index's last run (the server's watcher re-indexes)
            follow_symlinks = bool(store.setting("follow_symlinks", False))
        names, unreadable, skipped = _scan(roots, old, fingerprint_by, follow_symlinks)
        ids = {n: _id(n, roots) for n in names}
        first: dict[str, str] = {}
        for name, (h, _) in names.items():
            first.setdefault(h, name)

        total, done = len(store.missing({h: h for h in first}, retry_errors=retry_failed)), [0]

        def embed(hashes: list[str]) -> np.ndarray:
            try:
                out = embedder([first[h] for h in hashes])
            except ItemError as e:  # keyed by hash, as the store keys it
                raise ItemError(names[e.id][0], e.reason) from None
            done[0] += len(hashes)
            if on_progress is not None:
                on_progress(min(done[0], total), total)
            return out

        def keep_thumb(path: str, image) -> None:
            if media_kind(path) == "image":
                save_thumb(image, disk_path(index, names[path][0]))

        with MediaEmbedder(clip, preprocess=preprocess, on_decoded=keep_thumb) as embedder:
            report = fill(
                store if lead else _Follower(store),
                {h: h for h in first},
                embed,
                batch_size=batch_size,
                desc="indexing images",
                retry_failed=retry_failed,
                progress=progress,
            )
        if lead:
            _embed_segments(store, clip, preprocess, first, retry_failed)
            known = store.info()
            facts = {h: media_info(first[h]) for h in first if h not in known}
            with store.transaction():
                store.put_info(facts)
                changed = {n: v for n, v in names.items() if old.get(n) != v}
                store.update_names(changed, [n for n in old if n not in names])
                store.set_setting("roots", [str(r) for r in roots])
                store.set_setting("follow_symlinks", follow_symlinks)
                store.set_setting("weights", str(weights or clip.weights_id))
                store.set_setting("format", INDEX_FORMAT)
                store.set_setting("generation", generation(store) + 1)
                store.set_setting("indexed_at", time.time())
            keys = [k for k in store.vectors()[0] if "#t=" in k] + list(store.errors())
            store.prune([*first, *(k for k in keys if content_of(k) in first)])
            ann_file.sync(store, ann)
        try:
            record_roots(index, roots)
        except OSError as e:
            logging.warning("could not record the indexed folders (%s); pass --images to serve", e)
    barrier("drc_jax.search.index: written")
    bad = dict(report.failed)
    report.skipped = skipped
    report.failed = unreadable + [(ids[n], bad[h]) for n, (h, _) in names.items() if h in bad]
    ok = {n: h for n, (h, _) in names.items() if h not in bad}
    report.added = sum(n not in old for n in ok)
    report.changed = sum(n in old and old[n][0] != h for n, h in ok.items())
    report.unchanged = len(ok) - report.added - report.changed
    report.removed = sum(n not in names for n in old)
    return report


class _Follower:
    """The store for processes other than the first of a multi-host run: never written."""

    def __init__(self, store: Store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def put(self, *args) -> None:
        pass

    def put_errors(self, *args) -> None:
        pass


# 2 added facts, video segments and generation; format 1 still reads (without them).
INDEX_FORMAT = 2
SEGMENT_MARK = "#t="  # a segment row's key: "<content key>#t=<start seconds>"


def segment_key(content: str, start: float) -> str:
    return f"{content}{SEGMENT_MARK}{start:.3f}"


def segment_start(key: str) -> float:
    """The start (s) a segment row's key names; a malformed one is a damaged index."""
    try:
        start = float(key.partition(SEGMENT_MARK)[2])
    except ValueError:
        start = float("nan")
    if not 0 <= start < 1e9:
        raise StoreError(
            f"the index names a video segment {key!r} with no valid start time; the index is "
            "damaged or was crafted: delete it and re-run `python -m drc_jax.search index`"
        )
    return start


def content_of(key: str) -> str:
    """The content key of a store row: itself, or the video a segment row belongs to."""
    return key.partition(SEGMENT_MARK)[0]


def _embed_segments(store: Store, clip, preprocess: str, first: dict, retry: bool) -> None:
    """Embed the segment rows of every video lacking them; the 0 s row marks a video done."""
    videos = {segment_key(h, 0.0): h for h, path in first.items() if media_kind(path) == "video"}
    for marker in store.missing(videos, retry_errors=retry):
        h = videos[marker]
        try:
            starts, vectors = embed_video_segments(clip, first[h], preprocess)
        except MediaError as e:
            store.put_errors({marker: (h, e.reason)})
            continue
        store.put([segment_key(h, t) for t in starts], [h] * len(starts), vectors)


def generation(store: Store) -> int:
    """How many index runs have finished on ``store`` (0 for an index of an older drc-jax)."""
    g = store.setting("generation", 0)
    return g if type(g) is int and g >= 0 else 0


def _id(name: str, roots: list[Path]) -> str:
    path = Path(name)
    return next(path.relative_to(r).as_posix() for r in roots if path.is_relative_to(r))
