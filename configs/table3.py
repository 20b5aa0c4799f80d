"""Paper Table 3: component ablation, each row adding one DRC component to the one above.

CLIP -> + d1 (SpaceVLM's single direction, compose(aff, neg)) -> + d2 (compose(aff, cf)) ->
+ dctx (compose(full, neg)) -> + repulsion (w_base * rho * max(image . neg, 0)) = full DRC.
Enabled angular weights are renormalised to sum to one (see DRCParams).
"""

from drc_jax.launch.config import base_config, paper_protocol, row


def get_config():
    config = paper_protocol(base_config())  # --decomposer sglang: the paper's protocol
    config.name = "table3"
    config.description = "Table 3: CLIP, + d1, + d2, + dctx, + repulsion (cumulative)"
    off = dict(use_d1=True, use_d2=False, use_dctx=False, use_repulsion=False)
    config.variants.clip = row("clip", "CLIP")
    config.variants.d1 = row("drc", "+ d1", **off)
    config.variants.d2 = row("drc", "+ d2", **{**off, "use_d2": True})
    config.variants.dctx = row("drc", "+ dctx", **{**off, "use_d2": True, "use_dctx": True})
    config.variants.repulsion = row(
        "drc", "+ repulsion (DRC)", use_d1=True, use_d2=True, use_dctx=True, use_repulsion=True
    )
    config.rows = ("clip", "d1", "d2", "dctx", "repulsion")
    return config
