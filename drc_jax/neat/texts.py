"""The four texts NEAT encodes per caption, from our decomposition.

NEAT's ``pos_captions``/``neg_captions``/``inverted_captions`` are our ``aff``/``neg``/``cf``
(``cf`` is the nearest we have to NEAT's inversion: both show the negated concept). A caption
without negation (the reference has none) uses itself as ``pos`` and is masked out of the terms
reading ``neg``/``inv``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

_PUNCT = re.compile(r"([.!\"()*#:;~])")
_SPACES = re.compile(r"\s{2,}")


def pre_caption(caption: str, max_words: int = 77) -> str:
    """The reference loader's text normalisation (``src/data/utils.py:pre_caption``)."""
    caption = _SPACES.sub(" ", _PUNCT.sub(" ", caption.lower())).rstrip("\n").strip(" ")
    words = caption.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else caption


@dataclasses.dataclass(frozen=True)
class NEATTexts:
    """Per caption: the caption, pos, neg, inv, and whether it is negated (``neg``/``inv`` used)."""

    captions: tuple[str, ...]
    pos: tuple[str, ...]
    neg: tuple[str, ...]
    inv: tuple[str, ...]
    negated: np.ndarray

    def __len__(self) -> int:
        return len(self.captions)

    @classmethod
    def from_lists(
        cls,
        captions: Sequence[str],
        pos: Sequence[str],
        neg: Sequence[str | None],
        inv: Sequence[str | None],
    ) -> NEATTexts:
        """Row ``i`` is negated when ``neg[i]`` and ``inv[i]`` are given (one alone is an error);
        other rows fill those slots with the caption (fixed shapes, masked out of the loss)."""
        if isinstance(captions, str):
            raise TypeError("captions must be a list of strings, got a single string")
        n = len(captions)
        for name, xs in (("pos", pos), ("neg", neg), ("inv", inv)):
            if len(xs) != n:
                raise ValueError(f"NEAT needs one {name} text per caption: {len(xs)} for {n}")
        negated = []
        for i, (c, p, g, v) in enumerate(zip(captions, pos, neg, inv, strict=True)):
            if not isinstance(c, str) or not c.strip():
                raise ValueError(f"caption {i} is empty or not a string: {c!r}")
            if not isinstance(p, str) or not p.strip():
                raise ValueError(
                    f"caption {i} ({c!r}): pos is empty; use the caption itself when it has no "
                    "negation"
                )
            has_neg, has_inv = bool(g and g.strip()), bool(v and v.strip())
            if has_neg != has_inv:
                raise ValueError(
                    f"caption {i} ({c!r}): neg={g!r} and inv={v!r} must both be given (negated) "
                    "or both be empty (no negation)"
                )
            negated.append(has_neg)
        mask = np.asarray(negated, bool)
        return cls(
            tuple(captions),
            tuple(pos),
            tuple(g if m else c for g, c, m in zip(neg, captions, mask, strict=True)),
            tuple(v if m else c for v, c, m in zip(inv, captions, mask, strict=True)),
            mask,
        )

    def select(self, idx) -> NEATTexts:
        """Rows ``idx`` (a sequence of indices), in that order."""
        pick = lambda xs: tuple(xs[int(i)] for i in idx)  # noqa: E731
        return NEATTexts(
            *map(pick, (self.captions, self.pos, self.neg, self.inv)),
            self.negated[np.asarray(idx, np.int64)],
        )

    def preprocessed(self) -> NEATTexts:
        """The same texts through :func:`pre_caption`."""
        f = lambda xs: tuple(pre_caption(x) for x in xs)  # noqa: E731
        return NEATTexts(f(self.captions), f(self.pos), f(self.neg), f(self.inv), self.negated)


def neat_texts(decompositions) -> NEATTexts:
    """NEAT's texts from :class:`drc_jax.decompose.types.Decomposition` records."""
    rows = [
        (d.caption, d.aff, d.neg, d.cf) if d.negated else (d.caption, d.caption, None, None)
        for d in decompositions
    ]
    if not rows:
        raise ValueError("neat_texts needs at least one decomposition")
    return NEATTexts.from_lists(*map(list, zip(*rows, strict=True)))
