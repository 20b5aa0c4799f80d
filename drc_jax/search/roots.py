"""Which folders an index may search and serve: only those its user confirmed.

An index may be someone else's, so its roots are only a claim; ``drc-search index`` records the
folders it indexed in a per-user file outside the index, keyed by the index's absolute path.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from drc_jax import defaults

SUBDIR = "search-roots"


def record_file(index: str | os.PathLike, cache: Path | None = None) -> Path:
    key = str(Path(index).expanduser().resolve())
    name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".json"
    return (cache if cache is not None else defaults.cache_root()) / SUBDIR / name


def record_roots(index, roots: Sequence[Path], cache: Path | None = None) -> Path:
    """Remember that this user indexed ``roots`` into ``index`` (atomically); raises OSError."""
    path = record_file(index, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"index": str(Path(index).expanduser().resolve()), "roots": [str(r) for r in roots]}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".roots-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(body, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def recorded_roots(index, cache: Path | None = None) -> list[Path]:
    """The roots this user's own ``index`` run recorded for ``index`` ([] if none or unreadable)."""
    try:
        body = json.loads(record_file(index, cache).read_text())
        if body["index"] != str(Path(index).expanduser().resolve()):
            return []
        return [Path(r) for r in body["roots"] if isinstance(r, str) and Path(r).is_absolute()]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def confirmed(claimed: Sequence[Path], confirming: Sequence[Path]) -> list[Path]:
    """The parts of the index's ``claimed`` roots inside a ``confirming`` folder: a claimed root
    inside one, or a confirming folder inside a claimed root."""
    confirming = [Path(c).expanduser().resolve() for c in confirming]
    out = [r for r in claimed if any(r.is_relative_to(c) for c in confirming)]
    for c in confirming:
        if any(c.is_relative_to(r) for r in claimed) and not any(c.is_relative_to(r) for r in out):
            out.append(c)
    return list(dict.fromkeys(out))
