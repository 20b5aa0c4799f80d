"""``search export``: an index as a table (id, path, hash, embedding) for pandas / DuckDB users."""

from __future__ import annotations

import os

import numpy as np

from drc_jax import atomic
from drc_jax.search.index import files_of_rows, read_info
from drc_jax.store import Store

FORMATS = ("parquet",)
BATCH = 1 << 16  # rows per parquet row group


def export_index(index: str | os.PathLike, out: str | os.PathLike, fmt: str = "parquet") -> int:
    """Write one row per indexed file to ``out`` (``id``, ``path``, content ``hash``, float32
    ``embedding``), streamed in batches; return the number of rows."""
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
        _, array = store.rows()
        dim = int(array.shape[1])
        schema = pa.schema(
            [("id", pa.int64()), ("path", pa.string()), ("hash", pa.string())]
            + [("embedding", pa.list_(pa.float32(), dim))]
        )

        def stream(f) -> int:
            n = 0
            with pq.ParquetWriter(f, schema) as writer:
                for batch in store.iter_names(BATCH):
                    rows = np.asarray([r for _, _, r in batch], np.int64)
                    files_of_rows(store, np.unique(rows), info.roots)  # inside the roots, or error
                    emb = np.asarray(array[rows], np.float32).reshape(-1)
                    columns = {
                        "id": pa.array(np.arange(n, n + len(batch), dtype=np.int64)),
                        "path": pa.array([name for name, _, _ in batch], pa.string()),
                        "hash": pa.array([key for _, key, _ in batch], pa.string()),
                        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb), dim),
                    }
                    writer.write_table(pa.table(columns, schema=schema))
                    n += len(batch)
            counted.append(n)

        counted: list[int] = []
        atomic.write(out, stream)
    return counted[0]
