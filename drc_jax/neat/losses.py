"""NEAT's objective (Han et al., 2025, Sec. 4; reference ``src/train_TTA.py``), as pure functions.

Shapes: ``text``, ``pos``, ``neg``, ``inv`` are (B, D) unit-norm embeddings of a batch of captions,
their affirmative part, their negated concept and their logical inversion; ``images`` is (N, D)
unit-norm; ``negated`` is (B,) bool. Rows whose caption has no negation carry placeholder
``neg``/``inv`` embeddings: ``negated`` removes them from every term that reads ``neg`` or ``inv``
(the reference has no such rows; with all rows negated every function equals the reference's).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from drc_jax.neat.config import NEATConfig

_HIGHEST = jax.lax.Precision.HIGHEST


def _sim(a, b):
    """(P, D) x (Q, D) -> (P, Q) dot products in full float32 (small matrices; TF32/bf16 passes
    on accelerators would move the argmax of the coarse alignment)."""
    return jnp.einsum("pd,qd->pq", a, b, precision=_HIGHEST)


def _masked_mean(x, mask):
    m = mask.astype(x.dtype)
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)


def coarse_align(pos, neg, images, negated):
    """Index of each caption's coarsely aligned image (``coarse_aligning_t2i``):
    ``argmax_n (pos . img_n) * (1 - relu(neg . img_n))``; for a caption without negation the
    penalty is 0, so it picks ``argmax_n pos . img_n``."""
    relevance = jax.nn.relu(_sim(neg, images)) * negated[:, None]
    return jnp.argmax(_sim(pos, images) * (1.0 - relevance), axis=1)


def softmax_entropy(logits):
    """Entropy of ``softmax(logits)`` along axis 1 (reference ``softmax_entropy``)."""
    return -jnp.sum(jax.nn.softmax(logits, axis=1) * jax.nn.log_softmax(logits, axis=1), axis=1)


def entropy_loss(text, aligned, temperature):
    """Mean entropy, over aligned images, of the softmax over captions of
    ``(text @ aligned.T).T / temperature`` (the transposed caption x aligned-image similarities)."""
    return jnp.mean(softmax_entropy(_sim(text, aligned).T / temperature))


def semantics_reversion_loss(inv, aligned, tau, negated):
    """Hinge without margin pushing each inversion away from its caption's aligned image
    (``semantics_reversion_loss``): with ``s = inv @ aligned.T``,
    ``mean_i max_{j != i} relu(s_ii - s_ij) / tau`` over negated rows ``i``."""
    s = _sim(inv, aligned)
    cost = jax.nn.relu(jnp.diag(s)[:, None] - s)
    cost = jnp.where(jnp.eye(s.shape[0], dtype=bool), 0.0, cost)
    return _masked_mean(jnp.max(cost, axis=1), negated) / tau


def _pairwise_distance(a, b, eps):
    """``torch.nn.PairwiseDistance(p=2, eps)``: ``||a - b + eps||``, finite gradient at a == b."""
    return jnp.linalg.norm(a - b + eps, axis=-1)


def textual_triplet_loss(text, pos, inv, negated, cfg: NEATConfig):
    """``pos_weight * mean |t - pos| + mean (inv_margin - |t - inv|)`` over negated rows
    (``textual_triplet_loss``: 5 and 2)."""
    d_pos = _pairwise_distance(text, pos, cfg.pairwise_eps)
    d_inv = _pairwise_distance(text, inv, cfg.pairwise_eps)
    return cfg.pos_weight * _masked_mean(d_pos, negated) + _masked_mean(
        cfg.inv_margin - d_inv, negated
    )


def neat_loss(text, pos, neg, inv, images, negated, cfg: NEATConfig):
    """The per-step NEAT loss: entropy + semantics reversion + textual triplet.

    Returns ``(loss, aux)`` with ``aux`` = the three terms and the aligned image indices. The
    alignment is a constant of the step (the reference computes it under ``torch.no_grad``).
    """
    idx = coarse_align(jax.lax.stop_gradient(pos), jax.lax.stop_gradient(neg), images, negated)
    aligned = jax.lax.stop_gradient(images[idx])
    terms = {
        "entropy": entropy_loss(text, aligned, cfg.temperature),
        "semantics_reversion": semantics_reversion_loss(inv, aligned, cfg.temperature2, negated),
        "triplet": textual_triplet_loss(text, pos, inv, negated, cfg),
    }
    loss = terms["entropy"] + terms["semantics_reversion"] + terms["triplet"]
    return loss, {**terms, "aligned": idx}
