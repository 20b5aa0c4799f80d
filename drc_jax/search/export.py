"""``search export``: an index as a table (id, path, hash, embedding) for pandas / DuckDB users."""

from __future__ import annotations

import os

import numpy as np

from drc_jax import atomic
from drc_jax.search.index import indexed_files, read_info
from drc_jax.store import Store

FORMATS = ("parquet",)


def export_index(index: str | os.PathLike, out: str | os.PathLike, fmt: str = "parquet") -> int:
    """Write one row per indexed file to ``out``; return the number of rows.

    Columns: ``id`` (row number), ``path`` (absolute), ``hash`` (the content hash the embedding is
    keyed by; files with equal contents share it) and ``embedding`` (float32 list).
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "exporting to parquet needs pyarrow: pip install 'drc-jax[parquet]' (or pyarrow)"
        ) from None
    info = read_info(index)
    with Store.open(info.index, None) as store:
        indexed_files(store, info.roots)  # every path inside the roots, or a clear error
        keys, vectors = store.vectors()
        row = {key: i for i, key in enumerate(keys)}
        names = sorted((n, k) for n, (k, _) in store.names().items() if k in row)
        emb = np.asarray(vectors[np.asarray([row[k] for _, k in names], np.int64)], np.float32)
    dim = emb.shape[1] if emb.ndim == 2 else 0
    table = pa.table(
        {
            "id": pa.array(np.arange(len(names), dtype=np.int64)),
            "path": pa.array([n for n, _ in names], pa.string()),
            "hash": pa.array([k for _, k in names], pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
        }
    )
    atomic.write(out, lambda f: pq.write_table(table, f))  # a link at ``out`` is replaced
    return len(names)
