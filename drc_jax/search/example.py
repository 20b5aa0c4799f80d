"""Search by example: DRC's directions when the affirmative anchor is an image embedding ``x``.

With ``u(v) = v / |v|`` and ``t(.)`` a text embedding: ``aff = x`` (or ``u(x + t(aff))`` when the
query also says what to show); ``full = aff``, as a caption has no image analogue, so eq. 8's
``dctx`` equals ``d1``; ``cf_m = u(aff + t(neg_m))``, "this photo with neg_m". The repulsion and
strength table are the paper's.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from drc_jax.scoring import Queries


def _unit(v):
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def example_queries(q: Queries, example: np.ndarray, with_aff_text: np.ndarray) -> Queries:
    """``q`` anchored on ``example`` (D,); ``with_aff_text`` (Q,) marks queries keeping aff text."""
    x = _unit(jnp.asarray(example, jnp.float32))[None, :]
    keep = jnp.asarray(with_aff_text, bool)[:, None]
    aff = jnp.where(keep, _unit(x + q.aff), jnp.broadcast_to(x, q.aff.shape))
    cf = _unit((aff[:, None, :] if q.neg.ndim == 3 else aff) + q.neg)
    return Queries(aff, q.neg, cf, aff, q.strength, q.neg_mask)
