"""Thumbnails for the search page: decoded upright, shrunk with PIL, kept in a memory LRU; a
video's is its poster frame (PyAV), a second in or a tenth of the way for short ones."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from PIL import Image, ImageOps

from drc_jax.media import media_kind

THUMB_SIZES = (128, 256, 512)
CACHE_ENTRIES = 2048  # x ~10-30 KB per 256 px JPEG: tens of MB at most
POSTER_S = 1.0
POSTER_MAX_FRAMES = 250  # frames decoded at most to reach the poster time


def thumbnail(path: Path, size: int = 256) -> bytes:
    """A JPEG of ``path`` fitting in ``size`` x ``size`` (aspect kept); cached per file version."""
    if size not in THUMB_SIZES:
        raise ValueError(f"thumbnail size must be one of {THUMB_SIZES}, got {size}")
    st = path.stat()
    return _thumbnail(str(path), st.st_mtime_ns, st.st_size, size)


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _thumbnail(path: str, mtime_ns: int, nbytes: int, size: int) -> bytes:
    """Keyed by mtime and size too, so an edited photo gets a fresh thumbnail."""
    if media_kind(path) == "video":
        img = poster_frame(Path(path))
    else:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (size, size))  # decode large JPEGs at a reduced scale
            img = ImageOps.exif_transpose(img).convert("RGB")
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def poster_frame(path: Path) -> Image.Image:
    """The frame at :data:`POSTER_S` (or a tenth of a shorter video); OSError if none decodes."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise OSError(f"{path}: no video stream")
            stream = container.streams.video[0]
            duration = container.duration / 1e6 if container.duration else None
            at = min(POSTER_S, duration / 10) if duration else 0.0
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
