"""Benchmark data: NegBench loaders, the offline synthetic set, media resolution and reading."""

from drc_jax.data.media import MediaError, MediaIndex, read_image, read_video
from drc_jax.data.negbench import (
    DATASETS,
    Benchmark,
    DataError,
    MediaItem,
    Query,
    load_benchmark,
    load_coco_neg,
    load_msrvtt_neg,
)
from drc_jax.data.synthetic import SyntheticSpec, load_synthetic

__all__ = [
    "DATASETS",
    "Benchmark",
    "DataError",
    "MediaError",
    "MediaIndex",
    "MediaItem",
    "Query",
    "SyntheticSpec",
    "load_benchmark",
    "load_coco_neg",
    "load_msrvtt_neg",
    "load_synthetic",
    "read_image",
    "read_video",
]
