"""Per-row video frame means: SpaceVLM's unnormalised, NegBench's renormalised."""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np

from drc_jax.launch.config import Variant
from drc_jax.launch.evaluate import score
from drc_jax.launch.stages import Encoded, MediaEmbeddings
from drc_jax.scoring import Queries
from drc_jax.scoring import score as full_scores
from drc_jax.texts import text_set

Q, N, F, D = 6, 16, 4, 8


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _videos(rng):
    """(N, D) means of F unit frames; frames that disagree more give a shorter mean."""
    centre = _unit(rng.normal(size=(N, 1, D)))
    spread = np.linspace(0.1, 3.0, N)[:, None, None]
    return _unit(centre + spread * rng.normal(size=(N, F, D))).mean(axis=1)


def test_the_spacevlm_row_scores_unnormalised_frame_means_and_the_others_renormalised():
    rng = np.random.default_rng(0)
    raw = _videos(rng)
    media = MediaEmbeddings.of(raw, np.ones(N, bool), {}, {}, "video")
    np.testing.assert_allclose(np.linalg.norm(media.vectors, axis=1), 1.0, rtol=1e-6)
    assert np.linalg.norm(raw, axis=1).min() < 0.9  # the means really are shorter than 1
    rows = [
        Variant("spacevlm", "spacevlm"),
        Variant("spacevlm_renorm", "spacevlm", video_mean="renormalized"),
        Variant("clip", "clip"),
    ]
    assert [v.video_mean for v in rows] == ["unnormalized", "renormalized", "renormalized"]
    fields = [jnp.asarray(_unit(rng.normal(size=(Q, D)))) for _ in range(4)]
    queries = Queries(*fields, strength=jnp.ones(Q, jnp.int32))
    sets = {text_set(v): queries for v in rows}
    encoded = Encoded("w", "w", media, sets, {})
    bench = SimpleNamespace(
        queries=[SimpleNamespace(gt=i) for i in range(Q)], objects_complete=False
    )
    opts = SimpleNamespace(chunk_size=8192, image_dtype=None, medr="median")
    got = {r.variant.name: r for r in score(rows, encoded, bench, opts)}
    for name, images in (("spacevlm", raw), ("spacevlm_renorm", media.vectors)):
        want = np.asarray(full_scores("spacevlm", jnp.asarray(images), queries))
        np.testing.assert_array_equal(
            got[name].top, np.argsort(-want, axis=1, kind="stable")[:, :10]
        )
    assert (got["spacevlm"].top != got["spacevlm_renorm"].top).any()


def test_images_have_one_mean_for_every_row():
    vectors = _unit(np.random.default_rng(1).normal(size=(N, D)))
    media = MediaEmbeddings.of(vectors, np.ones(N, bool), {}, {}, "image", unit=True)
    assert media.unnormalized is None and media.for_mean("unnormalized") is vectors
