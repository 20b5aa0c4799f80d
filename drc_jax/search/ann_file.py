"""An index's ANN file ``ann-<n>.faiss`` (:mod:`drc_jax.ann`, ids = store rows), named by the
``ann`` setting. faiss trusts its input and an index may be someone else's, so a file is read only
once it matches the setting and a subprocess has read it without crashing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from drc_jax import ann
from drc_jax.store import Store, StoreError, own_file, plain_name

MODES = ("none", "ivf", "auto")
AUTO_MIN_ROWS = 200_000  # ``--ann auto`` from here on (benchmarks/RESULTS.md, ANN)
RETRAIN_GROWTH = 4  # rebuilt once grown past this many times its training size
SETTING = "ann"
HEADERS = (b"IwFl", b"IwSq", b"IwPQ", b"IwPf", b"IxPT")  # faiss IVF Flat/SQ/PQ/fast-scan, OPQ+IVF
_FIELDS = {"file": str, "size": int, "ntotal": int, "dim": int, "upto": int, "vectors": str}
_FIELDS |= {"nlist": int, "nprobe": int, "trained_on": int, "factory": str, "mode": str}
_PROBE = (
    "import faiss, json, sys\n"
    "ix = faiss.read_index(sys.argv[1])\n"
    "print(json.dumps(dict(ntotal=ix.ntotal, d=ix.d, metric=ix.metric_type,"
    " nlist=faiss.extract_index_ivf(ix).nlist)))\n"
)


def _crafted(store: Store, what: str) -> StoreError:
    return StoreError(
        f"the ANN index of {store.directory} {what}; the index is damaged or was crafted: run "
        f"`drc-search index --ann ivf --index {store.directory} ...` to rebuild it, or "
        "`--ann none` to drop it"
    )


def info(store: Store) -> dict[str, Any] | None:
    """The ``ann`` setting, checked field by field; ``None`` when the index has no ANN file."""
    meta = store.setting(SETTING)
    if meta is None:
        return None
    bad = [
        k for k, t in _FIELDS.items() if not isinstance(meta, dict) or type(meta.get(k)) is not t
    ]
    if bad:
        raise _crafted(store, f"is described by a setting with bad fields {bad}")
    return meta


def _path(store: Store, meta: dict) -> Path:
    return own_file(store.directory / plain_name(meta["file"], store.directory))


def stale(store: Store, meta: dict, rows: np.ndarray) -> str | None:
    """Why the ANN file no longer covers the store's live ``rows`` (``None``: it does)."""
    if meta["vectors"] != store.array_file:
        return "the store was compacted since the ANN index was built"
    if len(rows) and rows[-1] >= meta["upto"]:
        return f"{int((rows >= meta['upto']).sum())} vectors were added since it was built"
    return None


def load(store: Store, meta: dict, *, check_in_subprocess: bool = True):
    """The faiss index ``meta`` describes, read only once its file passed every check."""
    if meta["dim"] != store.dim:
        raise _crafted(store, f"has dimension {meta['dim']}, the store {store.dim}")
    want = {"ntotal": meta["ntotal"], "d": meta["dim"], "nlist": meta["nlist"]}
    index = _read(store, _path(store, meta), want, meta["size"], check_in_subprocess)
    ann.set_nprobe(index, meta["nprobe"])
    return index


def _read(store: Store, path: Path, want: dict, size: int | None, check_in_subprocess=True):
    """``path`` read by faiss once its size, header and (in a subprocess) contents match."""
    faiss = ann.require_faiss()

    try:
        got_size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(4)
    except OSError as e:
        raise _crafted(store, f"file {path} cannot be read ({e})") from e
    if not path.is_file() or (size is not None and got_size != size) or header not in HEADERS:
        raise _crafted(store, f"file {path} is not a faiss IVF file of {size or 'any'} bytes")
    want = {**want, "metric": faiss.METRIC_INNER_PRODUCT}
    any_nlist = want["nlist"] is None
    if check_in_subprocess:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=3600
        )
        try:
            seen = json.loads(proc.stdout) if proc.returncode == 0 else None
        except ValueError:
            seen = None
        if any_nlist and isinstance(seen, dict):
            seen["nlist"] = None
        if seen != want:
            why = proc.stderr.strip().splitlines()[-1:] or [f"it holds {seen}, expected {want}"]
            raise _crafted(store, f"file {path} does not read as described ({why[0]})")
    index = faiss.read_index(str(path))
    seen = {"ntotal": index.ntotal, "d": index.d, "metric": index.metric_type}
    seen["nlist"] = None if any_nlist else ann.faiss_nlist(index)
    if seen != want:
        raise _crafted(store, f"file {path} holds {seen}, expected {want}")
    return index


def adopt(store: Store, source: Path) -> dict:
    """Check and write a faiss IVF inner-product index over rows ``0..N-1`` as the ANN file."""
    rows, array = store.rows()
    if not len(rows) or rows[-1] != len(rows) - 1:
        raise ValueError(f"{source}: a faiss index can only be adopted by a freshly written store")
    import faiss

    want = {"ntotal": len(rows), "d": int(array.shape[1])}
    try:
        index = _read(store, source, {**want, "nlist": None}, None)
    except StoreError as e:
        raise ValueError(
            f"--faiss_index {source}: not a faiss IVF inner-product index of the "
            f"{len(rows)} {want['d']}-d embeddings being imported ({e}); pass --ann ivf to build "
            "one instead"
        ) from None
    meta = {
        "ntotal": int(index.ntotal),
        "dim": want["d"],
        "upto": len(rows),
        "vectors": store.array_file,
        "nlist": ann.faiss_nlist(index),
        "nprobe": max(ann.faiss_nprobe(index), ann.nprobe_for(ann.faiss_nlist(index))),
        "trained_on": len(rows),
        "factory": f"adopted:{faiss.extract_index_ivf(index).__class__.__name__}",
        "mode": "ivf",
    }
    return _write(store, index, info(store), meta)


def sync(store: Store, mode: str = "auto", *, codes: str = "auto", progress=None) -> dict | None:
    """Bring the ANN file in step with the store; its setting (``None``: no file).

    ``mode``: ``none`` drops it, ``ivf`` builds or updates it, ``auto`` does so from
    :data:`AUTO_MIN_ROWS` vectors or when one exists."""
    if mode not in MODES:
        raise ValueError(f"--ann must be one of {MODES}, got {mode!r}")
    old = info(store)
    rows, array = store.rows()
    if (
        mode == "none"
        or not len(rows)
        or (mode == "auto" and old is None and len(rows) < AUTO_MIN_ROWS)
    ):
        if old is not None:
            store.set_setting(SETTING, None)
        _sweep(store, None)
        return None
    index = None
    reusable = old is not None and old["vectors"] == store.array_file
    if reusable and len(rows) <= RETRAIN_GROWTH * old["trained_on"] and old["dim"] == store.dim:
        try:
            index = load(store, old)
        except StoreError:
            index = None
    if index is not None:
        upto = old["upto"]
        index.remove_ids(np.setdiff1d(np.arange(upto, dtype=np.int64), rows[rows < upto]))
        ann.add(index, array, rows[rows >= upto], progress=progress)
        trained_on, factory = old["trained_on"], old["factory"]
    else:
        index = ann.build(array, rows, codes=codes, progress=progress)
        trained_on, factory = len(rows), ann.factory_for(len(rows), codes)
    meta = {
        "ntotal": int(index.ntotal),
        "dim": int(array.shape[1]),
        "upto": int(rows[-1]) + 1,
        "vectors": store.array_file,
        "nlist": ann.faiss_nlist(index),
        "nprobe": ann.faiss_nprobe(index),
        "trained_on": int(trained_on),
        "factory": factory,
        "mode": mode if old is None else old["mode"],
    }
    return _write(store, index, old, meta)


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(store: Store, index, old: dict | None, meta: dict) -> dict:
    import faiss

    number = "" if old is None else old["file"].removeprefix("ann-").removesuffix(".faiss")
    gen = int(number) + 1 if number.isdigit() else 0
    name = f"ann-{gen}.faiss"
    final = own_file(store.directory / name)
    tmp = own_file(store.directory / f".{name}.tmp-{os.getpid()}")
    faiss.write_index(index, str(tmp))
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(store.directory, os.O_RDONLY | os.O_DIRECTORY)
    meta = {**meta, "file": name, "size": final.stat().st_size}
    store.set_setting(SETTING, meta)
    _sweep(store, name)
    return meta


def _sweep(store: Store, keep: str | None) -> None:
    """Delete ANN files (and temporary ones) other than ``keep``."""
    for p in [*store.directory.glob("ann-*.faiss"), *store.directory.glob(".ann-*.tmp-*")]:
        if p.name != keep:
            p.unlink(missing_ok=True)
