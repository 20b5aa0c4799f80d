"""``python -m drc_jax.launch``: the NegBench benchmark launcher.

Data flows one way: data (:mod:`drc_jax.data`) -> encode (:mod:`.encode`, cached) -> decompose
(:mod:`.decomposition`) -> score (:mod:`.evaluate`) -> report (:mod:`.report`), orchestrated by
:func:`drc_jax.launch.pipeline.run`. Tables are config files (:mod:`.config`, ``configs/``).
"""

from drc_jax.launch.config import RunConfig, Variant, load_config
from drc_jax.launch.errors import LaunchError
from drc_jax.launch.options import RunOptions
from drc_jax.launch.pipeline import run

__all__ = ["LaunchError", "RunConfig", "RunOptions", "Variant", "load_config", "run"]
