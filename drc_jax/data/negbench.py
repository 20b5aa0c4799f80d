"""Loaders for the NegBench Retrieval-Neg query files (COCO images, MSR-VTT videos).

One media item per CSV row, one query per caption of it (its ground truth). List cells are
untrusted: parsed with :func:`ast.literal_eval`, never ``eval``. Bad files raise :class:`DataError`.
"""

from __future__ import annotations

import ast
import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from drc_jax.errors import UserError
from drc_jax.media.files import file_name

NEGBENCH_REPO = "https://github.com/m1k2zoo/negbench"
NEGBENCH_CSVS = (
    "https://drive.google.com/drive/folders/1kSEq0mkV1t1T8GuOAM65iz_iAA7e5gxB "
    f"(linked from {NEGBENCH_REPO}/blob/main/datasets.md)"
)


@dataclass(frozen=True)
class DatasetInfo:
    """What a user needs to fetch for one benchmark (for error messages)."""

    name: str
    kind: Literal["image", "video"]
    csv_name: str
    media: str
    media_url: str
    layout: str


DATASETS = {
    "coco": DatasetInfo(
        name="COCO Retrieval-Neg",
        kind="image",
        csv_name="images/COCO_val_negated_retrieval_llama3.1_rephrased_affneg_true.csv",
        media="COCO val2017 images (5,000 JPEGs)",
        media_url="http://images.cocodataset.org/zips/val2017.zip",
        layout="DATA_DIR/val2017/000000397133.jpg (any layout works: files are found by name)",
    ),
    "msrvtt": DatasetInfo(
        name="MSR-VTT Retrieval-Neg",
        kind="video",
        csv_name="videos/msr_vtt_retrieval_rephrased_llama.csv",
        media="MSR-VTT test videos (video{N}.mp4)",
        media_url="https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip",
        layout=(
            "DATA_DIR/MSRVTT/videos/all/video9838.mp4 (any layout works: files are found by name)"
        ),
    ),
}


class DataError(UserError):
    """A benchmark file is missing or malformed; the message says where and what to do."""


@dataclass(frozen=True)
class MediaItem:
    """One retrievable image or video (one CSV row)."""

    id: str  # image_id as written in the CSV
    recorded_path: str  # filepath as written in the CSV (another machine's path)
    positive_objects: tuple[str, ...]
    line: int  # 1 = header

    @property
    def file_name(self) -> str:
        return file_name(self.recorded_path)


@dataclass(frozen=True)
class Query:
    """One negated caption; its ground truth is ``media[gt]`` (its own row)."""

    caption: str
    gt: int
    negated: str | None  # None when it cannot be told
    line: int


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Literal["image", "video"]
    csv_path: Path
    media: tuple[MediaItem, ...]
    queries: tuple[Query, ...]
    # positive_objects lists every object present (COCO, synthetic; not MSR-VTT's concepts).
    objects_complete: bool = False
    notes: tuple[str, ...] = field(default=())

    def subset(self, keep_media: set[int]) -> Benchmark:
        """Drop media not in ``keep_media`` and the queries whose ground truth they were."""
        order = sorted(keep_media)
        new_index = {old: new for new, old in enumerate(order)}
        queries = tuple(
            Query(q.caption, new_index[q.gt], q.negated, q.line)
            for q in self.queries
            if q.gt in new_index
        )
        return Benchmark(
            self.name,
            self.kind,
            self.csv_path,
            tuple(self.media[i] for i in order),
            queries,
            self.objects_complete,
            self.notes,
        )


COCO_COLUMNS = ("positive_objects", "negative_objects", "filepath", "image_id", "captions")
MSRVTT_COLUMNS = ("image_id", "captions", "filepath")

# Ways captions name COCO objects other than the category name (for the Figure 1 metric).
_SYNONYMS = {
    "person": ("people", "persons", "no one", "nobody", "anyone", "anybody", "someone", "human"),
    "tv": ("television", "tvs"),
    "dining table": ("table",),
    "sports ball": ("ball",),
    "couch": ("sofa",),
    "motorcycle": ("motorbike",),
    "airplane": ("plane", "aircraft"),
    "cell phone": ("phone", "cellphone"),
    "handbag": ("purse",),
    "knife": ("knives",),
    "mouse": ("mice",),
    "wine glass": ("wine glasses",),
}


def _word_re(term: str) -> re.Pattern[str]:
    return re.compile(r"\b" + re.escape(term.lower()) + r"(?:s|es)?\b")


def negated_object(caption: str, candidates: tuple[str, ...]) -> str | None:
    """Which of ``candidates`` (a row's negative_objects) ``caption`` names (plural, synonyms too);
    None if none or several."""
    text = caption.lower()
    hits = []
    for obj in candidates:
        terms = (obj, *_SYNONYMS.get(obj, ()))
        if any(_word_re(t).search(text) for t in terms):
            hits.append(obj)
    if len(hits) > 1:  # "dining table" and a "table" synonym: prefer the longest name
        hits = [h for h in hits if not any(h != o and h in o for o in hits)]
    return hits[0] if len(hits) == 1 else None


def _read_rows(path: Path, required: tuple[str, ...], benchmark: str) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file. {_where_to_get(benchmark)}")
    try:
        # utf-8-sig: Excel's byte-order mark is not part of the first column name.
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, strict=True)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                hint = ""
                other = {"coco": ("msrvtt", MSRVTT_COLUMNS), "msrvtt": ("coco", COCO_COLUMNS)}
                if benchmark in other and set(other[benchmark][1]) <= set(header):
                    hint = f" It looks like a {other[benchmark][0]} file: use --benchmark "
                    hint += f"{other[benchmark][0]}."
                elif header == ["captions"]:
                    hint = (
                        " It looks like a decomposition file (aff/neg lists only): pass the "
                        "NegBench query file as --captions_csv."
                    )
                label = DATASETS[benchmark].name if benchmark in DATASETS else benchmark
                raise DataError(
                    f"{path}: wrong columns for {label}"
                    f": missing {missing}; found {header}; expected {list(required)}.{hint} "
                    + _where_to_get(benchmark)
                )
            rows = []
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return rows
                except csv.Error as e:
                    if "field limit" in str(e):
                        raise DataError(
                            f"{path}, line {start}: a cell longer than {csv.field_size_limit()} "
                            "characters, more than any caption or list of this file needs (or a "
                            "quote opened there runs on through the file). Shorten or remove "
                            "the row."
                        ) from e
                    raise DataError(
                        f"{path}, line {start}: malformed CSV row ({e}); a quote opened there "
                        "and never closed runs to the end of the file. Close the quote or "
                        "remove the row."
                    ) from e
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 CSV file ({e}).") from e
    except csv.Error as e:
        raise DataError(f"{path}: not a valid CSV file ({e}).") from e


def _where_to_get(benchmark: str) -> str:
    info = DATASETS.get(benchmark)
    if info is None:
        return ""
    return (
        f"{info.name} queries are NegBench's {info.csv_name}, from {NEGBENCH_CSVS}; "
        f"pass it with --captions_csv."
    )


def _parse_list(path: Path, line: int, column: str, cell: str | None) -> list:
    try:
        value = ast.literal_eval(cell) if cell is not None else None
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise DataError(
            f"{path}, line {line}: column {column!r} is not a Python list literal "
            f"({type(e).__name__}): {str(cell)[:80]!r}. Fix or remove the row."
        ) from e
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DataError(
            f"{path}, line {line}: column {column!r} should be a list of strings, got "
            f"{str(cell)[:80]!r}. Fix or remove the row."
        )
    return list(value)


def _coco_row(path: Path, line: int, row: dict):
    # Images without COCO objects are written "['']": drop empty names.
    positives, negatives = (
        tuple(filter(None, _parse_list(path, line, col, row[col])))
        for col in ("positive_objects", "negative_objects")
    )
    recorded = (row["filepath"] or "").strip()
    if not recorded:
        raise DataError(f"{path}, line {line}: empty 'filepath'. Fix or remove the row.")
    return recorded, positives, lambda caption: negated_object(caption, negatives)


def _msrvtt_row(path: Path, line: int, row: dict):
    positives = tuple(
        c.strip()
        for c in (row.get("positive_concept1"), row.get("positive_concept2"))
        if c and c.strip()
    )
    recorded = (row["filepath"] or "").strip() or f"{row['image_id'].strip()}.mp4"
    concept = (row.get("negative_concept") or "").strip() or None
    return recorded, positives, lambda caption: concept


def _load(csv_path, benchmark: str, name: str, limit: int | None) -> Benchmark:
    """One MediaItem per row, one Query per caption of it."""
    path = Path(csv_path).expanduser()
    columns, parse_row, kind, complete = _FORMATS[benchmark]
    media, queries = [], []
    for line, row in _read_rows(path, columns, benchmark)[:limit]:
        captions = _parse_list(path, line, "captions", row["captions"])
        recorded, positives, negated = parse_row(path, line, row)
        gt = len(media)
        media.append(MediaItem(str(row["image_id"]).strip(), recorded, positives, line))
        queries += [Query(caption, gt, negated(caption), line) for caption in captions]
    _check_rows(path, media, queries, benchmark)
    return Benchmark(name, kind, path, tuple(media), tuple(queries), objects_complete=complete)


_FORMATS = {
    "coco": (COCO_COLUMNS, _coco_row, "image", True),
    "msrvtt": (MSRVTT_COLUMNS, _msrvtt_row, "video", False),
}


def load_coco_neg(csv_path: str | Path, *, name: str = "coco", limit: int | None = None):
    """COCO Retrieval-Neg (or the plain ``COCO_val_retrieval.csv``)."""
    return _load(csv_path, "coco", name, limit)


def load_msrvtt_neg(csv_path: str | Path, *, name: str = "msrvtt", limit: int | None = None):
    """MSR-VTT Retrieval-Neg (or the plain ``msr_vtt_retrieval.csv``)."""
    return _load(csv_path, "msrvtt", name, limit)


def _check_rows(path: Path, media: list, queries: list, benchmark: str) -> None:
    if not media:
        raise DataError(f"{path}: no rows. {_where_to_get(benchmark)}")
    if not queries:
        raise DataError(
            f"{path}: every row's 'captions' list is empty (lines {media[0].line}-"
            f"{media[-1].line}), so there is nothing to evaluate. Fill in the captions, or pass "
            f"NegBench's query file. {_where_to_get(benchmark)}"
        )


LOADERS = {"coco": load_coco_neg, "msrvtt": load_msrvtt_neg}


def load_benchmark(benchmark: str, csv_path: str | Path | None, *, limit: int | None = None):
    """Load ``coco`` or ``msrvtt`` from ``csv_path``; without one, say which file to get."""
    if benchmark not in LOADERS:
        raise DataError(f"unknown benchmark {benchmark!r}; expected one of {sorted(LOADERS)}")
    if not csv_path:
        raise DataError(
            f"--benchmark {benchmark} needs --captions_csv. {_where_to_get(benchmark)} "
            "(The repository's tests use the development split in shared/negbench/.)"
        )
    return LOADERS[benchmark](csv_path, limit=limit)
