"""drc-jax: training-free, negation-aware retrieval (SpaceVLM-DRC) over a frozen CLIP.

``from drc_jax import drc_score, DRCParams`` is the core: a pure, jitted scoring function. The
encoders (:mod:`drc_jax.clip`), decomposers (:mod:`drc_jax.decompose`), the benchmark launcher
(``python -m drc_jax.launch``) and search (``python -m drc_jax.search``) build on it and are
imported on demand, so importing the scoring core stays light.
"""

from drc_jax.metrics import ranks_from_scores, retrieval_metrics
from drc_jax.scoring import (
    METHODS,
    STRENGTHS,
    DRCParams,
    Queries,
    TopK,
    clip_score,
    compose,
    drc_score,
    score,
    spacevlm_score,
    top_k,
)

__all__ = [
    "METHODS",
    "STRENGTHS",
    "DRCParams",
    "Queries",
    "TopK",
    "clip_score",
    "compose",
    "drc_score",
    "ranks_from_scores",
    "retrieval_metrics",
    "score",
    "spacevlm_score",
    "top_k",
]
