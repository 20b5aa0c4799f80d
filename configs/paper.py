"""Paper default (Table 1/2 rows): CLIP, SpaceVLM and SpaceVLM-DRC with the paper's constants.

(w1, w2, wctx) = (0.35, 0.35, 0.30), rho = 1.5, strength-adaptive (t, w_base): DRCParams defaults.
"""

from drc_jax.launch.config import RunConfig, Variant


def get_config() -> RunConfig:
    return RunConfig(
        name="paper",
        description="CLIP vs SpaceVLM vs SpaceVLM-DRC (paper defaults)",
        variants=(
            Variant("clip", "clip", label="CLIP"),
            Variant("spacevlm", "spacevlm", label="SpaceVLM"),
            Variant("drc", "drc", label="SpaceVLM-DRC"),
        ),
    )
