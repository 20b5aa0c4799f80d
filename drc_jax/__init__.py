"""drc-jax: training-free, negation-aware retrieval (SpaceVLM-DRC) over a frozen CLIP.

``from drc_jax import drc_score, DRCParams`` is the core: a pure, jitted scoring function
(:mod:`drc_jax.scoring`, the method); :func:`top_k` (:mod:`drc_jax.retrieval`, the engine)
searches large corpora with any method's :func:`query_vectors`. The encoders
(:mod:`drc_jax.clip`), decomposers (:mod:`drc_jax.decompose`), the benchmark launcher
(``python -m drc_jax.launch``) and search (``python -m drc_jax.search``) build on it and are
imported on demand, so importing the scoring core stays light.
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
