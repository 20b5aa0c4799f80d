"""A caption as tokens with offsets, the noun-phrase readers the cue handlers share, and a cue."""

from __future__ import annotations

import re
from itertools import accumulate
from typing import NamedTuple

from drc_jax.decompose.lexicon import (
    AUX,
    CONJ,
    CONTAINERS,
    DETS,
    NP_LEAD,
    OPENERS,
    PREDICATES,
    PREPS,
    PRONOUN_PERSON,
    PRONOUNS,
    QUOTES,
    container_link,
    is_word,
)
from drc_jax.decompose.morphology import NOT_PLURAL, participle_or_adverb

STRONG, MODERATE, WEAK = "strong", "moderate", "weak"
#: Tokens any reader may look past its start (keeps every cue O(1), a caption O(n)).
WINDOW = 16
_TOKEN_SPLIT = re.compile(r"(\w+(?:[-'’]\w+)*|[^\w\s])")
_RUN_ON = re.compile(r"[a-z] +(?:There|The|This|It|No|A|An|In|These|Those|We)\b")


class Cue(NamedTuple):
    """One negation cue: tokens [start, end) leave aff; ``np`` is the negated NP's span."""

    start: int
    end: int
    np: tuple[int, int] | None
    strength: str
    explicit: bool
    concept: str | None = None  # neg when built, not sliced: "a person running", "flying away"
    link: str = "with"  # joins aff and neg in cf: "a dog on a beach" for "a dog not on a beach"
    attributive: bool = False  # a one-word modifier ("a car-free setting"): only it goes
    also: tuple[tuple[int, int], ...] = ()  # coordinated NPs negated too
    affirm: int | None = None  # a negated predicate: cf is the caption with this token affirmed


class Caption:
    """Tokens of one caption with offsets, and the phrase readers the cue handlers share."""

    __slots__ = ("text", "low", "starts", "ends", "n")

    def __init__(self, text: str):
        self.text = text
        lowered = text.lower().replace("’", "'")
        if len(lowered) != len(text):  # a few Unicode capitals lower to two characters
            lowered = "".join(ch.lower()[:1] for ch in text).replace("’", "'")
        # split keeps the separators: running lengths give every token's offsets, no Python loop.
        parts = _TOKEN_SPLIT.split(lowered)
        cum = list(accumulate(map(len, parts)))
        low = parts[1::2]
        starts = cum[0::2][:-1]
        ends = cum[1::2]
        # Run-on "... on it There is no cup": a zero-width "." before the capitalised opener.
        if _RUN_ON.search(text):
            breaks = {
                i
                for i in range(1, len(low))
                if low[i] in OPENERS
                and text[starts[i]].isupper()
                and low[i - 1][0].isalpha()
                and text[starts[i - 1]].islower()
            }
            if breaks:
                nl, ns, ne = [], [], []
                for i, (t, s, e) in enumerate(zip(low, starts, ends, strict=True)):
                    if i in breaks:
                        nl.append(".")
                        ns.append(s)
                        ne.append(s)
                    nl.append(t)
                    ns.append(s)
                    ne.append(e)
                low, starts, ends = nl, ns, ne
        self.starts, self.ends = starts, ends
        self.low = low
        self.n = len(low)

    def tok(self, i: int) -> str:
        """Token i as written in the caption."""
        return self.text[self.starts[i] : self.ends[i]]

    def skip(self, i: int, words: frozenset[str]) -> int:
        """The first token from i (at most WINDOW on) that is not one of ``words``."""
        low, end = self.low, min(self.n, i + WINDOW)
        while i < end and low[i] in words:
            i += 1
        return i

    def np_forward(self, i: int, limit: int = 4) -> tuple[int, int] | None:
        """The noun phrase starting at token i (determiners and 'sign of'-style heads skipped)."""
        low, n = self.low, min(self.n, i + WINDOW)
        i = self.skip(self.skip(i, NP_LEAD), DETS)
        if i < n and low[i] == "of" and i > 0 and low[i - 1] in DETS:  # "one of the chairs"
            i = self.skip(i + 1, DETS)
        # "signs of", "mention or appearance of", "any reference to"
        k = i
        while k < n and (low[k] in CONTAINERS or low[k] in ("or", "and") or low[k] in DETS):
            k += 1
        if k > i and k < n and container_link(low[k - 1], low[k]):
            i = self.skip(k + 1, DETS)
        start = j = i
        words = 0
        while j < n:
            w = low[j]
            if not is_word(w):
                break
            if w in ("or", "nor") and words and j + 1 < n and is_word(low[j + 1]):
                nxt = low[j + 1]
                if (
                    nxt not in PREPS
                    and nxt not in AUX
                    and nxt not in PREDICATES
                    and nxt not in CONJ
                ):
                    j += 1
                    words = 0
                    limit += 2
                    continue
            if w in PREDICATES and not words and j + 1 < n and is_word(low[j + 1]):
                nxt = low[j + 1]
                if not (nxt in PREPS or nxt in CONJ or nxt in AUX or nxt in PREDICATES):
                    # "no visible chairs", "no accompanying bottle": an adjective, not a predicate
                    j += 1
                    continue
            if w == "being" and words and j + 1 < n and low[j + 1].endswith(("ed", "en")):
                j += 2  # "no basketball being played": keep the passive participle
                break
            if w in PREPS or w in CONJ or w in AUX or w in PREDICATES or w in PRONOUNS:
                break
            if words:
                if w.endswith("s") and j + 1 < n and low[j + 1] in DETS and w not in NOT_PLURAL:
                    break  # "a man in a hat rides a bike": a verb, not a plural noun
                if (
                    w.endswith("ing")
                    and j + 1 < n
                    and is_word(low[j + 1])
                    and not (low[j - 1].endswith("s") and low[j - 1] not in NOT_PLURAL)
                ):  # ("no shoes playing games": after a plural, -ing is a participle)
                    nxt = low[j + 1]
                    if not (
                        nxt in PREPS
                        or nxt in CONJ
                        or nxt in AUX
                        or nxt in PREDICATES
                        or nxt in DETS
                        or nxt in PRONOUNS
                        or nxt.endswith(("ing", "ed", "ly"))
                    ):  # "dining table", "cooking appliances": a modifier, not a participle
                        words += 1
                        j += 1
                        continue
                if (
                    words == 1
                    and w.endswith("ing")
                    and (j + 1 >= n or low[j + 1] in AUX or low[j + 1] in ("takes", "took"))
                ):  # "no ice skating is shown": a noun + gerund activity heads the subject
                    j += 1
                    words += 1
                    break
                if participle_or_adverb(w):
                    break
                if w in DETS:
                    break
            elif w.endswith("ing") and j + 1 < n and low[j + 1] in DETS:
                # "without using any scissors": keep the verb and its object.
                j = self.skip(j + 1, DETS)
                words += 1
                continue
            words += 1
            j += 1
            if words >= limit:
                break
        if j == start:
            return None
        return start, j

    def np_backward(self, end: int, limit: int = 4) -> tuple[int, int] | None:
        """The noun phrase that ends just before token ``end`` (a subject before a predicate)."""
        low = self.low
        j = end - 1
        words = 0
        while j >= 0 and words < limit:
            w = low[j]
            if not is_word(w) or w in PREPS or w in CONJ or w in AUX or w in PREDICATES:
                break
            if w in DETS or w in PRONOUNS:
                break
            words += 1
            j -= 1
        start = j + 1
        if start == end or low[end - 1] in PRONOUNS or low[end - 1] in PRONOUN_PERSON:
            return None
        return start, end


def quoted_spans(c: Caption) -> list[tuple[int, int]]:
    """Token spans inside quotation marks that open after the caption's first token."""
    marks = [i for i, t in enumerate(c.low) if t in QUOTES]
    spans = []
    for a, b in zip(marks[::2], marks[1::2], strict=False):
        if a > 0 and b - a <= 10:  # a short quoted label: 'no parking'
            spans.append((a, b))
    return spans
