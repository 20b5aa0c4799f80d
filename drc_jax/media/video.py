"""Decoding one video for CLIP with PyAV, sampling frames as SpaceVLM (``linspace(0, n - 1)``)
or NegBench's MSR-VTT evaluation (interval midpoints) does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from drc_jax.media.errors import MediaError
from drc_jax.media.files import regular_file

SAMPLINGS = ("spacevlm", "negbench")


class VideoReadError(MediaError):
    """A video file could not be opened or decoded (a :class:`MediaError`)."""


def frame_indices(n_frames: int, num_frames: int = 4, sampling: str = "spacevlm") -> np.ndarray:
    """Indices of the ``num_frames`` frames to keep out of ``n_frames``."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown frame sampling {sampling!r}; choose one of {SAMPLINGS}")
    if n_frames < 1:
        raise ValueError("a video needs at least one frame")
    if sampling == "spacevlm":
        idx = np.linspace(0, n_frames - 1, num_frames).astype(np.int64)
    else:
        idx = ((np.arange(num_frames) + 0.5) * n_frames / num_frames).astype(np.int64)
    return np.clip(idx, 0, n_frames - 1)


def _decode(path: Path, wanted: set[int] | None) -> tuple[dict[int, Image.Image], int]:
    """Decode the video stream; keep frames whose index is in ``wanted`` (all when ``None``)."""
    import av

    kept: dict[int, Image.Image] = {}
    n = 0
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if wanted is None or n in wanted:
                kept[n] = frame.to_image()
            n += 1
    return kept, n


def _count_packets(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(path, "no video stream")
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for p in container.demux(stream) if p.size)


def read_video_frames(
    path: str | Path, num_frames: int = 4, sampling: str = "spacevlm"
) -> list[Image.Image]:
    """``num_frames`` RGB frames of ``path`` as PIL images, sampled by ``sampling``.

    :class:`VideoReadError` names a missing, non-regular or undecodable file.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown frame sampling {sampling!r}; choose one of {SAMPLINGS}")
    path = Path(path)
    try:
        regular_file(path)
    except MediaError as e:
        reason = "no such video file" if e.reason == "file not found" else e.reason
        raise VideoReadError(path, reason) from e
    try:
        n = _count_packets(path)
        idx = frame_indices(max(n, 1), num_frames, sampling)
        kept, decoded = _decode(path, set(idx.tolist()))
        if decoded == 0:
            raise VideoReadError(path, "no decodable video frames; re-download or replace it")
        if decoded != n:  # container metadata was wrong: sample again on the true count
            idx = frame_indices(decoded, num_frames, sampling)
            if not set(idx.tolist()) <= set(kept):
                kept, _ = _decode(path, set(idx.tolist()))
    except VideoReadError:
        raise
    except Exception as e:  # noqa: BLE001 - av.error.*, OSError, ValueError, ...
        raise VideoReadError(
            path, f"cannot decode video ({type(e).__name__}: {e}); re-download or replace it"
        ) from e
    return [kept[int(i)].convert("RGB") for i in idx]
