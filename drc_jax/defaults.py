"""Defaults shared by every entry point, each defined once."""

from __future__ import annotations

import os
from pathlib import Path

SGLANG_HOST = "127.0.0.1"
SGLANG_PORT = 30000
SGLANG_URL = f"http://{SGLANG_HOST}:{SGLANG_PORT}"
SGLANG_MODEL = "Qwen/Qwen2.5-14B-Instruct"  # the paper's decomposer LLM

PAPER_WEIGHTS = "openai/clip-vit-base-patch32"  # the paper's ViT-B/32
SYNTHETIC_WEIGHTS = "random:ViT-B/32"

DTYPES = ("float32", "bfloat16")
PREPROCESS_MODES = ("spacevlm", "openai")
DECOMPOSERS = ("rules", "sglang")


DECOMPOSITIONS = "decompositions"  # under the cache root


def cache_root() -> Path:
    """drc-jax's cache: ``$DRC_JAX_CACHE``, else ``~/.cache/drc_jax``."""
    return Path(os.environ.get("DRC_JAX_CACHE") or Path.home() / ".cache" / "drc_jax").expanduser()


def cache_path(name: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """``<cache_dir>/<name>``: ``cache_dir`` None means :func:`cache_root`; '' (off) gives None."""
    if cache_dir is None:
        return cache_root() / name
    return Path(cache_dir).expanduser() / name if str(cache_dir) else None
