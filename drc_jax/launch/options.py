"""Run options of the launcher (built from flags by ``__main__``, or directly in tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from drc_jax.data.synthetic import SyntheticSpec
from drc_jax.launch.config import RunConfig

BENCHMARKS = ("synthetic", "synthetic_video", "coco", "msrvtt")
SYNTHETIC = ("synthetic", "synthetic_video")
PAPER_WEIGHTS = "openai/clip-vit-base-patch32"
SYNTHETIC_WEIGHTS = "random:ViT-B/32"


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs (built from flags by ``__main__``, or directly in tests)."""

    config: RunConfig
    output_dir: str
    benchmark: str = "synthetic"
    data_dir: str | None = None
    captions_csv: str | None = None
    weights: str | None = None  # None: random:ViT-B/32 for synthetic, the paper's ViT-B/32 else
    dtype: str = "float32"
    preprocess: str = "spacevlm"
    video_frames: int = 4
    video_sampling: str = "spacevlm"
    video_renormalize: bool = True
    decomposer: str = "rules"
    sglang_url: str = "http://127.0.0.1:30000"
    sglang_model: str | None = None
    decompositions: str | None = None  # JSONL of precomputed decompositions
    cache_dir: str | None = None  # None: no embedding cache
    image_embeddings: str | None = None  # precomputed (N, D) .npy, rows in CSV order
    on_missing_media: str = "fail"
    on_bad_caption: str = "fail"
    batch_size: int = 64
    chunk_size: int = 8192
    image_dtype: str | None = None  # "bfloat16" halves image memory when scoring
    limit: int | None = None
    figures: int = 0
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    progress: bool = True

    @property
    def resolved_weights(self) -> str:
        if self.weights == "random":
            return SYNTHETIC_WEIGHTS
        if self.weights:
            return self.weights
        return SYNTHETIC_WEIGHTS if self.benchmark in SYNTHETIC else PAPER_WEIGHTS
