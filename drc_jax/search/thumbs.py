"""Thumbnails for the search page: decoded upright, shrunk with PIL, kept in a memory LRU."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from PIL import Image, ImageOps

THUMB_SIZES = (128, 256, 512)
CACHE_ENTRIES = 2048  # x ~10-30 KB per 256 px JPEG: tens of MB at most


def thumbnail(path: Path, size: int = 256) -> bytes:
    """A JPEG of ``path`` fitting in ``size`` x ``size`` (aspect kept); cached per file version."""
    if size not in THUMB_SIZES:
        raise ValueError(f"thumbnail size must be one of {THUMB_SIZES}, got {size}")
    st = path.stat()
    return _thumbnail(str(path), st.st_mtime_ns, st.st_size, size)


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _thumbnail(path: str, mtime_ns: int, nbytes: int, size: int) -> bytes:
    """Keyed by mtime and size too, so an edited photo gets a fresh thumbnail."""
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))  # decode large JPEGs at a reduced scale
        img = ImageOps.exif_transpose(img).convert("RGB")
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85)
        return out.getvalue()


def cache_info():
    return _thumbnail.cache_info()
