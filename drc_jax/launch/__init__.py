"""``python -m drc_jax.launch``: the NegBench benchmark launcher.

Data flows one way: data (:mod:`drc_jax.data`) -> decompose (:mod:`.decomposition`) -> encode
(:mod:`.encode`, cached) -> score (:mod:`.evaluate`) -> report (:mod:`.report`), orchestrated by
:func:`drc_jax.launch.pipeline.run` over typed stage outputs (:mod:`.stages`). A run's settings
are one ``ConfigDict`` (:mod:`.config`; tables in ``configs/``).
"""

from drc_jax.launch.config import Table, Variant, base_config, load_config, row
from drc_jax.launch.pipeline import run

__all__ = ["Table", "Variant", "base_config", "load_config", "row", "run"]
