"""Embedding store: write throughput and load time of N x D bf16 vectors, two layouts, one run.

    python benchmarks/bench_store.py --n 1000000 --dim 512

Layouts compared in the same run (the store uses the first; the second is the alternative the
design rejected):

- ``array``: :class:`drc_jax.store.Store`: SQLite catalogue + one raw array file, memory-mapped;
- ``blob``: the same catalogue with each vector as a BLOB column, loaded by one ``SELECT``.

Load = open the store and get ``(keys, vectors)`` ready for search; "first pass" then reads every
vector once (a sum over the array: page faults from the page cache for the memory map). Writes go
through ``Store.put`` in batches of ``--batch`` (one transaction + one fsync each). Numbers are
wall-clock seconds on whatever machine runs it; compare rows of one run, not across machines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import ml_dtypes
import numpy as np

from drc_jax.store import Store

META = {"kind": "bench"}


def _vectors(n: int, dim: int, start: int) -> np.ndarray:
    rng = np.random.default_rng(start)
    return rng.standard_normal((n, dim), np.float32).astype(ml_dtypes.bfloat16)


def bench_array(root: Path, n: int, dim: int, batch: int) -> dict[str, float]:
    t0 = time.perf_counter()
    with Store.open(root / "array", META, dtype="bfloat16") as store:
        for start in range(0, n, batch):
            m = min(batch, n - start)
            keys = [f"sha1:{i:040x}" for i in range(start, start + m)]
            store.put(keys, keys, _vectors(m, dim, start))
    write = time.perf_counter() - t0
    t0 = time.perf_counter()
    with Store.open(root / "array", None) as store:
        keys, vectors = store.vectors()
        load = time.perf_counter() - t0
        assert len(keys) == n and isinstance(vectors, np.memmap), type(vectors)
        t0 = time.perf_counter()
        np.asarray(vectors[:, 0], np.float32).sum()  # one value a row: touches every page
        first_pass = time.perf_counter() - t0 + load
    return {"write_s": write, "load_s": load, "load_and_first_pass_s": first_pass}


def bench_blob(root: Path, n: int, dim: int, batch: int) -> dict[str, float]:
    t0 = time.perf_counter()
    db = sqlite3.connect(root / "blob.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE items (key TEXT PRIMARY KEY, fingerprint TEXT, row INTEGER, v BLOB)")
    for start in range(0, n, batch):
        m = min(batch, n - start)
        data = _vectors(m, dim, start)
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?)",
            (
                (f"sha1:{i:040x}", f"sha1:{i:040x}", i, data[i - start].tobytes())
                for i in range(start, start + m)
            ),
        )
        db.execute("COMMIT")
    db.close()
    write = time.perf_counter() - t0
    t0 = time.perf_counter()
    db = sqlite3.connect(root / "blob.sqlite")
    keys, blobs = [], []
    for key, blob in db.execute("SELECT key, v FROM items ORDER BY row"):
        keys.append(key)
        blobs.append(blob)
    vectors = np.frombuffer(b"".join(blobs), ml_dtypes.bfloat16).reshape(len(keys), dim)
    load = time.perf_counter() - t0
    db.close()
    t0 = time.perf_counter()
    vectors[:, :1].astype(np.float32).sum()
    return {
        "write_s": write,
        "load_s": load,
        "load_and_first_pass_s": load + time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4096, help="vectors per put/transaction")
    parser.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    try:
        mib = args.n * args.dim * 2 / 2**20
        results = {"n": args.n, "dim": args.dim, "dtype": "bfloat16", "MiB": round(mib, 1)}
        for name, fn in (("array", bench_array), ("blob", bench_blob)):
            r = fn(root, args.n, args.dim, args.batch)
            r["write_MiB_per_s"] = mib / r["write_s"]
            results[name] = {k: round(v, 3) for k, v in r.items()}
            print(f"{name:>5}: " + ", ".join(f"{k} {v:.3f}" for k, v in results[name].items()))
        ratio = results["blob"]["load_s"] / results["array"]["load_s"]
        print(f"load: array file {ratio:.1f}x faster than BLOBs")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
