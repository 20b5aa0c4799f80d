"""Paper Table 3: component ablation, each row adding one DRC component to the one above.

CLIP -> + d1 (SpaceVLM's single direction, compose(aff, neg)) -> + d2 (compose(aff, cf)) ->
+ dctx (compose(full, neg)) -> + repulsion (w_base * rho * max(image . neg, 0)) = full DRC.
Enabled angular weights are renormalised to sum to one (see DRCParams).
"""

from drc_jax.launch.config import RunConfig, Variant
from drc_jax.scoring import DRCParams

OFF = dict(use_d1=False, use_d2=False, use_dctx=False, use_repulsion=False)


def get_config() -> RunConfig:
    return RunConfig(
        name="table3",
        description="Table 3: CLIP, + d1, + d2, + dctx, + repulsion (cumulative)",
        variants=(
            Variant("clip", "clip", label="CLIP"),
            Variant("+d1", "drc", DRCParams(**{**OFF, "use_d1": True}), label="+ d1"),
            Variant(
                "+d2", "drc", DRCParams(**{**OFF, "use_d1": True, "use_d2": True}), label="+ d2"
            ),
            Variant("+dctx", "drc", DRCParams(use_repulsion=False), label="+ dctx"),
            Variant("+repulsion", "drc", DRCParams(), label="+ repulsion (DRC)"),
        ),
    )
