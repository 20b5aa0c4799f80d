"""Search by example: DRC's directions when the affirmative anchor is an image embedding.

"Like this photo, but no people": the example's CLIP image embedding ``x`` takes the place of
the affirmative text, and the text concepts stay the negated directions. With ``t(.)`` the text
embedding the method's texts give (:mod:`drc_jax.texts`) and ``u(v) = v / |v|``:

- ``aff = x``, or ``u(x + t(aff text))`` when the query also says what to show ("like this, at
  night"): the example and the words pull together;
- ``full = aff``: the caption's own embedding has no image analogue, so the context direction
  ``dctx = compose(full, neg)`` (eq. 8) equals ``d1 = compose(aff, neg)``;
- ``cf_m = u(aff + t(neg_m))``: the counterfactual "this photo with neg_m", the midpoint of the
  example and the concept on the sphere, so ``d2 = compose(aff, cf)`` turns away from it;
- the repulsion ``w_base * rho * max(images.neg, 0)`` and the strength table are the paper's.

Without a negated concept the score is eq. 2 with ``full = aff``: cosine similarity to the
example. The example itself is left out of its own results by the caller.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from drc_jax.scoring import Queries


def _unit(v):
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def example_queries(q: Queries, example: np.ndarray, with_aff_text: np.ndarray) -> Queries:
    """``q`` (text queries, (Q, D) or (Q, M, D) concepts) anchored on the image embedding
    ``example`` (D,); ``with_aff_text`` (Q,) bool says which queries also keep their aff text."""
    x = _unit(jnp.asarray(example, jnp.float32))[None, :]
    keep = jnp.asarray(with_aff_text, bool)[:, None]
    aff = jnp.where(keep, _unit(x + q.aff), jnp.broadcast_to(x, q.aff.shape))
    cf = _unit((aff[:, None, :] if q.neg.ndim == 3 else aff) + q.neg)
    return Queries(aff, q.neg, cf, aff, q.strength, q.neg_mask)
