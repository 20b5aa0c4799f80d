"""Which files the search server may read: only indexed files that resolve inside the index roots.

A request names a file the index lists (a hit's path). The index must list it, and the file, with
every symlink and ``..`` resolved, must lie inside one of the index's roots (also resolved);
anything else is refused the same way, so a refusal leaks nothing about the disk.
"""

from __future__ import annotations

import os
import stat
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


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks


def open_servable(candidate: Path | None, roots: Sequence[Path]) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the file :func:`servable_path` allows, and its ``fstat``.

    The resolved path is opened beneath its root's opened directory one component at a time,
    none followed if it is a symbolic link, and what was opened must be a regular file: a
    folder swapped for a link after the check makes the open fail instead of leaving the root.
    The caller closes the descriptor. Raises :class:`NotServable`.
    """
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
