"""Atomic, link-safe writes: a new temp file renamed onto the name, so a symbolic link planted
there is replaced, never followed, and a failed write leaves the old file whole."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})

Content = bytes | str | Callable[[IO[bytes]], None]


def write_problem(e: BaseException) -> str | None:
    """``"no space"``, ``"read-only"`` or ``None`` for an ``OSError`` or SQLite error."""
    if isinstance(e, OSError):
        return "no space" if e.errno in NO_SPACE else "read-only" if e.errno in READ_ONLY else None
    if isinstance(e, sqlite3.Error):
        text = str(e).lower()
        if "disk is full" in text or "disk full" in text:
            return "no space"
        if "readonly" in text or "read-only" in text:
            return "read-only"
    return None


def advice(e: BaseException, where: str | os.PathLike, flag: str) -> str | None:
    """A sentence for a disk-full or read-only ``e`` writing ``where`` (``flag`` picks another)."""
    kind = write_problem(e)
    if kind == "no space":
        return (
            f"no space left on device writing {where}: free space or choose another {flag} "
            "(nothing already written was lost)"
        )
    if kind == "read-only":
        return (
            f"{where} is read-only ({getattr(e, 'strerror', None) or e}): nothing is damaged; "
            f"make it writable or choose another {flag}"
        )
    return None


@contextlib.contextmanager
def _temp(path: Path) -> Iterator[tuple[int, Path]]:
    """A new, exclusive temp file beside ``path``; removed unless renamed."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o644)
        yield fd, tmp
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fill(fd: int, content: Content) -> None:
    with os.fdopen(os.dup(fd), "wb") as f:
        if callable(content):
            content(f)
        else:
            f.write(content.encode() if isinstance(content, str) else content)
        f.flush()
        os.fsync(f.fileno())


def write_all(directory: str | os.PathLike, files: Mapping[str, Content]) -> list[Path]:
    """Write ``name -> content`` (bytes, text, or a writer of a binary file) into ``directory``;
    all temp files are written before any rename, so a failure replaces nothing."""
    directory = Path(directory).expanduser()
    paths = [directory / name for name in files]
    for parent in dict.fromkeys(p.parent for p in paths):
        parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        temps = []
        for path, content in zip(paths, files.values(), strict=True):
            fd, tmp = stack.enter_context(_temp(path))
            _fill(fd, content)
            temps.append(tmp)
        for tmp, path in zip(temps, paths, strict=True):
            os.replace(tmp, path)
    return paths


def write(path: str | os.PathLike, content: Content) -> Path:
    """Write one file atomically (see :func:`write_all`)."""
    path = Path(path).expanduser()
    return write_all(path.parent, {path.name: content})[0]
