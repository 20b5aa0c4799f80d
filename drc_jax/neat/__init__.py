"""NEAT: negation-aware test-time adaptation of CLIP's text LayerNorms (Han et al., 2025).

The "CLIP + NEAT" baseline of the paper's Tables 1 and 2 (reference: github hhc1997/NEAT).
"""

from drc_jax.neat.adapt import (
    NEATState,
    adapt_batch,
    adapted_params,
    init_state,
    merge_text_layer_norms,
    neat_embeddings,
    neat_scores,
    neat_scores_for_texts,
    neat_scores_from_decompositions,
    split_text_layer_norms,
)
from drc_jax.neat.config import NEATConfig
from drc_jax.neat.losses import (
    coarse_align,
    entropy_loss,
    neat_loss,
    semantics_reversion_loss,
    softmax_entropy,
    textual_triplet_loss,
)
from drc_jax.neat.order import loader_order, order_sha256, randperm
from drc_jax.neat.texts import NEATTexts, neat_texts, pre_caption

__all__ = [
    "NEATConfig",
    "NEATState",
    "NEATTexts",
    "adapt_batch",
    "adapted_params",
    "coarse_align",
    "entropy_loss",
    "init_state",
    "merge_text_layer_norms",
    "loader_order",
    "neat_embeddings",
    "neat_loss",
    "neat_scores",
    "neat_scores_for_texts",
    "neat_scores_from_decompositions",
    "neat_texts",
    "order_sha256",
    "pre_caption",
    "randperm",
    "semantics_reversion_loss",
    "softmax_entropy",
    "split_text_layer_norms",
    "textual_triplet_loss",
]
