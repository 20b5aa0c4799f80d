"""``search import --clip_retrieval DIR``: clip-retrieval's image embeddings as an index, unencoded.

Reads ``img_emb/img_emb_<i>.npy``, ``metadata/metadata_<i>.parquet`` (``image_path``) and
autofaiss's ``image.index``; the folder does not say which CLIP made them, so the caller names it.
Each file is keyed by its path (nothing is hashed or read).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from drc_jax.search import ann_file
from drc_jax.search.index import listed_name
from drc_jax.search.roots import record_roots
from drc_jax.store import Store

DEFAULT_MODEL = "ViT-B/32"  # clip-retrieval's own default --clip_model
OPENAI_NAMES = {  # clip-retrieval's names -> Hugging Face ids
    "ViT-B/32": "openai/clip-vit-base-patch32",
    "ViT-B/16": "openai/clip-vit-base-patch16",
    "ViT-L/14": "openai/clip-vit-large-patch14",
    "ViT-L/14@336px": "openai/clip-vit-large-patch14-336",
}
UNIT_TOLERANCE = 1e-2  # float16 embeddings are unit-norm to about 1e-3
CHUNK = 1 << 16


def model_id(name: str) -> str:
    """A comparable name for a clip-retrieval model name or a weights id."""
    name = name.removeprefix("hf_clip:")
    if name.startswith("random:"):
        return ":".join(name.split(":")[:2])
    return OPENAI_NAMES.get(name, name.split("@")[0].split(":")[0] if "@" in name else name)


def check_model(clip_model: str, weights_id: str) -> None:
    """The embeddings' model must be the text tower's; the error names both."""
    a, b = model_id(clip_model), model_id(weights_id)
    same = a == b or (not a.startswith("random:") and a.rsplit("/")[-1] == b.rsplit("/")[-1])
    if not same:
        raise ValueError(
            f"the clip-retrieval embeddings were made by {clip_model!r} "
            f"({model_id(clip_model)}), but the text tower searched with is {weights_id!r} "
            f"({model_id(weights_id)}); pass --weights with the same model (or --clip_model "
            "naming what clip-retrieval's --clip_model was)"
        )


def parts(folder: Path) -> list[tuple[Path, Path]]:
    """``(img_emb_<i>.npy, metadata_<i>.parquet)`` pairs in clip-retrieval's order."""
    found = {}
    for p in (folder / "img_emb").glob("img_emb_*.npy"):
        m = re.fullmatch(r"img_emb_(\d+)\.npy", p.name)
        if m:
            found[int(m.group(1))] = (p, folder / "metadata" / f"metadata_{m.group(1)}.parquet")
    if not found:
        raise FileNotFoundError(
            f"--clip_retrieval {folder}: no img_emb/img_emb_<i>.npy files; point it at the "
            "output folder of clip-retrieval's inference (run with --enable_image)"
        )
    missing = [str(m) for _, m in found.values() if not m.is_file()]
    if missing:
        raise FileNotFoundError(
            f"--clip_retrieval {folder}: no metadata for {missing[:3]}; the image paths live "
            "there (clip-retrieval writes them beside every embedding file)"
        )
    return [found[i] for i in sorted(found)]


def _embeddings(path: Path, dim: int) -> np.ndarray:
    try:
        emb = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npy array ({e})") from e
    if emb.ndim != 2 or emb.dtype not in (np.float16, np.float32) or emb.shape[1] != dim:
        raise ValueError(
            f"{path}: {emb.dtype} array of shape {emb.shape}, expected float16/32 (n, {dim}) "
            f"embeddings of the text tower's width {dim}"
        )
    return emb


def _image_paths(path: Path, n: int, base: Path | None) -> list[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["image_path"])
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise ValueError(f"{path}: cannot read its image_path column ({e})") from e
    names = table.column("image_path").to_pylist()
    if len(names) != n:
        raise ValueError(f"{path}: {len(names)} image paths for {n} embeddings")
    out = []
    for row, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}: row {row} has no image path ({name!r})")
        if not os.path.isabs(name):
            if base is None:
                raise ValueError(
                    f"{path}: row {row} has the relative path {name!r}; pass --images with the "
                    "folder clip-retrieval read (its --input_dataset) to resolve it"
                )
            name = str(base / name)
        out.append(os.path.normpath(name))
    return out


def import_clip_retrieval(
    folder: str | os.PathLike,
    index: str | os.PathLike,
    clip,
    *,
    weights: str,
    clip_model: str = DEFAULT_MODEL,
    images: str | os.PathLike | None = None,
    ann: str = "auto",
    faiss_index: str | os.PathLike | None = None,
) -> int:
    """Write clip-retrieval's output ``folder`` into a new index ``index``; return its rows.

    ``clip_model`` made the embeddings and must match ``clip``. ``faiss_index`` (default: the
    folder's ``image.index`` unless ``ann="none"``) is adopted as the ANN file, else ``ann`` is.
    """
    folder, index = Path(folder).expanduser(), Path(index).expanduser()
    check_model(clip_model, clip.weights_id)
    if ann not in ann_file.MODES:
        raise ValueError(f"--ann must be one of {ann_file.MODES}, got {ann!r}")
    if (index / "catalogue.sqlite").exists():
        raise ValueError(f"--index {index} exists; import into a new directory")
    base = Path(images).expanduser().resolve() if images else None
    dim = int(clip.embed_dim)
    pairs = [(e, _embeddings(e, dim), m) for e, m in parts(folder)]
    paths = [p for e, emb, m in pairs for p in _image_paths(m, len(emb), base)]
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    prefixes = [root.rstrip("/") + "/"]
    if len(set(paths)) < len(paths):
        seen, twice = set(), None
        twice = next(p for p in paths if p in seen or seen.add(p))
        raise ValueError(f"{folder}: the image path {twice!r} appears twice in its metadata")
    bad = [p for p in paths if listed_name(p, prefixes) is None][:3]
    if bad:
        raise ValueError(
            f"{folder}: image paths such as {bad} are not media files an index can list "
            "(webdataset keys are not files); import the output of a --input_format files run"
        )
    meta = {"kind": "image", "weights": clip.weights_id, "preprocess": "clip-retrieval"}
    start = 0
    with Store.open(index, meta, dtype="bfloat16") as store:
        for emb_path, emb, _ in pairs:
            for lo in range(0, len(emb), CHUNK):
                x = np.asarray(emb[lo : lo + CHUNK], np.float32)
                norms = np.linalg.norm(x, axis=1)
                off = np.flatnonzero(~(np.abs(norms - 1) <= UNIT_TOLERANCE))
                if off.size:
                    raise ValueError(
                        f"{emb_path}: row {lo + off[0]} has norm {norms[off[0]]:.4g}, not 1 "
                        f"({off.size} such rows in this chunk); clip-retrieval writes unit-norm "
                        "embeddings: these are not its output, or are damaged"
                    )
                keys = [f"path:{p}" for p in paths[start + lo : start + lo + len(x)]]
                store.put(
                    keys, [f"clip-retrieval:{emb_path.name}:{lo + i}" for i in range(len(x))], x
                )
            start += len(emb)
        for lo in range(0, len(paths), CHUNK):
            store.update_names({p: (f"path:{p}", "clip-retrieval") for p in paths[lo : lo + CHUNK]})
        with store.transaction():
            store.set_setting("roots", [root])
            store.set_setting("weights", str(weights))
            store.set_setting("clip_retrieval", {"folder": str(folder), "model": clip_model})
        given = Path(faiss_index).expanduser() if faiss_index else None
        found = [
            p for p in (folder / "image.index", folder / "index" / "image.index") if p.is_file()
        ]
        if given is None and ann != "none" and found:
            given = found[0]
        if given is not None:
            ann_file.adopt(store, given)
        else:
            ann_file.sync(store, ann)
        record_roots(index, [Path(root)])
        return len(store)
