"""Media and texts -> CLIP embeddings, computed once and cached by :class:`drc_jax.store.Store`.

One store per (weights, dtype, kind, preprocessing, video sampling), written batch by batch so an
interrupted run resumes; without a cache directory a temporary store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from drc_jax import media
from drc_jax.data.negbench import Benchmark
from drc_jax.defaults import cache_path
from drc_jax.errors import UserError
from drc_jax.launch.config import RunOptions
from drc_jax.launch.stages import MediaEmbeddings

MAX_TOKENS = 77
TEXT_BATCH = 512  # texts are cheap: big batches mean few compiled shapes


def params_probe(clip) -> str | None:
    """A cheap fingerprint of the loaded parameters, in every cache key (not just the name)."""
    import jax

    params = getattr(clip, "params", None)
    if params is None:
        return None
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(params):
        local = leaf.addressable_data(0) if hasattr(leaf, "addressable_data") else leaf
        h.update(np.asarray(np.ravel(np.asarray(local))[:16], np.float32).tobytes())
    return h.hexdigest()[:16]


def _open_store(opts: RunOptions, meta: dict):
    from drc_jax.store import Store

    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    directory = cache_path("embedding-stores", opts.cache_dir) / f"{meta['kind']}-{key}"
    return Store.open(directory, meta)


@contextlib.contextmanager
def _store(opts: RunOptions, meta: dict):
    """The embedding cache for ``meta`` (a temporary store, forgotten after, without a cache)."""
    import jax

    if not opts.cache_dir:
        from drc_jax.store import Store

        with (
            tempfile.TemporaryDirectory(prefix="drc-embeddings-") as tmp,
            Store.open(tmp, meta) as store,
        ):
            yield store
        return
    if jax.process_count() > 1:
        # Every process gets every embedding (MediaEmbedder split=True) and keeps its own cache.
        meta = {**meta, "process": jax.process_index()}
    try:
        store = _open_store(opts, meta)
    except Exception as e:
        raise UserError(
            f"cannot use the embedding cache under {opts.cache_dir}: {e}. Pass another "
            "--cache_dir, or --cache_dir '' to run without a cache."
        ) from e
    with store:
        yield store


def _fill(store, items: dict[str, str], embed, *, opts: RunOptions, on_error: str, desc: str):
    from drc_jax.store import fill

    return fill(
        store,
        items,
        embed,
        batch_size=opts.batch_size,
        on_error=on_error,
        desc=desc,
        progress=opts.progress,
    )


def media_embedder(clip, bench: Benchmark, opts: RunOptions) -> media.MediaEmbedder:
    """``paths -> (B, D)`` embeddings of ``bench``'s media, as the search index embeds them."""
    return media.MediaEmbedder(
        clip,
        preprocess=opts.preprocess,
        kind=bench.kind,
        video_frames=opts.video_frames,
        video_sampling=opts.video_sampling,
        video_renormalize=False,
        num_workers=min(8, os.cpu_count() or 1),
    )


def encode_media(clip, bench: Benchmark, paths: list[Path], opts: RunOptions, probe=None):
    """:class:`MediaEmbeddings` of ``bench.media`` (files ``paths``); ``probe``: the params probe.

    An unreadable file ends the run, or with ``on_missing_media='skip'`` is marked invalid.
    """
    kind = bench.kind
    meta = {
        "weights": clip.weights_id,
        "params_probe": probe or params_probe(clip),
        "kind": kind,
        "preprocess": opts.preprocess,
        **(
            {
                "frames": opts.video_frames,
                "sampling": opts.video_sampling,
                "mean": "unnormalized",
            }
            if kind == "video"
            else {}
        ),
    }
    mine = [str(p) for p in paths]
    items = {p: media.fingerprint(p) for p in mine}
    on_error = "fail" if opts.on_missing_media == "fail" else "skip"
    from drc_jax.store import ItemError

    embed = media_embedder(clip, bench, opts)
    with _store(opts, meta) as store:
        try:
            report = _fill(
                store,
                items,
                embed,
                opts=opts,
                on_error=on_error,
                desc=f"encoding {kind}s ({clip.weights_id})",
            )
        except ItemError as e:
            raise UserError(
                f"{e.id}: {e.reason}. (--on_missing_media skip evaluates without unreadable files.)"
            ) from e
        finally:
            embed.close()
        failed = {p: r for p, r in report.failed if p in items}
        errors = {i: failed[p] for i, p in enumerate(mine) if p in failed}
        valid = np.asarray([i not in errors for i in range(len(mine))], bool)
        vectors = np.zeros((len(mine), clip.embed_dim), np.float32)
        if valid.any():
            ok = [p for p, good in zip(mine, valid, strict=True) if good]
            vectors[valid] = store.vectors(ok)[1]
    embedded = report.added + report.changed
    stats = {"embedded": embedded, "cached": len(items) - embedded - len(failed)}
    return MediaEmbeddings.of(vectors, valid, errors, stats, kind, unit=True)


def load_image_embeddings(path: str, bench_all: Benchmark, keep_index: list[int]) -> np.ndarray:
    """A precomputed (N, D) array in the CSV's media order, checked finite and non-zero."""
    p = Path(path).expanduser()
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"--image_embeddings {p}: cannot read a .npy array ({e}).") from e
    if arr.ndim != 2 or arr.shape[0] != len(bench_all.media):
        raise UserError(
            f"--image_embeddings {p}: shape {arr.shape}, expected ({len(bench_all.media)}, D): "
            f"one row per media row of {bench_all.csv_path}, in file order."
        )
    arr = arr.astype(np.float32)[keep_index]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if not np.all(np.isfinite(arr)) or np.any(norms == 0):
        raise UserError(f"--image_embeddings {p}: rows with zeros or non-finite values.")
    return arr


def embed_texts(clip, text_sets: dict, opts: RunOptions, probe=None):
    """One :class:`~drc_jax.queries.Queries` per text set (``key -> (rows, strength)``); each
    distinct text is encoded once."""
    from drc_jax.launch.config import replace
    from drc_jax.queries import queries_from_table

    texts = list(dict.fromkeys(t for rows, _ in text_sets.values() for row in rows for t in row))
    meta = {"weights": clip.weights_id, "params_probe": probe or params_probe(clip), "kind": "text"}

    def embed(batch: list[str]) -> np.ndarray:
        return clip.encode_texts(batch)

    with _store(opts, meta) as store:
        report = _fill(
            store,
            {t: t for t in texts},
            embed,
            opts=replace(opts, batch_size=max(opts.batch_size, TEXT_BATCH)),
            on_error="fail",
            desc=f"encoding texts ({clip.weights_id})",
        )
        queries = {
            key: queries_from_table(lambda ts: store.vectors(ts)[1], rows, strength)
            for key, (rows, strength) in text_sets.items()
        }
    embedded = report.added + report.changed
    return queries, {"embedded": embedded, "cached": len(texts) - embedded, "unique": len(texts)}


def long_captions(clip, bench: Benchmark) -> list[dict]:
    """Captions over CLIP's 77 tokens: encoded truncated (as OpenAI CLIP does); reported."""
    out = []
    for q in bench.queries:
        n = clip.count_tokens(q.caption)
        if n > MAX_TOKENS:
            out.append({"line": q.line, "tokens": n, "caption": q.caption})
    return out
