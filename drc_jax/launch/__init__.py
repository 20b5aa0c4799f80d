"""The NegBench launcher (``python -m drc_jax.launch``): :func:`~drc_jax.launch.pipeline.run`."""

from drc_jax.launch.config import Table, Variant, base_config, load_config, row
from drc_jax.launch.pipeline import run

__all__ = ["Table", "Variant", "base_config", "load_config", "row", "run"]
