"""Paper Tables 1 and 2, row for row: CLIP Baseline, CLIP + NEAT, SpaceVLM, SpaceVLM-DRC (Ours).

Each baseline with its own settings, gains in parentheses against the CLIP row:

- "CLIP Baseline": eq. 2 on the raw caption, as NegBench encodes it (prompts "raw"). The
  prefixed variant ("A photo of <caption>") is the row ``clip_prefixed``, defined but not shown:
  ``--config.rows="('clip', 'clip_prefixed', 'neat', 'spacevlm', 'drc')"``.
- "CLIP + NEAT": the text encoder's residual-block LayerNorms adapted at test time over the query
  batches (drc_jax.neat: AdamW lr 2e-4, wd 1e-3, 3 steps per batch of 256), pos/neg/inv from our
  decomposition's aff/neg/cf.
- "SpaceVLM": one direction compose(aff, neg, 0.92) for every negated caption whatever its
  strength, no repulsion, its script's texts and unnormalised frame means (README).
  ``--config.spacevlm_split=<SpaceVLM's Mistral-7B split CSV>`` scores SpaceVLM's own split.
- "SpaceVLM-DRC (Ours)": (w1, w2, wctx) = (0.35, 0.35, 0.30), rho = 1.5, strength-adaptive
  (t, w_base), "A photo of" on aff/neg/cf/full once decomposed (the run-level DRCParams).

The paper decomposes with Qwen2.5-14B-Instruct, two independent prompts run in parallel
(decomposer and strength estimator), one negated concept per caption: ``--decomposer sglang``
uses that protocol here (``paper_protocol``); with the default rules the table says so.
"""

from drc_jax.launch.config import base_config, paper_protocol, row


def get_config():
    config = paper_protocol(base_config())
    config.name = "paper"
    config.description = "CLIP Baseline vs CLIP + NEAT vs SpaceVLM vs SpaceVLM-DRC (Ours)"
    config.variants.clip = row("clip", "CLIP Baseline")
    config.variants.clip_prefixed = row("clip", "CLIP Baseline (A photo of)", prompts="photo")
    config.variants.neat = row("neat", "CLIP + NEAT")
    config.variants.spacevlm = row("spacevlm", "SpaceVLM")
    config.variants.drc = row("drc", "SpaceVLM-DRC (Ours)")
    config.rows = ("clip", "neat", "spacevlm", "drc")
    return config
