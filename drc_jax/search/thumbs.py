"""Thumbnails for the search page: decoded upright, shrunk with PIL, kept in a memory LRU.

Decoding is bounded: a JPEG decodes at a reduced scale (``draft``), at most :data:`DECODES`
images decode at once, and an image needing more than ``max_pixels`` decoded pixels is refused
(:class:`TooLarge`) before any pixel is decoded.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import threading
from pathlib import Path

from PIL import Image, ImageOps

THUMB_SIZES = (128, 256, 512)
CACHE_ENTRIES = 2048  # x ~10-30 KB per 256 px JPEG: tens of MB at most
MAX_THUMB_PIXELS = 50_000_000  # decoded (after draft); ~200 MB of RGBA per decode at most
DECODES = threading.BoundedSemaphore(2)  # the server's 40 worker threads share these


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


def thumbnail(
    path: Path, size: int = 256, *, fd: int | None = None, max_pixels: int = MAX_THUMB_PIXELS
) -> bytes:
    """A JPEG of ``path`` fitting in ``size`` x ``size`` (aspect kept); cached per file version.

    ``fd`` is ``path`` already opened (:func:`~drc_jax.search.files.open_servable`): the image is
    then read from it, never by name. Raises :class:`TooLarge`, or ``OSError`` for an unreadable
    file.
    """
    if size not in THUMB_SIZES:
        raise ValueError(f"thumbnail size must be one of {THUMB_SIZES}, got {size}")
    st = os.fstat(fd) if fd is not None else path.stat()
    return _thumbnail(
        _Version(str(path), st.st_mtime_ns, st.st_size, st.st_ino, fd), size, max_pixels
    )


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _thumbnail(version: _Version, size: int, max_pixels: int) -> bytes:
    """Keyed by mtime and size too, so an edited photo gets a fresh thumbnail."""
    fd = version.fd
    with DECODES, os.fdopen(os.dup(fd), "rb") if fd is not None else open(version.path, "rb") as f:
        img = Image.open(f)
        if img.format == "JPEG":
            img.draft("RGB", (size, size))  # decode large JPEGs at a reduced scale
        w, h = img.size
        if w * h > max_pixels:
            raise TooLarge(
                f"{w} x {h} pixels is over the thumbnail limit of {max_pixels / 1e6:g} Mpx; "
                "open the file itself"
            )
        if img.mode not in ("RGB", "RGBA", "L"):
            img = img.convert("RGB")
        img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        img = ImageOps.exif_transpose(img).convert("RGB")  # on the small image: no full copy
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85)
        return out.getvalue()


def cache_info():
    return _thumbnail.cache_info()
