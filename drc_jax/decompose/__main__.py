"""``python -m drc_jax.decompose [--backend rules|sglang] [QUERY ...] [< captions.txt] > out.jsonl``

Decomposes the queries given as arguments, or else one caption per line on stdin, and writes
one JSON object per line on stdout (fields: caption, negated, aff, neg, cf, strength, negs), in
the same order. Stats go to stderr.

Search-box syntax: ``"cat -sofa"`` names a negated concept directly (put ``--`` before a query
that starts with ``-``: ``python -m drc_jax.decompose -- "-snow mountain road"``), and
``--exclude sofa`` adds one to every query.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from drc_jax.decompose import BACKENDS, get_decomposer, write_decompositions_jsonl
from drc_jax.decompose.sglang import MODES, SGLangRequestError
from drc_jax.decompose.syntax import decompose_queries
from drc_jax.defaults import SGLANG_MODEL, SGLANG_URL

FLAGS = flags.FLAGS
flags.DEFINE_enum("backend", "rules", list(BACKENDS), "Decomposer backend.")
flags.DEFINE_string("url", SGLANG_URL, "SGLang server (--backend sglang).")
flags.DEFINE_string("model", SGLANG_MODEL, "Model name the server serves.")
flags.DEFINE_enum(
    "mode",
    "merged",
    list(MODES),
    "One merged prompt (default: half the requests) or the paper's two prompts (decomposer and "
    "strength estimator, sent concurrently).",
)
flags.DEFINE_integer("concurrency", 64, "Requests in flight (SGLang batches them).")
flags.DEFINE_float("timeout", 120.0, "Seconds per request (a deadline for the whole answer).")
flags.DEFINE_integer("retries", 3, "Extra tries per request (exponential backoff).")
flags.DEFINE_string(
    "cache_dir", None, "Decomposition cache (default ~/.cache/drc_jax/decompositions; '' = off)."
)
flags.DEFINE_integer(
    "batch",
    None,
    "Captions per batch, written as each batch completes (default: 1 for rules, "
    "1024 for sglang, whose requests run concurrently within a batch).",
)
flags.DEFINE_multi_string(
    "exclude", [], "A concept to exclude from every query (repeatable), like '-term' in a query."
)


def _lines():
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def main(argv):
    if FLAGS.backend == "rules":
        dec = get_decomposer("rules")
    else:
        dec = get_decomposer(
            "sglang",
            url=FLAGS.url,
            model=FLAGS.model,
            mode=FLAGS.mode,
            concurrency=FLAGS.concurrency,
            timeout_s=FLAGS.timeout,
            retries=FLAGS.retries,
            cache_dir=FLAGS.cache_dir,
        )
    queries = argv[1:] or _lines()
    size = FLAGS.batch or (1 if FLAGS.backend == "rules" else 1024)
    batch: list[str] = []
    negated = 0

    def flush():
        nonlocal negated
        out = decompose_queries(dec, batch, FLAGS.exclude)
        negated += sum(d.negated for d in out)
        write_decompositions_jsonl(out, sys.stdout)
        batch.clear()

    try:
        for query in queries:
            batch.append(query)
            if len(batch) >= size:
                flush()
        if batch:
            flush()
    except (ConnectionError, SGLangRequestError) as e:  # server down / rejecting everything
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        dec.close()
    # "negated" counts what was written (a -term or --exclude negates a plain query).
    print(json.dumps({"backend": FLAGS.backend, **dec.stats, "negated": negated}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    app.run(main)
