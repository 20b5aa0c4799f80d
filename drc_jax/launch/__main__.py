r"""``drc-launch`` (or ``python -m drc_jax.launch``): reproduce the paper's NegBench tables.

    drc-launch --benchmark synthetic --output_dir runs/synthetic   # an offline synthetic check
    drc-launch --benchmark coco --captions_csv COCO_val_negated_...csv \
        --data_dir ~/data/coco --weights openai/clip-vit-base-patch32 --config table3
    drc-launch --config table4 --config.w1=0.4 --config.variants.rho_2.params.rho=3

``--config`` takes a name in ``configs/`` or a file path; ``--config.FIELD=VALUE`` overrides any
field of :func:`drc_jax.launch.config.base_config`, a top-level one also as ``--FIELD VALUE``.
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import ConfigDict, config_flags

from drc_jax import cli, defaults
from drc_jax.launch.config import ConfigError, base_config, find_config, output_dir, validate

# Short spellings of nested fields (earlier flags).
ALIASES = {
    "synthetic_images": "synthetic.num_images",
    "synthetic_videos": "synthetic.num_videos",
    "seed": "synthetic.seed",
}
_BASE = base_config()
SHORTHANDS = {
    **{k: k for k in _BASE if not isinstance(_BASE[k], ConfigDict) and k not in ("rows",)},
    **ALIASES,
}

DEFAULT_CONFIG = "paper"


def _define_flags() -> None:
    """Call after ``sys.argv`` is expanded: config_flags reads the overrides from it."""
    config_flags.DEFINE_config_file(
        "config",
        str(find_config(DEFAULT_CONFIG)),
        "The run config: a name in configs/ (paper, table3, table4, zeroshot, backbones) or a "
        "path to a Python file whose get_config() returns base_config() with its rows. Override "
        "any field with --config.FIELD=VALUE (e.g. --config.rho=1.0, "
        "--config.variants.drc.params.rho=2); top-level fields also as --FIELD=VALUE: "
        f"{', '.join(sorted(SHORTHANDS))}. Shared with drc-decompose and drc-search: "
        + " ".join(f"--{name}: {spec.help}" for name, spec in cli.SHARED.items()),
    )
    cli.define_multihost()


def _is_bool(path: str) -> bool:
    node = _BASE
    for part in path.split("."):
        node = node[part]
    return isinstance(node, bool)


def expand_argv(argv: list[str]) -> list[str]:
    """``--config NAME`` -> ``--config=<configs/NAME.py>``, put first (config_flags needs it before
    the overrides), and shorthand ``--FIELD v`` -> ``--config.FIELD=v``."""
    out, config, i = [], [f"--config={find_config(DEFAULT_CONFIG).resolve()}"], 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            out += argv[i - 1 :]
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name.startswith("config."):
            out.append(arg)
            continue
        negated = (
            name.startswith("no") and name[2:] in SHORTHANDS and _is_bool(SHORTHANDS[name[2:]])
        )
        if name == "config" or (name in SHORTHANDS and not _is_bool(SHORTHANDS[name])):
            if not eq:
                if i >= len(argv):
                    raise ConfigError(f"--{name} needs a value")
                value, i = argv[i], i + 1
            if name == "config":
                spec, colon, param = value.partition(":")
                config = [f"--config={find_config(spec).resolve()}{colon}{param}"]
            else:
                out.append(f"--config.{SHORTHANDS[name]}={value}")
        elif name in SHORTHANDS or negated:
            field = SHORTHANDS[name[2:] if negated else name]
            out.append(f"--{'no' if negated else ''}config.{field}" + (f"={value}" if eq else ""))
        else:
            out.append(arg)
    return [argv[0], *config, *out]


def check_sglang(config: ConfigDict) -> None:
    """For ``--decomposer sglang``, check the server answers before weights load, unless
    ``--decompositions`` or this model's decomposition cache may make it unneeded."""
    if config.decomposer != "sglang" or config.decompositions:
        return
    model = config.sglang_model or defaults.SGLANG_MODEL
    if config.cache_dir:
        from drc_jax.decompose.cache import DecompositionCache
        from drc_jax.decompose.prompts import PROMPT_VERSION

        where = defaults.cache_path(defaults.DECOMPOSITIONS, config.cache_dir)
        backend = f"sglang-{config.decomposer_mode}"
        if DecompositionCache.path_for(where, backend, model, PROMPT_VERSION).exists():
            return
    cli.check_sglang_server(config.sglang_url, model)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    absl_logging.set_verbosity(absl_logging.WARNING)  # quiet jax's INFO lines
    logging.getLogger("drc_jax").setLevel(logging.INFO)  # keep ours
    try:
        config = validate(FLAGS.config)
        check_sglang(config)
        from drc_jax.parallel import initialize_distributed

        initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
        from drc_jax.launch import pipeline, report

        results = pipeline.run(config)
    except KeyboardInterrupt:
        print(
            "interrupted: finished encoding batches are cached; rerun to resume.", file=sys.stderr
        )
        return 130
    import jax

    if jax.process_index() == 0:
        print(report.format_text(results))
        print(f"wrote {output_dir(config)}/results.json and results.md")
    return 0


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with an unknown ``--config.FIELD`` turned into a message."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        cli.fail(f"{e}. Pass --helpfull for the flags; run config fields as --config.FIELD=VALUE.")
    except (AttributeError, KeyError) as e:
        detail = str(e.args[0] if e.args else e).replace("'", "")
        missing = detail.split("\n")[0].strip('"')
        names = [a.split("=", 1)[0] for a in argv if a.lstrip("-").startswith("config.")]
        named = [n for n in names if missing in n.split(".")] or names
        cli.fail(
            f"{', '.join(named)}: no such field in the run config "
            f"({detail.replace(chr(10), '. ')}). The fields are base_config()'s in "
            "drc_jax/launch/config.py and the rows' in config.variants; --help lists the "
            "top-level ones."
        )


def run() -> None:
    """The ``drc-launch`` console script."""
    try:
        argv = expand_argv(sys.argv)
    except ConfigError as e:
        cli.fail(str(e))
    sys.argv = argv  # config_flags reads its overrides from sys.argv
    _define_flags()
    cli.run(main, module_name=__name__, argv=argv, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
