"""Online test-time adaptation of CLIP's text LayerNorms with NEAT (reference ``train_TTA.py``).

Trainable parameters: the scale and bias of both LayerNorms of every residual block of the text
encoder (``text_model/encoder/layers_i/layer_norm{1,2}``), which is what the reference's
``collect_params(model, only_visual=False)`` gathers from open_clip's ``model.transformer``; the
final LayerNorm (``ln_final`` there, ``final_layer_norm`` here) sits outside it and stays frozen,
as does everything else.

Per batch of captions, ``steps`` times: encode caption, pos, neg and inv with the current
LayerNorms, take the NEAT loss (:func:`drc_jax.neat.losses.neat_loss`), one AdamW update. The
batch's scores are the caption-vs-all-images cosine similarities of the *last step's forward
pass* (before that step's update), which is what the reference stores (``sims_matrix`` from
``coarse_aligning_t2i`` of the last iteration). LayerNorms and AdamW state carry over to the next
batch (online: one optimiser for the whole stream, never reset).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from drc_jax.clip.encoder import DTYPES, ClipEncoder
from drc_jax.clip.model import CLIP
from drc_jax.neat.config import NEATConfig
from drc_jax.neat.losses import _HIGHEST, neat_loss
from drc_jax.neat.texts import NEATTexts, neat_texts
from drc_jax.parallel import batch_sharding, replicated
from drc_jax.progress import progress_bar

log = logging.getLogger(__name__)

LAYER_NORMS = ("layer_norm1", "layer_norm2")
TEXT_TOWER = ("text_model", "text_projection")


def split_text_layer_norms(params) -> tuple[dict, dict]:
    """``(ln, frozen)``: the trainable sub-tree ``{layers_i: {layer_norm1, layer_norm2}}`` of the
    text encoder, and the text tower's params (``text_model``, ``text_projection``; the arrays
    themselves, not copies). ``frozen`` still holds the original LayerNorm leaves, which
    :func:`merge_text_layer_norms` replaces."""
    encoder = params["text_model"]["encoder"]
    ln = {layer: {n: dict(encoder[layer][n]) for n in LAYER_NORMS} for layer in encoder}
    return ln, {k: params[k] for k in TEXT_TOWER}


def merge_text_layer_norms(frozen, ln):
    """``frozen`` with the LayerNorms of ``ln`` substituted; only dicts are rebuilt (inside a jit
    this is free: no array is copied)."""
    encoder = dict(frozen["text_model"]["encoder"])
    for layer, norms in ln.items():
        encoder[layer] = {**encoder[layer], **norms}
    return {**frozen, "text_model": {**frozen["text_model"], "encoder": encoder}}


def _optimizer(cfg: NEATConfig) -> optax.GradientTransformation:
    """``torch.optim.AdamW(params, lr, weight_decay)``: same update (decoupled decay ``lr * wd``
    on the old value, bias-corrected moments, eps outside the square root)."""
    return optax.adamw(cfg.lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)


@dataclasses.dataclass
class NEATState:
    """What carries over from batch to batch: the adapted LayerNorms and AdamW's state."""

    ln: dict
    opt_state: optax.OptState
    batches: int = 0


def init_state(clip: ClipEncoder, cfg: NEATConfig) -> NEATState:
    """Fresh state: the loaded LayerNorms (copied, replicated on ``clip.mesh``), AdamW zeros."""
    ln, _ = split_text_layer_norms(clip.params)
    rep = replicated(clip.mesh)
    # New buffers: the step donates them, and they must not alias ``clip.params``.
    ln = jax.device_put(jax.tree.map(lambda x: np.array(x, np.float32), ln), rep)
    return NEATState(ln, jax.device_put(_optimizer(cfg).init(ln), rep))


def adapted_params(clip: ClipEncoder, state: NEATState):
    """The full CLIP param tree with the adapted LayerNorms (everything else is ``clip.params``)."""
    _, frozen = split_text_layer_norms(clip.params)
    return {**clip.params, **merge_text_layer_norms(frozen, state.ln)}


@functools.lru_cache(maxsize=16)
def step_fn(config, dtype: str, cfg: NEATConfig):
    """The jitted NEAT step ``(ln, opt_state, frozen, ids, negated, images) -> (ln, opt_state,
    scores, aux)`` for one CLIP config and dtype.

    ``ids`` is (4B, L): captions, pos, inv and neg stacked. Gradients are taken with respect to
    ``ln`` only; ``frozen`` and ``images`` are ordinary (non-differentiated) arguments. ``neg``
    only steers the coarse alignment, which the reference runs under ``no_grad``, so it is encoded
    outside the differentiated function (same values and gradients, a quarter less backward
    work); the other 3B rows go through the tower in one pass, with per-block rematerialisation
    (activation memory of one block, not twelve: a 256-caption batch otherwise needs ~26 GB).
    ``ln`` and ``opt_state`` are donated (updated in place).
    """
    model = CLIP(config, DTYPES[dtype], remat_text=True)
    optimizer = _optimizer(cfg)

    def step(ln, opt_state, frozen, ids, negated, images):
        b = negated.shape[0]
        encode = lambda ln, ids: model.apply(  # noqa: E731
            {"params": merge_text_layer_norms(frozen, ln)}, ids, method=CLIP.encode_text
        )
        neg = jax.lax.stop_gradient(encode(ln, ids[3 * b :]))

        def loss_fn(ln):
            feats = encode(ln, ids[: 3 * b])
            text, pos, inv = feats.reshape(3, b, feats.shape[-1])
            loss, aux = neat_loss(text, pos, neg, inv, images, negated, cfg)
            return loss, (aux, text)

        (loss, (aux, text)), grads = jax.value_and_grad(loss_fn, has_aux=True)(ln)
        updates, opt_state = optimizer.update(grads, opt_state, ln)
        ln = optax.apply_updates(ln, updates)
        scores = jnp.einsum("qd,nd->qn", text, images, precision=_HIGHEST)
        return ln, opt_state, scores, {**aux, "loss": loss}

    return jax.jit(step, donate_argnums=(0, 1))


def adapt_batch(
    clip: ClipEncoder,
    state: NEATState,
    texts: NEATTexts,
    images,
    cfg: NEATConfig,
) -> tuple[NEATState, np.ndarray, dict]:
    """``cfg.steps`` NEAT steps on one batch; returns the new state, the batch's (B, N) scores
    and the last step's loss terms. ``images``: (N, D) unit-norm embeddings (numpy or on the
    mesh). ``texts`` is used as given (apply ``pre_caption`` before, as :func:`neat_scores`
    does)."""
    if not len(texts):
        raise ValueError("adapt_batch needs at least one caption")
    mesh = clip.mesh
    ids = clip.tokenizer([*texts.captions, *texts.pos, *texts.inv, *texts.neg])
    rows = batch_sharding(mesh) if len(ids) % mesh.size == 0 else replicated(mesh)
    ids = jax.device_put(ids, rows)
    negated = jax.device_put(np.asarray(texts.negated, bool), replicated(mesh))
    images = jax.device_put(jnp.asarray(images, jnp.float32), replicated(mesh))
    _, frozen = split_text_layer_norms(clip.params)
    fn = step_fn(clip.config, clip.dtype, cfg)
    ln, opt_state = state.ln, state.opt_state
    for _ in range(cfg.steps):
        ln, opt_state, scores, aux = fn(ln, opt_state, frozen, ids, negated, images)
    aux = {k: float(v) for k, v in aux.items() if k != "aligned"}
    if not scores.is_fully_addressable:  # multi-host: every process gets every row, as encoders do
        scores = jax.jit(lambda x: x, out_shardings=replicated(mesh))(scores)
    return NEATState(ln, opt_state, state.batches + 1), np.asarray(scores), aux


def neat_scores(
    clip: ClipEncoder,
    images,
    captions: Sequence[str],
    pos: Sequence[str],
    neg: Sequence[str | None],
    inv: Sequence[str | None],
    config: NEATConfig | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """(Q, N) "CLIP + NEAT" scores: cosine similarities of each caption to every image, with the
    text LayerNorms adapted online over consecutive batches of ``config.batch_size`` captions.

    ``images``: (N, D) unit-norm image (or video) embeddings from the same ``clip``. ``pos``,
    ``neg``, ``inv`` per caption (see :mod:`drc_jax.neat.texts`: from a decomposition,
    ``aff``/``neg``/``cf``; for a caption without negation ``pos`` = the caption and
    ``neg``/``inv`` empty or None). Batches run in the given order, as the reference's
    unshuffled loader does; the state starts from ``clip``'s weights, which are not modified.
    """
    texts = NEATTexts.from_lists(captions, pos, neg, inv)
    return neat_scores_for_texts(clip, images, texts, config, progress=progress)


def neat_scores_from_decompositions(
    clip: ClipEncoder,
    images,
    decompositions,
    config: NEATConfig | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """:func:`neat_scores` for :class:`~drc_jax.decompose.types.Decomposition` records, one per
    query in order (texts as :func:`drc_jax.neat.texts.neat_texts` maps them)."""
    return neat_scores_for_texts(
        clip, images, neat_texts(decompositions), config, progress=progress
    )


def neat_scores_for_texts(
    clip: ClipEncoder,
    images,
    texts: NEATTexts,
    config: NEATConfig | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """:func:`neat_scores` for prepared :class:`NEATTexts` (``pre_caption`` applied here when
    ``config.pre_caption``)."""
    cfg = config or NEATConfig()
    if cfg.pre_caption:
        texts = texts.preprocessed()
    images = np.asarray(images, np.float32)
    if images.ndim != 2 or images.shape[1] != clip.embed_dim:
        raise ValueError(
            f"images must be (N, {clip.embed_dim}) embeddings from this CLIP, got {images.shape}"
        )
    images = jax.device_put(images, replicated(clip.mesh))
    n, bs = len(texts), cfg.batch_size
    # Consecutive batches, the last one shorter, as the reference's DataLoader (drop_last=False).
    bounds = [(lo, min(lo + bs, n)) for lo in range(0, n, bs)]
    state = init_state(clip, cfg)
    out = np.empty((n, images.shape[0]), np.float32)
    bar = progress_bar(len(bounds), "NEAT", progress, unit="batch")
    for lo, hi in bounds:
        part = NEATTexts(
            texts.captions[lo:hi],
            texts.pos[lo:hi],
            texts.neg[lo:hi],
            texts.inv[lo:hi],
            texts.negated[lo:hi],
        )
        state, out[lo:hi], aux = adapt_batch(clip, state, part, images, cfg)
        log.info("NEAT batch %d: %s", state.batches, {k: round(v, 4) for k, v in aux.items()})
        bar.update(1)
    bar.close()
    return out
