"""Negation cues: a table from trigger word to the handler that reads the negated phrase.

A handler gets the caption and the trigger's token index and returns a :class:`Cue` (the span
to remove from aff, the negated NP, the strength) or None when the word is not negating here.
Strength follows SpaceVLM-DRC's three classes: explicit markers are strong ("no", "without",
"not a", "none", "nowhere", "devoid of"), hedged constructions moderate ("doesn't have",
"lacks", "missing", "excluding"), implicit absence weak ("absent", "empty", "far from").
Word classes live in :mod:`drc_jax.decompose.lexicon`, inflection in
:mod:`drc_jax.decompose.morphology`; nothing here names a caption or an object.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from drc_jax.decompose.caption import MODERATE, STRONG, WEAK, WINDOW, Caption, Cue, quoted_spans
from drc_jax.decompose.lexicon import (
    ALWAYS_PEOPLE,
    AUX,
    AUX_ADVERBS,
    BE,
    BE_NEG,
    BOUNDARY_PUNCT,
    CLAUSE_CONJ,
    CONJ,
    CONTAINERS,
    CONTRAST_BEFORE_NOT,
    COPULA,
    DETS,
    DO_MODAL,
    EXAMPLE_MARKERS,
    EXCLUSION_BLOCKERS,
    GO_VERBS,
    IDIOMS_AFTER_NO,
    IMPLICIT,
    INDEFINITE,
    LEXICAL_LESS,
    LITOTES_BEFORE,
    LOCATIVE,
    MENTION,
    NEAR_ZERO,
    NEG_AUX,
    NOT_IDIOMS,
    NP_LEAD,
    OBJ_PRONOUNS,
    OUT_OF_VIEW,
    PARTICLES,
    PASSIVE_AUX,
    PERCEIVE,
    PERFECT,
    PERSON_SKIP,
    PLACES,
    POSITIVE_AUX,
    POSSESS,
    POSSESSIVES,
    POST_OK_AFTER_NEG,
    POST_SKIP,
    POSTURE,
    PREDICATES,
    PREPS,
    PRONOUN_PERSON,
    PRONOUNS,
    QUOTES,
    RELATIVE,
    SCENE_NOUNS,
    SCENE_WORDS,
    SIGN_WORDS,
    STATE_NOUNS,
    WITHOUT,
    ZERO,
    container_link,
    is_word,
)
from drc_jax.decompose.morphology import (
    concept_phrase,
    gerund,
    irregular_participle,
    participle_gerund,
    participle_or_adverb,
)

Handler = Callable[[Caption, int], "Cue | None"]
#: trigger word -> handler; words recognised by their shape ("car-free", "chairless",
#: "unaccompanied by") go through SHAPE_CUES.
CUES: dict[str, Handler] = {}


def cue(*triggers: str):
    """Register a handler for trigger words."""

    def register(fn: Handler) -> Handler:
        for t in triggers:
            assert t not in CUES, f"cue {t!r} registered twice"
            CUES[t] = fn
        return fn

    return register


def find_cues(c: Caption) -> list[tuple[tuple[int, int], Cue]]:
    """Every cue of the caption with its rank (explicit, scene-level), in caption order."""
    low = c.low
    quoted = set()
    if not QUOTES.isdisjoint(c.text):
        for a, b in quoted_spans(c):
            quoted.update(range(a + 1, b))
    out = []
    present = _TRIGGERS.intersection(low)
    if _SHAPES.search(c.text):
        hits = [(i, w) for i, w in enumerate(low) if w in present or _shape_handler(w)]
    elif present:
        hits = [(i, w) for i, w in enumerate(low) if w in present]
    else:
        return out
    for i, w in hits:
        handler = CUES.get(w) or _shape_handler(w)
        if i in quoted or _mentioned(c, i):
            continue
        found = handler(c, i)
        if found is not None:
            out.append(((int(found.explicit), int(_scene_level(c, found))), found))
    return out


def _mentioned(c: Caption, i: int) -> bool:
    """Whether the cue word is quoted or named by a verb of saying or naming: "a sign that says
    no dogs allowed", "a dog named Nobody" mention a negation, they do not make one."""
    return i > 0 and c.low[i - 1] in MENTION


def best_cue(cues: list[tuple[tuple[int, int], Cue]]) -> Cue | None:
    """Explicit beats implicit, a cue about the scene beats a local one, then the first wins."""
    best, best_rank = None, (-1, -1)
    for rank, found in cues:
        if rank > best_rank:
            best, best_rank = found, rank
    return best


def _person_action(c: Caption, i: int) -> tuple[str, tuple[int, int] | None]:
    """neg for "no one ..." / "nobody ...": 'a person', plus the action if one follows.

    "no one has a handbag" negates the handbag: a possession verb hands over to its object.
    Returns (text, NP span or None).
    """
    low, n = c.low, c.n
    j = c.skip(i, PERSON_SKIP)
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


def _scene_level(c: Caption, cue: Cue) -> bool:
    """Whether the negation is about the scene ("no cup in sight", "there is no cup").

    Such a cue beats a local one ("beds without comforters") when a caption has both.
    """
    low = c.low
    i = max(cue.start - 3, 0)
    end = min(c.n, max(cue.end, i) + 2 * WINDOW)
    while i < end:
        w = low[i]
        if i >= cue.end and (w in BOUNDARY_PUNCT or w in CLAUSE_CONJ or w == "and"):
            return False
        if w in SCENE_WORDS:
            return True
        i += 1
    return False


# ----------------------------------------------------------------------------- the cue table


@cue("no")
def _no(c: Caption, i: int):
    low, n = c.low, c.n
    nxt = low[i + 1] if i + 1 < n else ""
    if nxt == "longer":  # "a tree that no longer has leaves": a negated predicate
        found = _negated_aux(c, i + 1)
        if found is not None:
            found.start = min(found.start, i)
        return found
    if nxt in IDIOMS_AFTER_NO or not nxt:
        return None
    if i > 0 and low[i - 1] in ("a", "an", "the"):  # "a no parking sign"
        return None
    if nxt.endswith("ing") and i + 2 < n and low[i + 2] in SIGN_WORDS:  # "no smoking signs"
        return None
    if nxt == "one":
        return _person_cue(c, i, i + 2, STRONG)
    return _prenominal(c, i, i + 1, STRONG)


@cue("w")
def _w_slash_o(c: Caption, i: int):
    """ "cat w/o collar": the abbreviation of "without"."""
    low, n = c.low, c.n
    if i + 2 < n and low[i + 1] == "/" and low[i + 2] == "o":
        return _prenominal(c, i, i + 3, STRONG)
    return None


@cue(*ZERO)
def _zero(c: Caption, i: int):
    """ "a field with zero cows": a quantifier of absence before a noun."""
    nxt = _next(c, i)
    if not is_word(nxt) or nxt in PREPS or nxt in CONJ or nxt in AUX:
        return None
    return _prenominal(c, i, i + 1, STRONG)


@cue(*NEAR_ZERO)
def _near_zero(c: Caption, i: int):
    """ "a street with hardly any cars": near-absence, an implicit (weak) negation."""
    if _next(c, i) not in ("any", "a", "anyone", "anybody", "anything"):
        return None
    return _prenominal(c, i, i + 1, WEAK, explicit=False)


@cue("nobody", "no-one")
def _nobody(c: Caption, i: int):
    return _person_cue(c, i, i + 1, STRONG)


@cue(*WITHOUT)
def _without(c: Caption, i: int):
    return _prenominal(c, i, i + 1, STRONG)


@cue("devoid", "free", "void", "bereft")
def _devoid(c: Caption, i: int):
    if _next(c, i) in ("of", "from"):
        return _prenominal(c, i, i + 2, STRONG)
    return None


@cue("empty", "vacant")
def _empty(c: Caption, i: int):
    if _next(c, i) == "of":
        return _prenominal(c, i, i + 2, WEAK)
    return _implicit(c, i)


@cue("absent")
def _absent_word(c: Caption, i: int):
    if _next(c, i) == "of":
        return _prenominal(c, i, i + 2, WEAK)
    return _absent(c, i)


@cue("lacks", "lack", "lacking", "lacked")
def _lacks(c: Caption, i: int):
    return _prenominal(c, i, i + 2 if _next(c, i) == "of" else i + 1, MODERATE)


@cue("absence")
def _absence(c: Caption, i: int):
    if _next(c, i) in ("of", ":", "is", "-", "–", "—"):
        return _prenominal(c, i, i + 2, MODERATE)
    return None


@cue("nothing")
def _nothing(c: Caption, i: int):
    # "nothing suggests the presence of a cup", "nothing hints at a car"
    low, n, nxt = c.low, c.n, _next(c, i)
    if nxt.endswith("s") and nxt not in AUX and i + 2 < n:
        j = i + 3 if low[i + 2] in ("at", "to", "of") else i + 2
        return _prenominal(c, i, j, MODERATE)
    return None


@cue("neither")
def _neither(c: Caption, i: int):
    return _prenominal(c, i, i + 1, STRONG)


@cue("none")
def _none(c: Caption, i: int):
    return _none_of(c, i)


@cue("missing", "nowhere")
def _missing(c: Caption, i: int):
    return _absent(c, i)


@cue(*NEG_AUX)
def _not(c: Caption, i: int):
    return _negated_aux(c, i)


@cue("instead", "rather")
def _instead(c: Caption, i: int):
    if _next(c, i) in ("of", "than"):
        return _prenominal(c, i, i + 2, MODERATE, explicit=False)
    return None


@cue("far", "away")
def _far(c: Caption, i: int):
    """Distance: "a dog far from any car", "a bench far away from the crowd"."""
    low, n = c.low, c.n
    if i > 0 and low[i - 1] in LITOTES_BEFORE:  # "not far from the beach": near it
        return None
    j = i + 1
    if low[i] == "far" and j < n and low[j] == "away":
        j += 1
    if j + 1 < n and low[j] == "from" and low[j + 1] in ("any", "a", "an", "the", "all"):
        return _prenominal(c, i, j + 1, WEAK, explicit=False)
    return None


@cue("except", "excluding", "excepting", "barring")
def _except(c: Caption, i: int):
    """Exclusion: "a desk excluding the monitor", "except for a chair" (not "empty except")."""
    low = c.low
    if any(low[k] in EXCLUSION_BLOCKERS for k in range(max(i - 3, 0), i)):
        return None
    return _exclusion(c, i, i + 2 if _next(c, i) == "for" else i + 1)


@cue("but")
def _anything_but(c: Caption, i: int):
    """ "anything but cats": "but" after an indefinite pronoun excludes."""
    if i == 0 or c.low[i - 1] not in ("anything", "everything"):
        return None
    return _exclusion(c, i, i + 1)


@cue("other")
def _other_than(c: Caption, i: int):
    """ "anything other than a dog", "a beach other than at sunset"."""
    if _next(c, i) != "than":
        return None
    return _exclusion(c, i, i + 2)


@cue("apart", "aside")
def _apart_from(c: Caption, i: int):
    """ "a kitchen apart from the fridge"."""
    if _next(c, i) != "from":
        return None
    return _exclusion(c, i, i + 2)


@cue("left")
def _left_out(c: Caption, i: int):
    """ "the car is left out of the picture", "left out of the frame is a car"."""
    low, n = c.low, c.n
    if not (i + 2 < n and low[i + 1] == "out" and low[i + 2] == "of"):
        return None
    return _absence_predicate(c, i, i + 3, MODERATE, explicit=False)


@cue("out")
def _out_of_view(c: Caption, i: int):
    """ "the dog is out of sight", "a cat out of frame"."""
    low, n = c.low, c.n
    if i > 0 and low[i - 1] == "left":
        return None
    j = i + 2 if i + 1 < n and low[i + 1] == "of" else 0
    if j and j < n and low[j] in ("the", "this"):
        j += 1
    if not (j and j < n and low[j] in OUT_OF_VIEW):
        return None
    cue_ = _postnominal(c, i, WEAK, explicit=False)
    if cue_ is not None:
        cue_.end = j + 1
    return cue_


def _implicit(c: Caption, i: int):
    """ "the room is empty", "a deserted street", "an empty kitchen" (not "an empty plate")."""
    w = c.low[i]
    predicative = _predicative(c, i)
    if predicative or w in ALWAYS_PEOPLE or (w in ("empty", "vacant") and _next(c, i) in PLACES):
        return Cue(i, i + 1, None, WEAK, False, "a person", attributive=not predicative)
    return None


@cue(*sorted(IMPLICIT - {"empty", "vacant"}))
def _unoccupied(c: Caption, i: int):
    """ "unaccompanied by a person" names what is absent; "a deserted street", a person."""
    return _un_by(c, i) or _implicit(c, i)


def _un_by(c: Caption, i: int):
    """ "unaccompanied by any person", "undisturbed by people"."""
    w = c.low[i]
    if _next(c, i) == "by" and w.startswith("un") and w.endswith("ed"):
        cue_ = _prenominal(c, i, i + 2, WEAK, explicit=False)
        return cue_ or Cue(i, i + 1, None, WEAK, False, person="a person")
    return None


def _free_suffix(c: Caption, i: int):
    """ "a car-free scene"."""
    stem = concept_phrase(c.tok(i)[:-5])
    return Cue(i, i + 1, None, STRONG, True, stem, attributive=not _predicative(c, i))


def _less_suffix(c: Caption, i: int):
    """ "a person-less scene", "the room appears chairless": X-less = without X."""
    w = c.low[i]
    stem = w[:-5] if w.endswith("-less") else w[:-4]
    predicative = _predicative(c, i)
    if w.endswith("-less") or predicative:
        return Cue(i, i + 1, None, WEAK, False, concept_phrase(stem), attributive=not predicative)
    return None


def _shape_handler(w: str) -> Handler | None:
    if w.endswith("-free") and len(w) > 5:
        return _free_suffix
    if w.endswith("less") and len(w) > 6 and w not in LEXICAL_LESS:
        return _less_suffix
    if w.startswith("un") and w.endswith("ed"):
        return _un_by
    return None


_TRIGGERS = frozenset(CUES)
# Words that may be cues by their shape (see _shape_handler), as a quick test on the text.
_SHAPES = re.compile(r"-free\b|\w-?less\b|\b[Uu]n\w+ed\b")


def _next(c: Caption, i: int) -> str:
    return c.low[i + 1] if i + 1 < c.n else ""


# ----------------------------------------------------------------------------- phrase readers


def _person_cue(c: Caption, start: int, after: int, strength: str) -> Cue:
    text, np = _person_action(c, after)
    if np is not None:
        return Cue(start, np[1], np, strength, True)
    end = after
    if start > 0 and c.low[start - 1] in RELATIVE:
        # "a chair that nobody is sitting on": the relative clause is all about the absent
        # person, so all of it leaves aff.
        while end < c.n and is_word(c.low[end]) and c.low[end] not in CLAUSE_CONJ:
            if c.low[end] == "and" or (end > after and c.low[end] in RELATIVE):
                break
            end += 1
    elif end + 1 < c.n and c.low[end] in PREPS and c.low[end + 1] in OBJ_PRONOUNS:
        end += 2  # "a beach that has nobody on it": the resumptive "on it" goes too
    return Cue(start, end, None, strength, True, person=text)


def _prenominal(c: Caption, cue_start: int, np_start: int, strength: str, explicit=True):
    j = c.skip(c.skip(np_start, NP_LEAD), DETS)
    # "no indication of anyone watching", "without anyone"
    k, end = j, min(c.n, j + WINDOW)
    while k < end and (c.low[k] in CONTAINERS or c.low[k] in DETS or c.low[k] in ("or", "and")):
        k += 1
    if k > j and k < c.n and container_link(c.low[k - 1], c.low[k]):
        j = c.skip(k + 1, DETS)
    if j < c.n and c.low[j] in PRONOUN_PERSON:
        return (
            _person_cue(c, cue_start, j + 1, strength)
            if explicit
            else Cue(cue_start, j + 1, None, strength, explicit, person="a person")
        )
    np = c.np_forward(np_start)
    if np is None or c.low[np[1] - 1] in SCENE_NOUNS:  # "there is no image to evaluate"
        return None
    np = _example(c, np)
    return Cue(cue_start, max(np[1], cue_start + 1), np, strength, explicit)


def _example(c: Caption, np: tuple[int, int]) -> tuple[int, int]:
    """'no other vehicle, including a car': the example named after a general noun is the
    concrete thing negated (also 'like', 'such as', 'especially', 'not even')."""
    low, n = c.low, c.n
    j = np[1] + (np[1] < n and low[np[1]] == ",")
    if j + 1 < n and (low[j], low[j + 1]) in (("such", "as"), ("not", "even")):
        j += 1
    elif not (j < n and low[j] in EXAMPLE_MARKERS):
        return np
    ex = c.np_forward(j + 1)
    return ex if ex is not None else np


def _postnominal(c: Caption, i: int, strength: str, explicit: bool = True):
    """'X is nowhere to be seen', 'X is (noticeably) absent': NP before the predicate."""
    low = c.low
    j, stop = i, max(i - WINDOW, 0)
    while j > stop and (low[j - 1] in AUX or low[j - 1].endswith("ly") or low[j - 1] in POST_SKIP):
        j -= 1
    if j > 1 and low[j - 1] in RELATIVE:  # "a piano that is not being played"
        j -= 1
    np = c.np_backward(j)
    if np is None or c.low[np[1] - 1] in SCENE_NOUNS:  # "the image is missing"
        return None
    return Cue(np[0], i + 1, np, strength, explicit)


def _absent(c: Caption, i: int):
    """absent / missing / nowhere, in their inverted and ordinary orders."""
    low, n = c.low, c.n
    w = low[i]
    if i > 0 and low[i - 1] in DETS:  # "a missing slice"
        return None
    strength = {"absent": WEAK, "missing": MODERATE, "nowhere": STRONG}[w]
    explicit = w != "absent"
    j = i + 1
    if j < n and low[j] in (":", "-", "–", "—"):  # "one thing is absent: a handbag"
        return _prenominal(c, i, j + 1, strength, explicit)
    # "absent from the image is a chair", "nowhere in the image is a bottle"
    if j < n and low[j] in PREPS:
        k = j + 1
        while k < n and k < j + 10 and is_word(low[k]) and low[k] not in AUX:
            k += 1
        if k < n and low[k] in BE:
            return _prenominal(c, i, k + 1, strength, explicit)
    if j < n and low[j] in BE:  # "noticeably absent is a bottle"
        return _prenominal(c, i, j + 1, strength, explicit)
    if j < n and low[j] in ("a", "an", "any") and w == "absent":  # "Absent a chair, ..."
        return _prenominal(c, i, j, strength, explicit)
    if w == "missing" and j < n and low[j] in POSSESSIVES:
        # A part missing from its whole ("a bicycle missing its front wheel") is local: a
        # scene-level negation elsewhere in the caption names the concept first.
        return _prenominal(c, i, j, strength, explicit=False)
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


def _none_of(c: Caption, i: int):
    """'none of which include carrots', 'none of them are carrying a handbag'."""
    low, n = c.low, c.n
    j = i + 1
    of = j < n and low[j] == "of"
    if of:
        j += 1
        end = min(n, j + WINDOW)
        while j < end and is_word(low[j]) and low[j] not in AUX and low[j] not in POSSESS:
            j += 1
    if not (j < n and low[j] in POSSESS):  # "have" is both: "none of the plates have food"
        j = c.skip(j, AUX)
    if j < n and (low[j] in POSSESS or low[j].endswith("ing") or low[j] == "with"):
        found = _prenominal(c, i, j + 1, STRONG)
        if found is None and low[j].endswith("ing") and len(low[j]) > 4:
            # "none of the kids are smiling": the activity itself
            found = Cue(i, j + 1, (j, j + 1), STRONG, True)
        return found
    # Quantifier negation of a state: "none of the chairs are occupied" (the chairs are there).
    if of and j < n and _participle(low[j]) and low[j] not in POST_OK_AFTER_NEG:
        return Cue(i, j + 1, (j, j + 1), STRONG, True, affirm=i)
    # Quantifier negation of the thing itself: "none of the chairs are visible", "there are
    # none of the usual cars", "none of the cups".
    if of and (j >= n or low[j] in POST_OK_AFTER_NEG or not is_word(low[j])):
        found = _prenominal(c, i, i + 2, STRONG)
        if found is not None:
            found.end = max(found.end, min(j + 1, n))
        return found
    return None


def _negated_aux(c: Caption, i: int):
    """not / isn't / doesn't / cannot ... in their noun-negating uses."""
    low, n = c.low, c.n
    j = i + 1
    bare_not = low[i] == "not"
    if bare_not:
        if j + 1 < n and low[j] == "one" and low[j + 1] == "of":  # "not one of the players"
            found = _none_of(c, j)
            if found is not None:
                found.start = i
            return found
        if j < n and low[j] in INDEFINITE:
            return _prenominal(c, i, j, STRONG)
        if j + 1 < n and low[j] == "even" and low[j + 1] in INDEFINITE:
            return _prenominal(c, i, j + 1, STRONG)
        if j < n and low[j] in NOT_IDIOMS:
            return None
    # "there isn't a cup", "there are not any cars"
    b, stop = i - 1, max(i - WINDOW, 0)
    while b >= stop and low[b].endswith("ly"):  # "there surprisingly isn't a chair"
        b -= 1
    after_there = b >= 0 and (
        low[b] == "there" or (b > 0 and low[b - 1] == "there" and low[b] in AUX)
    )
    if after_there and j < n and (low[j] in DETS or low[j] == "single"):
        return _prenominal(c, i, j, MODERATE)
    k = c.skip(j, AUX_ADVERBS)
    if k < n and low[k] in PERCEIVE:  # "what you won't find is a bowl"
        m = k + 1
        while m < n and m < k + 8 and is_word(low[m]) and low[m] not in ("is", "are"):
            m += 1
        if m < n and low[m] in ("is", "are"):
            return _prenominal(c, i, m + 1, MODERATE)
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
        return _prenominal(c, i, k + 1, MODERATE)
    if (
        k < n
        and low[k] in GO_VERBS
        and _do_support(c, i)
        and (k + 1 == n or not is_word(low[k + 1]))
    ):
        # A place where something never goes: "a beach where tourists never go", "a street
        # where cars don't drive": the subject of the intransitive verb is what is absent.
        np = c.np_backward(i)
        if np is not None and np[0] > 0 and low[np[0] - 1] == "where":
            return Cue(np[0], k + 1, np, MODERATE, True)
    if _do_support(c, i) and k + 1 < n and _bare_verb(low[k]) and _object_start(low[k + 1]):
        # A negated transitive verb: "a toddler who won't eat broccoli", "a shop that no
        # longer sells bread", "people who do not eat meat": the object is what is negated.
        return _prenominal(c, i, k + 1, MODERATE)
    if k < n and _do_support(c, i) and _bare_verb(low[k]):
        # A negated intransitive verb, maybe with its particle: "a bird that didn't fly away",
        # "a man who doesn't smile": the activity ("flying away", "smiling") is negated.
        e = k + 1 + (k + 1 < n and low[k + 1] in PARTICLES)
        if e >= n or not is_word(low[e]) or low[e] in CLAUSE_CONJ or low[e] == "and":
            activity = " ".join([gerund(low[k]), *low[k + 1 : e]])
            return Cue(i, e, (k, e), MODERATE, True, person=activity, affirm=i)
    # "a dog not on a beach", "not sitting at a dining table"
    # (a participle or a verb of posture before the place: "not sitting at a table", "not
    # displayed on a table", "not lit by any lamp"; another -ing verb is itself what is
    # negated: "a dog that is not barking at the mailman")
    placed = k < n and (low[k] in POSTURE or not low[k].endswith("ing"))
    p = k + 1 if k + 1 < n and placed and _locative(low, k + 1) else k
    if p < n and _locative(low, p) and p + 1 < n and is_word(low[p + 1]):
        cue = _prenominal(c, i, p + 1, STRONG if bare_not else MODERATE)
        if cue is not None and cue.np and low[cue.np[1] - 1] not in STATE_NOUNS:
            cue.link = low[p] if p == k else f"{low[k]} {low[p]}"
            return cue
    perfect = low[i] in PERFECT or (i > 0 and low[i - 1] in PERFECT)
    if perfect and k + 1 < n and _participle(low[k]) and _object_start(low[k + 1]):
        # The perfect: "a girl who has never seen snow", "a cake that hasn't been cut" (not:
        # "been" is an auxiliary): the participle's object is what is negated.
        return _prenominal(c, i, k + 1, MODERATE)
    if k >= n or low[k] in POST_OK_AFTER_NEG or not is_word(low[k]):
        return _postnominal(c, i, MODERATE)
    return _negated_predicate(c, i, k)


def _negated_predicate(c: Caption, i: int, k: int):
    """A negated state or action: "a baby that is not crying", "a chef cooking but not tasting",
    "fruit but not apples", "basketball is not being played", "a door that isn't locked".

    Read only where the negation is a predicate of its own: after a copula or relative pronoun
    ("is not", "who isn't"), after a contrast ("but not", ", not"), or at the query's start.
    """
    low, n = c.low, c.n
    bare_not = low[i] == "not"
    strength = STRONG if bare_not else MODERATE
    prev = low[i - 1] if i > 0 else ""
    contrast = i == 0 or prev in CONTRAST_BEFORE_NOT
    copular = low[i] != "not" or prev in COPULA
    if k >= n or not is_word(low[k]):
        return None
    m = c.skip(k, PASSIVE_AUX)
    if m > k and m < n and _participle(low[m]):
        # Passive activity: "basketball is not being played", "a guitar not being played"
        # negates the activity done to the subject.
        found = _postnominal(c, i, strength)
        if found is not None:  # the activity: "playing basketball", "eating food"; the
            a, b = found.np  # subject itself is there ("a piano that is not being played")
            found.person = f"{participle_gerund(low[m])} {c.text[c.starts[a] : c.ends[b - 1]]}"
            found.start, found.end, found.affirm = i, m + 1, i
        return found
    w = low[k]
    # A reduced relative clause: "a bike not locked to a post", "people not looking at it".
    reduced = bare_not and i > 0 and is_word(prev) and (w.endswith("ing") or _participle(w))
    if not (contrast or copular or reduced):
        if bare_not and _noun_like(prev) and _object_start(w) and _np_ends_query(c, k):
            # Contrast of two bare noun phrases: "cats not dogs", "coffee not tea".
            return _prenominal(c, i, k, strength)
        return None
    if contrast and not copular and w not in PREPS:  # "fruit but not apples", ", not the oven"
        return _prenominal(c, i, k, strength)
    if w in DETS or w in PREPS or w in PRONOUNS or w in CONJ or w in AUX or w in PREDICATES:
        return None
    if (w.endswith("ing") and len(w) > 4) or (reduced and _participle(w)):
        # "not crying", "not eating the cake", "a bike not locked to a post"
        np = c.np_forward(k)
        if np is None:
            return None
        e = np[1]
        if e < n and low[e] in PARTICLES and (e + 1 >= n or not is_word(low[e + 1])):
            np = (np[0], e + 1)  # a phrasal verb: "a cow that is not lying down"
        return Cue(i, np[1], np, strength, True, affirm=i)
    nxt = low[k + 1] if k + 1 < n else "."
    if not is_word(nxt) or nxt in CONJ or nxt in CLAUSE_CONJ or nxt == "and":
        # A predicate adjective or participle: "a door that is not locked", "not red".
        return Cue(i, k + 1, (k, k + 1), strength, False, affirm=i)
    return None


def _participle(w: str) -> bool:
    """A past participle: "played", "worn", "driven", "shown", "held", "cut"."""
    return (
        (w.endswith("ed") and len(w) > 3)
        or (w.endswith(("en", "wn", "ne")) and len(w) > 3)
        or irregular_participle(w)
    )


def _noun_like(w: str) -> bool:
    """A word that may end a noun phrase (no closed-class word, no adverb, no verb form)."""
    return _bare_verb(w) and not w.endswith("ly") and w not in PARTICLES


def _np_ends_query(c: Caption, k: int) -> bool:
    """Whether the NP from ``k`` runs to the end of the query or to a clause boundary."""
    np = c.np_forward(k)
    if np is None:
        return False
    e = np[1]
    return e >= c.n or not is_word(c.low[e]) or c.low[e] in CLAUSE_CONJ


def _do_support(c: Caption, i: int) -> bool:
    """Whether the negator at ``i`` is followed by a bare verb: "doesn't", "won't", "never",
    "no longer", "do not", "can not" (not "isn't", whose verb is a participle or -ing)."""
    w = c.low[i]
    if w == "not":
        return i > 0 and c.low[i - 1] in DO_MODAL
    return w not in BE_NEG


def _bare_verb(w: str) -> bool:
    """A finite or bare verb ("eat", "sells"): a word of no closed class, not -ing, not -ed."""
    return (
        is_word(w)
        and not w.endswith("ing")
        and not _participle(w)
        and w not in PREPS
        and w not in CONJ
        and w not in AUX
        and w not in DETS
        and w not in PRONOUNS
        and w not in PREDICATES
        and w not in PARTICLES
    )


def _object_start(w: str) -> bool:
    """A word that can open a verb's object NP ("the", "any", "broccoli")."""
    if w in DETS:
        return True
    return (
        is_word(w)
        and w not in PREPS
        and w not in CONJ
        and w not in AUX
        and w not in PREDICATES
        and w not in PARTICLES
    )


def affirmed(c: Caption, i: int) -> str:
    """The caption with its negator affirmed ("isn't" -> "is", "not" dropped): the
    counterfactual of a negated predicate."""
    left, right = c.text[: c.starts[i]].rstrip(), c.text[c.ends[i] :].lstrip()
    positive = POSITIVE_AUX.get(c.low[i], "")
    return " ".join(f"{left} {positive} {right}".split())


def _exclusion(c: Caption, i: int, np_start: int):
    """After an exclusion preposition: "excluding the monitor", "other than at sunset"."""
    low, n = c.low, c.n
    link = "with"
    if np_start < n and _locative(low, np_start) and np_start + 1 < n:
        link = low[np_start]
        np_start += 1
    found = _prenominal(c, i, np_start, MODERATE, explicit=False)
    if found is None:
        return None
    found.link = link
    # Coordinated objects are excluded too: "excluding the sink and the stove".
    j, stop = found.end, min(n, found.end + WINDOW)
    while j + 1 < stop and low[j] in ("and", "or", ",") and is_word(low[j + 1]):
        k = c.skip(j + 1, DETS)
        if k >= n or low[k] in AUX or low[k] in PREPS or low[k] in PRONOUNS:
            break
        np = c.np_forward(j + 1)
        if np is None:
            break
        found.also.append(np)
        j = found.end = np[1]
    return found


def _absence_predicate(c: Caption, i: int, after: int, strength: str, explicit: bool):
    """ "X is left out of the picture" / "left out of the frame is X"."""
    low, n = c.low, c.n
    k, end = after, min(n, after + 10)
    while k < end and is_word(low[k]) and low[k] not in AUX:
        k += 1
    if k < n and low[k] in BE:
        return _prenominal(c, i, k + 1, strength, explicit)
    found = _postnominal(c, i, strength, explicit)
    if found is not None:
        found.end = k
    return found


def _locative(low: list[str], p: int) -> bool:
    """A preposition of place ("not on a beach"); "by" only as "by any/a" ("not lit by any lamp",
    not the agent in "not interviewed by the media")."""
    if low[p] == "by":
        return p + 1 < len(low) and low[p + 1] in ("a", "an", "any")
    return low[p] in LOCATIVE


def _predicative(c: Caption, i: int) -> bool:
    """'the room is empty', 'sits vacant', ', unoccupied': not 'an empty plate'."""
    low, n = c.low, c.n
    if i > 0 and low[i - 1] in DETS:  # "an empty, stylish kitchen"
        return False
    nxt = low[i + 1] if i + 1 < n else "."
    return not is_word(nxt) or nxt in PREPS or nxt in CONJ or nxt == "and"
