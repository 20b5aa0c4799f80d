"""A video as segments for search (every :func:`segment_length` seconds), so a hit can say *when*.

Each segment keeps :data:`SEGMENT_FRAMES` frames, the first at or after the start of each equal
part; a short last segment repeats its last frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from drc_jax.media.files import regular_file
from drc_jax.media.video import VideoReadError

SEGMENT_S = 4.0
SEGMENT_FRAMES = 4
MAX_SEGMENTS = 240


def segment_length(duration: float | None) -> float:
    """Seconds per segment for a video of ``duration`` seconds (None: unknown)."""
    return max(SEGMENT_S, (duration or 0.0) / MAX_SEGMENTS)


def read_video_segments(
    path: str | Path, frames: int = SEGMENT_FRAMES, keep_size: int = 448
) -> Iterator[tuple[float, list[Image.Image]]]:
    """``(start seconds, RGB frames)`` per segment; :class:`VideoReadError` when undecodable."""
    import av

    path = Path(path)
    regular_file(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            duration = container.duration / 1e6 if container.duration else None
            length = segment_length(duration)
            step = length / frames
            seg, got, any_frame = 0, [], False
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                while t >= (seg + 1) * length:
                    if got:
                        yield seg * length, (got + [got[-1]] * frames)[:frames]
                    seg, got = seg + 1, []
                if len(got) < frames and t >= seg * length + len(got) * step - 1e-6:
                    img = frame.to_image()
                    img.thumbnail((keep_size, keep_size))
                    got.append(img.convert("RGB"))
                    any_frame = True
            if got:
                yield seg * length, (got + [got[-1]] * frames)[:frames]
            if not any_frame:
                raise VideoReadError(path, "no decodable video frames; re-download or replace it")
    except VideoReadError:
        raise
    except Exception as e:  # noqa: BLE001 - av.error.*, OSError, ...
        raise VideoReadError(path, f"cannot decode video ({type(e).__name__}: {e})") from e
