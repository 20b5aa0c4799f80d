"""Search server speed: warm /api/search latency at 10k / 100k / 1M images, start-up, CLI restart.

For each index size a random-weight index of unit embeddings is written directly (no images are
decoded), ``python -m drc_jax.search serve`` is started on it (bf16 images on device) and timed
until ``/api/health`` answers (start-up: load CLIP, open the index, warm-up compiles; first with an
empty JAX compilation cache, then again with the cache the first start filled). Then distinct,
everyday queries (none repeats, so every request decomposes and encodes its texts afresh: up to 4
text encodings + scoring + top-k) are sent over HTTP one at a time and their wall-clock latency is
recorded: p50 / p90. Each query is also sent filtered (a folder and a file-name filter, the same
for every request, as paging repeats it: its mask is cached), with a new file-name filter each
time (the mask built afresh), and by example (``like`` a different indexed file each time, with the
query's words): their p50 over the same queries in the same run, and the ratio to the p50 of the
plain query sent again (its texts, like theirs, then embedded already; target 1.2x; interleaved,
so machine load hits all alike), by the client's clock and by the server's ``took_ms``. Finally
a one-shot ``search query`` runs twice on the smallest index with a fresh compilation cache: the
second run reuses the first one's compiles.

Run:  .venv/bin/python -m benchmarks.bench_search [--sizes 10000,100000,1000000] [--ann ivf]
Writes benchmarks/results/bench_search_cpu.json. Numbers are wall-clock seconds on whatever runs
it; compare rows of one run (ratios), not across machines.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["10000", "100000", "1000000"], "Index sizes (embeddings).")
flags.DEFINE_string("weights", "random:ViT-B/32", "CLIP weights the index claims (random).")
flags.DEFINE_integer("requests", 40, "Timed warm requests per size (after 3 untimed).")
flags.DEFINE_integer("k", 24, "Results per request (the page's default).")
flags.DEFINE_string("out", str(REPO / "benchmarks/results/bench_search_cpu.json"), "JSON out.")
flags.DEFINE_enum(
    "ann", "none", ["none", "ivf"],
    "ivf: clustered vectors (benchmarks.sphere) and the index's ANN file, so plain searches go "
    "through it (filtered and by-example ones stay exact).",
)  # fmt: skip

SUBJECTS = ("dog", "cat", "child", "bicycle", "red car", "boat", "horse", "bird", "old house",
            "woman", "man", "kite", "train", "laptop", "pizza")  # fmt: skip
THINGS = ("beach", "snow", "grass", "road", "water", "people", "trees", "a fence", "a hat",
          "clouds", "a leash", "buildings", "rain", "sunglasses")  # fmt: skip
PATTERNS = ("a {s} not on the {o}", "a {s} without {o}", "a {s} near {o}", "{s}, but no {o}",
            "a {s} with {o}", "a photo of a {s} and no {o} at all")  # fmt: skip


def everyday_queries(n: int) -> list[str]:
    """``n`` distinct queries (a seeded shuffle of pattern x subject x thing): negated and plain,
    short (16-token bucket) and longer (32)."""
    combos = list(itertools.product(PATTERNS, SUBJECTS, THINGS))
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} distinct queries, asked for {n}")
    order = np.random.default_rng(0).permutation(len(combos))[:n]
    return [combos[i][0].format(s=combos[i][1], o=combos[i][2]) for i in order]


def write_random_index(index: Path, n: int, clip) -> None:
    """An index of ``n`` unit bf16 embeddings (random; clustered, with an ANN file, for
    ``--ann ivf``) under fake file names, through the index's own store (content-hash keys, a
    name table and the roots/weights settings, as ``index`` writes)."""
    import ml_dtypes

    from benchmarks.sphere import clustered, nested_centres
    from drc_jax.search import ann_file
    from drc_jax.search.index import index_meta
    from drc_jax.store import Store

    rng = np.random.default_rng(n)
    centre, _ = nested_centres(64, 16, clip.embed_dim)
    root = index / "photos"
    keys = [f"sha1:{i:040x}" for i in range(n)]
    with Store.open(index, index_meta(clip, "spacevlm"), dtype="bfloat16") as store:
        for start in range(0, n, 1 << 16):
            batch = keys[start : start + (1 << 16)]
            if FLAGS.ann == "ivf":
                x, _ = clustered(len(batch), centre, spread=0.6, start=start)
            else:
                x = rng.standard_normal((len(batch), clip.embed_dim), np.float32)
                x /= np.linalg.norm(x, axis=1, keepdims=True)
            store.put(batch, batch, x.astype(ml_dtypes.bfloat16))
        names = {f"{root}/{i // 1000:04d}/{i:07d}.jpg": (k, "0:0") for i, k in enumerate(keys)}
        with store.transaction():
            store.set_names(names)
            store.set_setting("roots", [str(root)])
            store.set_setting("weights", FLAGS.weights)
        ann_file.sync(store, FLAGS.ann)
    root.mkdir()  # serve confirms it with --images


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, DRC_JAX_CACHE=str(cache), JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))


def start_server(index: Path, cache: Path) -> tuple[subprocess.Popen, str, float]:
    """Start ``search serve``; return it, its URL and the seconds until /api/health answered."""
    import httpx

    port = _free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "drc_jax.search", "serve", "--index", str(index),
         "--images", str(index / "photos"), "--port", str(port), "--nowatch"],
        env=_env(cache), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{proc.stdout.read()}")
        try:
            if httpx.get(url + "/api/health", timeout=1).is_success:
                return proc, url, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def variants(i: int, root: str, n: int) -> dict[str, dict[str, str]]:
    """The request kinds timed for query ``i``: plain, filtered (cached mask), a fresh filter,
    by example (a different indexed file each time)."""
    j = i * 997 % n
    return {
        "plain": {},
        "plain_again": {},  # the same request: its texts are embedded already, as below
        "filtered": {"folder": "0001", "name": "5"},  # one folder's files with a 5 in the name
        "fresh_filter": {"name": f"{i % 1000:03d}"},  # a mask not built before
        "example": {"like": f"{root}/{j // 1000:04d}/{j:07d}.jpg"},
    }


def timed_requests(url: str, queries: list[str], root: str, n: int) -> dict[str, float]:
    import httpx

    wall: dict[str, list[float]] = {}
    server: dict[str, list[float]] = {}
    exact: dict[str, list[bool]] = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for i, q in enumerate(queries):
            for kind, extra in variants(i, root, n).items():
                params = {"q": q, "k": FLAGS.k, "method": "drc", **extra}
                t0 = time.perf_counter()
                r = client.get("/api/search", params=params)
                dt = time.perf_counter() - t0
                r.raise_for_status()
                if i >= 3:  # the first few warm the HTTP connection and Python's caches
                    wall.setdefault(kind, []).append(1000 * dt)
                    server.setdefault(kind, []).append(r.json()["took_ms"])
                    exact.setdefault(kind, []).append(r.json()["exact"])
    out = {
        "p50_ms": float(np.percentile(wall["plain"], 50)),
        "p90_ms": float(np.percentile(wall["plain"], 90)),
        "server_p50_ms": float(np.percentile(server["plain"], 50)),
        "requests": len(wall["plain"]),
        "plain_through_ann": float(1 - np.mean(exact["plain"])),  # share answered by the ANN
    }
    out["plain_again_p50_ms"] = float(np.percentile(wall["plain_again"], 50))
    out["server_plain_again_p50_ms"] = float(np.percentile(server["plain_again"], 50))
    for kind in ("filtered", "fresh_filter", "example"):
        out[f"{kind}_p50_ms"] = float(np.percentile(wall[kind], 50))
        out[f"{kind}_vs_plain"] = out[f"{kind}_p50_ms"] / out["plain_again_p50_ms"]
        # the server's own took_ms: the same ratio without HTTP and client noise
        took = float(np.percentile(server[kind], 50))
        out[f"server_{kind}_p50_ms"] = took
        out[f"server_{kind}_vs_plain"] = took / out["server_plain_again_p50_ms"]
    return out


def cli_restart(index: Path, cache: Path) -> dict[str, float]:
    """Seconds of two identical one-shot `search query` runs sharing a fresh compilation cache."""
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "drc_jax.search", "query", "--index", str(index),
             "--images", str(index / "photos"), "a dog not on a beach", "-k", "10"],
            env=_env(cache), cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
        times.append(time.perf_counter() - t0)
    return {"first_s": times[0], "second_s": times[1], "speedup": times[0] / times[1]}


def main(argv) -> None:
    del argv
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    from drc_jax.clip import load_clip

    clip = load_clip(FLAGS.weights)
    sizes = [int(s) for s in FLAGS.sizes]
    results = {"weights": FLAGS.weights, "k": FLAGS.k, "cpus": os.cpu_count(), "ann": FLAGS.ann}
    results["sizes"] = []
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        tmp = Path(tmp)
        for n in sizes:
            index = tmp / f"index_{n}"
            t0 = time.perf_counter()
            write_random_index(index, n, clip)
            write_s = time.perf_counter() - t0
            cache = tmp / f"cache_{n}"
            proc, _, cold = start_server(index, cache)
            stop(proc)
            proc, url, warm = start_server(index, cache)
            try:
                row = {"images": n, "write_index_s": write_s, "start_cold_cache_s": cold,
                       "start_warm_cache_s": warm}  # fmt: skip
                root = str(index / "photos")
                row |= timed_requests(url, everyday_queries(FLAGS.requests + 3), root, n)
            finally:
                stop(proc)
            print(json.dumps(row), flush=True)
            results["sizes"].append(row)
        results["cli_query"] = cli_restart(tmp / f"index_{sizes[0]}", tmp / "cache_cli")
        print(json.dumps(results["cli_query"]), flush=True)
    Path(FLAGS.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
