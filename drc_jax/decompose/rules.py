"""Rule decomposer: the embedded default. No model, no GPU, deterministic, >10^4 captions/s.

It finds the negation cue of a caption with general English rules (closed word classes, a few
frequent verbs, morphology; no lists of captions or of object names), reads the negated noun
phrase next to it, and removes the negating clause (with the connectives that tied it in) to get
``aff``; ``cf`` puts ``neg`` back ("aff with neg", or "a dog on a beach" for "a dog not on a
beach"). Cues and the strength they carry (SpaceVLM-DRC's three classes):

- strong (explicit markers): "no X", "no one"/"nobody" (neg "a person" plus the action, e.g. "a
  person running"), "without/sans X", "not a/any X", "X not on Y", "none of ...", "neither X nor
  Y", "X is nowhere to be seen", "devoid of X", "free of X", "an X-free scene".
- moderate (hedged constructions): "doesn't have/include/feature X", "there isn't a X",
  "X is not featured", "X cannot be seen", "lacks X", "missing X", "absence of X", "nothing
  suggests X", and as fallbacks "instead of X", "rather than X", "except for X".
- weak (implicit absence): "X is absent", "absent from the scene is X", "empty of X",
  "unaccompanied by X", "the room is empty/vacant/unoccupied", "a deserted street", "an empty
  kitchen", "chairless", "a person-less scene" (neg "a person" when nothing is named).

Negation may open, close or sit inside the caption. Explicit cues beat implicit ones; a cue about
the scene ("... in sight", "there is no ...") beats a local one ("beds without comforters");
then the first wins. Quoted labels ('no parking') and idioms ("no doubt") are not cues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import accumulate

from drc_jax.decompose.lexicon import (
    AUX,
    BOUNDARY_PUNCT,
    CLAUSE_CONJ,
    CONJ,
    CONTAINERS,
    DETS,
    GLUE,
    IDIOMS_AFTER_NO,
    INVARIANT_PLURALS,
    MASS,
    NEG_AUX,
    NOT_PLURAL,
    NP_LEAD,
    NUMBERS,
    OPENERS,
    POSSESS,
    POST_OK_AFTER_NEG,
    PREDICATES,
    PREPS,
    PRONOUN_PERSON,
    PRONOUNS,
    QUOTES,
    SCENE_GLUE,
    WITHOUT,
    container_link,
    gerund,
    is_word,
    participle_or_adverb,
    singular,
)
from drc_jax.decompose.lexicon import words as _W
from drc_jax.decompose.types import Decomposition

_STRONG, _MODERATE, _WEAK = "strong", "moderate", "weak"
_TOKEN_SPLIT = re.compile(r"(\w+(?:[-'’]\w+)*|[^\w\s])")
_RUN_ON = re.compile(r"[a-z] +(?:There|The|This|It|No|A|An|In|These|Those|We)\b")


@dataclass
class _Cue:
    start: int  # first token of the negated span (cue or NP)
    end: int  # one past its last token
    np: tuple[int, int] | None  # NP token span
    strength: str
    explicit: bool
    person: str | None = None  # neg text when it is built rather than sliced ("a person running")
    link: str = "with"  # joins aff and neg in cf: "a dog on a beach" for "a dog not on a beach"
    attributive: bool = False  # a one-word modifier ("a car-free setting"): only it goes


class _Caption:
    """Tokens of one caption with offsets, and the phrase readers the cue handlers share."""

    __slots__ = ("text", "low", "starts", "ends", "n")

    def __init__(self, text: str):
        self.text = text
        lowered = text.lower().replace("’", "'")
        if len(lowered) != len(text):  # a few Unicode capitals lower to two characters
            lowered = "".join(ch.lower()[:1] for ch in text).replace("’", "'")
        # Tokens and their offsets without a Python loop: split keeps the separators, whose
        # running lengths give every token's start and end.
        parts = _TOKEN_SPLIT.split(lowered)
        cum = list(accumulate(map(len, parts)))
        low = parts[1::2]
        starts = cum[0::2][:-1]
        ends = cum[1::2]
        # A run-on caption ("... on it There is no cup"): a capitalised sentence opener after a
        # lower-case word starts a new sentence; mark it with a zero-width ".".
        if _RUN_ON.search(text):
            breaks = [
                i
                for i in range(1, len(low))
                if low[i] in OPENERS
                and text[starts[i]].isupper()
                and low[i - 1][0].isalpha()
                and text[starts[i - 1]].islower()
            ]
            for i in reversed(breaks):
                low.insert(i, ".")
                starts.insert(i, starts[i])
                ends.insert(i, starts[i])
        self.starts, self.ends = starts, ends
        self.low = low
        self.n = len(low)

    def tok(self, i: int) -> str:
        """Token i as written in the caption."""
        return self.text[self.starts[i] : self.ends[i]]

    def skip(self, i: int, words: frozenset[str]) -> int:
        while i < self.n and self.low[i] in words:
            i += 1
        return i

    def np_forward(self, i: int, limit: int = 4) -> tuple[int, int] | None:
        """The noun phrase starting at token i (determiners and 'sign of'-style heads skipped)."""
        low, n = self.low, self.n
        i = self.skip(self.skip(i, NP_LEAD), DETS)
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


def _person_action(c: _Caption, i: int) -> tuple[str, tuple[int, int] | None]:
    """neg for "no one ..." / "nobody ...": 'a person', plus the action if one follows.

    "no one has a handbag" negates the handbag: a possession verb hands over to its object.
    Returns (text, NP span or None).
    """
    low, n = c.low, c.n
    j = c.skip(i, _PERSON_SKIP)
    if j >= n or not is_word(low[j]):
        return "a person", None
    w = low[j]
    if w in POSSESS and j + 1 < n and low[j + 1] in DETS:
        np = c.np_forward(j + 1, limit=3)
        if np:
            return "", np
    verb = None
    if w.endswith("ing") and len(w) > 4 and w not in PREDICATES:
        verb = w
    elif (
        w.endswith("s")
        and not w.endswith("ss")
        and len(w) > 3
        and w not in PREPS
        and w not in AUX
        and w not in PREDICATES
        and w not in CONJ
        and w not in DETS
    ):
        verb = gerund(w)
    if verb is None:
        return "a person", None
    out = "a person " + verb
    if j + 1 < n and low[j + 1] in DETS:
        np = c.np_forward(j + 1, limit=3)
        if np:
            out += " " + c.text[c.starts[np[0]] : c.ends[np[1] - 1]]
    return out, None


_PERSON_SKIP = _W(
    "else is are was were be being been can could seems seem appears appear to seen shown "
    "currently actually visibly even really around here there"
)
_SCENE_WORDS = _W(
    "sight seen visible present presence image scene video picture photo found view appears "
    "appear anywhere frame notably noticeably there there's shown featured spotted"
)


def _scene_level(c: _Caption, cue: _Cue) -> bool:
    """Whether the negation is about the scene ("no cup in sight", "there is no cup").

    Such a cue beats a local one ("beds without comforters") when a caption has both.
    """
    low, n = c.low, c.n
    i = max(cue.start - 3, 0)
    while i < n:
        w = low[i]
        if i >= cue.end and (w in BOUNDARY_PUNCT or w in CLAUSE_CONJ or w == "and"):
            return False
        if w in _SCENE_WORDS:
            return True
        i += 1
    return False


def _quoted(c: _Caption) -> list[tuple[int, int]]:
    """Token spans inside quotation marks that open after the caption's first token."""
    marks = [i for i, t in enumerate(c.low) if t in QUOTES]
    spans = []
    for a, b in zip(marks[::2], marks[1::2], strict=False):
        if a > 0 and b - a <= 10:  # a short quoted label: 'no parking'
            spans.append((a, b))
    return spans


def _find_cue(c: _Caption) -> _Cue | None:
    """All cues of the caption; the best by (explicit, scene-level, earliest)."""
    low, n = c.low, c.n
    best: _Cue | None = None
    best_rank = (-1, -1)
    quoted = _quoted(c) if any(q in c.text for q in QUOTES) else ()
    for i in range(n):
        w = low[i]
        if w not in _CUE_WORDS and not (
            w.endswith(("-free", "less")) or (w.startswith("un") and w.endswith("ed"))
        ):
            continue
        if quoted and any(a < i < b for a, b in quoted):
            continue
        cue = _cue_at(c, i, w)
        if cue is None:
            continue
        rank = (int(cue.explicit), int(_scene_level(c, cue)))
        if rank > best_rank:
            best, best_rank = cue, rank
            if rank == (1, 1):
                break
    return best


def _cue_at(c: _Caption, i: int, w: str) -> _Cue | None:
    low, n = c.low, c.n
    nxt = low[i + 1] if i + 1 < n else ""
    if w == "no":
        if nxt in IDIOMS_AFTER_NO or not nxt:
            return None
        if i > 0 and low[i - 1] in ("a", "an", "the"):  # "a no parking sign"
            return None
        if nxt.endswith("ing") and i + 2 < n and low[i + 2] in _SIGN_WORDS:  # "no smoking signs"
            return None
        if nxt == "one":
            return _person_cue(c, i, i + 2, _STRONG)
        return _prenominal(c, i, i + 1, _STRONG)
    if w in ("nobody", "no-one"):
        return _person_cue(c, i, i + 1, _STRONG)
    if w in WITHOUT:
        return _prenominal(c, i, i + 1, _STRONG)
    if nxt in ("of", "from") and w in ("devoid", "free", "void", "bereft"):
        return _prenominal(c, i, i + 2, _STRONG)
    if nxt == "of" and w in ("empty", "vacant", "absent"):
        return _prenominal(c, i, i + 2, _WEAK)
    if w.endswith("-free") and len(w) > 5:  # "a car-free scene"
        stem = _np_from_word(c.tok(i)[:-5])
        return _Cue(i, i + 1, None, _STRONG, True, stem, attributive=not _predicative(c, i))
    if nxt == "by" and w.startswith("un") and w.endswith("ed"):
        # "unaccompanied by any person", "undisturbed by people"
        cue = _prenominal(c, i, i + 2, _WEAK, explicit=False)
        return cue or _Cue(i, i + 1, None, _WEAK, False, person="a person")
    if w in ("lacks", "lack", "lacking", "lacked"):
        return _prenominal(c, i, i + 2 if nxt == "of" else i + 1, _MODERATE)
    if w == "absence":
        if nxt == "of":
            return _prenominal(c, i, i + 2, _MODERATE)
        if nxt in (":", "is", "-", "–", "—"):
            return _prenominal(c, i, i + 2, _MODERATE)
        return None
    if w == "nothing" and nxt.endswith("s") and nxt not in AUX and i + 2 < n:
        # "nothing suggests the presence of a cup", "nothing hints at a car"
        j = i + 3 if low[i + 2] in ("at", "to", "of") else i + 2
        return _prenominal(c, i, j, _MODERATE)
    if w == "neither":
        return _prenominal(c, i, i + 1, _STRONG)
    if w == "none":
        return _none_of(c, i)
    if w in ("absent", "missing", "nowhere"):
        return _absent(c, i)
    if w in NEG_AUX:
        return _negated_aux(c, i)
    if w in ("instead", "rather") and nxt in ("of", "than"):
        return _prenominal(c, i, i + 2, _MODERATE, explicit=False)
    if w == "far" and nxt == "from" and i + 2 < n and low[i + 2] in ("any", "a", "the"):
        return _prenominal(c, i, i + 2, _WEAK, explicit=False)
    if w == "except":
        if any(
            low[k] in ("empty", "nothing", "all", "bare", "alone") for k in range(max(i - 3, 0), i)
        ):
            return None
        return _prenominal(c, i, i + 2 if nxt == "for" else i + 1, _MODERATE, explicit=False)
    if w in _IMPLICIT:
        predicative = _predicative(c, i)
        if predicative or w in _ALWAYS_PEOPLE or (w in ("empty", "vacant") and nxt in _PLACES):
            # "the room is empty", "a deserted street", "an empty kitchen" (not "an empty plate")
            return _Cue(i, i + 1, None, _WEAK, False, "a person", attributive=not predicative)
        return None
    if w.endswith("less") and len(w) > 6 and w not in _LEXICAL_LESS:
        # "a person-less scene", "the room appears chairless": X-less = without X
        stem = w[:-5] if w.endswith("-less") else w[:-4]
        predicative = _predicative(c, i)
        if w.endswith("-less") or predicative:
            neg = _np_from_word(stem)
            return _Cue(i, i + 1, None, _WEAK, False, neg, attributive=not predicative)
    return None


_ALWAYS_PEOPLE = _W("deserted uninhabited unmanned unoccupied")
_PLACES = _W(
    "room rooms kitchen bathroom bedroom restroom office hallway corridor hall lobby "
    "street streets road roads parking intersection beach field park playground court "
    "stadium arena station platform classroom building house city town space "
    "scene area theater church restaurant bar cafe store shop market"
)
# -less adjectives that do not mean "without <stem>" in a scene.
_LEXICAL_LESS = _W(
    "unless regardless nevertheless nonetheless useless careless endless countless harmless "
    "helpless restless seamless timeless spotless motionless speechless fearless effortless "
    "pointless aimless lifeless hopeless thoughtless reckless relentless priceless tireless "
    "flawless worthless wireless homeless sleeveless strapless cordless stainless weightless "
    "breathless sleepless limitless boundless matchless topless bottomless shapeless"
)


_SIGN_WORDS = _W("sign signs zone zones area areas sticker stickers symbol symbols")
_IMPLICIT = _W("unoccupied unaccompanied deserted uninhabited unmanned empty vacant unattended")
_CUE_WORDS = (
    _W(
        "no nobody no-one nothing without sans minus devoid free void bereft empty vacant absent "
        "lacks lack lacking lacked absence neither none missing nowhere instead rather far except"
    )
    | NEG_AUX
    | _IMPLICIT
    | frozenset(w for w in ("unaccompanied", "undisturbed", "unoccupied", "unencumbered"))
)


def _np_from_word(word: str) -> str:
    w = word.lower()
    sing = singular(w)
    if sing == "person" or w in PRONOUN_PERSON:
        return "a person"
    return ("an " if sing[0] in "aeiou" else "a ") + sing if sing not in MASS else sing


def _person_cue(c: _Caption, start: int, after: int, strength: str) -> _Cue:
    text, np = _person_action(c, after)
    if np is not None:
        return _Cue(start, np[1], np, strength, True)
    return _Cue(start, after, None, strength, True, person=text)


def _prenominal(c: _Caption, cue_start: int, np_start: int, strength: str, explicit=True):
    j = c.skip(c.skip(np_start, NP_LEAD), DETS)
    # "no indication of anyone watching", "without anyone"
    k = j
    while k < c.n and (c.low[k] in CONTAINERS or c.low[k] in DETS or c.low[k] in ("or", "and")):
        k += 1
    if k > j and k < c.n and container_link(c.low[k - 1], c.low[k]):
        j = c.skip(k + 1, DETS)
    if j < c.n and c.low[j] in PRONOUN_PERSON:
        return (
            _person_cue(c, cue_start, j + 1, strength)
            if explicit
            else _Cue(cue_start, j + 1, None, strength, explicit, person="a person")
        )
    np = c.np_forward(np_start)
    if np is None or c.low[np[1] - 1] in _SCENE_NOUNS:  # "there is no image to evaluate"
        return None
    np = _example(c, np)
    return _Cue(cue_start, max(np[1], cue_start + 1), np, strength, explicit)


def _example(c: _Caption, np: tuple[int, int]) -> tuple[int, int]:
    """'no other vehicle, including a car': the example named after a general noun is the
    concrete thing negated (also 'like', 'such as', 'especially', 'not even')."""
    low, n = c.low, c.n
    j = np[1] + (np[1] < n and low[np[1]] == ",")
    if j + 1 < n and (low[j], low[j + 1]) in (("such", "as"), ("not", "even")):
        j += 1
    elif not (j < n and low[j] in _EXAMPLE_MARKERS):
        return np
    ex = c.np_forward(j + 1)
    return ex if ex is not None else np


_EXAMPLE_MARKERS = _W("including like especially particularly specifically namely")


def _postnominal(c: _Caption, i: int, strength: str, explicit: bool = True):
    """'X is nowhere to be seen', 'X is (noticeably) absent': NP before the predicate."""
    low = c.low
    j = i
    while j > 0 and (low[j - 1] in AUX or low[j - 1].endswith("ly") or low[j - 1] in _POST_SKIP):
        j -= 1
    np = c.np_backward(j)
    if np is None or c.low[np[1] - 1] in _SCENE_NOUNS:  # "the image is missing"
        return None
    return _Cue(np[0], i + 1, np, strength, explicit)


_POST_SKIP = _W(
    "not also still to be seem seems appear appears remain remains currently completely entirely "
    "however , though too"
)


def _absent(c: _Caption, i: int):
    """absent / missing / nowhere, in their inverted and ordinary orders."""
    low, n = c.low, c.n
    w = low[i]
    if i > 0 and low[i - 1] in DETS:  # "a missing slice"
        return None
    strength = {"absent": _WEAK, "missing": _MODERATE, "nowhere": _STRONG}[w]
    explicit = w != "absent"
    j = i + 1
    if j < n and low[j] in (":", "-", "–", "—"):  # "one thing is absent: a handbag"
        return _prenominal(c, i, j + 1, strength, explicit)
    # "absent from the image is a chair", "nowhere in the image is a bottle"
    if j < n and low[j] in PREPS:
        k = j + 1
        while k < n and k < j + 10 and is_word(low[k]) and low[k] not in AUX:
            k += 1
        if k < n and low[k] in ("is", "are", "was", "were"):
            return _prenominal(c, i, k + 1, strength, explicit)
    if j < n and low[j] in ("is", "are", "was", "were"):  # "noticeably absent is a bottle"
        return _prenominal(c, i, j + 1, strength, explicit)
    if j < n and low[j] in ("a", "an", "any") and w == "absent":  # "Absent a chair, ..."
        return _prenominal(c, i, j, strength, explicit)
    if w == "missing" and j < n and low[j] in _POSSESSIVES:  # "a toilet missing its lid"
        return None
    if (
        w == "missing"
        and j < n
        and is_word(low[j])
        and low[j] not in PREPS
        and low[j] not in CONJ
        and not participle_or_adverb(low[j])
    ):
        return _prenominal(c, i, j, strength, explicit)
    return _postnominal(c, i, strength, explicit)


def _none_of(c: _Caption, i: int):
    """'none of which include carrots', 'none of them are carrying a handbag'."""
    low, n = c.low, c.n
    j = i + 1
    if j < n and low[j] == "of":
        j += 1
        while j < n and is_word(low[j]) and low[j] not in AUX and low[j] not in POSSESS:
            j += 1
    j = c.skip(j, AUX)
    if j < n and (low[j] in POSSESS or low[j].endswith("ing") or low[j] == "with"):
        return _prenominal(c, i, j + 1, _STRONG)
    return None


def _negated_aux(c: _Caption, i: int):
    """not / isn't / doesn't / cannot ... in their noun-negating uses."""
    low, n = c.low, c.n
    j = i + 1
    bare_not = low[i] == "not"
    if bare_not:
        if j < n and low[j] in ("a", "an", "any", "one", "single"):
            return _prenominal(c, i, j, _STRONG)
        if j + 1 < n and low[j] == "even" and low[j + 1] in ("a", "an", "any", "one", "single"):
            return _prenominal(c, i, j + 1, _STRONG)
        if j < n and low[j] in ("only", "just", "far", "to", "quite", "yet", "even", "until"):
            return None
    # "there isn't a cup", "there are not any cars"
    b = i - 1
    while b >= 0 and low[b].endswith("ly"):  # "there surprisingly isn't a chair"
        b -= 1
    after_there = b >= 0 and (
        low[b] == "there" or (b > 0 and low[b - 1] == "there" and low[b] in AUX)
    )
    if after_there and j < n and (low[j] in DETS or low[j] == "single"):
        return _prenominal(c, i, j, _MODERATE)
    k = c.skip(j, _AUX_ADVERBS)
    if k < n and low[k] in ("find", "see", "spot", "notice"):  # "what you won't find is a bowl"
        m = k + 1
        while m < n and m < k + 8 and is_word(low[m]) and low[m] not in ("is", "are"):
            m += 1
        if m < n and low[m] in ("is", "are"):
            return _prenominal(c, i, m + 1, _MODERATE)
    if (
        k < n
        and low[k] in POSSESS
        and k + 1 < n
        and (
            low[k + 1] in DETS
            or (
                is_word(low[k + 1])
                and low[k + 1] not in PREPS
                and low[k + 1] not in CONJ
                and low[k + 1] not in PREDICATES
            )
        )
    ):
        return _prenominal(c, i, k + 1, _MODERATE)
    # "a dog not on a beach", "not sitting at a dining table"
    p = k + 1 if k + 1 < n and is_word(low[k]) and _locative(low, k + 1) else k
    if p < n and _locative(low, p) and p + 1 < n and is_word(low[p + 1]):
        cue = _prenominal(c, i, p + 1, _STRONG if bare_not else _MODERATE)
        if cue is not None and cue.np and low[cue.np[1] - 1] not in _STATE_NOUNS:
            cue.link = low[p] if p == k else f"{low[k]} {low[p]}"
            return cue
    if k >= n or low[k] in POST_OK_AFTER_NEG or not is_word(low[k]):
        return _postnominal(c, i, _MODERATE)
    return None


_POSSESSIVES = _W("its his her their my our your")
_SCENE_NOUNS = _W("image scene video picture photo photograph frame shot view clip footage sight")
# "not in use", "not in focus": idioms of state, not places.
_STATE_NOUNS = _SCENE_NOUNS | _W(
    "use service operation order focus progress motion place time line charge session stock "
    "season action fact general particular front sync tune touch mind question danger trouble "
    "favor favour fashion power"
)


def _locative(low: list[str], p: int) -> bool:
    """A preposition of place ("not on a beach"); "by" only as "by any/a" ("not lit by any lamp",
    not the agent in "not interviewed by the media")."""
    if low[p] == "by":
        return p + 1 < len(low) and low[p + 1] in ("a", "an", "any")
    return low[p] in _LOCATIVE


_AUX_ADVERBS = _W("even really actually currently appear appears seem seems to be")
_LOCATIVE = _W(
    "on in at near beside inside under with next among behind above below beneath over "
    "around against into onto"
)


def _predicative(c: _Caption, i: int) -> bool:
    """'the room is empty', 'sits vacant', ', unoccupied': not 'an empty plate'."""
    low, n = c.low, c.n
    if i > 0 and low[i - 1] in DETS:  # "an empty, stylish kitchen"
        return False
    nxt = low[i + 1] if i + 1 < n else "."
    return not is_word(nxt) or nxt in PREPS or nxt in CONJ or nxt == "and"


def _neg_text(c: _Caption, cue: _Cue) -> str:
    """The negated NP as a short phrase: singular head with an article, as CLIP prompts read."""
    if cue.person is not None:
        return cue.person
    a, b = cue.np
    low = c.low
    head = low[b - 1]
    if head in PRONOUN_PERSON:
        return "a person"
    text = c.text[c.starts[a] : c.ends[b - 1]]
    if any(low[k] in ("or", "nor") for k in range(a, b)):
        text = text.replace(" nor ", " or ")
        return (low[a - 1] + " " + text) if a > 0 and low[a - 1] in ("a", "an") else text
    gerund_phrase = low[a].endswith("ing") and any(low[k] in DETS for k in range(a + 1, b))
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


def _without_word(c: _Caption, i: int) -> str:
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


def _aff_text(c: _Caption, s: int, e: int) -> str:
    """The caption without the negating clause [s, e) and the connectives that tied it in."""
    low, n, text = c.low, c.n, c.text
    # Left: drop connectives and, inside the negated clause, the generic scene words before it.
    p = s
    crossed = relative = False
    while p > 0:
        w = low[p - 1]
        if w in BOUNDARY_PUNCT:
            crossed = True
        elif not (w in GLUE or (not crossed and (w in SCENE_GLUE or w.endswith("ly")))):
            break
        elif not crossed and w in _RELATIVE:
            relative = True
        p -= 1
    if relative:
        # "A man who is not wearing a hat rides a bike": only the relative clause goes.
        r = e
        while r < n and low[r] in BOUNDARY_PUNCT and low[r] not in ".!?":
            r += 1
        left = text[: c.ends[p - 1]].strip() if p > 0 else ""
        right = text[c.starts[r] :].strip() if r < n else ""
        if right[:1] in (".", "!", "?"):
            return left + right
        return (left + " " + right).strip()
    # Right: the rest of the clause goes with the negation; then drop leading connectives.
    r = e
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
    left = text[: c.ends[p - 1]].strip() if p > 0 else ""
    right = text[c.starts[r] :].strip() if r < n else ""
    if left and right:
        aff = left + ", " + right
    elif left:
        aff = left + ("." if text.rstrip().endswith(".") else "")
    else:
        aff = right
    if aff and aff[0].islower() and (not left or not text[:1].islower()):
        aff = aff[0].upper() + aff[1:]
    return aff


_RELATIVE = _W("who that which")


_OBJ_PRONOUNS = _W("it them him her they us me you there here which whom")
_SETTING_PREPS = _W("in at on inside near along across around by under over within")


def _setting(c: _Caption, cue: _Cue) -> str:
    """aff for a caption that is all negation: what it is about, else "".

    "None of the kids wear helmets" -> "the kids"; "No one is dancing at the party" -> "the
    party"; "There are no trees in this desert landscape" -> "this desert landscape".
    """
    low, n, text = c.low, c.n, c.text
    i = cue.start
    if low[i] == "none" and i + 2 < n and low[i + 1] == "of" and low[i + 2] not in PRONOUNS:
        j = i + 2
        while j < n and is_word(low[j]) and low[j] not in AUX and low[j] not in POSSESS:
            j += 1
        return text[c.starts[i + 2] : c.ends[j - 1]] if j > i + 2 else ""
    for j in range(cue.end, n - 1):
        if low[j] in BOUNDARY_PUNCT and low[j] not in "-":
            break
        if low[j] in _SETTING_PREPS and is_word(low[j + 1]) and low[j + 1] not in _OBJ_PRONOUNS:
            k = j + 1
            while k < n and low[k] not in BOUNDARY_PUNCT and low[k] not in CLAUSE_CONJ:
                k += 1
            return text[c.starts[j + 1] : c.ends[k - 1]]
    return ""


class RuleDecomposer:
    """Deterministic, model-free decomposer (the default backend).

    ``decompose`` never raises for a caption: one without a recognised cue comes back with
    ``negated = False`` (plain CLIP scoring, the paper's behaviour without negation).
    """

    name = "rules"

    def __init__(self):
        self.stats = {"captions": 0, "negated": 0, "fallbacks": 0, "requests": 0, "cache_hits": 0}

    def decompose_one(self, caption: str) -> Decomposition:
        c = _Caption(caption)
        cue = _find_cue(c) if c.n else None
        if cue is None:
            return Decomposition.plain(caption)
        neg = _neg_text(c, cue)
        if cue.attributive:
            aff = _without_word(c, cue.start)
        else:
            aff = _aff_text(c, cue.start, cue.end) or _setting(c, cue)
        # A caption may negate the same concept twice ("No car ...; ... with no car in sight"):
        # aff must not name it, so remove every clause that negates it.
        head = neg.rsplit(None, 1)[-1].lower()
        for _ in range(3):
            if head not in aff.lower() or head not in _Caption(aff).low:
                break
            c2 = _Caption(aff)
            cue2 = _find_cue(c2)
            if cue2 is None or _neg_text(c2, cue2).rsplit(None, 1)[-1].lower() != head:
                break
            aff = _aff_text(c2, cue2.start, cue2.end)
        base = aff.rstrip(" .!?,;:")
        cf = f"{base} {cue.link} {neg}" if base else neg
        return Decomposition(caption, True, aff, neg, cf, cue.strength)

    def decompose(self, captions: list[str]) -> list[Decomposition]:
        out = [self.decompose_one(cap) for cap in captions]
        self.stats["captions"] += len(out)
        self.stats["negated"] += sum(d.negated for d in out)
        return out
