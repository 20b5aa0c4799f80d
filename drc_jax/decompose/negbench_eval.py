"""Negated-concept accuracy on NegBench query files; ``aff`` *leaks* when it names the truth.

COCO: the truth is the caption's one named ``negative_objects`` entry; ``neg`` (at most four words,
articles stripped) must name it. MSR-VTT: a ``neg`` word shares ``negative_concept``'s first four
letters.
"""

from __future__ import annotations

import ast
import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from drc_jax.decompose.morphology import plural_forms

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_PREFIX = re.compile(r"^\s*(?:an? )?(?:photo|picture|image) of\s+", re.I)
_ARTICLES = frozenset({"a", "an", "the", "some", "any"})


def text_words(text: str) -> list[str]:
    """Lower-case words of a text (apostrophe suffixes kept: "dog's")."""
    return _WORD.findall(text.lower())


def strip_neg(neg: str) -> list[str]:
    """``neg`` as words with a leading "a photo of" and articles removed."""
    return [w for w in text_words(_PREFIX.sub("", neg)) if w not in _ARTICLES]


def noun_forms(obj: str) -> list[tuple[str, ...]]:
    """Singular and plural word sequences of a (possibly multi-word) COCO object name."""
    words = obj.lower().split()
    return [tuple(words[:-1]) + (p,) for p in sorted(plural_forms(words[-1]))]


def names(words: Sequence[str], obj: str) -> bool:
    """Whether the word sequence contains ``obj`` (singular or plural) as a phrase."""
    for form in noun_forms(obj):
        n = len(form)
        for i in range(len(words) - n + 1):
            if tuple(words[i : i + n]) == form:
                return True
    return False


def _shares_stem(words: Iterable[str], concept: str) -> bool:
    stem = concept.strip().lower()[:4]
    return any(w[:4] == stem for w in words)


@dataclass(frozen=True)
class Score:
    total: int
    correct: int
    leaks: int

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)

    @property
    def leak_rate(self) -> float:
        return self.leaks / max(self.total, 1)


def coco_ground_truth(caption: str, negative_objects: Sequence[str]) -> str | None:
    """The one of ``negative_objects`` the caption names, or None ("nobody" names "person")."""
    words = text_words(caption)
    named = [o for o in negative_objects if names(words, o)]
    # "dining table" also names "table": keep the longest names only.
    named = [o for o in named if not any(o != p and o in p for p in named)]
    if not named and "person" in negative_objects:
        text = " " + " ".join(words) + " "
        if any(k in text for k in (" no one ", " nobody ", " anyone ", " anybody ", " someone ")):
            named = ["person"]
    return named[0] if len(named) == 1 else None


def score_coco(rows: Iterable[tuple[str, str, str]]) -> Score:
    """``rows``: (neg, aff, ground_truth object). Returns counts over them."""
    total = correct = leaks = 0
    for neg, aff, gt in rows:
        total += 1
        nw = strip_neg(neg)
        correct += bool(len(nw) <= 4 and names(nw, gt))
        leaks += names(text_words(aff), gt)
    return Score(total, correct, leaks)


def score_msrvtt(rows: Iterable[tuple[str, str, str]]) -> Score:
    """``rows``: (neg, aff, negative_concept)."""
    total = correct = leaks = 0
    for neg, aff, concept in rows:
        total += 1
        correct += _shares_stem(strip_neg(neg), concept)
        leaks += _shares_stem(text_words(aff), concept)
    return Score(total, correct, leaks)


@dataclass(frozen=True)
class NegBenchQueries:
    """Captions of one dev file with their ground truth and the row-aligned Mistral-7B split."""

    captions: list[str]
    truths: list[str]
    mistral_aff: list[str]
    mistral_neg: list[str]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_coco(csv_path: Path, mistral_path: Path | None = None) -> NegBenchQueries:
    """COCO Retrieval-Neg captions whose ground-truth object is unambiguous."""
    rows = _read_csv(csv_path)
    mrows = _read_csv(mistral_path) if mistral_path else None
    caps, truths, maff, mneg = [], [], [], []
    for i, row in enumerate(rows):
        captions = ast.literal_eval(row["captions"])
        neg_objects = ast.literal_eval(row["negative_objects"])
        split = ast.literal_eval(mrows[i]["captions"]) if mrows else None
        for j, cap in enumerate(captions):
            gt = coco_ground_truth(cap, neg_objects)
            if gt is None:
                continue
            caps.append(cap)
            truths.append(gt)
            if split is not None:
                maff.append(split[0][j] if j < len(split[0]) else "")
                mneg.append(split[1][j] if j < len(split[1]) else "")
    return NegBenchQueries(caps, truths, maff, mneg)


def load_msrvtt(csv_path: Path, mistral_path: Path | None = None) -> NegBenchQueries:
    """MSR-VTT Retrieval-Neg captions (one per video) with their negative_concept."""
    rows = _read_csv(csv_path)
    mrows = _read_csv(mistral_path) if mistral_path else None
    caps, truths, maff, mneg = [], [], [], []
    for i, row in enumerate(rows):
        cap = ast.literal_eval(row["captions"])[0]
        caps.append(cap)
        truths.append(row["negative_concept"].split("#")[0].strip())
        if mrows:
            split = ast.literal_eval(mrows[i]["captions"])
            maff.append(split[0][0])
            mneg.append(split[1][0])
    return NegBenchQueries(caps, truths, maff, mneg)


def evaluate(
    queries: NegBenchQueries,
    neg_aff: Callable[[list[str]], list[tuple[str, str]]],
    scorer: Callable[[Iterable[tuple[str, str, str]]], Score],
) -> Score:
    pairs = neg_aff(queries.captions)
    return scorer((n, a, t) for (n, a), t in zip(pairs, queries.truths, strict=True))
