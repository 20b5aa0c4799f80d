"""On-disk cache of decompositions: an append-only JSONL per (backend, model, prompt version).

Each answer is flushed as it arrives, so an interrupted run resumes; unreadable lines are skipped.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path

from drc_jax.decompose.types import Decomposition, DecompositionError, length_problems
from drc_jax.untrusted import json_loads

log = logging.getLogger(__name__)


def cache_key(backend: str, model: str, prompt_version: str, caption: str) -> str:
    """sha256 over everything an answer depends on."""
    blob = json.dumps([backend, model, prompt_version, caption], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class DecompositionCache:
    """Thread-safe append-only cache of validated answers for one (backend, model, prompt).

    Records with a non-null ``fallback`` (older versions cached invalid answers) are ignored.
    """

    def __init__(self, cache_dir: str | os.PathLike, backend: str, model: str, prompt_version: str):
        self.backend, self.model, self.prompt_version = backend, model, prompt_version
        self.path = self.path_for(cache_dir, backend, model, prompt_version)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_symlink():
            raise OSError(
                errno.ELOOP,
                f"{self.path} is a symbolic link (to {os.readlink(self.path)}); the cache reads "
                "and appends to its own file only: remove the link",
            )
        self._lock = threading.Lock()
        self._entries: dict[str, Decomposition] = {}
        self._load()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        self._file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        if self.path.stat().st_size and not self._ends_with_newline():
            self._file.write("\n")  # after a torn last line, start a fresh one
            self._file.flush()

    @staticmethod
    def path_for(
        cache_dir: str | os.PathLike, backend: str, model: str, prompt_version: str
    ) -> Path:
        """The cache file of one (backend, model, prompt version) under ``cache_dir``."""
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{backend}-{model}-{prompt_version}")
        return Path(cache_dir).expanduser() / f"{slug}.jsonl"

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def _load(self):
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").split("\n")
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json_loads(line)
                dec = Decomposition.from_dict(rec["decomposition"])
                if too_long := length_problems(rec["decomposition"], dec.caption):
                    raise DecompositionError("; ".join(too_long))
                if rec.get("fallback") is None:
                    self._entries[rec["key"]] = dec
            except (ValueError, KeyError, TypeError, DecompositionError) as e:
                if lineno == len(lines):  # torn write at the end: expected after a kill
                    continue
                log.warning("%s:%d: skipping unreadable cache line (%s)", self.path, lineno, e)

    def key(self, caption: str) -> str:
        return cache_key(self.backend, self.model, self.prompt_version, caption)

    def get(self, caption: str) -> Decomposition | None:
        return self._entries.get(self.key(caption))

    def put(self, dec: Decomposition) -> None:
        """Store a validated answer (appended and flushed at once)."""
        key = self.key(dec.caption)
        rec = {
            "key": key,
            "caption": dec.caption,
            "decomposition": dec.to_dict(),
            "fallback": None,
        }
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            self._entries[key] = dec
            self._file.write(line)
            self._file.flush()

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
