"""Paper Table 4: sensitivity to the repulsion scale rho (w_rep = w_base * rho); paper: 1.5."""

from drc_jax.launch.config import RunConfig, Variant
from drc_jax.scoring import DRCParams

RHOS = (0.0, 0.5, 1.0, 1.5, 2.0)


def get_config() -> RunConfig:
    return RunConfig(
        name="table4",
        description="Table 4: DRC with rho in " + ", ".join(map(str, RHOS)),
        variants=(
            Variant("clip", "clip", label="CLIP"),
            *(Variant(f"rho={r}", "drc", DRCParams(rho=r), label=f"DRC rho={r}") for r in RHOS),
        ),
    )
