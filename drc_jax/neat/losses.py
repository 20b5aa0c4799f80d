"""NEAT's objective (Han et al., 2025, Sec. 4; hhc1997/NEAT ``src/train_TTA.py``), pure functions.

``text``, ``pos``, ``neg``, ``inv``: (B, D) unit-norm; ``images``: (N, D) unit-norm; ``negated``:
(B,) bool, masking rows without negation out of every term reading ``neg``/``inv`` (the reference
has none; with all rows negated each function equals the reference's).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from drc_jax.neat.config import NEATConfig

_HIGHEST = jax.lax.Precision.HIGHEST


def _sim(a, b):
    """(P, D) x (Q, D) -> (P, Q) in full float32 (TF32 would move the coarse alignment's argmax)."""
    return jnp.einsum("pd,qd->pq", a, b, precision=_HIGHEST)


def _masked_mean(x, mask):
    m = mask.astype(x.dtype)
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)


def coarse_align(pos, neg, images, negated):
    """``argmax_n (pos . img_n) * (1 - relu(neg . img_n))`` (reference ``coarse_aligning_t2i``)."""
    relevance = jax.nn.relu(_sim(neg, images)) * negated[:, None]
    return jnp.argmax(_sim(pos, images) * (1.0 - relevance), axis=1)


def softmax_entropy(logits):
    """Entropy of ``softmax(logits)`` along axis 1 (reference ``softmax_entropy``)."""
    return -jnp.sum(jax.nn.softmax(logits, axis=1) * jax.nn.log_softmax(logits, axis=1), axis=1)


def entropy_loss(text, aligned, temperature):
    """Mean entropy of ``softmax((text @ aligned.T).T / temperature)`` over captions."""
    return jnp.mean(softmax_entropy(_sim(text, aligned).T / temperature))


def semantics_reversion_loss(inv, aligned, tau, negated):
    """``mean_i max_{j != i} relu(s_ii - s_ij) / tau``, ``s = inv @ aligned.T``, negated rows."""
    s = _sim(inv, aligned)
    cost = jax.nn.relu(jnp.diag(s)[:, None] - s)
    cost = jnp.where(jnp.eye(s.shape[0], dtype=bool), 0.0, cost)
    return _masked_mean(jnp.max(cost, axis=1), negated) / tau


def _pairwise_distance(a, b, eps):
    """``torch.nn.PairwiseDistance(p=2, eps)``: ``||a - b + eps||``."""
    return jnp.linalg.norm(a - b + eps, axis=-1)


def textual_triplet_loss(text, pos, inv, negated, cfg: NEATConfig):
    """``pos_weight * mean |t - pos| + mean (inv_margin - |t - inv|)`` over negated rows."""
    d_pos = _pairwise_distance(text, pos, cfg.pairwise_eps)
    d_inv = _pairwise_distance(text, inv, cfg.pairwise_eps)
    return cfg.pos_weight * _masked_mean(d_pos, negated) + _masked_mean(
        cfg.inv_margin - d_inv, negated
    )


def neat_loss(text, pos, neg, inv, images, negated, cfg: NEATConfig):
    """``(entropy + semantics reversion + triplet, aux)``; aux: the terms, aligned indices.

    The alignment is a constant of the step (``torch.no_grad`` in the reference).
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
