"""NEAT's own texts (``pos_captions``, ``neg_captions``, ``inverted_captions``): its
logic-inversion CSVs (github hhc1997/NEAT ``raw_data/``), row-aligned with the query CSV."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from drc_jax.data.negbench import Benchmark, DataError, _parse_list, _read_rows
from drc_jax.data.spacevlm_split import sha256_file

COLUMNS = ("image_id", "captions", "pos_captions", "neg_captions", "inverted_captions")
TEXTS = COLUMNS[2:]
SHOWN = 5


@dataclasses.dataclass(frozen=True)
class NEATCsv:
    """``texts[(query CSV line, caption)] = (pos, neg, inv)`` for every caption of the query CSV."""

    path: Path
    sha256: str
    texts: dict[tuple[int, str], tuple[str, str, str]]


def _row_problems(path: Path, line: int, row: dict, media, captions: list[str], where: str):
    got_id = str(row["image_id"]).strip()
    if got_id != media.id:
        return [f"line {line}: image_id {got_id!r}, but {where} line {media.line} has {media.id!r}"]
    theirs = _parse_list(path, line, "captions", row["captions"])
    if [c.strip() for c in theirs] != [c.strip() for c in captions]:
        diff = next(
            (i for i, (a, b) in enumerate(zip(theirs, captions, strict=False)) if a != b),
            min(len(theirs), len(captions)),
        )
        a = theirs[diff] if diff < len(theirs) else "(none)"
        b = captions[diff] if diff < len(captions) else "(none)"
        there = f"{where} line {media.line}"
        return [f"line {line}: caption {diff + 1} is {a!r}, but {there} has {b!r}"]
    out = []
    for column in TEXTS:
        n = len(_parse_list(path, line, column, row[column]))
        if n != len(captions):
            out.append(f"line {line}: {n} {column} for {len(captions)} captions")
    return out


def load_neat_csv(path: str | Path, read: Benchmark) -> NEATCsv:
    """NEAT's texts for every caption of ``read`` (the query CSV, all rows); DataError by line."""
    path = Path(path).expanduser()
    rows = _read_rows(path, COLUMNS, "NEAT logic-inversion CSV")
    where = str(read.csv_path)
    problems = []
    if len(rows) < len(read.media):
        problems.append(f"{len(rows)} rows, but {where} has {len(read.media)}")
    by_line: dict[int, list[str]] = {}
    for q in read.queries:
        by_line.setdefault(q.line, []).append(q.caption)
    texts: dict[tuple[int, str], tuple[str, str, str]] = {}
    for media, (line, row) in zip(read.media, rows, strict=False):
        captions = by_line.get(media.line, [])
        found = _row_problems(path, line, row, media, captions, where)
        problems += found
        if found:
            continue
        lists = [_parse_list(path, line, c, row[c]) for c in TEXTS]
        for caption, *three in zip(captions, *lists, strict=True):
            texts.setdefault((media.line, caption), tuple(three))
    if problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise DataError(
            f"--config.neat_texts {path} does not line up with {where}: "
            + "; ".join(problems[:SHOWN])
            + f"{more}. Pass the logic-inversion CSV made from this query CSV (NEAT's "
            "raw_data/*_logic_inversion.csv), one row per query row, in the same order."
        )
    return NEATCsv(path, sha256_file(path), texts)
