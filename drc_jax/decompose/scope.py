"""Scope rules: where the negated concept of a matched construction is, as one immutable Cue."""

from __future__ import annotations

from typing import NamedTuple

from drc_jax.decompose.caption import WINDOW, Caption, Cue
from drc_jax.decompose.lexicon import (
    AUX,
    AUX_ADVERBS,
    BE,
    BE_NEG,
    CLAUSE_CONJ,
    CONJ,
    CONTRAST_BEFORE_NOT,
    COPULA,
    DETS,
    DO_MODAL,
    EXAMPLE_MARKERS,
    LOCATIVE,
    OBJ_PRONOUNS,
    PARTICLES,
    PASSIVE_AUX,
    PERSON_SKIP,
    POSSESS,
    POST_OK_AFTER_NEG,
    POST_SKIP,
    PREDICATES,
    PREPS,
    PRONOUN_PERSON,
    PRONOUNS,
    RELATIVE,
    SCENE_NOUNS,
    STATE_NOUNS,
    is_word,
)
from drc_jax.decompose.morphology import (
    concept_phrase,
    gerund,
    is_adverb,
    is_gerund,
    participle,
    participle_gerund,
    third_person,
)


class Match(NamedTuple):
    """A construction at ``start``: its trigger runs to ``body``, its context to ``end``."""

    start: int
    body: int
    end: int
    strength: str
    explicit: bool


def _example(c: Caption, np: tuple[int, int]) -> tuple[int, int]:
    """'no other vehicle, including a car': the example after a general noun is the concept."""
    low, n = c.low, c.n
    j = np[1] + (np[1] < n and low[np[1]] == ",")
    if j + 1 < n and (low[j], low[j + 1]) in (("such", "as"), ("not", "even")):
        j += 1
    elif not (j < n and low[j] in EXAMPLE_MARKERS):
        return np
    ex = c.np_forward(j + 1)
    return ex if ex is not None else np


def noun_after(c: Caption, m: Match, at: int = -1, link="with", min_end=0, also=()) -> Cue | None:
    """The cue [m.start, NP end) whose concept is the NP from token ``at`` (m.end by default)."""
    np = c.np_forward(m.end if at < 0 else at)
    if np is None:
        return None
    low = c.low
    if low[np[0]] in PRONOUN_PERSON:  # "without anyone", "no sign of anybody"
        if m.explicit:
            return person(c, m._replace(end=np[0] + 1))
        return Cue(m.start, np[0] + 1, None, m.strength, False, concept="a person")
    if low[np[1] - 1] in SCENE_NOUNS:  # "there is no image to evaluate"
        return None
    if np[1] < c.n and low[np[1]] in _EXAMPLE_NEXT:
        np = _example(c, np)
    end = max(np[1], m.start + 1, min_end, also[-1][1] if also else 0)
    return Cue(m.start, end, np, m.strength, m.explicit, None, link, False, also)


_EXAMPLE_NEXT = EXAMPLE_MARKERS | {",", "such", "not"}
after = noun_after  # the NP after the construction: "no cars", "devoid of any horses"


def subject(c: Caption, i: int) -> tuple[int, int] | None:
    """The NP before the predicate at ``i`` ("the laptop is missing"), not a scene noun."""
    low = c.low
    j, stop = i, max(i - WINDOW, 0)
    while j > stop and (low[j - 1] in AUX or is_adverb(low[j - 1]) or low[j - 1] in POST_SKIP):
        j -= 1
    if j > 1 and low[j - 1] in RELATIVE:
        j -= 1
    np = c.np_backward(j)
    return None if np is None or c.low[np[1] - 1] in SCENE_NOUNS else np


def _person_action(c: Caption, i: int) -> tuple[str, tuple[int, int] | None]:
    """neg for "no one ...": 'a person' plus the action, or the object of a possession verb."""
    low, n = c.low, c.n
    j = c.skip(i, PERSON_SKIP)
    if j >= n or not is_word(low[j]):
        return "a person", None
    w = low[j]
    if w in POSSESS and j + 1 < n and low[j + 1] in DETS:  # "no one has a handbag"
        np = c.np_forward(j + 1, limit=3)
        if np:
            return "", np
    if is_gerund(w) and w not in PREDICATES:
        verb = w
    elif (
        third_person(w)
        and not (w in PREPS or w in AUX or w in PREDICATES or w in CONJ)
        and (w not in DETS)
    ):
        verb = gerund(w)
    else:
        return "a person", None
    out = "a person " + verb
    if j + 1 < n and low[j + 1] in DETS:
        np = c.np_forward(j + 1, limit=3)
        if np:
            out += " " + c.text[c.starts[np[0]] : c.ends[np[1] - 1]]
    return out, None


def before(c: Caption, m: Match) -> Cue | None:
    """The NP before it: "the laptop is missing", "a bicycle is nowhere to be seen"."""
    np = subject(c, m.start)
    return None if np is None else Cue(np[0], m.end, np, m.strength, m.explicit)


def person(c: Caption, m: Match) -> Cue:
    """ "no one" / "nobody": a person, with the action that follows ("a person running")."""
    low, n, after_ = c.low, c.n, m.end
    text, np = _person_action(c, after_)
    if np is not None:
        return Cue(m.start, np[1], np, m.strength, True)
    end = after_
    if m.start > 0 and low[m.start - 1] in RELATIVE:
        # "a chair that nobody is sitting on": the whole relative clause is about the person.
        while end < n and is_word(low[end]) and low[end] not in CLAUSE_CONJ:
            if low[end] == "and" or (end > after_ and low[end] in RELATIVE):
                break
            end += 1
    elif end + 1 < n and low[end] in PREPS and low[end + 1] in OBJ_PRONOUNS:
        end += 2  # "a beach that has nobody on it": the resumptive "on it" goes too
    return Cue(m.start, end, None, m.strength, True, concept=text)


def inverted(c: Caption, m: Match) -> Cue | None:
    """The NP after the next "is": "absent from the image is a chair", "what you won't find is"."""
    low, n = c.low, c.n
    k, stop = m.end, min(n, m.end + 10)
    while k < stop and is_word(low[k]) and low[k] not in AUX:
        k += 1
    return noun_after(c, m, k + 1) if k < n and low[k] in BE else None


def place(c: Caption, m: Match) -> Cue | None:
    """ "a dog not on a beach", "not sitting at a table": the place, put back in cf."""
    verb = c.skip(m.body, AUX_ADVERBS)
    found = noun_after(c, m, m.end, link=" ".join(c.low[verb : m.end]))
    if found is None or found.np is None or c.low[found.np[1] - 1] in STATE_NOUNS:
        return None  # "not in use" names a state, not a place
    return found


def activity(c: Caption, m: Match) -> Cue:
    """A negated intransitive verb: "a bird that didn't fly away" -> "flying away"."""
    k = m.end - 1 - (c.low[m.end - 1] in PARTICLES)
    text = " ".join([gerund(c.low[k]), *c.low[k + 1 : m.end]])
    return Cue(m.start, m.end, (k, m.end), m.strength, True, concept=text, affirm=m.body - 1)


def exclusion(c: Caption, m: Match) -> Cue | None:
    """ "excluding the sink and the stove", "other than at sunset": each listed NP."""
    low, n, at, link = c.low, c.n, m.end, "with"
    if at + 1 < n and locative(low, at):
        link, at = low[at], at + 1
    first = noun_after(c, m, at)
    if first is None:
        return None
    also, j = [], first.end
    stop = min(n, j + WINDOW)
    while j + 1 < stop and low[j] in ("and", "or", ",") and is_word(low[j + 1]):
        k = c.skip(j + 1, DETS)
        if k >= n or low[k] in AUX or low[k] in PREPS or low[k] in PRONOUNS:
            break
        np = c.np_forward(j + 1)
        if np is None:
            break
        also.append(np)
        j = np[1]
    if not also and link == "with":
        return first
    return noun_after(c, m, at, link=link, also=tuple(also))


def predicative(c: Caption, i: int) -> bool:
    """'the room is empty', 'sits vacant', ', unoccupied': not 'an empty plate'."""
    low, n = c.low, c.n
    if i > 0 and low[i - 1] in DETS:  # "an empty, stylish kitchen"
        return False
    nxt = low[i + 1] if i + 1 < n else "."
    return not is_word(nxt) or nxt in PREPS or nxt in CONJ or nxt == "and"


def absent_person(c: Caption, m: Match) -> Cue:
    """ "the room is empty", "a deserted street": nobody is there (only the adjective goes)."""
    attributive = not predicative(c, m.start)
    return Cue(m.start, m.end, None, m.strength, m.explicit, "a person", attributive=attributive)


def compound(c: Caption, m: Match) -> Cue:
    """ "a car-free scene", "a person-less scene": the stem of the word is the concept."""
    tok = c.tok(m.start)
    stem = tok[:-5] if tok[-5:-4] == "-" else tok[:-4]
    attributive = not predicative(c, m.start)
    return Cue(
        m.start, m.end, None, m.strength, m.explicit, concept_phrase(stem), attributive=attributive
    )


def agent(c: Caption, m: Match) -> Cue:
    """ "unaccompanied by any adult"; "unaccompanied by anything" still means nobody."""
    return noun_after(c, m, m.end) or Cue(m.start, m.body, None, m.strength, False, "a person")


def quantified(c: Caption, m: Match) -> Cue | None:
    """ "none of the kids wear helmets", "none of the chairs are occupied", "not one of them"."""
    low, n = c.low, c.n
    j = m.body
    of = j < n and low[j] == "of"
    if of:
        j += 1
        end = min(n, j + WINDOW)
        while j < end and is_word(low[j]) and low[j] not in AUX and low[j] not in POSSESS:
            j += 1
    if not (j < n and low[j] in POSSESS):  # "have" is both: "none of the plates have food"
        j = c.skip(j, AUX)
    if j < n and (low[j] in POSSESS or is_gerund(low[j], 3) or low[j] == "with"):
        found = noun_after(c, m, j + 1)
        if found is None and is_gerund(low[j]):
            found = Cue(m.start, j + 1, (j, j + 1), m.strength, True)
        return found
    if of and j < n and participle(low[j]) and low[j] not in POST_OK_AFTER_NEG:
        return Cue(m.start, j + 1, (j, j + 1), m.strength, True, affirm=m.body - 1)
    if of and (j >= n or low[j] in POST_OK_AFTER_NEG or not is_word(low[j])):
        return noun_after(c, m, m.body + 1, min_end=min(j + 1, n))
    return None


def predicate(c: Caption, m: Match) -> Cue | None:
    """A negated state or action where the negation is a predicate of its own ("is not crying")."""
    low, n, t = c.low, c.n, m.body - 1
    k = c.skip(m.body, AUX_ADVERBS)
    if k >= n or not is_word(low[k]):
        return None
    bare_not = low[t] == "not"
    prev = low[t - 1] if t > 0 else ""
    contrast = t == 0 or prev in CONTRAST_BEFORE_NOT
    copular = not bare_not or prev in COPULA
    passive = c.skip(k, PASSIVE_AUX)
    if passive > k and passive < n and participle(low[passive]):
        np = subject(c, t)
        if np is None:
            return None
        text = f"{participle_gerund(low[passive])} {c.text[c.starts[np[0]] : c.ends[np[1] - 1]]}"
        return Cue(m.start, passive + 1, np, m.strength, True, concept=text, affirm=t)
    w = low[k]
    reduced = bare_not and t > 0 and is_word(prev) and (is_gerund(w, 3) or participle(w))
    if not (contrast or copular or reduced):
        if bare_not and _noun_like(prev) and object_start(c.low, k) and _np_ends_query(c, k):
            return noun_after(c, m, k)  # two bare NPs: "cats not dogs", "coffee not tea"
        return None
    if contrast and not copular and w not in PREPS:  # "fruit but not apples", ", not the oven"
        return noun_after(c, m, k)
    if w in DETS or w in PREPS or w in PRONOUNS or w in CONJ or w in AUX or w in PREDICATES:
        return None
    if is_gerund(w) or (reduced and participle(w)):
        np = c.np_forward(k)
        if np is None:
            return None
        e = np[1]
        if e < n and low[e] in PARTICLES and (e + 1 >= n or not is_word(low[e + 1])):
            np = (np[0], e + 1)  # a phrasal verb: "a cow that is not lying down"
        return Cue(m.start, np[1], np, m.strength, True, affirm=t)
    if clause_ends(c.low, k + 1, CONJ):  # a predicate adjective: "a door that is not locked"
        return Cue(m.start, k + 1, (k, k + 1), m.strength, False, affirm=t)
    return None


def clause_ends(low: list[str], j: int, conj: frozenset[str] = CLAUSE_CONJ) -> bool:
    """Nothing of the clause follows token ``j - 1`` (end, punctuation, "and" or ``conj``)."""
    return j >= len(low) or not is_word(low[j]) or low[j] == "and" or low[j] in conj


def locative(low: list[str], p: int) -> bool:
    """A preposition of place or time; "by" only as "by any/a" (not the agent of a passive)."""
    if low[p] == "by":
        return p + 1 < len(low) and low[p + 1] in ("a", "an", "any")
    return low[p] in LOCATIVE


def do_support(c: Caption, m: Match) -> bool:
    """A bare verb follows the negator: "doesn't", "won't", "never", "do not" (not "isn't")."""
    t = m.body - 1
    if c.low[t] == "not":
        return t > 0 and c.low[t - 1] in DO_MODAL
    return c.low[t] not in BE_NEG


_CLOSED = PREPS | CONJ | AUX | PREDICATES | PARTICLES


def bare_verb(low: list[str], k: int) -> bool:
    """A finite or bare verb ("eat", "sells"): no closed class, not -ing, not a participle."""
    w = low[k]
    return (
        is_word(w)
        and not is_gerund(w, 3)
        and not participle(w)
        and w not in _CLOSED
        and w not in DETS
        and w not in PRONOUNS
    )


def object_start(low: list[str], k: int) -> bool:
    """A word that can open a verb's object NP ("the", "any", "broccoli")."""
    return low[k] in DETS or (is_word(low[k]) and low[k] not in _CLOSED)


def _noun_like(w: str) -> bool:
    """A word that may end a noun phrase (no closed-class word, no adverb, no verb form)."""
    return bare_verb([w], 0) and not w.endswith("ly")


def _np_ends_query(c: Caption, k: int) -> bool:
    np = c.np_forward(k)
    return np is not None and (
        np[1] >= c.n or not is_word(c.low[np[1]]) or c.low[np[1]] in CLAUSE_CONJ
    )
