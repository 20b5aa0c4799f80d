r"""``python -m drc_jax.launch``: reproduce the paper's NegBench tables (or a synthetic check).

    python -m drc_jax.launch --benchmark synthetic --output_dir runs/synthetic
    python -m drc_jax.launch --benchmark coco --captions_csv COCO_val_negated_...csv \
        --data_dir ~/data/coco --weights openai/clip-vit-base-patch32 --config table3

Errors the user can fix (missing data, bad CSV, unreadable media, unreachable weights) print one
message naming the file/row and what to do, and exit with status 2; never a bare traceback.
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging

from drc_jax.launch import flags as launch_flags  # defines the flags
from drc_jax.launch.errors import USER_ERRORS, describe

flags.adopt_module_key_flags(launch_flags)  # list them under --help


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = launch_flags.FLAGS
    absl_logging.set_verbosity(absl_logging.WARNING)  # quiet jax's INFO lines
    logging.getLogger("drc_jax").setLevel(logging.INFO)  # keep ours
    try:
        from drc_jax.parallel import initialize_distributed

        initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
        opts = launch_flags.options_from_flags()
        from drc_jax.launch import pipeline, report

        results = pipeline.run(opts)
    except USER_ERRORS as e:
        print(f"error: {describe(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished encoding batches are cached; rerun to resume.", file=sys.stderr
        )
        return 130
    import jax

    if jax.process_index() == 0:
        print(report.format_text(results))
        print(f"wrote {opts.output_dir}/results.json and results.md")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
