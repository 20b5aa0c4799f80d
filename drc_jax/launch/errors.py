"""The errors a user can fix, turned into one-line messages by ``__main__``."""

from __future__ import annotations

from drc_jax.data.negbench import DataError
from drc_jax.launch.config import ConfigError
from drc_jax.media import MediaError
from drc_jax.store import StoreError


class LaunchError(Exception):
    """The run cannot go on; the message names the file/row and what to do."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    LaunchError,
    DataError,
    ConfigError,
    MediaError,
    StoreError,
)
