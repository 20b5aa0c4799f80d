"""Index a folder of images: embed every image once, keep the index in sync with the folder.

The index is a :class:`drc_jax.store.EmbeddingStore` whose ids are image paths relative to the
indexed folder and whose fingerprints are ``"size:mtime_ns"`` (or a SHA-1 of the bytes), so a
re-run embeds only new and changed files and drops deleted ones. Its meta records what makes
embeddings comparable: the CLIP weights id, the preprocessing and the folder. A small
``search.json`` next to it records how to load the weights again (the ``--weights`` argument).

Images are decoded on a thread pool and encoded with ``clip.encode_images``, which runs data
parallel over all local devices. Unreadable files are listed, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps

from drc_jax.store import EmbeddingStore, ItemError, StoreMismatchError, SyncReport

DEFAULT_WEIGHTS = "openai/clip-vit-base-patch32"
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
INFO_FILE = "search.json"
PREPROCESS_MODES = ("spacevlm", "openai")
FINGERPRINTS = ("stat", "sha1")


@dataclass(frozen=True)
class IndexInfo:
    """What a search index was built from (read back by :func:`drc_jax.search.search`)."""

    index: Path
    root: Path  # the indexed folder; ids are paths relative to it
    weights: str  # how to load the weights (the --weights argument)
    weights_id: str  # clip.weights_id
    preprocess: str
    meta: dict[str, Any]  # the store meta, exactly

    @property
    def random_weights(self) -> bool:
        return is_random(self.weights_id) or is_random(self.weights)


def is_random(weights: str) -> bool:
    """Random (untrained) weights: load_clip ids such as "random:test-tiny:seed0:float32"."""
    return weights.startswith("random:")


def scan_images(root: str | os.PathLike) -> Iterator[Path]:
    """Image files under ``root`` (recursive, sorted, hidden files and folders skipped)."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / name


def fingerprint(path: Path, how: str = "stat") -> str:
    """``"size:mtime_ns"`` (cheap) or ``"sha1:<hex>"`` of the bytes (survives copies/touches)."""
    if how == "stat":
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    if how == "sha1":
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return f"sha1:{h.hexdigest()}"
    raise ValueError(f"fingerprint must be one of {FINGERPRINTS}, got {how!r}")


def load_image(path: Path, size: int) -> Image.Image:
    """Decode ``path`` upright (EXIF orientation) as RGB.

    Large JPEGs are decoded at a reduced scale (``draft``) that is still at least twice ``size``
    on each side, which makes indexing a photo library several times faster; the preprocessing
    resizes to ``size`` afterwards anyway.
    """
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (2 * size, 2 * size))
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")


class ImageEmbedder:
    """``ids -> (len(ids), D)`` embeddings of the images ``root / id`` (a context manager).

    Decodes on a thread pool, then runs ``clip.preprocess`` and ``clip.encode_images`` (data
    parallel over local devices). Raises :class:`ItemError` for the first unreadable file of a
    batch; decoded images of the last call are kept, so the store's retry without the bad file
    does not decode again.
    """

    def __init__(self, clip, root: Path, preprocess: str, num_workers: int | None = None):
        self.clip, self.root, self.preprocess = clip, Path(root), preprocess
        self.size = int(getattr(clip, "image_size", 224))
        workers = num_workers or min(16, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self._decoded: dict[str, Image.Image | Exception] = {}

    def _decode(self, id_: str) -> Image.Image | Exception:
        try:
            return load_image(self.root / id_, self.size)
        except Exception as e:  # PIL raises many types for broken files
            return e

    def __call__(self, ids: list[str]) -> np.ndarray:
        kept = {i: self._decoded[i] for i in ids if i in self._decoded}
        todo = [i for i in ids if i not in kept]
        self._decoded = kept
        self._decoded.update(zip(todo, self._pool.map(self._decode, todo), strict=True))
        for i in ids:
            if isinstance(self._decoded[i], Exception):
                e = self._decoded[i]
                raise ItemError(i, f"{type(e).__name__}: {e}")
        pixels = self.clip.preprocess([self._decoded[i] for i in ids], mode=self.preprocess)
        return np.asarray(self.clip.encode_images(pixels), np.float32)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._decoded = {}

    def __enter__(self) -> ImageEmbedder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def index_meta(clip, root: Path, preprocess: str, how: str) -> dict[str, Any]:
    return {
        "kind": "image",
        "weights": clip.weights_id,
        "preprocess": preprocess,
        "root": str(root),
        "fingerprint": how,
    }


def read_info(index: str | os.PathLike) -> IndexInfo:
    """The :class:`IndexInfo` of an existing index; a clear error when there is none."""
    index = Path(index)
    manifest, info_path = index / "manifest.json", index / INFO_FILE
    if not manifest.exists() or not info_path.exists():
        raise FileNotFoundError(
            f"no search index at {index}; build one with "
            f"`python -m drc_jax.search index --images DIR --index {index}`"
        )
    info = json.loads(info_path.read_text())
    meta = json.loads(manifest.read_text())["meta"]
    return IndexInfo(
        index=index,
        root=Path(meta["root"]),
        weights=info["weights"],
        weights_id=meta["weights"],
        preprocess=meta["preprocess"],
        meta=meta,
    )


def build_index(
    images: str | os.PathLike,
    index: str | os.PathLike,
    *,
    weights: str | None = None,
    clip=None,
    dtype: str = "float32",
    preprocess: Literal["spacevlm", "openai"] = "spacevlm",
    batch_size: int | None = None,
    fingerprint_by: Literal["stat", "sha1"] = "stat",
    reset: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
) -> SyncReport:
    """Embed every image under ``images`` into the index at ``index``; return what changed.

    Re-running embeds only new and changed files and drops deleted ones. ``weights`` (default
    :data:`DEFAULT_WEIGHTS`) is loaded with ``dtype`` unless ``clip`` (a loaded
    :func:`drc_jax.clip.load_clip` model) is given; the index records ``weights`` (else
    ``clip.weights_id``) as what a query loads. An index built with
    other weights, preprocessing or folder is refused with the difference, unless ``reset``.
    Unreadable files are listed in ``report.failed`` and retried once they change (or with
    ``retry_failed``). ``batch_size`` defaults to 64 per local device.
    """
    root = Path(images).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"--images {images}: not a folder")
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
    index = Path(index).expanduser()
    if clip is None:
        from drc_jax.clip import load_clip

        weights = weights or DEFAULT_WEIGHTS
        clip = load_clip(weights, dtype=dtype)
    if batch_size is None:
        import jax

        batch_size = 64 * jax.local_device_count()
    try:
        store = EmbeddingStore.open(
            index,
            index_meta(clip, root, preprocess, fingerprint_by),
            on_mismatch="reset" if reset else "error",
        )
    except StoreMismatchError as e:
        raise StoreMismatchError(
            f"{e}\nTo rebuild this index with the new settings pass --reset (CLI) or reset=True."
        ) from None
    info = {"weights": str(weights or clip.weights_id), "weights_id": clip.weights_id}
    tmp = index / f"{INFO_FILE}.partial"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, index / INFO_FILE)

    items = {}
    for path in scan_images(root):
        rel = path.relative_to(root).as_posix()
        try:
            items[rel] = fingerprint(path, fingerprint_by)
        except OSError as e:  # vanished or unreadable between listing and stat
            items[rel] = f"error:{type(e).__name__}"
    with ImageEmbedder(clip, root, preprocess) as embed:
        return store.sync(
            items,
            embed,
            batch_size=batch_size,
            desc="indexing images",
            retry_failed=retry_failed,
            progress=progress,
        )
