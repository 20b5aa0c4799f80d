"""``python -m drc_jax.search``: index a folder of images, then search it with negation.

    python -m drc_jax.search index --images ~/Pictures --index ~/pictures.idx
    python -m drc_jax.search query --index ~/pictures.idx "a dog not on a beach" -k 10
    python -m drc_jax.search query --index ~/pictures.idx "a dog not on a beach" "no cars" \
        --method drc --decomposer rules --figure out.png --json
    python -m drc_jax.search serve --index ~/pictures.idx     # then open http://127.0.0.1:8000

``index`` embeds every image under --images (recursively) and, on re-runs, only new and changed
files; deleted files leave the index. ``query`` prints rank, score and path per query, with the
decomposition it used; several queries are batched; ``--figure`` draws CLIP's top-k above the
chosen method's (one PNG per query). ``serve`` keeps everything loaded and serves a search page
and a JSON API (``drc_jax/search/server.py``), on 127.0.0.1 unless --allow_remote. Compiled shapes
go to JAX's persistent compilation cache (--compilation_cache), so a second start is faster.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import app, flags, logging

from drc_jax.defaults import SGLANG_URL
from drc_jax.media import FINGERPRINTS
from drc_jax.scoring import METHODS
from drc_jax.search.index import (
    DEFAULT_WEIGHTS,
    PREPROCESS_MODES,
    build_index,
    is_random,
)
from drc_jax.store import StoreError

FLAGS = flags.FLAGS
flags.DEFINE_string("index", None, "Index directory (created by `index`, read by `query`).")
flags.DEFINE_multi_string(
    "images", None, "index: folder of images, searched recursively (repeat for several)."
)
flags.DEFINE_string(
    "weights",
    DEFAULT_WEIGHTS,
    "CLIP weights: HF dir, hub id, OpenAI .pt/.safetensors, or random:<backbone> (tests). "
    "query: defaults to the weights the index was built with.",
)
flags.DEFINE_string("dtype", "float32", "Compute dtype of the CLIP encoders.")
flags.DEFINE_enum("preprocess", "spacevlm", PREPROCESS_MODES, "index: image preprocessing.")
flags.DEFINE_integer("batch_size", None, "index: images per batch (default 64 per device).")
flags.DEFINE_enum("fingerprint", "stat", FINGERPRINTS, "index: detect changes by size+mtime|hash.")
flags.DEFINE_bool("reset", False, "index: rebuild an index made with other weights/settings.")
flags.DEFINE_bool("retry_failed", False, "index: retry files that failed before, unchanged.")
flags.DEFINE_integer("k", 10, "query: results per query.")
flags.DEFINE_enum("method", "drc", METHODS, "query: scoring method.")
flags.DEFINE_enum("decomposer", "rules", ["rules", "sglang"], "query: how queries are decomposed.")
flags.DEFINE_string("sglang_url", SGLANG_URL, "query: SGLang server (sglang).")
flags.DEFINE_string("sglang_model", None, "query: model name served by SGLang (sglang).")
flags.DEFINE_string("decomposition_cache", None, "query: cache dir for LLM decompositions.")
flags.DEFINE_string("queries_file", None, "query: also read queries from this file, one a line.")
flags.DEFINE_bool("json", False, "query: print JSON instead of a table.")
flags.DEFINE_string("figure", None, "query: write a CLIP-vs-method PNG (out.png; out-<i>.png).")
flags.DEFINE_bool(
    "hint_from_path",
    False,
    "query --figure: red border when a result's path names the negated concept, else green.",
)
flags.DEFINE_bool("progress", True, "Show progress bars.")
flags.DEFINE_enum(
    "image_dtype", "bfloat16", ["bfloat16", "float32"], "query/serve: image embeddings on device."
)
flags.DEFINE_bool(
    "compilation_cache",
    True,
    "query/serve: keep compiled XLA programs in JAX's persistent cache (under $DRC_JAX_CACHE or "
    "~/.cache/drc_jax) so the next start skips compiling.",
)
flags.DEFINE_multi_string(
    "exclude", [], "query: a concept to exclude from every query (repeatable), like '-term'."
)
flags.DEFINE_enum(
    "strength", None, ["weak", "moderate", "strong"], "query: negation strength override."
)
flags.DEFINE_string("host", "127.0.0.1", "serve: interface to bind (loopback by default).")
flags.DEFINE_integer("port", 8000, "serve: port.")
flags.DEFINE_bool(
    "allow_remote", False, "serve: allow --host other than loopback (exposes the indexed files)."
)
flags.DEFINE_enum("format", "parquet", ["parquet"], "export: output format.")
flags.DEFINE_string("output", None, "export: file to write (id, path, hash, embedding).")

USAGE = "usage: python -m drc_jax.search index|query|serve|export [flags] [queries...]"
COMMANDS = ("index", "query", "serve", "export")


def random_note(weights_id: str) -> str:
    return f"weights are RANDOM ({weights_id}): rankings are meaningless (testing only)"


def run_index() -> int:
    if not FLAGS.images or not FLAGS.index:
        raise app.UsageError("index needs --images DIR and --index PATH")
    from drc_jax.clip import load_clip

    clip = load_clip(FLAGS.weights, dtype=FLAGS.dtype)
    report = build_index(
        FLAGS.images,
        FLAGS.index,
        weights=FLAGS.weights,
        clip=clip,
        preprocess=FLAGS.preprocess,
        batch_size=FLAGS.batch_size,
        fingerprint_by=FLAGS.fingerprint,
        reset=FLAGS.reset,
        retry_failed=FLAGS.retry_failed,
        progress=FLAGS.progress,
    )
    if is_random(clip.weights_id):
        print(f"NOTE: {random_note(clip.weights_id)}")
    total = report.added + report.changed + report.unchanged
    print(
        f"indexed {', '.join(FLAGS.images)} -> {FLAGS.index} with {clip.weights_id} "
        f"(preprocess {FLAGS.preprocess}): {report.summary()}; {report.embedded} embedded; "
        f"{total} images in the index"
    )
    if report.failed:
        print(f"{len(report.failed)} file(s) could not be read (not indexed):")
        for id_, reason in report.failed:
            print(f"  {id_}: {reason}")
    return 0


def run_export() -> int:
    from drc_jax.search.export import export_index

    if not FLAGS.index or not FLAGS.output:
        raise app.UsageError("export needs --index PATH and --output FILE")
    n = export_index(FLAGS.index, FLAGS.output, FLAGS.format)
    print(f"exported {n} files of {FLAGS.index} -> {FLAGS.output} ({FLAGS.format})")
    return 0


def figure_paths(out: str, n: int) -> list[Path]:
    out = Path(out)
    if n == 1:
        return [out]
    suffix = out.suffix or ".png"
    return [out.with_name(f"{out.stem}-{i}{suffix}") for i in range(n)]


def describe(dec) -> str:
    if not dec.negated:
        return "no negation found -> plain CLIP score"
    return f'aff="{dec.aff}" | neg="{dec.neg}" | cf="{dec.cf}" | strength={dec.strength}'


def decomposer_options() -> dict:
    options = {}
    if FLAGS.decomposer == "sglang":
        options = {"url": FLAGS.sglang_url, "model": FLAGS.sglang_model}
        if FLAGS.decomposition_cache:
            options["cache_dir"] = FLAGS.decomposition_cache
    return options


def open_searcher():
    from drc_jax.search.query import Searcher

    if FLAGS.compilation_cache:
        from drc_jax.search.compile_cache import enable_compilation_cache

        enable_compilation_cache()
    return Searcher.open(
        FLAGS.index,
        weights=FLAGS.weights if FLAGS["weights"].present else None,
        dtype=FLAGS.dtype,
        decomposer=FLAGS.decomposer,
        decomposer_options=decomposer_options(),
        image_dtype=FLAGS.image_dtype,
    )


def run_serve() -> int:
    import time

    from drc_jax.search.index import read_info
    from drc_jax.search.server import create_app, exposure_note, is_loopback

    start = time.perf_counter()
    if not FLAGS.index:
        raise app.UsageError("serve needs --index PATH")
    if not is_loopback(FLAGS.host) and not FLAGS.allow_remote:
        raise app.UsageError(
            f"--host {FLAGS.host} is not a loopback address: other machines could search and "
            "view every indexed file. Pass --allow_remote to do that on purpose."
        )
    read_info(FLAGS.index)  # a missing index is reported before anything slow loads
    searcher = open_searcher()
    searcher.warm()
    import uvicorn

    application = create_app(searcher, decomposer=FLAGS.decomposer)
    if not is_loopback(FLAGS.host):
        print(exposure_note(FLAGS.host, FLAGS.port, searcher), flush=True)
    if searcher.info.random_weights:
        print(f"NOTE: {random_note(searcher.info.weights_id)}", flush=True)
    print(
        f"serving {searcher.info.index} ({len(searcher.store)} images) at "
        f"http://{FLAGS.host}:{FLAGS.port}/ (loaded and warmed in "
        f"{time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    uvicorn.run(application, host=FLAGS.host, port=FLAGS.port, log_level="warning")
    return 0


def run_query(queries: list[str]) -> int:
    from drc_jax.search.query import render_search_figure

    if not FLAGS.index:
        raise app.UsageError("query needs --index PATH")
    if FLAGS.queries_file:
        lines = Path(FLAGS.queries_file).read_text().splitlines()
        queries += [q.strip() for q in lines if q.strip()]
    if not queries:
        raise app.UsageError('query needs at least one query, e.g. "a dog not on a beach"')
    searcher = open_searcher()
    methods = [FLAGS.method]
    if FLAGS.figure and FLAGS.method != "clip":
        methods = ["clip", FLAGS.method]  # CLIP's row above the method's, as in the paper
    from drc_jax.decompose import apply_overrides, decompose_queries

    decompositions = [
        apply_overrides(d, strength=FLAGS.strength)
        for d in decompose_queries(searcher.decomposer, queries, FLAGS.exclude)
    ]
    by_method = searcher.search(queries, k=FLAGS.k, methods=methods, decompositions=decompositions)
    results = by_method[FLAGS.method]
    info = searcher.info
    random = info.random_weights
    figures = []
    if FLAGS.figure:
        warning = random_note(info.weights_id) if random else ""
        for qi, path in enumerate(figure_paths(FLAGS.figure, len(queries))):
            per_method = {m: by_method[m][qi] for m in methods}
            figures.append(
                str(
                    render_search_figure(
                        path, per_method, hint_from_path=FLAGS.hint_from_path, warning=warning
                    )
                )
            )
    if FLAGS.json:
        if random:
            print(f"NOTE: {random_note(info.weights_id)}", file=sys.stderr)
        print(
            json.dumps(
                {
                    "index": str(info.index),
                    "images": len(searcher.store),
                    "weights": info.weights,
                    "weights_id": info.weights_id,
                    "random_weights": random,
                    "method": FLAGS.method,
                    "decomposer": FLAGS.decomposer,
                    "decomposer_stats": dict(getattr(searcher.decomposer, "stats", {}) or {}),
                    "results": [r.to_dict() for r in results],
                    "figures": figures,
                },
                indent=2,
            )
        )
        return 0
    if random:
        print(f"NOTE: {random_note(info.weights_id)}")
    print(
        f"index {info.index}: {len(searcher.store)} images, weights {info.weights_id}, "
        f"method {FLAGS.method}, decomposer {FLAGS.decomposer}"
    )
    for res in results:
        print(f'\nquery: "{res.query}"')
        print(f"  decomposition: {describe(res.decomposition)}")
        print(f"  {'rank':>4}  {'score':>8}  path")
        for h in res.hits:
            missing = "" if Path(h.path).exists() else "  [file no longer exists]"
            print(f"  {h.rank:>4}  {h.score:>8.4f}  {h.path}{missing}")
    for f in figures:
        print(f"figure: {f}")
    return 0


def main(argv: list[str]) -> int:
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep JAX's backend probing off the console
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(USAGE)
    command, rest = argv[1], argv[2:]
    try:
        if command in ("index", "export"):
            if rest:
                raise app.UsageError(f"{command} takes no positional arguments, got {rest}")
            return run_index() if command == "index" else run_export()
        if command == "serve":
            if rest:
                raise app.UsageError(f"serve takes no positional arguments, got {rest}")
            return run_serve()
        return run_query(rest)
    except (StoreError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    app.run(main)
