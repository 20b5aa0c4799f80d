"""``drc-decompose [--decomposer rules|sglang] [QUERY ...] [< captions.txt] > out.jsonl``

Decomposes the query arguments, or one caption per stdin line, into one JSON object per line
(caption, negated, aff, neg, cf, strength, negs); stats go to stderr. ``"cat -sofa"`` negates
sofa (put ``--`` before a query that starts with ``-``); ``--exclude sofa`` negates it in every
query.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from drc_jax import cli
from drc_jax.decompose import get_decomposer, write_decompositions_jsonl
from drc_jax.decompose.sglang import MODES, SGLangRequestError
from drc_jax.decompose.syntax import decompose_queries

FLAGS = flags.FLAGS
cli.define(
    "decomposer",
    "sglang_url",
    "sglang_model",
    "cache_dir",
    "batch_size",
    batch_size=None,
    help_suffix={
        "batch_size": "Captions per batch, written as each batch completes (default: 1 for "
        "rules, 1024 for sglang, whose requests run concurrently within a batch).",
    },
)
flags.adopt_module_key_flags(cli)
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
flags.DEFINE_multi_string(
    "exclude", [], "A concept to exclude from every query (repeatable), like '-term' in a query."
)


def _lines():
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def main(argv):
    for name in ("batch_size", "concurrency"):
        if FLAGS[name].value is not None and FLAGS[name].value < 1:
            raise cli.UserError(f"--{name}={FLAGS[name].value}: must be at least 1.")
    if FLAGS.timeout <= 0 or FLAGS.retries < 0:
        raise cli.UserError("--timeout must be > 0 and --retries >= 0.")
    if FLAGS.decomposer == "rules":
        dec = get_decomposer("rules")
    else:
        # No reachability check up front: cached answers need no server.
        cli.check_sglang_url(FLAGS.sglang_url)
        dec = cli.sglang_decomposer(
            FLAGS.cache_dir,
            url=FLAGS.sglang_url,
            model=FLAGS.sglang_model,
            mode=FLAGS.mode,
            concurrency=FLAGS.concurrency,
            timeout_s=FLAGS.timeout,
            retries=FLAGS.retries,
        )
    queries = argv[1:] or _lines()
    size = FLAGS.batch_size or (1 if FLAGS.decomposer == "rules" else 1024)
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
    except (ConnectionError, SGLangRequestError) as e:
        raise cli.UserError(str(e)) from e
    finally:
        dec.close()
    # "negated" counts what was written (a -term or --exclude negates a plain query).
    stats = {"decomposer": FLAGS.decomposer, **dec.stats, "negated": negated}
    print(json.dumps(stats), file=sys.stderr)
    return 0


def run() -> None:
    """The ``drc-decompose`` console script."""
    cli.run(main, module_name=__name__)


if __name__ == "__main__":
    run()
