"""SpaceVLM's own decomposition: its fine-tuned Mistral-7B split files.

As SpaceVLM's ``Retrieval/space_idea_retrieval_LLM_simplified.py`` (github sepehrkr/SpaceVLM):
row ``k``'s ``captions`` cell ``[[aff, ...], [neg, ...]]`` splits the query CSV's row ``k``, and
the texts are scored verbatim (no prompt prefix added or stripped).
"""

from __future__ import annotations

import ast
import csv
import hashlib
from pathlib import Path

from drc_jax.data.negbench import Benchmark, DataError


def _read(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise DataError(f"--config.spacevlm_split {path}: no such file (a SpaceVLM split CSV).")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, strict=True)
            if "captions" not in (reader.fieldnames or []):
                raise DataError(
                    f"{path}: no 'captions' column (found {reader.fieldnames}); a SpaceVLM split "
                    "has one column, captions = [[aff, ...], [neg, ...]] per query-CSV row."
                )
            rows = []
            for row in reader:
                rows.append((reader.line_num, row["captions"]))
            return rows
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable UTF-8 CSV file ({e}).") from e


def _pairs(path: Path, line: int, cell: str | None) -> list[tuple[str, str]]:
    try:
        value = ast.literal_eval(cell or "")
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise DataError(
            f"{path}, line {line}: 'captions' is not a Python list literal ({type(e).__name__}): "
            f"{str(cell)[:80]!r}. Expected [[aff, ...], [neg, ...]]."
        ) from e
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(part, (list, tuple)) for part in value)
        and len(value[0]) == len(value[1])
        and all(isinstance(t, str) for part in value for t in part)
    )
    if not ok:
        raise DataError(
            f"{path}, line {line}: 'captions' must be two string lists of equal length, "
            f"[[aff, ...], [neg, ...]]; got {str(cell)[:80]!r}."
        )
    return list(zip(value[0], value[1], strict=True))


def load_spacevlm_split(
    path: str | Path, read: Benchmark
) -> dict[tuple[int, str], tuple[str, str]]:
    """``(query CSV line, caption) -> (aff, neg)`` for every caption of ``read`` (all rows), from
    the split file ``path``; :class:`DataError` names the line where the files do not line up."""
    path = Path(path).expanduser()
    rows = _read(path)
    if len(rows) < len(read.media):
        raise DataError(
            f"{path}: {len(rows)} rows, but {read.csv_path} has {len(read.media)}; the split "
            "must have one row per query-CSV row, in the same order."
        )
    by_line: dict[int, list[str]] = {}
    for q in read.queries:
        by_line.setdefault(q.line, []).append(q.caption)
    out: dict[tuple[int, str], tuple[str, str]] = {}
    for media, (line, cell) in zip(read.media, rows, strict=False):
        captions = by_line.get(media.line, [])
        pairs = _pairs(path, line, cell)
        if len(pairs) != len(captions):
            raise DataError(
                f"{path}, line {line}: {len(pairs)} split captions, but {read.csv_path} line "
                f"{media.line} has {len(captions)}. Is this the split of that file?"
            )
        for caption, pair in zip(captions, pairs, strict=True):
            out.setdefault((media.line, caption), pair)
    return out


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (run records name their inputs by it)."""
    h = hashlib.sha256()
    with open(Path(path).expanduser(), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
