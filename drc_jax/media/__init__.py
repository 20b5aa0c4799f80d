"""The one media path: finding, fingerprinting, decoding and embedding images and videos.

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
