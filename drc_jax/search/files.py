"""Which files the search server may read: only indexed files that resolve inside the index roots.

Every refusal looks the same, so it leaks nothing about the disk.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path


class NotServable(LookupError):
    """The index does not list the file, or it is missing or lies outside the index's roots."""


def servable_path(candidate: Path | None, roots: Sequence[Path]) -> Path:
    """``candidate`` (``None``: not listed) resolved, if a regular file inside one of ``roots``;
    else :class:`NotServable`."""
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


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks


def open_servable(candidate: Path | None, roots: Sequence[Path]) -> tuple[int, os.stat_result]:
    """A read-only descriptor (the caller closes it) of the file :func:`servable_path` allows,
    and its ``fstat``. Opened from the root one component at a time, links not followed, so a
    folder swapped for a link after the check fails instead of leaving the root."""
    real = servable_path(candidate, roots)
    root = next(
        Path(os.path.realpath(r)) for r in roots if real.is_relative_to(os.path.realpath(r))
    )
    *folders, name = real.relative_to(root).parts
    fd = None
    try:
        fd = os.open(root, _DIR)
        for part in folders:
            inner = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        inner = os.open(name, _FILE, dir_fd=fd)
    except OSError as e:
        raise NotServable("changed while opening") from e
    finally:
        if fd is not None:
            os.close(fd)
    st = os.fstat(inner)
    if not stat.S_ISREG(st.st_mode):
        os.close(inner)
        raise NotServable("not a regular file")
    return inner, st
