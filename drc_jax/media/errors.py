"""The one error of the media path: a file that cannot be listed, read or embedded."""

from __future__ import annotations

import os

from drc_jax.errors import UserError


class MediaError(UserError):
    """One media file could not be found, decoded or embedded; ``path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
