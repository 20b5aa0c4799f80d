"""``python -m drc_jax.decompose --backend rules|sglang [--url ...] < captions.txt > out.jsonl``

Reads one caption per line on stdin and writes one JSON object per line on stdout (fields:
caption, negated, aff, neg, cf, strength), in the same order. Stats go to stderr.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from drc_jax.decompose import BACKENDS, get_decomposer, write_decompositions_jsonl
from drc_jax.decompose.sglang import SGLangRequestError
from drc_jax.defaults import SGLANG_MODEL, SGLANG_URL

FLAGS = flags.FLAGS
flags.DEFINE_enum("backend", "rules", list(BACKENDS), "Decomposer backend.")
flags.DEFINE_string("url", SGLANG_URL, "SGLang server (--backend sglang).")
flags.DEFINE_string("model", SGLANG_MODEL, "Model name the server serves.")
flags.DEFINE_enum(
    "mode",
    "merged",
    ["merged", "two_prompt"],
    "One merged prompt (default) or the paper's decomposer + strength prompts.",
)
flags.DEFINE_integer("concurrency", 64, "Requests in flight (SGLang batches them).")
flags.DEFINE_float("timeout", 120.0, "Seconds per request.")
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; captions are read from stdin")
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
    size = FLAGS.batch or (1 if FLAGS.backend == "rules" else 1024)
    batch: list[str] = []
    try:
        for line in sys.stdin:
            batch.append(line.rstrip("\r\n"))
            if len(batch) >= size:
                write_decompositions_jsonl(dec.decompose(batch), sys.stdout)
                batch = []
        if batch:
            write_decompositions_jsonl(dec.decompose(batch), sys.stdout)
    except (ConnectionError, SGLangRequestError) as e:  # server down / rejecting everything
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if hasattr(dec, "close"):
            dec.close()
    print(json.dumps({"backend": FLAGS.backend, **dec.stats}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    app.run(main)
