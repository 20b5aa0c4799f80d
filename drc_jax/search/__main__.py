"""``drc-search`` (or ``python -m drc_jax.search``): index folders of images, search with negation.

Commands: index (embed folders), query (search from the shell), serve (a search page that keeps
the index current), export (a parquet table), import (clip-retrieval's output, unencoded).

    drc-search index --images ~/Pictures --index ~/pictures.idx   # re-runs embed only changes
    drc-search query --index ~/pictures.idx "a dog not on a beach" -k 10 [--figure out.png --json]
    drc-search serve --index ~/pictures.idx     # then open http://127.0.0.1:8000
    drc-search export --index ~/pictures.idx --output pictures.parquet
    drc-search import --clip_retrieval OUT --index ~/big.idx --weights openai/clip-vit-base-patch32

``--ann ivf|auto`` keeps a faiss ANN index beside the vectors (``auto``: from 200k images on);
queries re-rank its candidates exactly, or scan everything with ``--exact``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import flags, logging

from drc_jax import atomic, cli, defaults
from drc_jax.clip.load import WeightsUnavailableError
from drc_jax.media import FINGERPRINTS
from drc_jax.scoring import METHODS
from drc_jax.search import ann_file, clip_retrieval
from drc_jax.search.index import DEFAULT_WEIGHTS, build_index, is_random, read_info
from drc_jax.store import Store
from drc_jax.untrusted import printable

FLAGS = flags.FLAGS
flags.DEFINE_string("index", None, "Index directory (created by `index`, read by `query`).")
flags.DEFINE_multi_string(
    "images",
    None,
    "index: folder of images, searched recursively (repeat for several). query/serve: a folder "
    "of the index to search and serve besides those you indexed into it yourself.",
)
cli.define(
    "weights",
    "dtype",
    "preprocess",
    "batch_size",
    "cache_dir",
    "decomposer",
    "sglang_url",
    "sglang_model",
    "progress",
    weights=DEFAULT_WEIGHTS,
    batch_size=None,
    help_suffix={
        "weights": "index/query/serve: default, the weights the index was built with.",
        "preprocess": "(index)",
        "batch_size": "index: images per batch (default 64 per device).",
        "cache_dir": "query: decompositions are cached under it.",
    },
)
cli.define_multihost()
flags.adopt_module_key_flags(cli)  # the shared flags show in --help
flags.DEFINE_enum("fingerprint", "stat", FINGERPRINTS, "index: detect changes by size+mtime|hash.")
flags.DEFINE_bool("reset", False, "index: rebuild an index made with other weights/settings.")
flags.DEFINE_bool("retry_failed", False, "index: retry files that failed before, unchanged.")
flags.DEFINE_bool(
    "follow_symlinks",
    False,
    "index: follow symbolic links to files and folders (a link loop is walked once); by default "
    "links are skipped and listed, or followed if the index's last run followed them.",
)
flags.DEFINE_integer("k", 10, "query: results per query.")
flags.DEFINE_enum("method", "drc", METHODS, "query: scoring method.")
flags.DEFINE_string(
    "decomposition_cache", None, "Deprecated: the LLM decomposition folder (use --cache_dir)."
)
cli.deprecated_flag(
    "decomposition_cache",
    "use --cache_dir (the cache root; decompositions go under its decompositions/). It still "
    "names the decomposition folder itself in this release.",
)
flags.DEFINE_string("queries_file", None, "query: also read queries from this file, one a line.")
flags.DEFINE_bool("json", False, "query: print JSON instead of a table.")
flags.DEFINE_string("figure", None, "query: write a CLIP-vs-method PNG (out.png; out-<i>.png).")
flags.DEFINE_bool(
    "hint_from_path",
    False,
    "query --figure: red border when a result's path names the negated concept, else green.",
)
flags.DEFINE_enum(
    "image_dtype", "bfloat16", ["bfloat16", "float32"], "query/serve: image embeddings on device."
)
flags.DEFINE_bool(
    "compilation_cache",
    True,
    "query/serve: keep compiled XLA programs in JAX's persistent cache (under --cache_dir) so "
    "the next start skips compiling.",
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
    "allow_remote",
    False,
    "serve: allow --host other than loopback (exposes the indexed files); every request then "
    "needs the token printed at start.",
)
flags.DEFINE_multi_string(
    "allowed_host",
    [],
    "serve --allow_remote: a further name clients reach this machine by (repeatable), e.g. a "
    "reverse proxy's; loopback names, --host and this machine's names are accepted anyway.",
)
flags.DEFINE_enum(
    "ann",
    "auto",
    ann_file.MODES,
    "index/import: a faiss ANN index beside the vectors: ivf (build or update it), none (drop "
    "it), auto (from 200k images on, or when the index has one).",
)
flags.DEFINE_bool("exact", False, "query: scan every vector even where the index has an ANN file.")
flags.DEFINE_string("clip_retrieval", None, "import: clip-retrieval's inference output folder.")
flags.DEFINE_string(
    "clip_model",
    clip_retrieval.DEFAULT_MODEL,
    "import: the model clip-retrieval embedded with (its --clip_model: ViT-B/32, hf_clip:<id>); "
    "must be --weights' model.",
)
flags.DEFINE_string(
    "faiss_index", None, "import: a faiss index of the embeddings (default: DIR's image.index)."
)
flags.DEFINE_bool(
    "watch",
    True,
    "serve: watch the indexed folders and index new or changed files in the background "
    "(--nowatch: serve the index as it is; finished `index` runs are still picked up).",
)
flags.DEFINE_enum("format", "parquet", ["parquet"], "export: output format.")
flags.DEFINE_string("output", None, "export: file to write (id, path, hash, embedding).")

COMMANDS = ("index", "query", "serve", "export", "import")
MAX_QUERIES_FILE_BYTES = 16 << 20
USAGE = (
    "drc-search index|query|serve|export|import [flags] [queries...] (or python -m drc_jax.search)"
)


def random_note(weights_id: str) -> str:
    return f"weights are RANDOM ({weights_id}): rankings are meaningless (testing only)"


def run_index() -> int:
    cli.check_folders("images", FLAGS.images)
    if not FLAGS.index:
        raise cli.UserError("index needs --index DIR: where to write the index.")
    cli.check_writable_dir("index", FLAGS.index)
    if FLAGS.batch_size is not None and FLAGS.batch_size < 1:
        raise cli.UserError(f"--batch_size={FLAGS.batch_size}: must be at least 1.")
    from drc_jax.parallel import initialize_distributed

    initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    weights = index_weights()
    clip = cli.load_clip_checked(weights, FLAGS.dtype)
    report = build_index(
        FLAGS.images,
        FLAGS.index,
        weights=weights,
        clip=clip,
        preprocess=FLAGS.preprocess,
        batch_size=FLAGS.batch_size,
        fingerprint_by=FLAGS.fingerprint,
        reset=FLAGS.reset,
        retry_failed=FLAGS.retry_failed,
        progress=FLAGS.progress,
        follow_symlinks=FLAGS.follow_symlinks if FLAGS["follow_symlinks"].present else None,
        ann=FLAGS.ann,
    )
    if is_random(clip.weights_id):
        print(f"NOTE: {random_note(clip.weights_id)}")
    total = report.added + report.changed + report.unchanged
    print(
        f"indexed {', '.join(FLAGS.images)} -> {FLAGS.index} with {clip.weights_id} "
        f"(preprocess {FLAGS.preprocess}): {report.summary()}; {report.embedded} embedded; "
        f"{total} images in the index (files searches cover)"
    )
    if report.failed:
        print(f"{len(report.failed)} file(s) could not be read (not indexed):")
        for id_, reason in report.failed:
            print(f"  {printable(id_)}: {printable(reason)}")
    if report.skipped:
        print(f"{len(report.skipped)} entr(ies) skipped by the walk (not indexed):")
        for id_, reason in report.skipped:
            print(f"  {printable(id_)}: {printable(reason)}")
    return 0


def run_import() -> int:
    if not FLAGS.clip_retrieval or not FLAGS.index:
        raise cli.UserError(
            "import needs --clip_retrieval DIR (clip-retrieval's output) and --index DIR."
        )
    cli.check_folders("clip_retrieval", [FLAGS.clip_retrieval])
    cli.check_writable_dir("index", FLAGS.index)
    clip_retrieval.check_model(FLAGS.clip_model, FLAGS.weights)
    clip = cli.load_clip_checked(FLAGS.weights, FLAGS.dtype)
    n = clip_retrieval.import_clip_retrieval(
        FLAGS.clip_retrieval,
        FLAGS.index,
        clip,
        weights=FLAGS.weights,
        clip_model=FLAGS.clip_model,
        images=(FLAGS.images or [None])[0],
        ann=FLAGS.ann,
        faiss_index=FLAGS.faiss_index,
    )
    with Store.open(FLAGS.index, None) as store:
        meta = ann_file.info(store)
    how = f"ANN {meta['factory']}" if meta else "exact scan (no ANN index)"
    print(f"imported {n} embeddings of {FLAGS.clip_retrieval} -> {FLAGS.index} ({how})")
    return 0


def index_weights() -> str:
    """``--weights`` if given, else an existing index's own (re-indexing keeps its model)."""
    if (
        FLAGS["weights"].present
        or not (Path(FLAGS.index).expanduser() / "catalogue.sqlite").exists()
    ):
        return FLAGS.weights
    from drc_jax.search.index import weights_to_load

    try:
        return weights_to_load(read_info(Path(FLAGS.index).expanduser()))
    except ValueError as e:
        raise cli.UserError(f"--index {FLAGS.index}: {e}") from e


def run_export() -> int:
    from drc_jax.search.export import export_index

    if not FLAGS.index or not FLAGS.output:
        raise cli.UserError("export needs --index DIR and --output FILE.")
    read_info(FLAGS.index)
    try:
        n = export_index(FLAGS.index, FLAGS.output, FLAGS.format)
    except OSError as e:
        said = atomic.advice(e, FLAGS.output, "--output")
        raise cli.UserError(
            f"--output {FLAGS.output}: {said or f'cannot write it ({e.strerror or e})'}."
        ) from e
    print(f"exported {n} files of {FLAGS.index} -> {FLAGS.output} ({FLAGS.format})")
    return 0


def open_decomposer(queries: list[str] | None):
    """The flags' decomposer; an sglang server is checked now unless every query is cached."""
    from drc_jax.decompose import get_decomposer

    if FLAGS.decomposer == "rules":
        return get_decomposer("rules")
    folder = FLAGS.decomposition_cache if FLAGS["decomposition_cache"].present else None
    dec = cli.sglang_decomposer(
        FLAGS.cache_dir, folder, url=FLAGS.sglang_url, model=FLAGS.sglang_model
    )
    if queries is None or dec.cache is None or any(dec.cache.get(q) is None for q in queries):
        try:
            cli.check_sglang_server(FLAGS.sglang_url, FLAGS.sglang_model)
        except cli.UserError:
            dec.close()
            raise
    return dec


def figure_paths(out: str, n: int) -> list[Path]:
    out = Path(out)
    if n == 1:
        return [out]
    suffix = out.suffix or ".png"
    return [out.with_name(f"{out.stem}-{i}{suffix}") for i in range(n)]


def describe(dec) -> str:
    """``dec`` as one terminal line, control bytes stripped."""
    if not dec.negated:
        return "no negation found -> plain CLIP score"
    p = printable
    more = "".join(f' | neg="{p(n)}"' for n in dec.negs[1:])
    head = f'aff="{p(dec.aff)}" | neg="{p(dec.neg)}"{more}'
    return f'{head} | cf="{p(dec.cf)}" | strength={dec.strength}'


def open_searcher(queries: list[str] | None = None, towers: tuple[str, ...] = ("text",)):
    """The opened Searcher; user errors (index, SGLang server) are raised before CLIP loads."""
    from drc_jax.search.query import Searcher

    info = read_info(FLAGS.index)
    decomposer = open_decomposer(queries)
    if FLAGS.compilation_cache and FLAGS.cache_dir:  # --cache_dir '' turns every cache off
        from drc_jax.search.compile_cache import SUBDIR, enable_compilation_cache

        try:
            enable_compilation_cache(defaults.cache_path(SUBDIR, FLAGS.cache_dir))
        except OSError as e:
            decomposer.close()
            raise cli.UserError(
                f"--cache_dir {FLAGS.cache_dir}: cannot keep the compilation cache there ({e}); "
                "pass another --cache_dir, or --nocompilation_cache."
            ) from e
    given = FLAGS["weights"].present
    try:
        searcher = Searcher.open(
            FLAGS.index,
            weights=FLAGS.weights if given else None,
            dtype=FLAGS.dtype,
            decomposer=decomposer,
            image_dtype=FLAGS.image_dtype,
            roots=FLAGS.images or (),
            towers=towers,
        )
    except (OSError, ImportError, WeightsUnavailableError) as e:
        decomposer.close()
        what, advice = (
            (f"--weights {FLAGS.weights}: cannot load these CLIP weights", cli.WEIGHTS_ADVICE)
            if given
            else (
                f"--index {FLAGS.index}: cannot load the CLIP weights it was built with, "
                f"{info.weights!r}",
                "Pass --weights with a local copy of the same weights.",
            )
        )
        raise cli.UserError(f"{what} ({type(e).__name__}: {e}). {advice}") from e
    except BaseException:
        decomposer.close()
        raise
    for root in searcher.unconfirmed_roots:
        print(f"NOTE: not searching {root}: the index lists it but you did not index it here; "
              "pass --images FOLDER to include it", file=sys.stderr)  # fmt: skip
    return searcher


def run_serve() -> int:
    import time

    from drc_jax.search.guard import Access
    from drc_jax.search.server import DEFAULT_K, create_app, exposure_note, is_loopback

    start = time.perf_counter()
    if not FLAGS.index:
        raise cli.UserError("serve needs --index DIR (built by `drc-search index`).")
    if not is_loopback(FLAGS.host) and not FLAGS.allow_remote:
        raise cli.UserError(
            f"--host {FLAGS.host} is not a loopback address: other machines could search and "
            "view every indexed file. Pass --allow_remote to do that on purpose."
        )
    if FLAGS.allowed_host and not FLAGS.allow_remote:
        raise cli.UserError(
            f"--allowed_host {FLAGS.allowed_host}: only other machines use other names; pass "
            "--allow_remote too (every request then needs the token printed at start)."
        )
    cli.check_port(FLAGS.host, FLAGS.port)
    from drc_jax.search.watch import IndexWatcher

    searcher = open_searcher(towers=("text", "image") if FLAGS.watch else ("text",))
    searcher.warm(k=DEFAULT_K)
    import uvicorn

    if FLAGS.allow_remote:  # a token even on loopback: a proxy may forward other machines
        access = Access.remote(FLAGS.host, FLAGS.port, FLAGS.allowed_host)
    else:
        access = Access.loopback(FLAGS.port, FLAGS.host)
    watcher = IndexWatcher(searcher, searcher.clip if FLAGS.watch else None, watch=FLAGS.watch)
    application = create_app(
        searcher, decomposer=FLAGS.decomposer, watcher=watcher.start(), access=access
    )
    if not is_loopback(FLAGS.host):
        print(exposure_note(FLAGS.host, FLAGS.port, searcher), flush=True)
    if searcher.info.random_weights:
        print(f"NOTE: {random_note(searcher.info.weights_id)}", flush=True)
    watching = "watching its folders" if FLAGS.watch else "not watching (--nowatch)"
    print(
        f"serving {searcher.info.index} ({searcher.catalogue.files} images; {watching}) at "
        f"{access.url(FLAGS.host)} (loaded and warmed in "
        f"{time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    try:
        uvicorn.run(application, host=FLAGS.host, port=FLAGS.port, log_level="warning")
    finally:
        watcher.stop()
    return 0


def run_query(queries: list[str]) -> int:
    from drc_jax.search.query import render_search_figure

    if not FLAGS.index:
        raise cli.UserError("query needs --index DIR (built by `drc-search index`).")
    if FLAGS.queries_file:
        lines = cli.read_text_file("queries_file", FLAGS.queries_file, MAX_QUERIES_FILE_BYTES)
        queries += [q.strip() for q in lines.splitlines() if q.strip()]
    if not queries:
        raise cli.UserError('query needs at least one query, e.g. "a dog not on a beach".')
    if FLAGS.k < 1:
        raise cli.UserError(f"--k={FLAGS.k}: must be at least 1.")
    searcher = open_searcher(queries)
    methods = [FLAGS.method]
    if FLAGS.figure and FLAGS.method != "clip":
        methods = ["clip", FLAGS.method]
    from drc_jax.decompose import apply_overrides, decompose_queries

    decompositions = [
        apply_overrides(d, strength=FLAGS.strength)
        for d in decompose_queries(searcher.decomposer, queries, FLAGS.exclude)
    ]
    by_method = searcher.search(
        queries, k=FLAGS.k, methods=methods, decompositions=decompositions, exact=FLAGS.exact
    )
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
                    "images": searcher.catalogue.files,
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
        f"index {info.index}: {searcher.catalogue.files} images, weights {info.weights_id}, "
        f"method {FLAGS.method}, decomposer {FLAGS.decomposer}"
    )
    for res in results:
        print(f'\nquery: "{printable(res.query)}"')
        print(f"  decomposition: {describe(res.decomposition)}")
        how = "exact" if res.exact else f"approximate: {res.candidates} candidates re-ranked"
        print(f"  search: {how}")
        print(f"  {'rank':>4}  {'score':>8}  path")
        for h in res.hits:
            missing = "" if Path(h.path).exists() else "  [file no longer exists]"
            print(f"  {h.rank:>4}  {h.score:>8.4f}  {printable(h.path)}{missing}")
    for f in figures:
        print(f"figure: {printable(f)}")
    return 0


def main(argv: list[str]) -> int:
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep JAX's backend probing off the console
    if len(argv) < 2 or argv[1] not in COMMANDS:
        given = f"unknown command {argv[1]!r}" if len(argv) > 1 else "no command given"
        raise cli.UserError(f"{given}; usage: {USAGE}. --helpshort lists the flags.")
    command, rest = argv[1], argv[2:]
    if command != "query" and rest:
        raise cli.UserError(
            f"{command} takes no positional arguments, got {rest}; queries go to `query`."
        )
    if command == "query":
        return run_query(rest)
    commands = {"index": run_index, "export": run_export, "serve": run_serve, "import": run_import}
    return commands[command]()


# Besides cli.UserError, these exit 2 with their message.
USER_ERRORS = (FileNotFoundError, ValueError, ImportError, ConnectionError)


def run() -> None:
    """The ``drc-search`` console script."""
    script = sys.modules["__main__"]
    if not getattr(script, "__doc__", None):  # absl's --help prints the running script's doc
        script.__doc__ = __doc__
    cli.run(main, USER_ERRORS, __name__)


if __name__ == "__main__":
    run()
