"""Media files on disk: which names are media, walking folders safely, fingerprints.

Only regular files are listed: a FIFO or device named ``x.jpg`` would block the first ``open``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

from drc_jax.media.errors import MediaError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".avif"})  # pillow-heif (the heif extra)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"})
MEDIA_SUFFIXES = IMAGE_SUFFIXES | HEIF_SUFFIXES | VIDEO_SUFFIXES
FINGERPRINTS = ("stat", "sha1")

OnSkip = Callable[[Path, str], None]


def media_kind(path: str | os.PathLike) -> str:
    """``"video"`` for a video suffix, else ``"image"``."""
    return "video" if Path(path).suffix.lower() in VIDEO_SUFFIXES else "image"


def file_name(recorded_path: str) -> str:
    """The base name of a path written on any machine (POSIX or Windows separators)."""
    recorded_path = recorded_path.strip()
    name = PureWindowsPath(recorded_path).name if "\\" in recorded_path else ""
    return name or PurePosixPath(recorded_path).name


def regular_file(path: str | os.PathLike) -> os.stat_result:
    """``stat`` of ``path`` if it is a regular file (links followed); else :class:`MediaError`."""
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise MediaError(path, "file not found") from e
    except OSError as e:
        raise MediaError(path, f"cannot stat ({e.strerror or e})") from e
    if not stat.S_ISREG(st.st_mode):
        raise MediaError(path, f"not a regular file ({_file_type(st.st_mode)}); not read")
    return st


def fingerprint(path: str | os.PathLike, how: str = "stat") -> str:
    """``"size:mtime_ns"`` or ``"sha1:<hex>"`` of the bytes; :class:`MediaError` if not regular."""
    if how not in FINGERPRINTS:
        raise ValueError(f"fingerprint must be one of {FINGERPRINTS}, got {how!r}")
    st = regular_file(path)
    if how == "stat":
        return f"{st.st_size}:{st.st_mtime_ns}"
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha1:{h.hexdigest()}"


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _log_skip(path: Path, reason: str) -> None:
    log.warning("skipped %s: %s", path, reason)


def walk_files(
    root: str | os.PathLike,
    suffixes: frozenset[str] | None = MEDIA_SUFFIXES,
    *,
    follow_symlinks: bool = False,
    skip_hidden: bool = True,
    on_skip: OnSkip | None = _log_skip,
) -> Iterator[Path]:
    """Regular files under ``root`` whose suffix (any case) is in ``suffixes`` (all when None).

    Sorted, depth first, nothing opened; links only with ``follow_symlinks`` (each folder entered
    once). Skipped media-named entries go to ``on_skip(path, reason)``.
    """
    root = Path(root)
    on_skip = on_skip or (lambda path, reason: None)
    try:
        seen = {_dir_key(os.stat(root))}
    except OSError as e:
        raise MediaError(root, f"cannot open folder ({e.strerror or e})") from e
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            on_skip(folder, f"cannot list folder ({e.strerror or e})")
            continue
        subfolders = []
        for entry in entries:
            if skip_hidden and entry.name.startswith("."):
                continue
            path = Path(entry.path)
            wanted = suffixes is None or path.suffix.lower() in suffixes
            try:
                is_link = entry.is_symlink()
                if is_link and not follow_symlinks:
                    if wanted or entry.is_dir():
                        on_skip(path, "symbolic link not followed (follow_symlinks=True follows)")
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError as e:
                if wanted:
                    on_skip(path, f"cannot stat ({e.strerror or e})")
                continue
            if stat.S_ISDIR(st.st_mode):
                key = _dir_key(st)
                if key in seen:
                    on_skip(path, "folder already walked (symbolic link loop or duplicate)")
                    continue
                seen.add(key)
                subfolders.append(path)
            elif not wanted:
                continue
            elif stat.S_ISREG(st.st_mode):
                yield path
            else:
                on_skip(path, f"{_file_type(st.st_mode)}, not a regular file; not opened")
        stack.extend(reversed(subfolders))


def _dir_key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class MediaIndex:
    """Maps file names to paths under ``root`` (NegBench CSVs record paths of other machines).

    Tries ``root/<recorded parent dirs>/name`` first, else walks ``root`` once (first name wins).
    """

    def __init__(self, root: str | os.PathLike, follow_symlinks: bool = True):
        self.root = Path(root).expanduser()
        self.follow_symlinks = follow_symlinks
        self._by_name: dict[str, Path] | None = None

    def _walk(self) -> dict[str, Path]:
        if self._by_name is None:
            found: dict[str, Path] = {}
            for path in walk_files(
                self.root, None, follow_symlinks=self.follow_symlinks, skip_hidden=False
            ):
                found.setdefault(path.name, path)
            self._by_name = found
        return self._by_name

    def find(self, recorded_path: str) -> Path | None:
        name = file_name(recorded_path)
        if not name:
            return None
        parts = PurePosixPath(recorded_path.replace("\\", "/")).parts
        parts = [p for p in parts if p not in ("/", ".", "..") and not p.endswith(":")]
        for k in range(min(len(parts), 4), 0, -1):  # root/val2017/x.jpg, root/x.jpg, ...
            candidate = self.root.joinpath(*parts[-k:])
            if candidate.is_file():
                return candidate
        return self._walk().get(name)
