"""Thumbnails for the search page: upright, in a memory LRU, a video's from its poster frame.

Each content's :data:`DISK_SIZE` px JPEG is kept under ``<index>/thumbs/`` by hash; smaller sizes
are made from it. At most :data:`DECODES` decodes run at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import re
import tempfile
import threading
from pathlib import Path

from PIL import Image, ImageOps

from drc_jax.media import media_kind

THUMB_SIZES = (128, 256, 512)
CACHE_ENTRIES = 2048
DISK_SIZE = 512
POSTER_S = 1.0
POSTER_MAX_FRAMES = 250  # frames decoded at most to reach the poster time
MAX_THUMB_PIXELS = 50_000_000  # decoded, after draft
DECODES = threading.BoundedSemaphore(2)  # shared by the server's worker threads


class TooLarge(ValueError):
    """The image needs more decoded pixels than a thumbnail may use."""


@dataclasses.dataclass(frozen=True)
class _Version:
    """A file version (the cache key); ``fd``, when given, is where to read it, not part of it."""

    path: str
    mtime_ns: int
    nbytes: int
    inode: int
    fd: int | None = dataclasses.field(default=None, compare=False, hash=False)

    def open(self):
        fd = self.fd
        return os.fdopen(os.dup(fd), "rb") if fd is not None else open(self.path, "rb")


def disk_path(index: Path, key: str) -> Path | None:
    """Where content ``key``'s thumbnail is kept (None: not a content hash, never a path)."""
    m = re.fullmatch(r"sha1:([0-9a-f]{40})", key)
    return Path(index) / "thumbs" / m[1][:2] / f"{m[1]}.jpg" if m else None


def save_thumb(img: Image.Image, dest: Path | None) -> None:
    """Write ``img`` shrunk to :data:`DISK_SIZE` at ``dest`` atomically (temp file + rename)."""
    if dest is None or dest.exists():
        return
    small = img.convert("RGB")
    small.thumbnail((DISK_SIZE, DISK_SIZE), Image.Resampling.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            small.save(f, format="JPEG", quality=88)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def thumbnail(
    path: Path,
    size: int = 256,
    cached: Path | None = None,
    at: float | None = None,
    *,
    fd: int | None = None,
    max_pixels: int = MAX_THUMB_PIXELS,
) -> bytes:
    """A JPEG of ``path`` within ``size`` px, via the disk thumbnail ``cached`` when given.

    ``at``: a video's frame at that second; ``fd``: ``path`` already opened, read instead.
    Raises :class:`TooLarge`, or ``OSError`` for an unreadable file."""
    if size not in THUMB_SIZES:
        raise ValueError(f"thumbnail size must be one of {THUMB_SIZES}, got {size}")
    st = os.fstat(fd) if fd is not None else path.stat()
    video_at = at if at is not None and media_kind(path) == "video" else None
    cached = "" if video_at is not None else str(cached or "")
    version = _Version(str(path), st.st_mtime_ns, st.st_size, st.st_ino, fd)
    return _thumbnail(version, size, cached, video_at, max_pixels)


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _thumbnail(version: _Version, size: int, cached: str, at, max_pixels: int) -> bytes:
    """:func:`thumbnail`, cached per file version."""
    with DECODES:
        if cached and Path(cached).is_file():
            with Image.open(cached) as img:
                img = img.convert("RGB")
        elif media_kind(version.path) == "video":
            with version.open() as f:
                img = poster_frame(Path(version.path), at, f)
        else:
            img = _decode(version, DISK_SIZE, max_pixels)
        if cached:
            with contextlib.suppress(OSError):  # a read-only or full index
                save_thumb(img, Path(cached))
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85)
        return out.getvalue()


def _decode(version: _Version, size: int, max_pixels: int) -> Image.Image:
    """The image upright, shrunk to fit ``size`` before rotating (no full-size copy)."""
    with version.open() as f:
        img = Image.open(f)
        if img.format == "JPEG":
            img.draft("RGB", (size, size))
        w, h = img.size
        if w * h > max_pixels:
            raise TooLarge(
                f"{w} x {h} pixels is over the thumbnail limit of {max_pixels / 1e6:g} Mpx; "
                "open the file itself"
            )
        if img.mode not in ("RGB", "RGBA", "L"):
            img = img.convert("RGB")
        img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return ImageOps.exif_transpose(img).convert("RGB")


def poster_frame(path: Path, at: float | None = None, source=None) -> Image.Image:
    """The frame at ``at`` s, else at :data:`POSTER_S` (or a tenth of a short video); OSError."""
    import av

    try:
        with av.open(source if source is not None else str(path)) as container:
            if not container.streams.video:
                raise OSError(f"{path}: no video stream")
            stream = container.streams.video[0]
            duration = container.duration / 1e6 if container.duration else None
            if at is None:
                at = min(POSTER_S, duration / 10) if duration else 0.0
            elif at > 0 and stream.time_base:
                container.seek(int(at / stream.time_base), stream=stream, backward=True)
            frame = None
            for n, frame in enumerate(container.decode(stream)):
                if (frame.time or 0.0) >= at or n >= POSTER_MAX_FRAMES:
                    break
            if frame is None:
                raise OSError(f"{path}: no decodable frame")
            return frame.to_image().convert("RGB")
    except av.error.FFmpegError as e:
        raise OSError(f"{path}: {e}") from e


def cache_info():
    return _thumbnail.cache_info()
