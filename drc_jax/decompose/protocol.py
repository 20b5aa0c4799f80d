"""The interface every decomposer implements (rules, SGLang, and whatever comes next)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from drc_jax.decompose.types import Decomposition


@runtime_checkable
class Decomposer(Protocol):
    """Splits captions into :class:`Decomposition` records for DRC.

    ``decompose`` returns one record per caption, in input order, and never raises for one bad
    caption (a caption it cannot split comes back ``negated=False``: plain CLIP, eq. 2); it may
    raise for a setup problem that concerns every caption (an unreachable server). ``stats``
    counts at least ``captions``, ``negated``, ``fallbacks``, ``requests`` and ``cache_hits``
    over the decomposer's life. ``close`` releases files and connections; calling it twice is
    harmless.
    """

    name: str
    stats: dict[str, int]

    def decompose(self, captions: Sequence[str]) -> list[Decomposition]: ...

    def close(self) -> None: ...
