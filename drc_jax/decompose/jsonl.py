"""Decompositions as JSON Lines: one object per line with the fields of Decomposition."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from drc_jax.decompose.types import FIELDS, Decomposition, DecompositionError
from drc_jax.untrusted import terminal_safe_json


def load_decompositions_jsonl(path: str | os.PathLike) -> dict[str, Decomposition]:
    """``{caption: Decomposition}`` from a JSONL file (e.g. the CLI's output).

    Raises ValueError naming the file and line for a malformed record or a caption listed twice
    with different decompositions.
    """
    path = Path(path)
    table: dict[str, Decomposition] = {}
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ValueError(
                    f"{where}: not valid JSON ({e}); expected one object per line "
                    f"with fields {', '.join(FIELDS)}"
                ) from e
            try:
                dec = Decomposition.from_dict(obj)
            except DecompositionError as e:
                raise ValueError(f"{where}: {e} (fields: {', '.join(FIELDS)})") from e
            if dec.caption in table and table[dec.caption] != dec:
                raise ValueError(
                    f"{where}: caption {dec.caption!r} already decomposed differently on line "
                    f"{first_line[dec.caption]}; keep one of them"
                )
            table[dec.caption] = dec
            first_line.setdefault(dec.caption, lineno)
    return table


def write_decompositions_jsonl(decs: Iterable[Decomposition], out: TextIO) -> None:
    """One JSON object per line, in order, flushed per line (for pipes)."""
    for d in decs:
        out.write(terminal_safe_json(d.to_json()) + "\n")
    out.flush()
