"""Clustered unit vectors (a mixture on the sphere) and DRC queries against them, for ANN checks.

CLIP embeddings cluster; uniform random vectors are an ANN index's worst case and not what a
photo collection looks like. Each vector is a cluster centre plus isotropic noise, renormalised.
"""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def centres(n_clusters: int, dim: int, seed: int = 0) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n_clusters, dim), np.float32))


def clustered(n: int, centre: np.ndarray, *, spread: float = 0.6, seed: int = 1, start: int = 0):
    """Rows ``start .. start + n`` of the mixture (seeded per row block, so chunks written one at
    a time give the same vectors as one call): a uniformly drawn centre plus noise of norm about
    ``spread``."""
    rng = np.random.default_rng([seed, start])
    dim = centre.shape[1]
    which = rng.integers(0, len(centre), n)
    noise = rng.standard_normal((n, dim), np.float32) * (spread / np.sqrt(dim))
    return unit(centre[which] + noise).astype(np.float32), which


def near(v: np.ndarray, angle: float, rng) -> np.ndarray:
    """A unit vector at about ``angle`` radians from the unit vector ``v``."""
    r = rng.standard_normal(v.shape).astype(np.float32)
    r = unit(r - (r @ v) * v)
    return (np.cos(angle) * v + np.sin(angle) * r).astype(np.float32)


def drc_queries(centre: np.ndarray, nq: int, *, neg_angle: float = 0.5, concepts: int = 1, seed=2):
    """``Queries`` whose affirmative text lies near one cluster and whose negated concept(s) near
    a nearby direction (``neg_angle`` radians from the query), strength "strong"."""
    import jax.numpy as jnp

    from drc_jax.scoring import Queries

    rng = np.random.default_rng(seed)
    c = centre[rng.integers(0, len(centre), nq)]
    aff = np.stack([near(v, 0.3, rng) for v in c])
    negs = np.stack([[near(a, neg_angle, rng) for _ in range(concepts)] for a in aff])
    full = unit(aff + 0.5 * negs[:, 0])
    cfs = np.stack([[near(a, 0.4, rng) for _ in range(concepts)] for a in aff])
    strength = jnp.full((nq,), 3, jnp.int32)
    if concepts == 1:
        return Queries(aff, negs[:, 0], cfs[:, 0], full, strength)
    return Queries(aff, negs, cfs, full, strength)


def nested_centres(n_groups: int, per_group: int, dim: int, *, angle: float = 0.6, seed: int = 0):
    """``(centres, group)``: ``n_groups * per_group`` cluster centres, each group's about
    ``angle`` radians from its own random direction, so clusters of a group are near each other
    (a dog on a beach, a dog on grass) and far from other groups' (as CLIP's are)."""
    rng = np.random.default_rng(seed)
    tops = centres(n_groups, dim, seed=seed)
    out = np.stack([near(t, angle, rng) for t in tops for _ in range(per_group)])
    return out, np.repeat(np.arange(n_groups), per_group)


def nearby_cluster_queries(centre, group, nq: int, *, concepts: int = 1, seed: int = 2):
    """DRC ``Queries``: the affirmative text near one cluster, each negated concept near another
    cluster of its group (the collection holds the thing excluded, next to what is wanted)."""
    import jax.numpy as jnp

    from drc_jax.scoring import Queries

    rng = np.random.default_rng(seed)
    aff, negs, cfs = [], [], []
    for _ in range(nq):
        a = int(rng.integers(len(centre)))
        others = np.flatnonzero((group == group[a]) & (np.arange(len(centre)) != a))
        b = rng.choice(others, concepts, replace=False)
        aff.append(near(centre[a], 0.2, rng))
        negs.append([near(centre[j], 0.2, rng) for j in b])
        cfs.append([near(aff[-1], 0.4, rng) for _ in b])
    aff, negs, cfs = np.stack(aff), np.stack(negs), np.stack(cfs)
    full = unit(aff + 0.5 * negs[:, 0])
    strength = jnp.full((nq,), 3, jnp.int32)
    if concepts == 1:
        return Queries(aff, negs[:, 0], cfs[:, 0], full, strength)
    return Queries(aff, negs, cfs, full, strength)
