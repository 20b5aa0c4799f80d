"""What a search page shows about a file without decoding its pixels: size, date taken, length."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from drc_jax.media.files import media_kind, regular_file

EXIF_IFD = 0x8769
DATE_TAGS = (36867, 36868, 306)  # DateTimeOriginal, DateTimeDigitized, DateTime
ORIENTATION = 0x0112


def _exif_date(text: Any) -> str | None:
    """EXIF's "YYYY:MM:DD HH:MM:SS" as ISO 8601, or None when absent or malformed."""
    try:
        return datetime.strptime(str(text).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _image_info(path: Path) -> dict[str, Any]:
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
        exif = img.getexif()
        tags = {**exif, **exif.get_ifd(EXIF_IFD)}
    if tags.get(ORIENTATION) in (5, 6, 7, 8):  # shown rotated by 90 degrees
        w, h = h, w
    taken = next((d for t in DATE_TAGS if (d := _exif_date(tags.get(t))) is not None), None)
    return {"width": w, "height": h, "taken": taken}


def _video_info(path: Path) -> dict[str, Any]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0] if container.streams.video else None
        duration = container.duration / 1e6 if container.duration else None
        if duration is None and stream is not None and stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        created = container.metadata.get("creation_time")
        size = (stream.codec_context.width, stream.codec_context.height) if stream else (0, 0)
    taken = None
    if created:
        try:
            taken = datetime.fromisoformat(created.replace("Z", "+00:00")).replace(tzinfo=None)
            taken = taken.isoformat()
        except ValueError:
            taken = None
    return {"width": size[0], "height": size[1], "taken": taken, "duration": duration}


def media_info(path: str | os.PathLike) -> dict[str, Any]:
    """``{"kind", "width", "height", "taken" (ISO or None), ["duration" s]}``, or only the kind."""
    path = Path(path)
    kind = media_kind(path)
    try:
        regular_file(path)
        return {"kind": kind, **(_video_info(path) if kind == "video" else _image_info(path))}
    except Exception:  # noqa: BLE001 - a broken header: no facts, never a failed index run
        return {"kind": kind}
