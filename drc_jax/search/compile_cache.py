"""JAX's persistent compilation cache for search: a second start reuses the first one's compiles.

XLA keys entries by program, version and backend, so none is ever stale; every compile is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from drc_jax.defaults import cache_path

SUBDIR = "jax_compilation_cache"


def enable_compilation_cache(cache_dir: str | os.PathLike | None = None) -> Path:
    """Turn on JAX's compilation cache under ``cache_dir`` (default: drc_jax's); its folder."""
    path = Path(cache_dir).expanduser() if cache_dir else cache_path(SUBDIR)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
