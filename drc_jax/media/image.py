"""Decoding one image: upright (EXIF orientation applied), RGB, fully decoded, or a MediaError."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, features

from drc_jax.media.errors import MediaError
from drc_jax.media.files import HEIF_SUFFIXES, regular_file

HEIF_HINT = "pip install 'drc-jax[heif]' (pillow-heif) to read HEIC/HEIF/AVIF photos"


@functools.cache
def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener") and not features.check("avif"):
        pillow_heif.register_avif_opener()


def _heif_decoder(path: Path) -> None:
    """Make HEIC/HEIF/AVIF decodable (pillow-heif) or say how; Pillow >= 11.3 reads AVIF itself."""
    if path.suffix.lower() == ".avif" and features.check("avif"):
        return
    try:
        _register_heif()
    except ImportError as e:
        raise MediaError(path, f"no HEIC/HEIF/AVIF decoder installed; {HEIF_HINT}") from e


def read_image(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    """Decode ``path`` upright (EXIF orientation applied) as RGB; errors are :class:`MediaError`.

    ``draft_size``: a JPEG may decode at a reduced scale keeping both sides >= it. Decompression
    bombs (over ``2 * PIL.Image.MAX_IMAGE_PIXELS``) are refused before decoding.
    """
    path = Path(path)
    regular_file(path)  # never open a FIFO or a device
    if path.suffix.lower() in HEIF_SUFFIXES:
        _heif_decoder(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if draft_size and img.format == "JPEG":
                    img.draft("RGB", (draft_size, draft_size))
                upright = ImageOps.exif_transpose(img)
                return upright.convert("RGB")
    except Image.DecompressionBombError as e:
        raise MediaError(
            path,
            f"refused as a possible decompression bomb ({e}). If the image is genuine, shrink it "
            "or raise PIL.Image.MAX_IMAGE_PIXELS before running",
        ) from e
    except Exception as e:  # noqa: BLE001 - decoders raise many types for broken files
        raise MediaError(
            path, f"not a readable image ({type(e).__name__}: {e}); re-download or replace it"
        ) from e
