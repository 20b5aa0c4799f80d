"""Paper default (Table 1/2 rows): CLIP, SpaceVLM and SpaceVLM-DRC with the paper's constants.

(w1, w2, wctx) = (0.35, 0.35, 0.30), rho = 1.5, strength-adaptive (t, w_base): the run-level
DRCParams defaults of base_config().
"""

from drc_jax.launch.config import base_config, row


def get_config():
    config = base_config()
    config.name = "paper"
    config.description = "CLIP vs SpaceVLM vs SpaceVLM-DRC (paper defaults)"
    config.variants.clip = row("clip", "CLIP")
    config.variants.spacevlm = row("spacevlm", "SpaceVLM")
    config.variants.drc = row("drc", "SpaceVLM-DRC")
    config.rows = ("clip", "spacevlm", "drc")
    return config
