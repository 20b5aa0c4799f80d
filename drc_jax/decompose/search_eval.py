"""Accuracy on a JSONL of ``{"query", "negs", "construction"}`` search-box queries.

A negated query is right when its ``negs`` name every expected concept (``aff`` leaks if it names
one); a plain query (``negs`` empty) is right when not negated.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drc_jax.decompose.negbench_eval import names, strip_neg, text_words
from drc_jax.decompose.types import Decomposition


@dataclass(frozen=True)
class SearchQuery:
    query: str
    negs: tuple[str, ...]
    construction: str


@dataclass(frozen=True)
class SearchScore:
    total: int
    correct: int
    leaks: int
    wrong: dict[str, int] = field(default_factory=dict)  # construction -> wrong answers

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)


def load_search_queries(path: str | os.PathLike) -> list[SearchQuery]:
    """The queries of a JSONL file; ValueError naming the file and line for a bad row."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                query, negs = row["query"], row["negs"]
                if not isinstance(query, str) or not all(isinstance(x, str) for x in negs):
                    raise TypeError("query must be a string and negs a list of strings")
                out.append(SearchQuery(query, tuple(negs), str(row.get("construction", ""))))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(
                    f"{path}:{lineno}: {e}; expected "
                    '{"query": str, "negs": [str, ...], "construction": str}'
                ) from e
    return out


def is_right(q: SearchQuery, d: Decomposition) -> bool:
    if not q.negs:
        return not d.negated
    found = [strip_neg(x) for x in d.negs]
    return d.negated and all(any(names(w, c) for w in found) for c in q.negs)


def leaks(q: SearchQuery, d: Decomposition) -> bool:
    aff = text_words(d.aff)
    return bool(q.negs) and any(names(aff, c) for c in q.negs)


def score_search_queries(
    queries: Sequence[SearchQuery], decs: Sequence[Decomposition]
) -> SearchScore:
    right = [is_right(q, d) for q, d in zip(queries, decs, strict=True)]
    wrong = Counter(q.construction for q, ok in zip(queries, right, strict=True) if not ok)
    n_leaks = sum(leaks(q, d) for q, d in zip(queries, decs, strict=True))
    return SearchScore(len(queries), sum(right), n_leaks, dict(wrong))
