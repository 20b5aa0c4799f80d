"""Finding and reading benchmark media (images, videos) on the user's disk.

NegBench CSVs carry paths from other machines (``/data/healthy-ml/.../val2017/000000397133.jpg``,
``data/video/MSRVTT/videos/all/video9838.mp4``), so media are resolved *by file name* under a
user-given ``--data_dir``, whatever its layout. Reading failures surface as :class:`MediaError`
naming the file and what to do, never as a decoder traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")


class MediaError(Exception):
    """One media file could not be found or decoded; ``path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def file_name(recorded_path: str) -> str:
    """The base name of a path written on any machine (POSIX or Windows separators)."""
    recorded_path = recorded_path.strip()
    name = PureWindowsPath(recorded_path).name if "\\" in recorded_path else ""
    return name or PurePosixPath(recorded_path).name


def fingerprint(path: str | os.PathLike) -> str:
    """Cache fingerprint of a file: size and modification time (changes when the file does)."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


class MediaIndex:
    """Maps file names to paths under ``root``.

    Direct guesses (``root/name``, ``root/<recorded parent dirs>/name``) are tried first, so a
    well-laid-out directory is never walked; otherwise ``root`` is walked once (lazily) and every
    file is indexed by name. With several files of the same name the first in sorted order wins.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self._by_name: dict[str, Path] | None = None

    def _walk(self) -> dict[str, Path]:
        if self._by_name is None:
            found: dict[str, Path] = {}
            for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
                dirnames.sort()
                for name in sorted(filenames):
                    found.setdefault(name, Path(dirpath) / name)
            self._by_name = found
        return self._by_name

    def find(self, recorded_path: str) -> Path | None:
        name = file_name(recorded_path)
        if not name:
            return None
        parts = PurePosixPath(recorded_path.replace("\\", "/")).parts
        for k in range(min(len(parts), 4), 0, -1):  # root/val2017/x.jpg, root/x.jpg, ...
            candidate = self.root.joinpath(*parts[-k:])
            if candidate.is_file():
                return candidate
        return self._walk().get(name)

    def resolve(self, recorded_paths: Iterable[str]) -> tuple[dict[str, Path], list[str]]:
        """Resolve many recorded paths; returns ({recorded: path}, [recorded paths not found])."""
        found, missing = {}, []
        for p in recorded_paths:
            hit = self.find(p)
            if hit is None:
                missing.append(p)
            else:
                found[p] = hit
        return found, missing


def read_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image fully (so truncated files fail here, not later) as RGB."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError as e:
        raise MediaError(path, "file not found") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise MediaError(path, f"not a readable image ({e}); re-download or replace it") from e


def read_video(
    path: str | os.PathLike, num_frames: int = 4, sampling: str = "spacevlm"
) -> list[Image.Image]:
    """Read ``num_frames`` RGB frames of a video (``drc_jax.clip.video.read_video_frames``)."""
    from drc_jax.clip.video import read_video_frames

    if not os.path.isfile(path):
        raise MediaError(path, "file not found")
    try:
        frames = read_video_frames(str(path), num_frames=num_frames, sampling=sampling)
    except MediaError:
        raise
    except Exception as e:  # VideoReadError, or PyAV's many types (av.error.*, ValueError, ...)
        detail = str(e).removeprefix(f"{path}: ")
        raise MediaError(path, f"not a readable video ({detail}); re-download or replace it") from e
    if not frames:
        raise MediaError(path, "video has no decodable frames; re-download or replace it")
    return [f.convert("RGB") for f in frames]
