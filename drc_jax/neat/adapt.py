"""Online test-time adaptation of CLIP's text LayerNorms with NEAT (hhc1997/NEAT ``train_TTA.py``).

As the reference: only the text blocks' ``layer_norm{1,2}`` train (not the final LayerNorm);
``steps`` AdamW updates per batch; a batch's scores come from the last step's forward pass; the
LayerNorms and AdamW state carry over from batch to batch, never reset.
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
from drc_jax.neat.order import loader_order
from drc_jax.neat.texts import NEATTexts, neat_texts
from drc_jax.parallel import batch_sharding, replicated
from drc_jax.progress import progress_bar

log = logging.getLogger(__name__)

LAYER_NORMS = ("layer_norm1", "layer_norm2")
TEXT_TOWER = ("text_model", "text_projection")


def split_text_layer_norms(params) -> tuple[dict, dict]:
    """``(ln, frozen)``: ``{layers_i: {layer_norm1, layer_norm2}}``, the text tower (no copies)."""
    encoder = params["text_model"]["encoder"]
    ln = {layer: {n: dict(encoder[layer][n]) for n in LAYER_NORMS} for layer in encoder}
    return ln, {k: params[k] for k in TEXT_TOWER}


def merge_text_layer_norms(frozen, ln):
    """``frozen`` with the LayerNorms of ``ln`` substituted (only dicts are rebuilt)."""
    encoder = dict(frozen["text_model"]["encoder"])
    for layer, norms in ln.items():
        encoder[layer] = {**encoder[layer], **norms}
    return {**frozen, "text_model": {**frozen["text_model"], "encoder": encoder}}


def _optimizer(cfg: NEATConfig) -> optax.GradientTransformation:
    """The update of the reference's ``torch.optim.AdamW(params, lr, weight_decay)``."""
    return optax.adamw(cfg.lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)


@dataclasses.dataclass
class NEATState:
    """The adapted LayerNorms and AdamW's state, carried from batch to batch."""

    ln: dict
    opt_state: optax.OptState
    batches: int = 0


def init_state(clip: ClipEncoder, cfg: NEATConfig) -> NEATState:
    """The loaded LayerNorms (copied, replicated on ``clip.mesh``) and fresh AdamW state."""
    ln, _ = split_text_layer_norms(clip.params)
    rep = replicated(clip.mesh)
    # Copies: the step donates them, and they must not alias ``clip.params``.
    ln = jax.device_put(jax.tree.map(lambda x: np.array(x, np.float32), ln), rep)
    return NEATState(ln, jax.device_put(_optimizer(cfg).init(ln), rep))


def adapted_params(clip: ClipEncoder, state: NEATState):
    """The full CLIP param tree with the adapted LayerNorms (everything else is ``clip.params``)."""
    _, frozen = split_text_layer_norms(clip.params)
    return {**clip.params, **merge_text_layer_norms(frozen, state.ln)}


@functools.lru_cache(maxsize=16)
def step_fn(config, dtype: str, cfg: NEATConfig):
    """Jitted ``(ln, opt_state, frozen, ids, negated, images) -> (ln, opt_state, scores, aux)``.

    ``ids``: (4B, L) captions, pos, inv, neg stacked; gradients w.r.t. ``ln`` only (``neg`` is
    under ``no_grad`` in the reference). ``ln`` and ``opt_state`` are donated.
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
        return ln, opt_state, scores, {**aux, "loss": loss, "text": text}

    return jax.jit(step, donate_argnums=(0, 1))


def adapt_batch(
    clip: ClipEncoder,
    state: NEATState,
    texts: NEATTexts,
    images,
    cfg: NEATConfig,
) -> tuple[NEATState, np.ndarray, dict]:
    """``cfg.steps`` NEAT steps on one batch -> (state, (B, N) scores, last step's loss terms).

    ``images``: (N, D) unit-norm embeddings; ``texts`` as given (no ``pre_caption`` here).
    """
    state, scores, _, aux = _adapt(clip, state, texts, images, cfg)
    return state, np.asarray(scores), aux


def _adapt(clip, state, texts, images, cfg):
    """:func:`adapt_batch`, also returning the last step's caption embeddings."""
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
    text = aux.pop("text")
    aux = {k: float(v) for k, v in aux.items() if k != "aligned"}
    if not scores.is_fully_addressable:  # multi-host: every process gets every row
        scores, text = jax.jit(lambda *x: x, out_shardings=replicated(mesh))(scores, text)
    return NEATState(ln, opt_state, state.batches + 1), scores, text, aux


def neat_scores(
    clip: ClipEncoder,
    images,
    captions: Sequence[str],
    pos: Sequence[str],
    neg: Sequence[str | None],
    inv: Sequence[str | None],
    config: NEATConfig | None = None,
    *,
    seed: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """(Q, N) "CLIP + NEAT" scores against ``images`` (N, D), rows in the given order.

    Batches are adapted online in the given order, or with ``seed`` in NEAT's loader's
    (:func:`~drc_jax.neat.order.loader_order`).
    """
    texts = NEATTexts.from_lists(captions, pos, neg, inv)
    return neat_scores_for_texts(clip, images, texts, config, seed=seed, progress=progress)


def neat_scores_from_decompositions(
    clip: ClipEncoder,
    images,
    decompositions,
    config: NEATConfig | None = None,
    *,
    seed: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """:func:`neat_scores` for :class:`~drc_jax.decompose.types.Decomposition` records."""
    return neat_scores_for_texts(
        clip, images, neat_texts(decompositions), config, seed=seed, progress=progress
    )


def neat_scores_for_texts(
    clip, images, texts: NEATTexts, config=None, *, seed=None, progress=False
) -> np.ndarray:
    """:func:`neat_scores` for prepared :class:`NEATTexts`."""
    return _stream(clip, images, texts, config, seed, progress, "scores")


def neat_embeddings(
    clip, images, texts: NEATTexts, config=None, *, seed=None, progress=False
) -> np.ndarray:
    """(Q, D) adapted caption embeddings, whose products with ``images`` are NEAT's scores."""
    return _stream(clip, images, texts, config, seed, progress, "embeddings")


def _stream(clip, images, texts: NEATTexts, config, seed, progress, want):
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
    order = np.arange(n) if seed is None else loader_order(n, seed)
    state = init_state(clip, cfg)
    out = np.empty((n, images.shape[0] if want == "scores" else clip.embed_dim), np.float32)
    bar = progress_bar(-(-n // bs), "NEAT", progress, unit="batch")
    for lo in range(0, n, bs):
        idx = order[lo : lo + bs]
        state, scores, text, aux = _adapt(clip, state, texts.select(idx), images, cfg)
        out[idx] = np.asarray(scores if want == "scores" else text)
        log.info("NEAT batch %d: %s", state.batches, {k: round(v, 4) for k, v in aux.items()})
        bar.update(1)
    bar.close()
    return out
