"""The errors a user can fix, turned into one-line messages by ``__main__``."""

from __future__ import annotations

from drc_jax.data.negbench import DataError
from drc_jax.launch.config import ConfigError
from drc_jax.media import MediaError


class LaunchError(Exception):
    """The run cannot go on; the message names the file/row and what to do."""


def _store_errors() -> tuple[type[BaseException], ...]:
    try:
        from drc_jax.store import StoreError

        return (StoreError,)
    except ImportError:  # pragma: no cover - the store ships with the package
        return ()


USER_ERRORS: tuple[type[BaseException], ...] = (
    LaunchError,
    DataError,
    ConfigError,
    MediaError,
    *_store_errors(),
)


def describe(error: BaseException) -> str:
    return str(error)
