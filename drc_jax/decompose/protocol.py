"""The interface every decomposer implements (rules, SGLang, and whatever comes next)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from drc_jax.decompose.types import Decomposition


@runtime_checkable
class Decomposer(Protocol):
    """Splits captions into :class:`Decomposition` records, one per caption, in input order.

    A caption it cannot split comes back ``negated=False``; only a setup problem (an unreachable
    server) raises. ``stats`` counts at least captions, negated, fallbacks, requests, cache_hits;
    ``close`` may be called twice.
    """

    name: str
    stats: dict[str, int]

    def decompose(self, captions: Sequence[str]) -> list[Decomposition]: ...

    def close(self) -> None: ...
