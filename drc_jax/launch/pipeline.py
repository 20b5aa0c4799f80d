"""The benchmark pipeline: data -> decompose -> encode -> score -> report.

Media and texts are encoded once per backbone (cached by :class:`~drc_jax.store.Store`) and every
row of the table is ranked on them by :func:`drc_jax.retrieval.top_k` over all devices; process 0
writes the outputs. User mistakes raise :class:`drc_jax.errors.UserError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from drc_jax import atomic
from drc_jax.cli import load_clip_checked
from drc_jax.data.negbench import DATASETS, Benchmark, load_benchmark
from drc_jax.data.synthetic import load_synthetic
from drc_jax.errors import UserError
from drc_jax.launch import neat_rows, record, report
from drc_jax.launch.config import (
    BENCHMARKS,
    SYNTHETIC,
    RunOptions,
    output_dir,
    resolved_weights,
    synthetic_spec,
    table,
)
from drc_jax.launch.decomposition import decompose
from drc_jax.launch.encode import (
    MAX_TOKENS,
    embed_texts,
    encode_media,
    load_image_embeddings,
    long_captions,
    media_embedder,
    params_probe,
)
from drc_jax.launch.evaluate import evaluated_queries, rankings_npz, readable, score_all
from drc_jax.launch.stages import Corpus, Decomposed, Encoded, MediaEmbeddings, Texts
from drc_jax.media import MediaIndex
from drc_jax.texts import text_set, texts_of

__all__ = [
    "check_captions",
    "check_output_dir",
    "decompose",
    "load_clip_checked",
    "load_corpus",
    "media_embedder",
    "run",
]

log = logging.getLogger("drc_jax.launch")
MAX_RESULTS_BYTES = 64 << 20  # an earlier results.json is read only up to this


def check_output_dir(opts: RunOptions) -> Path:
    """The output directory, created; it must take files and hold no other config's results."""
    out = output_dir(opts)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as e:
        said = atomic.advice(e, out, "--output_dir")
        raise UserError(
            f"--output_dir {out}: {said}."
            if said
            else f"--output_dir {out}: cannot write there ({e.strerror or e}). Pass a directory "
            "you can write to (it is created if missing)."
        ) from e
    if not opts.overwrite:
        _check_same_run(out, opts)
    return out


def _check_same_run(out: Path, opts: RunOptions) -> None:
    """Results already in ``out`` are of this config and benchmark (a re-run replaces them)."""
    found = out / "results.json"
    if not found.is_file() or found.is_symlink():
        return
    try:
        with open(found, "rb") as f:
            old = json.loads(f.read(MAX_RESULTS_BYTES))
        theirs = (old["config"]["name"], old["benchmark"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        theirs = ("<unreadable>", "<unknown>")
    ours = (opts.name, opts.benchmark)
    if tuple(theirs) != ours:
        raise UserError(
            f"--output_dir {out} holds the results of config {theirs[0]!r} on benchmark "
            f"{theirs[1]!r} ({found}); this run (config {ours[0]!r} on {ours[1]!r}) would "
            "replace them. Choose another --output_dir, or pass --overwrite to replace them."
        )


def write_outputs(out: Path, files: dict) -> None:
    """The run's outputs into ``out`` as one atomic step; a full or read-only disk is said so."""
    try:
        atomic.write_all(out, files)
    except OSError as e:
        said = atomic.advice(e, out, "--output_dir")
        raise UserError(
            f"--output_dir {out}: {said or f'cannot write the results ({e})'}; the results "
            "already there (if any) are unchanged."
        ) from e


def _build_synthetic_once(root: Path, kind: str, opts: RunOptions) -> Benchmark:
    """Render the synthetic set in process 0 only; the others wait, then read it."""
    import jax

    spec = synthetic_spec(opts)
    plain = opts.query_kind == "plain"
    if jax.process_count() == 1:
        return load_synthetic(root, kind, spec, plain=plain)
    from jax.experimental import multihost_utils

    if jax.process_index() == 0:
        load_synthetic(root, kind, spec, plain=plain)
    multihost_utils.sync_global_devices("drc_jax.launch: synthetic set rendered")
    return load_synthetic(root, kind, spec, plain=plain)


def _load_benchmark(opts: RunOptions) -> tuple[Benchmark, Path]:
    """The benchmark as read (every CSV row) and the directory its media live under."""
    if opts.benchmark in SYNTHETIC:
        base = opts.data_dir or Path(opts.cache_dir or output_dir(opts)) / "synthetic_data"
        root = Path(base).expanduser()
        kind = "image" if opts.benchmark == "synthetic" else "video"
        bench = _build_synthetic_once(root, kind, opts)
        if opts.limit:
            bench = bench.subset(set(range(min(opts.limit, len(bench.media)))))
        return bench, root
    if opts.benchmark not in DATASETS:
        raise UserError(f"unknown --benchmark {opts.benchmark!r}; expected one of {BENCHMARKS}")
    info = DATASETS[opts.benchmark]
    bench = load_benchmark(opts.benchmark, opts.captions_csv, limit=opts.limit)
    if not opts.data_dir:
        raise UserError(
            f"--benchmark {opts.benchmark} needs --data_dir: the directory holding the "
            f"{info.media}, from {info.media_url}; expected layout: {info.layout}."
        )
    root = Path(opts.data_dir).expanduser()
    if not root.is_dir():
        raise UserError(
            f"--data_dir {root} does not exist. {info.name} needs the {info.media}: download "
            f"{info.media_url} and unpack it there; expected layout: {info.layout}."
        )
    return bench, root


def check_captions(bench: Benchmark, opts: RunOptions) -> tuple[Benchmark, list[dict]]:
    """Empty captions fail the run, or are dropped (``skip``) or kept (``keep``: NegBench's COCO
    query count, each row encoding the empty caption with its own prefix)."""
    bad = [q for q in bench.queries if not q.caption.strip()]
    if not bad or opts.on_bad_caption == "keep":
        return bench, []
    where = ", ".join(f"line {q.line}" for q in bad[:5]) + (" ..." if len(bad) > 5 else "")
    if opts.on_bad_caption != "skip":
        raise UserError(
            f"{bench.csv_path}: {len(bad)} empty caption(s) at {where}. Fix the CSV, or pass "
            "--on_bad_caption skip to leave them out, or --on_bad_caption keep to score them "
            "as NegBench does (kept in the query count, encoded as they are)."
        )
    keep = tuple(q for q in bench.queries if q.caption.strip())
    if not keep:
        raise UserError(f"{bench.csv_path}: every caption is empty; nothing to evaluate.")
    skipped = [{"line": q.line, "caption": q.caption, "reason": "empty caption"} for q in bad]
    return dataclasses.replace(bench, queries=keep), skipped


def load_corpus(opts: RunOptions) -> tuple[Corpus, Benchmark]:
    """The data stage: the :class:`Corpus`, and the benchmark as read (every CSV row)."""
    read, root = _load_benchmark(opts)
    bench, skipped_captions = check_captions(read, opts)
    index = MediaIndex(root)
    paths = [index.find(m.recorded_path) for m in bench.media]
    corpus = Corpus(bench, tuple(paths), root, skipped_captions=tuple(skipped_captions))
    missing = [i for i, p in enumerate(paths) if p is None]
    if not missing:
        return corpus, read
    info = DATASETS.get(bench.name)
    names = ", ".join(
        f"{bench.media[i].file_name} (line {bench.media[i].line})" for i in missing[:5]
    )
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    if opts.on_missing_media != "skip" or len(missing) == len(bench.media):
        get = f" Get the {info.media} from {info.media_url} ({info.layout})." if info else ""
        raise UserError(
            f"{len(missing)} of {len(bench.media)} media file(s) of {bench.csv_path} not found "
            f"under {root}: {names}{more}.{get} Or pass --on_missing_media skip to evaluate "
            "without them."
            + (" (Every file is missing: check --data_dir.)" if len(missing) == len(paths) else "")
        )
    corpus, _ = corpus.without_media(dict.fromkeys(missing, "not found"))
    if not corpus.bench.queries:
        raise UserError(f"no query of {bench.csv_path} has its media under {root}.")
    return corpus, read


def row_texts(rows, corpus: Corpus, read: Benchmark, decomposed: Decomposed, opts) -> Texts:
    """What every row scores (:mod:`drc_jax.texts`), computed once for all backbones."""
    split = None
    if any(v.split for v in rows.variants):
        from drc_jax.data.negbench import DataError
        from drc_jax.data.spacevlm_split import load_spacevlm_split

        try:
            split = load_spacevlm_split(opts.spacevlm_split, read)
        except DataError as e:
            raise UserError(f"--config.spacevlm_split: {e}") from e
    sets = {}
    for v in rows.variants:
        if v.method != "neat":
            key = text_set(v)
            if key not in sets:
                sets[key] = texts_of(key, decomposed.per_query, corpus.bench.queries, split)
    neat_variants = [v for v in rows.variants if v.method == "neat"]
    csv = neat_rows.load_csv(opts, read) if neat_variants else None
    neat = {
        v.name: neat_rows.row_texts(v, decomposed.per_query, corpus.bench.queries, csv)
        for v in neat_variants
    }
    return Texts(
        sets, {k: t for k, (t, _) in neat.items()}, {k: src for k, (_, src) in neat.items()}
    )


def encode(
    opts: RunOptions,
    weights: str,
    clip,
    corpus: Corpus,
    read: Benchmark,
    texts: Texts,
    watch,
    neat_variants=(),
) -> Encoded:
    """The encode stage for one backbone: media (or ``--image_embeddings``), texts, NEAT rows."""
    probe = params_probe(clip)
    bench = corpus.bench
    with watch(f"encode_{bench.kind}s"):
        if opts.image_embeddings:
            kept = {m.line for m in bench.media}
            keep_index = [i for i, m in enumerate(read.media) if m.line in kept]
            vectors = load_image_embeddings(opts.image_embeddings, read, keep_index)
            if vectors.shape[1] != clip.embed_dim:
                raise UserError(
                    f"--image_embeddings {opts.image_embeddings}: width {vectors.shape[1]}, but "
                    f"{weights} embeds to {clip.embed_dim}."
                )
            valid = np.ones(len(vectors), bool)  # load_image_embeddings refuses non-finite rows
            stats = {"precomputed": opts.image_embeddings}
            media = MediaEmbeddings.of(vectors, valid, {}, stats, bench.kind)
        else:
            media = encode_media(clip, bench, list(corpus.paths), opts, probe)
    with watch("encode_texts"):
        queries, text_stats = embed_texts(clip, texts.sets, opts, probe)
    neat = {}
    if neat_variants:
        with watch("neat"):
            neat = neat_rows.adapt(clip, neat_variants, texts, media, opts)
    return Encoded(weights, clip.weights_id, media, queries, text_stats, probe, neat)


class _Stopwatch:
    """Seconds per stage, summed over repeats (two backbones add up their encoding)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            key = f"{stage}_s"
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0


def run(opts: RunOptions) -> dict:
    """Run the whole benchmark; write results.json / results.md (process 0); return results."""
    import jax

    t_start = time.perf_counter()
    watch = _Stopwatch()
    rows = table(opts)
    default_weights = resolved_weights(opts)
    backbones = rows.backbones(default_weights)
    if opts.image_embeddings and len(backbones) > 1:
        raise UserError(
            f"--image_embeddings gives one backbone's embeddings, but config {opts.name!r} "
            f"uses {len(backbones)} backbones ({backbones})."
        )
    writer = jax.process_index() == 0
    if writer:
        check_output_dir(opts)

    with watch("load_data"):
        corpus, read = load_corpus(opts)
    bench = corpus.bench
    log.info(
        "%s: %d queries over %d %ss", bench.name, len(bench.queries), len(bench.media), bench.kind
    )

    # Load the first backbone before decomposing: unreachable weights fail fast.
    clips = {backbones[0]: load_clip_checked(backbones[0], opts.dtype)}
    with watch("decompose"):
        decomposed = decompose([q.caption for q in bench.queries], opts)

    texts = row_texts(rows, corpus, read, decomposed, opts)

    encoded, long = [], []
    for weights in backbones:
        clip = clips.pop(weights, None) or load_clip_checked(weights, opts.dtype)
        if not long:
            long = long_captions(clip, bench)
        neat_variants = [
            v for v in rows.variants
            if v.method == "neat" and (v.weights or default_weights) == weights
        ]  # fmt: skip
        encoded.append(encode(opts, weights, clip, corpus, read, texts, watch, neat_variants))
        del clip
    warnings = []
    if long:
        warnings.append(
            f"{len(long)} caption(s) exceed CLIP's {MAX_TOKENS} tokens and were truncated, e.g. "
            f"{bench.csv_path} line {long[0]['line']} ({long[0]['tokens']} tokens)."
        )
        log.warning(warnings[-1])

    valid = readable(encoded)
    if not valid.any() or not evaluated_queries(bench, valid).any():
        raise UserError(f"no readable media left in {corpus.root}; see the errors above.")
    for s in report.unreadable(corpus, encoded):
        log.warning("skipped %s (line %s): %s", s["file"], s["line"], s["reason"])
    with watch("score"):
        rankings = score_all(rows, default_weights, encoded, corpus.bench, opts)

    extra = {"long_captions": long, "warnings": warnings}
    if writer and opts.figures:
        from drc_jax.launch.samples import render_samples

        extra["figures"] = render_samples(opts, corpus, decomposed.per_query, rankings)
    timing = {**watch.seconds, "total_s": time.perf_counter() - t_start}
    row_records = {
        name: neat_rows.record(run, texts.neat_source[name])
        for e in encoded
        for name, run in e.neat.items()
    }
    results = report.build(
        opts,
        rows,
        corpus,
        decomposed,
        encoded,
        rankings,
        timing=timing,
        extra=extra,
        row_records=row_records,
    )
    results["environment"] = record.environment()
    results["inputs"] = record.inputs(opts, corpus, read, encoded)
    if writer:
        evaluated = evaluated_queries(bench, valid)
        files = {
            **report.files(results),
            "decompositions.jsonl": record.decompositions_jsonl(
                rows, corpus, decomposed, texts, evaluated
            ),
            "rankings.npz": rankings_npz(bench, rankings, valid),
        }
        write_outputs(output_dir(opts), files)
    return results
