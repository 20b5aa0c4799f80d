"""The one media path: finding, fingerprinting, decoding and embedding images and videos.

- :mod:`~drc_jax.media.files`: which names are media, safe folder walks (links followed only on
  request, loops entered once, FIFOs/devices never opened), fingerprints, NegBench's
  find-by-file-name :class:`MediaIndex`;
- :mod:`~drc_jax.media.image`: :func:`read_image` (EXIF orientation, decompression-bomb limit,
  HEIC/AVIF through the ``heif`` extra);
- :mod:`~drc_jax.media.video`: :func:`read_video_frames` (PyAV, SpaceVLM/NegBench sampling);
- :mod:`~drc_jax.media.embed`: :class:`MediaEmbedder`, batches of files -> CLIP embeddings with
  per-file failures.

Every failure to read a file is a :class:`MediaError` naming it.
"""

from drc_jax.media.embed import Embedded, MediaEmbedder
from drc_jax.media.errors import MediaError
from drc_jax.media.files import (
    FINGERPRINTS,
    HEIF_SUFFIXES,
    IMAGE_SUFFIXES,
    MEDIA_SUFFIXES,
    VIDEO_SUFFIXES,
    MediaIndex,
    file_name,
    fingerprint,
    media_kind,
    regular_file,
    walk_files,
)
from drc_jax.media.image import read_image
from drc_jax.media.video import SAMPLINGS, VideoReadError, frame_indices, read_video_frames

__all__ = [
    "FINGERPRINTS",
    "HEIF_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MEDIA_SUFFIXES",
    "SAMPLINGS",
    "VIDEO_SUFFIXES",
    "Embedded",
    "MediaEmbedder",
    "MediaError",
    "MediaIndex",
    "VideoReadError",
    "file_name",
    "fingerprint",
    "frame_indices",
    "media_kind",
    "read_image",
    "read_video_frames",
    "regular_file",
    "walk_files",
]
