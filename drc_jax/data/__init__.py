"""Benchmark data: NegBench loaders and the offline synthetic set (media: :mod:`drc_jax.media`)."""

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
    "MediaItem",
    "Query",
    "SyntheticSpec",
    "load_benchmark",
    "load_coco_neg",
    "load_msrvtt_neg",
    "load_synthetic",
]
