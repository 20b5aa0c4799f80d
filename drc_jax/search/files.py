"""Which files the search server may read: only indexed files that resolve inside the index roots.

A request names a file the index lists (a hit's path). The index must list it, and the file, with
every symlink and ``..`` resolved, must lie inside one of the index's roots (also resolved);
anything else is refused the same way, so a refusal leaks nothing about the disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class NotServable(LookupError):
    """The index does not list the file, or it is missing or lies outside the index's roots."""


def servable_path(candidate: Path | None, roots: Sequence[Path]) -> Path:
    """``candidate`` fully resolved, if it is an existing regular file inside one of ``roots``.

    ``candidate`` is the file as the index lists it (``None``: not listed). Raises
    :class:`NotServable` otherwise, e.g. for a symlink in a root that points outside it.
    """
    if candidate is None:
        raise NotServable("not in the index")
    try:
        real = Path(os.path.realpath(candidate, strict=True))
    except (OSError, ValueError) as e:
        raise NotServable("file missing") from e
    for root in roots:
        root_real = Path(os.path.realpath(root))
        if real.is_relative_to(root_real) and real.is_file():
            return real
    raise NotServable("outside the indexed folders")
