"""Image preprocessing to CLIP's input: (B, 224, 224, 3) float32, OpenAI mean/std, NHWC.

``"spacevlm"`` reproduces SpaceVLM's ``transforms.Resize((224, 224), BICUBIC)`` (a PIL squash);
``"openai"`` OpenAI's CLIP transform (short side to 224, centre crop).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

OPENAI_CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
OPENAI_CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
MODES = ("spacevlm", "openai")


def _to_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise TypeError(
            f"expected a PIL image or an HxW[x3] uint8 array, got {type(image).__name__} "
            f"with dtype {arr.dtype} and shape {arr.shape}"
        )
    return Image.fromarray(arr).convert("RGB")


def resize_squash(image: Image.Image, size: int = 224) -> Image.Image:
    """SpaceVLM: the whole image squashed to ``size x size`` (bicubic, antialiased)."""
    return image.resize((size, size), Image.Resampling.BICUBIC)


def resize_center_crop(image: Image.Image, size: int = 224) -> Image.Image:
    """OpenAI: short side to ``size`` (bicubic), then the central ``size x size`` crop."""
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def normalize(pixels_uint8: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> float32 ``(x / 255 - mean) / std``."""
    return (pixels_uint8.astype(np.float32) / 255.0 - OPENAI_CLIP_MEAN) / OPENAI_CLIP_STD


def preprocess_one(image, mode: str = "spacevlm", size: int = 224) -> np.ndarray:
    if mode not in MODES:
        raise ValueError(f"unknown preprocessing mode {mode!r}; choose one of {MODES}")
    pil = _to_pil(image)
    pil = resize_squash(pil, size) if mode == "spacevlm" else resize_center_crop(pil, size)
    return normalize(np.asarray(pil))


def preprocess(
    images: Sequence, mode: str = "spacevlm", size: int = 224, num_threads: int = 4
) -> np.ndarray:
    """List of PIL images (or uint8 arrays) -> (B, size, size, 3) float32 CLIP-normalised NHWC."""
    images = list(images)
    out = np.empty((len(images), size, size, 3), np.float32)

    def work(i):
        out[i] = preprocess_one(images[i], mode, size)

    if len(images) >= 8 and num_threads > 1:
        with ThreadPoolExecutor(num_threads) as pool:
            list(pool.map(work, range(len(images))))
    else:
        for i in range(len(images)):
            work(i)
    return out
