"""The "CLIP + NEAT" rows of a run: their texts (NEAT's CSV or ours), one adaptation per seed,
their record."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drc_jax.errors import UserError
from drc_jax.texts import PROMPT_PREFIX, neat_lists, with_prefix

DECOMPOSITION = "decomposition"
DECOMPOSITION_NOTE = (
    "NEAT rows adapt on aff / neg / cf of our decomposition, not on NEAT's own LLM texts "
    "(pass --config.neat_texts=<NEAT's *_logic_inversion.csv> for those)."
)


@dataclass(frozen=True)
class NEATRun:
    """Per seed: the adapted (Q, D) caption embeddings and the sha256 of the order adapted in."""

    seeds: tuple[int, ...]
    embeddings: tuple[np.ndarray, ...]
    orders: tuple[str, ...]


def load_csv(opts, read):
    """NEAT's logic-inversion CSV aligned with the query CSV ``read``, or None without one."""
    if not opts.neat_texts:
        return None
    from drc_jax.data.neat_csv import load_neat_csv
    from drc_jax.data.negbench import DataError

    try:
        return load_neat_csv(opts.neat_texts, read)
    except DataError as e:
        raise UserError(f"--config.neat_texts: {e}") from e


def row_texts(variant, decompositions, queries, csv) -> tuple[tuple, object]:
    """(captions, pos, neg, inv) of one NEAT row, and the record's ``texts``."""
    if csv is None:
        return neat_lists(decompositions, variant.prompts), DECOMPOSITION
    p = variant.prompts
    rows = []
    for q in queries:
        pos, neg, inv = csv.texts[(q.line, q.caption)]
        if not q.caption.strip():
            rows.append((PROMPT_PREFIX, PROMPT_PREFIX, None, None))
            continue
        caption = with_prefix(q.caption, p.full)
        negated = bool(neg.strip() and inv.strip())
        rows.append(
            (
                caption,
                with_prefix(pos, p.aff) if pos.strip() else caption,
                with_prefix(neg, p.neg) if negated else None,
                with_prefix(inv, p.cf) if negated else None,
            )
        )
    lists = tuple(list(c) for c in zip(*rows, strict=True))
    return lists, {"source": "neat_csv", "path": str(csv.path), "sha256": csv.sha256}


def adapt(clip, variants, texts, media, opts) -> dict[str, NEATRun]:
    """Every NEAT row adapted from ``clip``'s weights once per seed, over the readable media."""
    from drc_jax.launch.config import neat_seeds
    from drc_jax.neat import NEATTexts, loader_order, neat_embeddings, order_sha256

    seeds = neat_seeds(opts)
    images = media.vectors[media.valid]
    out = {}
    for v in variants:
        cfg = v.neat_config()
        t = NEATTexts.from_lists(*texts.neat[v.name])
        shown = t.preprocessed().captions if cfg.pre_caption else t.captions
        runs = [
            (
                neat_embeddings(clip, images, t, cfg, seed=s, progress=opts.progress),
                order_sha256(loader_order(len(t), s), shown),
            )
            for s in seeds
        ]
        out[v.name] = NEATRun(seeds, *map(tuple, zip(*runs, strict=True)))
    return out


def record(run: NEATRun, source) -> dict:
    """A NEAT row's ``texts``, ``neat_seed``, ``neat_order`` (lists for several seeds)."""
    one = len(run.seeds) == 1
    return {
        "texts": source,
        "neat_seed": run.seeds[0] if one else list(run.seeds),
        "neat_order": run.orders[0] if one else list(run.orders),
    }


def seed_summary(per_seed: list[dict]) -> tuple[dict, dict]:
    """Mean and spread (population standard deviation) over seeds of each metric."""
    keys = [k for k in per_seed[0] if all(k in m for m in per_seed)]
    values = {k: np.asarray([m[k] for m in per_seed], np.float64) for k in keys}
    return (
        {k: float(v.mean()) for k, v in values.items()},
        {k: float(v.std()) for k, v in values.items()},
    )
