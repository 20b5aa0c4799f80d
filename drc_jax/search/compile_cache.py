"""JAX's persistent compilation cache for search: a second start reuses the first one's compiles.

Search compiles the CLIP text encoder at a few (batch, length) shapes and ``top_k`` once per
method; on a CPU these compiles dominate a one-shot ``search query`` and a server's start-up.
XLA's on-disk cache keys each executable by the program, the jax/XLA version and the backend, so
it can never hand back a stale executable; a cache entry is written for every compile (no
minimum compile time), under ``<cache dir>/jax_compilation_cache``.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from drc_jax.defaults import cache_path

SUBDIR = "jax_compilation_cache"


def enable_compilation_cache(cache_dir: str | os.PathLike | None = None) -> Path:
    """Turn on JAX's persistent compilation cache under ``cache_dir`` (default: drc_jax's cache
    dir, ``$DRC_JAX_CACHE`` or ``~/.cache/drc_jax``); return the cache folder."""
    path = Path(cache_dir).expanduser() if cache_dir else cache_path(SUBDIR)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
