"""drc-jax: training-free, negation-aware retrieval (SpaceVLM-DRC) over a frozen CLIP.

The light core: :func:`drc_score` and the other scoring methods, :func:`top_k` over large corpora
and the metrics. :mod:`drc_jax.clip`, :mod:`drc_jax.decompose`, ``python -m drc_jax.launch`` and
``python -m drc_jax.search`` are imported on demand.
"""

from drc_jax.metrics import ranks_from_scores, retrieval_metrics
from drc_jax.retrieval import TopK, top_k, top_k_memory
from drc_jax.scoring import (
    METHODS,
    SPACEVLM_T,
    STRENGTHS,
    DRCParams,
    Queries,
    QueryVectors,
    clip_score,
    compose,
    drc_score,
    query_vectors,
    score,
    spacevlm_score,
)

__all__ = [
    "METHODS",
    "SPACEVLM_T",
    "STRENGTHS",
    "DRCParams",
    "Queries",
    "QueryVectors",
    "TopK",
    "clip_score",
    "compose",
    "drc_score",
    "query_vectors",
    "ranks_from_scores",
    "retrieval_metrics",
    "score",
    "spacevlm_score",
    "top_k",
    "top_k_memory",
]
