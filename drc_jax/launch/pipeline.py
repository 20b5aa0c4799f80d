"""The benchmark pipeline: data -> encode -> decompose -> score -> metrics -> report.

One run encodes each medium and each text once per backbone (cached on disk by
:class:`~drc_jax.store.EmbeddingStore`, keyed by weights, dtype, preprocessing and file), decomposes
every caption once, then scores every variant of the config on the same embeddings with the image
set sharded over all devices (:func:`drc_jax.scoring.top_k` with a mesh). In multi-host runs every
process reads the same inputs and the encoders and top-k compute on their own devices' shards;
process 0 writes the outputs.

Everything the user can get wrong raises :class:`LaunchError` (or a data/config error) with the
file, row and what to do; ``__main__`` turns those into a message and a non-zero exit.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from drc_jax.data.negbench import DATASETS, Benchmark, load_benchmark
from drc_jax.data.synthetic import load_synthetic
from drc_jax.launch.decomposition import decompose
from drc_jax.launch.encode import (
    MAX_TOKENS,
    embed_texts,
    encode_media,
    load_backbone,
    load_image_embeddings,
    long_captions,
    media_embedder,
    params_probe,
)
from drc_jax.launch.errors import LaunchError
from drc_jax.launch.evaluate import save_rankings, score_all
from drc_jax.launch.options import BENCHMARKS, SYNTHETIC, RunOptions
from drc_jax.media import MediaIndex

__all__ = [
    "LaunchError",
    "RunOptions",
    "check_captions",
    "decompose",
    "load_backbone",
    "load_data",
    "media_embedder",
    "resolve_media",
    "run",
]

log = logging.getLogger("drc_jax.launch")


def _build_synthetic_once(root: Path, kind: str, opts: RunOptions) -> Benchmark:
    """Render the synthetic set in process 0 only; the others wait, then read it."""
    import jax

    if jax.process_count() == 1:
        return load_synthetic(root, kind, opts.synthetic)
    from jax.experimental import multihost_utils

    if jax.process_index() == 0:
        load_synthetic(root, kind, opts.synthetic)
    multihost_utils.sync_global_devices("drc_jax.launch: synthetic set rendered")
    return load_synthetic(root, kind, opts.synthetic)


def load_data(opts: RunOptions) -> tuple[Benchmark, Path]:
    """The benchmark and the directory its media live under."""
    if opts.benchmark in SYNTHETIC:
        root = Path(opts.data_dir or Path(opts.cache_dir or opts.output_dir) / "synthetic_data")
        root = root.expanduser()
        kind = "image" if opts.benchmark == "synthetic" else "video"
        bench = _build_synthetic_once(root, kind, opts)
        if opts.limit:
            bench = bench.subset(set(range(min(opts.limit, len(bench.media)))))
        return bench, root
    if opts.benchmark not in DATASETS:
        raise LaunchError(f"unknown --benchmark {opts.benchmark!r}; expected one of {BENCHMARKS}")
    info = DATASETS[opts.benchmark]
    bench = load_benchmark(opts.benchmark, opts.captions_csv, limit=opts.limit)
    if not opts.data_dir:
        raise LaunchError(
            f"--benchmark {opts.benchmark} needs --data_dir: the directory holding the "
            f"{info.media}, from {info.media_url}; expected layout: {info.layout}."
        )
    root = Path(opts.data_dir).expanduser()
    if not root.is_dir():
        raise LaunchError(
            f"--data_dir {root} does not exist. {info.name} needs the {info.media}: download "
            f"{info.media_url} and unpack it there; expected layout: {info.layout}."
        )
    return bench, root


def check_captions(bench: Benchmark, opts: RunOptions) -> tuple[Benchmark, list[dict]]:
    """Empty captions fail the run, or are dropped (``--on_bad_caption skip``) or kept and
    scored as NegBench scores them (``keep``: the query is just the "A photo of" prefix).

    NegBench's own COCO file has a few empty captions; ``keep`` reproduces its query count.
    """
    bad = [q for q in bench.queries if not q.caption.strip()]
    if not bad or opts.on_bad_caption == "keep":
        return bench, []
    where = ", ".join(f"line {q.line}" for q in bad[:5]) + (" ..." if len(bad) > 5 else "")
    if opts.on_bad_caption != "skip":
        raise LaunchError(
            f"{bench.csv_path}: {len(bad)} empty caption(s) at {where}. Fix the CSV, or pass "
            "--on_bad_caption skip to leave them out, or --on_bad_caption keep to score them "
            "as NegBench does (as the bare prompt 'A photo of')."
        )
    keep = tuple(q for q in bench.queries if q.caption.strip())
    if not keep:
        raise LaunchError(f"{bench.csv_path}: every caption is empty; nothing to evaluate.")
    skipped = [{"line": q.line, "caption": q.caption, "reason": "empty caption"} for q in bad]
    return dataclasses.replace(bench, queries=keep), skipped


def resolve_media(bench: Benchmark, root: Path, opts: RunOptions):
    """Paths of the media (None where missing) and the skipped list, per --on_missing_media."""
    index = MediaIndex(root)
    paths = [index.find(m.recorded_path) for m in bench.media]
    missing = [i for i, p in enumerate(paths) if p is None]
    if not missing:
        return bench, paths, []
    info = DATASETS.get(bench.name)
    names = ", ".join(
        f"{bench.media[i].file_name} (line {bench.media[i].line})" for i in missing[:5]
    )
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    if opts.on_missing_media != "skip" or len(missing) == len(bench.media):
        get = f" Get the {info.media} from {info.media_url} ({info.layout})." if info else ""
        raise LaunchError(
            f"{len(missing)} of {len(bench.media)} media file(s) of {bench.csv_path} not found "
            f"under {root}: {names}{more}.{get} Or pass --on_missing_media skip to evaluate "
            "without them."
            + (" (Every file is missing: check --data_dir.)" if len(missing) == len(paths) else "")
        )
    skipped = [
        {"file": bench.media[i].file_name, "line": bench.media[i].line, "reason": "not found"}
        for i in missing
    ]
    keep = set(range(len(paths))) - set(missing)
    return bench.subset(keep), [p for p in paths if p is not None], skipped


def encode_backbones(opts, backbones, clips, bench_all, bench, paths, decompositions, timing):
    """Per backbone: media embeddings (N, D; NaN rows for unreadable media) and Queries.

    Each medium and text is encoded once per backbone (and cached); every variant of the
    config is then scored on these arrays. Returns (encoded, failures, encoding stats,
    over-long captions).
    """
    encoded, failures, encoding, long = {}, {}, {}, []
    for weights in backbones:
        clip = clips.pop(weights, None) or load_backbone(weights, opts.dtype)
        if not long:
            long = long_captions(clip, bench)
        probe = params_probe(clip)
        if opts.image_embeddings:
            kept = {m.line for m in bench.media}
            keep_index = [i for i, m in enumerate(bench_all.media) if m.line in kept]
            emb = load_image_embeddings(opts.image_embeddings, bench_all, keep_index)
            mstats = {"precomputed": opts.image_embeddings}
            if emb.shape[1] != clip.embed_dim:
                raise LaunchError(
                    f"--image_embeddings {opts.image_embeddings}: width {emb.shape[1]}, but "
                    f"{weights} embeds to {clip.embed_dim}."
                )
        else:
            emb, failed, mstats = encode_media(clip, bench, paths, opts, timing, probe)
            failures.update(failed)
        queries, tstats = embed_texts(clip, decompositions, opts, timing, probe)
        encoded[weights] = (emb, queries)
        encoding[weights] = {"weights_id": clip.weights_id, "media": mstats, "texts": tstats}
        del clip
    return encoded, failures, encoding, long


def drop_unreadable(bench, paths, decompositions, encoded, failures, root):
    """Drop media that failed to decode (``--on_missing_media skip``) and their queries."""
    bad = set()
    for emb, _ in encoded.values():
        bad |= set(np.flatnonzero(~np.isfinite(emb).all(axis=1)).tolist())
    if not bad:
        return bench, paths, decompositions, encoded, []
    skipped = [
        {
            "file": bench.media[i].file_name,
            "line": bench.media[i].line,
            "reason": failures.get(str(paths[i]), "unreadable"),
        }
        for i in sorted(bad)
    ]
    keep = sorted(set(range(len(paths))) - bad)
    if not keep:
        raise LaunchError(f"no readable media left in {root}; see the errors above.")
    kept_q = [i for i, q in enumerate(bench.queries) if q.gt not in bad]
    encoded = {
        w: (emb[keep], queries.take(np.asarray(kept_q))) for w, (emb, queries) in encoded.items()
    }
    return (
        bench.subset(set(keep)),
        [paths[i] for i in keep],
        [decompositions[i] for i in kept_q],
        encoded,
        skipped,
    )


def run(opts: RunOptions) -> dict:
    """Run the whole benchmark; write results.json / results.md (process 0); return results."""
    import jax

    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    config = opts.config
    default_weights = opts.resolved_weights
    backbones = config.backbones(default_weights)
    if opts.image_embeddings and len(backbones) > 1:
        raise LaunchError(
            f"--image_embeddings gives one backbone's embeddings, but config {config.name!r} "
            f"uses {len(backbones)} backbones ({backbones})."
        )

    t0 = time.perf_counter()
    bench_all, root = load_data(opts)
    bench, skipped_captions = check_captions(bench_all, opts)
    bench, paths, skipped = resolve_media(bench, root, opts)
    timing["load_data_s"] = time.perf_counter() - t0
    log.info(
        "%s: %d queries over %d %ss", bench.name, len(bench.queries), len(bench.media), bench.kind
    )

    # Load the first backbone before decomposing: unreachable weights fail fast.
    clips = {backbones[0]: load_backbone(backbones[0], opts.dtype)}
    decompositions, decomposition_stats = decompose(
        [q.caption for q in bench.queries], opts, timing
    )

    encoded, failures, encoding, long = encode_backbones(
        opts, backbones, clips, bench_all, bench, paths, decompositions, timing
    )
    warnings = []
    if long:
        warnings.append(
            f"{len(long)} caption(s) exceed CLIP's {MAX_TOKENS} tokens and were truncated, e.g. "
            f"{bench.csv_path} line {long[0]['line']} ({long[0]['tokens']} tokens)."
        )
        log.warning(warnings[-1])
    bench, paths, decompositions, encoded, unreadable = drop_unreadable(
        bench, paths, decompositions, encoded, failures, root
    )
    skipped += unreadable
    for s in skipped:
        log.warning("skipped %s (line %s): %s", s["file"], s["line"], s["reason"])
    methods, tops, coverage = score_all(config, default_weights, encoded, bench, opts, timing)

    config_json = {
        **config.to_json(),
        "backbones": backbones,
        "random_weights": any(w.startswith("random") for w in backbones),
        **{
            k: v
            for k, v in dataclasses.asdict(opts).items()
            if k not in ("config", "progress", "synthetic")
        },
        "weights": default_weights,
        **({"synthetic": dataclasses.asdict(opts.synthetic)} if bench.name in SYNTHETIC else {}),
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "platform": jax.devices()[0].platform,
    }
    timing["total_s"] = time.perf_counter() - t_start
    results = {
        "benchmark": opts.benchmark,
        "benchmark_name": DATASETS[bench.name].name if bench.name in DATASETS else bench.name,
        "media_kind": bench.kind,
        "num_media": len(bench.media),
        "num_queries": len(bench.queries),
        "captions_csv": str(bench.csv_path),
        "config": config_json,
        "methods": methods,
        "decomposition": decomposition_stats,
        "encoding": encoding,
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "skipped": skipped,
        "skipped_captions": skipped_captions,
        "long_captions": long,
        "warnings": warnings,
    }
    if coverage is not None:
        results["negated_object_coverage"] = coverage

    if jax.process_index() == 0:
        from drc_jax.launch import report

        report.write(opts.output_dir, results)
        save_rankings(opts.output_dir, bench, tops)
        if opts.figures:
            from drc_jax.launch.samples import render_samples

            results["figures"] = render_samples(opts, bench, paths, decompositions, tops, config)
            report.write(opts.output_dir, results)
    return results
