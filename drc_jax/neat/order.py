"""The caption order of NEAT's shuffled loader (``main_TTA.py``) without torch; see README."""

from __future__ import annotations

import hashlib
import json

import numpy as np

SEED_DRAWS = 4  # int64 draws before the caption sampler seeds its generator
MAX_SEED = 2**32  # torch's MT19937 keeps a seed's low 32 bits


def _words(seed: int, count: int) -> np.ndarray:
    """The first ``count`` 32-bit outputs of torch's CPU generator after ``manual_seed(seed)``."""
    rs = np.random.RandomState(seed % MAX_SEED)
    return rs.randint(0, MAX_SEED, size=count, dtype=np.uint32).astype(np.int64)


def _int64(hi: int, lo: int) -> int:
    """``torch.empty((), dtype=torch.int64).random_()`` from two words: ``random64() % 2**63``."""
    return ((hi << 32) | lo) & (2**63 - 1)


def randperm(n: int, seed: int) -> np.ndarray:
    """``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``."""
    if n >= MAX_SEED // 20:
        raise ValueError(f"randperm reproduces torch's shuffle for n < 2**32 / 20 only, got {n}")
    draws = _words(seed, max(n - 1, 0))
    perm = np.arange(n, dtype=np.int64)
    for i in range(n - 1):
        z = i + int(draws[i]) % (n - i)
        perm[i], perm[z] = perm[z], perm[i]
    return perm


def loader_order(n: int, seed: int) -> np.ndarray:
    """The caption indices in the order NEAT's loader yields them under ``--seed seed``."""
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"NEAT seed must be in [0, 2**32), got {seed}")
    words = _words(seed, 2 * SEED_DRAWS)
    return randperm(n, _int64(int(words[-2]), int(words[-1])))


def order_sha256(order, captions) -> str:
    """sha256 of ``[[index, caption], ...]`` in adaptation order (the record's ``neat_order``)."""
    rows = [[int(i), captions[int(i)]] for i in order]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
