"""Embedding batches of media files with a CLIP encoder; a bad file fails alone, named.

The benchmark launcher and the search index share it, so a photo embeds identically in both.
Files decode on a thread pool under a pixel budget; multi-host, each process decodes its share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from drc_jax.media.errors import MediaError
from drc_jax.media.files import media_kind, regular_file
from drc_jax.media.image import read_image
from drc_jax.media.segments import SEGMENT_FRAMES, read_video_segments
from drc_jax.media.video import read_video_frames

DECODE_PIXELS = 256_000_000  # decoded pixels in flight over all workers (~1 GB as RGB)
NON_FINITE = (
    "CLIP gave a non-finite embedding (NaN/inf) for this file: the weights are damaged or "
    "incompatible; re-download or re-convert them"
)


class PixelBudget:
    """Decoded pixels in flight, at most ``limit``; one image larger than that decodes alone."""

    def __init__(self, limit: int = DECODE_PIXELS):
        self.limit, self.used, self._cond = limit, 0, threading.Condition()

    @contextlib.contextmanager
    def take(self, n: int):
        with self._cond:
            self._cond.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n
        try:
            yield
        finally:
            with self._cond:
                self.used -= n
                self._cond.notify_all()


def _pixels(path: Path) -> int:
    """Width x height from the header (0 when unreadable: decoding then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                return img.size[0] * img.size[1]
    except Exception:  # noqa: BLE001 - read_image reports the reason
        return 0


@dataclasses.dataclass(frozen=True)
class Embedded:
    """What :meth:`MediaEmbedder.embed` made of a batch: rows for ``keys``, reasons for the rest."""

    keys: list[str]
    vectors: np.ndarray  # (len(keys), D) float32
    failed: dict[str, str]  # key -> reason


class MediaEmbedder:
    """``keys -> CLIP embeddings`` of the media files ``root / key`` (a context manager).

    ``kind``: ``"image"``, ``"video"`` or ``None`` (by suffix). Calling it is the ``embed``
    callable of :func:`drc_jax.store.fill` (``ItemError`` for one bad key); the last call's
    results are kept so the retry decodes nothing again. ``draft=True`` decodes large JPEGs
    faster but not exactly as the reference preprocessing.
    """

    def __init__(
        self,
        clip,
        *,
        preprocess: str = "spacevlm",
        root: str | os.PathLike | None = None,
        kind: str | None = None,
        video_frames: int = 4,
        video_sampling: str = "spacevlm",
        video_renormalize: bool = True,
        num_workers: int | None = None,
        draft: bool = False,
        on_decoded=None,
    ):
        if kind not in (None, "image", "video"):
            raise ValueError(f"kind must be 'image', 'video' or None, got {kind!r}")
        self.clip, self.preprocess, self.kind = clip, preprocess, kind
        self.root = Path(root) if root is not None else None
        self.video_frames, self.video_sampling = video_frames, video_sampling
        self.video_renormalize = video_renormalize
        self.on_decoded = on_decoded  # (key, first decoded image): e.g. write a thumbnail
        self.draft_size = 2 * int(getattr(clip, "image_size", 224)) if draft else None
        workers = num_workers or min(16, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self.budget = PixelBudget()
        self._last: dict[str, np.ndarray | str] = {}

    def path(self, key: str) -> Path:
        return self.root / key if self.root is not None else Path(key)

    def _kind(self, key: str) -> str:
        return self.kind or media_kind(key)

    def _decode(self, key: str) -> np.ndarray | MediaError:
        """Preprocessed (1 or F, S, S, 3) pixels, or the :class:`MediaError`."""
        path = self.path(key)
        try:
            if self._kind(key) != "image":
                frames = read_video_frames(path, self.video_frames, self.video_sampling)
                if self.on_decoded is not None:
                    self.on_decoded(key, frames[0])
                return self.clip.preprocess(frames, mode=self.preprocess)
            regular_file(path)  # never open a FIFO or a device
            with self.budget.take(_pixels(path)):
                image = read_image(path, self.draft_size)
                if self.on_decoded is not None:
                    self.on_decoded(key, image)
                return self.clip.preprocess([image], mode=self.preprocess)
        except MediaError as e:
            return e

    def _encode(self, keys: list[str], decoded: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(keys), int(self.clip.embed_dim)), np.float32)
        for kind in ("image", "video"):
            rows = [i for i, k in enumerate(keys) if self._kind(k) == kind]
            if not rows:
                continue
            pixels = np.concatenate([decoded[i] for i in rows])
            if kind == "image":
                out[rows] = self.clip.encode_images(pixels)
            else:
                pixels = pixels.reshape(len(rows), self.video_frames, *pixels.shape[1:])
                out[rows] = self.clip.encode_videos(pixels, renormalize=self.video_renormalize)
        return out

    def embed(self, keys: Sequence[str]) -> Embedded:
        """Embeddings of the readable files among ``keys`` and the reason for every other one."""
        keys = list(keys)
        results = {k: self._last[k] for k in keys if k in self._last}
        todo = [k for k in dict.fromkeys(keys) if k not in results]
        import jax

        if jax.process_count() > 1:
            results.update(self._embed_split(todo))
            todo = []
        decoded = dict(zip(todo, self._pool.map(self._decode, todo), strict=True))
        for k, d in decoded.items():
            if isinstance(d, MediaError):
                results[k] = d.reason
        ok = [k for k in todo if k not in results]
        vectors = self._encode(ok, [decoded[k] for k in ok])
        finite = np.isfinite(vectors).all(axis=1)
        for k, row, good in zip(ok, vectors, finite, strict=True):
            results[k] = row if good else NON_FINITE
        self._last = results
        kept = [k for k in keys if not isinstance(results[k], str)]
        dim = int(self.clip.embed_dim)
        vectors = np.stack([results[k] for k in kept]) if kept else np.zeros((0, dim), np.float32)
        return Embedded(
            keys=kept,
            vectors=vectors,
            failed={k: results[k] for k in keys if isinstance(results[k], str)},
        )

    def _embed_split(self, todo: list[str]) -> dict[str, np.ndarray | str]:
        """Multi-host: decode this process's share of ``todo``, gather every result."""
        from drc_jax.parallel import allgather_text, my_share

        s, results = int(self.clip.image_size), {}
        for kind in ("image", "video"):
            group = [k for k in todo if self._kind(k) == kind]
            if not group:
                continue
            mine, share = my_share(group)
            decoded = list(self._pool.map(self._decode, mine))
            frames = 1 if kind == "image" else self.video_frames
            pixels = np.zeros((share, frames, s, s, 3), np.float32)
            good = [i for i, d in enumerate(decoded) if not isinstance(d, MediaError)]
            for i in good:
                pixels[i] = decoded[i]
            if kind == "image":
                emb = self.clip.encode_images(pixels[:, 0], split=True)
            else:
                emb = self.clip.encode_videos(
                    pixels, renormalize=self.video_renormalize, split=True
                )
            reasons = allgather_text([getattr(d, "reason", "") for d in decoded], share)
            for j, key in enumerate(group):
                finite = np.isfinite(emb[j]).all()
                results[key] = reasons[j] or (emb[j] if finite else NON_FINITE)
        return results

    def __call__(self, keys: Sequence[str]) -> np.ndarray:
        """``(len(keys), D)``, or ``ItemError`` naming the first bad key."""
        from drc_jax.store import ItemError

        out = self.embed(keys)
        if out.failed:
            key, reason = next(iter(out.failed.items()))
            raise ItemError(key, reason)
        return out.vectors

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._last = {}

    def __enter__(self) -> MediaEmbedder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def embed_video_segments(
    clip, path: str | os.PathLike, preprocess: str = "spacevlm", batch: int = 16
) -> tuple[list[float], np.ndarray]:
    """``(start seconds, (S, D) renormalised mean embeddings)`` of a video's segments."""
    starts, parts, pending = [], [], []

    def flush():
        pixels = clip.preprocess([f for frames in pending for f in frames], mode=preprocess)
        pixels = pixels.reshape(len(pending), SEGMENT_FRAMES, *pixels.shape[1:])
        parts.append(np.asarray(clip.encode_videos(pixels, renormalize=True), np.float32))
        pending.clear()

    for start, frames in read_video_segments(path):
        starts.append(start)
        pending.append(frames)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    vectors = np.concatenate(parts)
    if not np.isfinite(vectors).all():
        raise MediaError(path, NON_FINITE)
    return starts, vectors
