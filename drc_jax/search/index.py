"""Index a folder of images: embed every image once, keep the index in sync with the folder.

The index is a :class:`drc_jax.store.EmbeddingStore` whose ids are image paths relative to the
indexed folder and whose fingerprints are ``"size:mtime_ns"`` (or a SHA-1 of the bytes), so a
re-run embeds only new and changed files and drops deleted ones. Its meta records what makes
embeddings comparable: the CLIP weights id, the preprocessing and the folder. A small
``search.json`` next to it records how to load the weights again (the ``--weights`` argument).

Files are found, fingerprinted, decoded and embedded by :mod:`drc_jax.media` (the benchmark's
media path too): images upright by their EXIF orientation, videos as the mean of 4 frames,
symbolic links not followed, FIFOs and devices never opened. Unreadable files are listed, never
fatal.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drc_jax.media import MediaEmbedder, MediaError, fingerprint
from drc_jax.media import walk_files as scan_images  # media under a folder, sorted
from drc_jax.store import EmbeddingStore, StoreMismatchError, SyncReport

DEFAULT_WEIGHTS = "openai/clip-vit-base-patch32"
INFO_FILE = "search.json"
PREPROCESS_MODES = ("spacevlm", "openai")


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
        except (OSError, MediaError) as e:  # vanished or unreadable between listing and stat
            items[rel] = f"error:{type(e).__name__}"
    with MediaEmbedder(clip, root=root, preprocess=preprocess) as embed:
        return store.sync(
            items,
            embed,
            batch_size=batch_size,
            desc="indexing images",
            retry_failed=retry_failed,
            progress=progress,
        )
