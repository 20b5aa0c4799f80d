"""Rule decomposer: the embedded default. No model, no GPU, deterministic, linear in the caption.

Cues come from :mod:`drc_jax.decompose.constructions`; this module names ``negs``, cuts their
clauses out of ``aff`` and builds ``cf``.
"""

from __future__ import annotations

from collections.abc import Sequence

from drc_jax.decompose.caption import WINDOW, Caption, Cue
from drc_jax.decompose.constructions import affirmed, best_cue, find_cues
from drc_jax.decompose.lexicon import (
    AUX,
    BOUNDARY_PUNCT,
    CLAUSE_CONJ,
    DANGLING_END,
    DANGLING_START,
    DETS,
    GLUE,
    MASS,
    NUMBERS,
    OBJ_PRONOUNS,
    POSSESS,
    PRONOUN_PERSON,
    PRONOUNS,
    QUOTES,
    RELATIVE,
    SCENE_GLUE,
    SETTING_PREPS,
    VISIBILITY,
    is_word,
)
from drc_jax.decompose.morphology import (
    INVARIANT_PLURALS,
    NOT_PLURAL,
    participle_gerund,
    singular,
)
from drc_jax.decompose.syntax import NEUTRAL_AFF, apply_overrides, split_exclusions
from drc_jax.decompose.types import Decomposition

#: At most this many negated concepts per caption (and clauses removed from aff).
MAX_NEGS = 8


def _neg_text(c: Caption, cue: Cue) -> str:
    """The negated NP as a short phrase: singular head with an article, as CLIP prompts read."""
    if cue.concept is not None:
        return cue.concept
    a, b = cue.np
    if cue.affirm is not None:  # a negated predicate: "crying", "locked", "eating the cake"
        return c.text[c.starts[a] : c.ends[b - 1]]
    if a > 0 and c.low[a - 1] == cue.link.rsplit(None, 1)[-1]:
        return c.text[c.starts[a] : c.ends[b - 1]]  # a bare noun after its place: "at night"
    low = c.low
    head = low[b - 1]
    if head in PRONOUN_PERSON:
        return "a person"
    text = c.text[c.starts[a] : c.ends[b - 1]]
    if b - a >= 3 and low[b - 2] == "being":  # "no basketball being played": the activity
        return f"{participle_gerund(low[b - 1])} {c.text[c.starts[a] : c.ends[b - 3]]}"
    words = low[a:b]
    if "or" in words or "nor" in words:
        text = text.replace(" nor ", " or ")
        return (low[a - 1] + " " + text) if a > 0 and low[a - 1] in ("a", "an") else text
    gerund_phrase = low[a].endswith("ing") and not DETS.isdisjoint(words[1:])
    if head.endswith("ing") or head in MASS or gerund_phrase or low[a] in NUMBERS:
        return text  # "swimming", "water", "taking the lift", "two slices"
    sing = singular(head)
    if sing != head:
        text = c.text[c.starts[a] : c.starts[b - 1]] + (
            sing if c.tok(b - 1).islower() else c.tok(b - 1)[: len(sing)]
        )
        if head in INVARIANT_PLURALS:
            text = c.text[c.starts[a] : c.starts[b - 1]] + sing
    elif (
        head.endswith("s")
        and head not in NOT_PLURAL
        and len(head) > 3
        and not head.endswith(("ss", "us", "is"))
    ):
        return text
    if sing in MASS or head in NOT_PLURAL:
        return text
    return ("an " if low[a][0] in "aeiou" else "a ") + text


def _without_word(c: Caption, i: int) -> str:
    """The caption without token i ("a deserted street" -> "a street"), articles fixed."""
    left = c.text[: c.starts[i]].rstrip()
    right = c.text[c.ends[i] :].lstrip(" ,")
    if right[:1].isalpha():
        vowel = right[0].lower() in "aeiou"
        if (left.endswith((" an", " An")) or left in ("an", "An")) and not vowel:
            left = left[:-1]
        elif (left.endswith((" a", " A")) or left in ("a", "A")) and vowel:
            left += "n"
    return (left + " " + right).strip()


def _aff_text(c: Caption, s: int, e: int) -> str:
    """The caption without the negating clause [s, e) and the connectives that tied it in."""
    return _aff_without(c, [(s, e)])


def _clause(c: Caption, s: int, e: int, floor: int) -> tuple[int, int, bool]:
    """The clause [p, r) that goes with the negation [s, e), and whether it is relative."""
    low, n = c.low, c.n
    # Left: connectives, and the scene words before the cue inside its clause.
    p = s
    crossed = relative = False
    stop = max(floor, s - WINDOW)
    while p > stop:
        w = low[p - 1]
        if w in BOUNDARY_PUNCT:
            crossed = True
        elif not (w in GLUE or (not crossed and (w in SCENE_GLUE or w.endswith("ly")))):
            break
        elif not crossed and w in RELATIVE:
            relative = True
        p -= 1
    r = e
    if relative:
        # "A man who is not wearing a hat rides a bike": only the relative clause goes.
        while r < n and low[r] in BOUNDARY_PUNCT and low[r] not in ".!?":
            r += 1
        return p, r, True
    # Right: the rest of the clause goes with the negation; then drop leading connectives.
    while r < n and low[r] not in BOUNDARY_PUNCT and low[r] not in CLAUSE_CONJ:
        if low[r] == "as" and r + 1 < n and low[r + 1] not in ("well", "if", "such"):
            break
        if low[r] == "and" and r + 1 < n and (low[r + 1] in DETS or low[r + 1] in PRONOUNS):
            break
        r += 1
    while r < n and (
        low[r] in BOUNDARY_PUNCT or low[r] in GLUE or low[r].endswith("ly") or low[r] in QUOTES
    ):
        r += 1
    return p, r, False


def _aff_without(c: Caption, spans: list[tuple[int, int]]) -> str:
    """The caption without the clauses of ``spans``, joined by ", " (or " " for a relative one)."""
    text, n = c.text, c.n
    cuts: list[tuple[int, int, bool]] = []
    floor = 0
    for s, e in sorted(spans):
        if s < floor:  # inside a clause already removed
            continue
        p, r, relative = _clause(c, s, e, floor)
        cuts.append((p, r, relative))
        floor = r
    segments, prev = [], 0
    for p, r, _relative in cuts:
        segments.append(text[c.starts[prev] : c.ends[p - 1]].strip() if p > prev else "")
        prev = r
    segments.append(text[c.starts[prev] :].strip() if prev < n else "")
    aff = segments[0]
    for (_, _, relative), seg in zip(cuts, segments[1:], strict=True):
        if not seg:
            continue
        if not aff:
            aff = seg
        elif relative:
            aff = aff + seg if seg[:1] in (".", "!", "?") else f"{aff} {seg}"
        else:
            aff = f"{aff}, {seg}"
    if all(cut[2] for cut in cuts) if len(cuts) > 1 else cuts and cuts[0][2]:
        return aff.strip()
    if segments[-1] == "" and segments[0] and text.rstrip().endswith("."):
        aff += "."
    if aff and aff[0].islower() and (not segments[0] or not text[:1].islower()):
        aff = aff[0].upper() + aff[1:]
    return aff


def _setting(c: Caption, cue: Cue) -> str:
    """aff for a caption that is all negation: its setting ("No one is dancing at the party" ->
    "the party"), else ""."""
    low, n, text = c.low, c.n, c.text
    i = cue.start
    if low[i] == "not" and i + 1 < n and low[i + 1] == "one":  # "not one of the players ..."
        i += 1
    if (
        low[i] in ("none", "one")
        and i + 2 < n
        and low[i + 1] == "of"
        and low[i + 2] not in PRONOUNS
    ):
        j = i + 2
        while j < n and is_word(low[j]) and low[j] not in AUX and low[j] not in POSSESS:
            j += 1
        if cue.np is not None and cue.np[0] < j:  # "none of the chairs are visible": negated
            return ""
        return text[c.starts[i + 2] : c.ends[j - 1]] if j > i + 2 else ""
    for j in range(cue.end, n - 1):
        if low[j] in BOUNDARY_PUNCT and low[j] not in "-":
            break
        if low[j] in SETTING_PREPS and is_word(low[j + 1]) and low[j + 1] not in OBJ_PRONOUNS:
            if low[j + 1] in VISIBILITY:  # "not a cloud in sight over the lake": not a setting
                continue
            k = j + 1
            while k < n and low[k] not in BOUNDARY_PUNCT and low[k] not in CLAUSE_CONJ:
                k += 1
            return text[c.starts[j + 1] : c.ends[k - 1]]
    return ""


def _tidy(aff: str) -> str:
    """aff without a connective or punctuation left dangling at either end ("fruit but")."""
    out = aff.strip()
    for _ in range(8):
        words = out.split()
        if not words:
            break
        last, first = words[-1].lower().rstrip(",;:"), words[0].lower().rstrip(",;:")
        if last in DANGLING_END or (words[-1] in BOUNDARY_PUNCT and words[-1] not in ".!?"):
            out = out[: out.rfind(words[-1])].rstrip(" ,;:-–—")
        elif first in DANGLING_START or words[0] in BOUNDARY_PUNCT:
            out = out[len(words[0]) :].lstrip(" ,;:")
            if out[:1].islower() and aff[:1].isupper():
                out = out[0].upper() + out[1:]
        else:
            break
    return out


def _remove(c: Caption, cue: Cue) -> str:
    return _without_word(c, cue.start) if cue.attributive else _aff_text(c, cue.start, cue.end)


def _overlap(a: Cue, b: Cue) -> bool:
    return a.start < b.end and b.start < a.end


def _head(neg: str) -> str:
    return singular(neg.rsplit(None, 1)[-1].lower()) if neg.strip() else ""


class RuleDecomposer:
    """Deterministic, model-free :class:`Decomposer`; a caption without a cue is not negated."""

    name = "rules"

    def __init__(self):
        self.stats = {"captions": 0, "negated": 0, "fallbacks": 0, "requests": 0, "cache_hits": 0}

    def decompose_one(self, caption: str) -> Decomposition:
        if "-" in caption:
            text, excluded = split_exclusions(caption)
            if excluded:
                dec = self._split(text)
                dec = Decomposition(
                    caption, dec.negated, dec.aff, dec.neg, dec.cf, dec.strength, dec.negs
                )
                return apply_overrides(dec, exclude=excluded)
        return self._split(caption)

    def _split(self, caption: str) -> Decomposition:
        c = Caption(caption)
        cues = find_cues(c) if c.n else []
        cue = best_cue(cues)
        if cue is None:
            return Decomposition.plain(caption)
        neg = _neg_text(c, cue)
        negs, heads = [neg], {_head(neg)}
        for span in cue.also:  # "excluding the sink and the stove"
            extra = _neg_text(c, Cue(span[0], span[1], span, cue.strength, cue.explicit))
            if _head(extra) not in heads and len(negs) < MAX_NEGS:
                negs.append(extra)
                heads.add(_head(extra))
        # Other explicit cues join negs ("a street with no cars and no people"), repeats do not.
        others = False
        for rank, f in cues:
            if f is cue or _overlap(f, cue):
                continue
            extra = _neg_text(c, f)
            head = _head(extra)
            if rank[0] and head not in heads and len(negs) < MAX_NEGS:
                negs.append(extra)
                heads.add(head)
            others = others or rank[0] or head in heads
        aff = _remove(c, cue) or _setting(c, cue)
        # Their clauses leave aff too: at most two passes, so it stays linear.
        for _ in range(2 if others else 0):
            if not aff:
                break
            c2 = Caption(aff)
            more = [f for rank, f in find_cues(c2) if rank[0] or _head(_neg_text(c2, f)) in heads]
            if not more:
                break
            spans = [(f.start, f.end) for f in more if not f.attributive]
            rest = _aff_without(c2, spans) if spans else _without_word(c2, more[0].start)
            aff = rest or _setting(c2, more[0])
        aff = _tidy(aff) or NEUTRAL_AFF
        if cue.affirm is not None and len(negs) == 1:  # "a baby that is crying"
            cf = affirmed(c, cue.affirm)
        else:
            base = aff.rstrip(" .!?,;:")
            cf = f"{base} {cue.link} {neg}"  # cfs adds one per further concept
        return Decomposition(caption, True, aff, neg, cf, cue.strength, tuple(negs))

    def decompose(self, captions: Sequence[str]) -> list[Decomposition]:
        out = [self.decompose_one(cap) for cap in captions]
        self.stats["captions"] += len(out)
        self.stats["negated"] += sum(d.negated for d in out)
        return out

    def close(self) -> None:
        """Nothing to release (the :class:`Decomposer` protocol's close)."""
