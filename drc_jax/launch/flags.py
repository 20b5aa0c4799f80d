"""Command-line flags of ``python -m drc_jax.launch`` and their mapping to :class:`RunOptions`."""

from __future__ import annotations

import os

from absl import flags

from drc_jax.data.synthetic import SyntheticSpec
from drc_jax.launch.config import load_config, parse_overrides
from drc_jax.launch.options import BENCHMARKS, PAPER_WEIGHTS, SYNTHETIC_WEIGHTS, RunOptions

DEFAULT_CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "drc_jax"
)

flags.DEFINE_enum("benchmark", "synthetic", BENCHMARKS, "Benchmark to run.")
flags.DEFINE_string(
    "config",
    "paper",
    "Variants to score: a name in configs/ (paper, table3, table4, backbones) or a path to a "
    "Python file defining get_config() -> RunConfig.",
)
flags.DEFINE_list("methods", None, "Keep only these variants (by method or variant name).")
flags.DEFINE_string(
    "params", "", "DRCParams overrides for every variant, e.g. 'rho=1.0,use_repulsion=false'."
)
flags.DEFINE_string(
    "output_dir", None, "Where results.json / results.md go (default runs/<benchmark>)."
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Directory holding the media (found by file name, any layout); for the synthetic "
    "benchmarks, where the set is rendered.",
)
flags.DEFINE_string("captions_csv", None, "A NegBench query CSV (coco / msrvtt).")
flags.DEFINE_integer("limit", None, "Use only the first N media rows (quick checks).")
flags.DEFINE_string(
    "weights",
    None,
    f"CLIP weights: HF dir / hub id / OpenAI .pt or .safetensors / random:<arch>. Default: "
    f"{PAPER_WEIGHTS} for coco and msrvtt, {SYNTHETIC_WEIGHTS} (random, labelled) for synthetic.",
)
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Encoder compute dtype.")
flags.DEFINE_enum(
    "preprocess", "spacevlm", ["spacevlm", "openai"], "Image preprocessing (squash vs crop)."
)
flags.DEFINE_integer("video_frames", 4, "Frames per video.")
flags.DEFINE_enum("video_sampling", "spacevlm", ["spacevlm", "negbench"], "Frame sampling.")
flags.DEFINE_bool(
    "video_renormalize", True, "Renormalise the mean frame embedding (NegBench); false: SpaceVLM."
)
flags.DEFINE_enum("decomposer", "rules", ["rules", "sglang"], "Caption decomposer.")
flags.DEFINE_string(
    "sglang_url", "http://127.0.0.1:30000", "SGLang server for --decomposer sglang."
)
flags.DEFINE_string("sglang_model", None, "Model name served by SGLang.")
flags.DEFINE_string("decompositions", None, "JSONL of precomputed decompositions (overrides).")
flags.DEFINE_string(
    "cache_dir", DEFAULT_CACHE, "Embedding / decomposition cache ('' disables caching)."
)
flags.DEFINE_string(
    "image_embeddings", None, "Precomputed (N, D) .npy media embeddings, rows in CSV order."
)
flags.DEFINE_enum(
    "on_missing_media",
    "fail",
    ["fail", "skip"],
    "Missing or unreadable media: stop (fail) or evaluate without them (skip, listed).",
)
flags.DEFINE_enum(
    "on_bad_caption",
    "fail",
    ["fail", "skip", "keep"],
    "Empty captions: stop, leave them out, or keep them as NegBench does (bare 'A photo of').",
)
flags.DEFINE_integer("batch_size", 64, "Encoding batch size (split over local devices).")
flags.DEFINE_integer("chunk_size", 8192, "Images scored per streamed top-k step per device.")
flags.DEFINE_enum(
    "image_dtype", None, ["bfloat16"], "Score with bf16 image embeddings (f32 accumulation)."
)
flags.DEFINE_integer("figures", 0, "Render N sample queries to <output_dir>/figures.")
flags.DEFINE_integer("synthetic_images", SyntheticSpec.num_images, "Synthetic set: images.")
flags.DEFINE_integer("synthetic_videos", SyntheticSpec.num_videos, "Synthetic set: videos.")
flags.DEFINE_integer("seed", 0, "Synthetic set: random seed.")
flags.DEFINE_bool("progress", True, "Show progress bars.")
flags.DEFINE_string("coordinator_address", None, "Multi-host: jax.distributed coordinator.")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")

FLAGS = flags.FLAGS


def options_from_flags() -> RunOptions:
    config = load_config(FLAGS.config)
    if FLAGS.methods:
        config = config.select(FLAGS.methods)
    config = config.override(parse_overrides(FLAGS.params))
    return RunOptions(
        config=config,
        output_dir=FLAGS.output_dir or os.path.join("runs", FLAGS.benchmark),
        benchmark=FLAGS.benchmark,
        data_dir=FLAGS.data_dir,
        captions_csv=FLAGS.captions_csv,
        weights=FLAGS.weights,
        dtype=FLAGS.dtype,
        preprocess=FLAGS.preprocess,
        video_frames=FLAGS.video_frames,
        video_sampling=FLAGS.video_sampling,
        video_renormalize=FLAGS.video_renormalize,
        decomposer=FLAGS.decomposer,
        sglang_url=FLAGS.sglang_url,
        sglang_model=FLAGS.sglang_model,
        decompositions=FLAGS.decompositions,
        cache_dir=FLAGS.cache_dir or None,
        image_embeddings=FLAGS.image_embeddings,
        on_missing_media=FLAGS.on_missing_media,
        on_bad_caption=FLAGS.on_bad_caption,
        batch_size=FLAGS.batch_size,
        chunk_size=FLAGS.chunk_size,
        image_dtype=FLAGS.image_dtype,
        limit=FLAGS.limit,
        figures=FLAGS.figures,
        synthetic=SyntheticSpec(
            num_images=FLAGS.synthetic_images, num_videos=FLAGS.synthetic_videos, seed=FLAGS.seed
        ),
        progress=FLAGS.progress,
    )
