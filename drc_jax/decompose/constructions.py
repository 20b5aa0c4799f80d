"""The negation constructions of the rule decomposer, as a table.

A row: ``triggers`` ("*-free" matches by shape), ``prev`` / ``then`` (words, classes or tests;
``opt`` / ``many``), a ``when`` test, the :mod:`~drc_jax.decompose.scope` rule (None: no negation
here) and the strength. Rows are tried in order; the first cue wins. ``examples`` are (caption,
neg) pairs, "" for a blocking row; the tests run them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from drc_jax.decompose import scope as s
from drc_jax.decompose.caption import WINDOW, Caption, Cue, quoted_spans
from drc_jax.decompose.lexicon import (
    ALWAYS_PEOPLE,
    AUX,
    AUX_ADVERBS,
    BE,
    BOUNDARY_PUNCT,
    CLAUSE_CONJ,
    CONJ,
    DASHES,
    DETS,
    EXCLUSION_BLOCKERS,
    GO_VERBS,
    IDIOMS_AFTER_NO,
    INDEFINITE,
    LEXICAL_LESS,
    LITOTES_BEFORE,
    MENTION,
    NEG_AUX,
    NOT_IDIOMS,
    OUT_OF_VIEW,
    PARTICLES,
    PERCEIVE,
    PERFECT,
    PLACES,
    POSITIVE_AUX,
    POSSESS,
    POSSESSIVES,
    POST_OK_AFTER_NEG,
    POSTURE,
    PREDICATES,
    PREPS,
    QUOTES,
    SCENE_WORDS,
    SIGN_WORDS,
    WITHOUT,
    is_word,
)
from drc_jax.decompose.morphology import is_adverb, is_gerund, participle, participle_or_adverb

STRONG, MODERATE, WEAK = "strong", "moderate", "weak"
Scope = Callable[[Caption, s.Match], "Cue | None"]


class opt(NamedTuple):  # noqa: N801 (a pattern step, read like a word)
    """A step that may be absent."""

    step: object


class many(NamedTuple):  # noqa: N801
    """A step repeated zero or more times (at most WINDOW)."""

    step: object


@dataclass(frozen=True, slots=True)
class Construction:
    """One row of the table (see the module docstring)."""

    triggers: tuple[str, ...]
    scope: Scope | None
    strength: str = ""  # "": by trigger word, from WORD_STRENGTH
    explicit: bool = True
    then: tuple = ()
    prev: frozenset[str] | None = None
    when: Callable[[Caption, s.Match], bool] | None = None
    final: bool = False  # when the pattern matches, later rows are not tried
    examples: tuple[tuple[str, str], ...] = ()
    steps: Callable[[list[str], int], int] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "steps", _compile(self.then))

    def match(self, c: Caption, i: int) -> s.Match | None:
        """The construction at token ``i``, or None."""
        for t in sorted(self.triggers, key=len, reverse=True):
            phrase = t.split()
            if "*" in t and _shape(t, c.low[i]) or c.low[i : i + len(phrase)] == phrase:
                return self.fits(c, i, i + len(phrase))
        return None

    def fits(self, c: Caption, i: int, body: int) -> s.Match | None:
        """The construction whose trigger spans tokens [i, body), or None."""
        if self.prev is not None and (i == 0 or c.low[i - 1] not in self.prev):
            return None
        end = body if self.steps is None else self.steps(c.low, body)
        if end < 0:
            return None
        strength, explicit = self.strength, self.explicit
        if not strength and self.scope is not None:
            strength, explicit = WORD_STRENGTH[c.low[i]]
        m = s.Match(i, body, end, strength, explicit)
        return m if self.when is None or self.when(c, m) else None


def _shape(glob: str, w: str) -> bool:
    """ "*-free": any word ending so (at least one letter before); "un*ed": both ends."""
    head, _, tail = glob.partition("*")
    return len(w) > len(head) + len(tail) and w.startswith(head) and w.endswith(tail)


def _compile(then: tuple) -> Callable[[list[str], int], int] | None:
    """``then`` as one function: where the steps end when matched from token j (-1: no match)."""
    if not then:
        return None
    rest = _done
    for step in reversed(then):
        rest = _link(step, rest)
    return rest


def _done(low: list[str], j: int) -> int:
    return j


def _link(step, rest):
    """One step of a pattern, followed by ``rest`` (backtracking over an ``opt``)."""
    if isinstance(step, (opt, many)):
        test = _test(step.step)
        if isinstance(step, many):

            def repeated(low, j):
                stop = min(len(low), j + WINDOW)
                while j < stop and test(low, j):
                    j += 1
                return rest(low, j)

            return repeated

        def optional(low, j):
            if j < len(low) and test(low, j):
                end = rest(low, j + 1)
                if end >= 0:
                    return end
            return rest(low, j)

        return optional
    if isinstance(step, (str, frozenset)):
        ws = frozenset([step]) if isinstance(step, str) else step
        return lambda low, j: rest(low, j + 1) if j < len(low) and low[j] in ws else -1
    return lambda low, j: rest(low, j + 1) if j < len(low) and step(low, j) else -1


def _test(step) -> Callable[[list[str], int], bool]:
    if isinstance(step, (str, frozenset)):
        ws = frozenset([step]) if isinstance(step, str) else step
        return lambda low, j: low[j] in ws
    return step


def words_in(*classes: frozenset[str]) -> Callable[[list[str], int], bool]:
    union = frozenset().union(*classes)
    return lambda low, j: low[j] in union


def next_in(*classes: frozenset[str] | str) -> Callable[[Caption, s.Match], bool]:
    """The token after the match is one of these words."""
    union = frozenset().union(*(frozenset([w]) if isinstance(w, str) else w for w in classes))
    return lambda c, m: m.end < c.n and c.low[m.end] in union


def _verb_s(low, j):
    return low[j][-1:] == "s" and low[j] not in AUX  # "nothing suggests", not "nothing is"


def _placed(low, j):
    return low[j] in POSTURE or not is_gerund(low[j], 3)  # "not sitting at", "not displayed on"


def _after_there(c: Caption, m: s.Match) -> bool:
    """ "there isn't a cup", "there surprisingly isn't", "there is not any"."""
    low, b = c.low, m.start - 1
    while b >= max(m.start - WINDOW, 0) and is_adverb(low[b]):
        b -= 1
    return b >= 0 and (low[b] == "there" or (b > 0 and low[b - 1] == "there" and low[b] in AUX))


def _both(first, second, third=None):
    if third is None:
        return lambda c, m: first(c, m) and second(c, m)
    return lambda c, m: first(c, m) and second(c, m) and third(c, m)


def _phrase_ends(c, m):
    return m.end >= c.n or not is_word(c.low[m.end])


def _clause_ends(c, m):
    return s.clause_ends(c.low, m.end)


def _object_follows(c, m):
    return m.end < c.n and s.object_start(c.low, m.end)


def _word_follows(c, m):
    return m.end < c.n and is_word(c.low[m.end])


def _possessed(c, m):
    """ "doesn't have a cup", "doesn't feature cars" (not "doesn't have to")."""
    if m.end >= c.n:
        return False
    w = c.low[m.end]
    return w in DETS or (is_word(w) and not (w in PREPS or w in CONJ or w in PREDICATES))


def _where_subject(c, m):
    """ "a beach where tourists never go": the subject of a place clause is what is absent."""
    np = c.np_backward(m.body - 1)
    return np is not None and np[0] > 0 and c.low[np[0] - 1] == "where"


def _perfect(c, m):
    t = m.body - 1
    return c.low[t] in PERFECT or (t > 0 and c.low[t - 1] in PERFECT)


def _participle(low, j):
    return participle(low[j])


def _predicate_follows(c, m):
    k = c.skip(m.body, AUX_ADVERBS)
    return k >= c.n or c.low[k] in POST_OK_AFTER_NEG or not is_word(c.low[k])


def _missing_what(c, m):
    if m.end >= c.n:
        return False
    w = c.low[m.end]
    return is_word(w) and w not in PREPS and w not in CONJ and not participle_or_adverb(w)


def _empty_place(c, m):
    w = c.low[m.start]
    return (
        s.predicative(c, m.start)
        or w in ALWAYS_PEOPLE
        or (w in ("empty", "vacant") and m.end < c.n and c.low[m.end] in PLACES)
    )


def _no_blocker_before(c, m):
    return not any(c.low[k] in EXCLUSION_BLOCKERS for k in range(max(m.start - 3, 0), m.start))


def _less_word(c, m):
    w = c.low[m.start]
    return (
        w not in LEXICAL_LESS and len(w) > 6 and (w.endswith("-less") or s.predicative(c, m.start))
    )


def _sign_label(low, j):
    return is_gerund(low[j], 3) and j + 1 < len(low) and low[j + 1] in SIGN_WORDS


#: absent / missing / nowhere: one reading, three strengths.
WORD_STRENGTH = {"absent": (WEAK, False), "missing": (MODERATE, True), "nowhere": (STRONG, True)}
ABSENCE = ("absent", "missing", "nowhere")
NEG = (*NEG_AUX, "no longer")  # negated auxiliaries; "no longer" reads as "never"
NT = tuple(w for w in NEG if w != "not")
_ADV = many(AUX_ADVERBS)

C = Construction
# fmt: off
TABLE: tuple[Construction, ...] = (
    # --- negated auxiliaries: "not", "isn't", "doesn't", "never", "no longer"
    C(("not one",), s.quantified, STRONG, then=("of",),
      examples=(("not one of the chairs is free", "a chair"),)),
    C(("not",), s.after, STRONG, when=next_in(INDEFINITE),
      examples=(("Not a single cloud in the sky above the lake.", "a cloud"),)),
    C(("not even",), s.after, STRONG, when=next_in(INDEFINITE),
      examples=(("not even one car on the road", "a car"),)),
    C(("not",), None, then=(NOT_IDIOMS,),
      examples=(("not only a dog but a cat", ""),)),
    C(NEG, s.after, MODERATE, when=_both(_after_there, next_in(DETS, "single")),
      examples=(("A house where there isn't a garage.", "a garage"),)),
    C(NEG, s.inverted, MODERATE, then=(_ADV, PERCEIVE),
      examples=(("what you won't find here is a bowl", "a bowl"),)),
    C(NEG, s.after, MODERATE, then=(_ADV, POSSESS), when=_possessed, final=True,
      examples=(("A living room that doesn't have a television.", "a television"),)),
    C(NEG, s.before, MODERATE, then=(_ADV, GO_VERBS),
      when=_both(s.do_support, _phrase_ends, _where_subject),
      examples=(("a shop where customers never come", "a customer"),)),
    C(NEG, s.after, MODERATE, then=(_ADV, s.bare_verb), when=_both(s.do_support, _object_follows),
      examples=(("a cat that won't eat fish", "a fish"),)),
    C(NEG, s.activity, MODERATE, then=(_ADV, s.bare_verb, opt(PARTICLES)),
      when=_both(s.do_support, _clause_ends),
      examples=(("a bird that didn't fly away", "flying away"),)),
    C(("not",), s.place, STRONG, then=(_ADV, opt(_placed), s.locative), when=_word_follows,
      examples=(("a dog not on a beach", "a beach"),)),
    C(NT, s.place, MODERATE, then=(_ADV, opt(_placed), s.locative), when=_word_follows,
      examples=(("The room isn't lit by any lamp.", "a lamp"),)),
    C(NEG, s.after, MODERATE, then=(_ADV, _participle), when=_both(_perfect, _object_follows),
      examples=(("a girl who has never ridden a horse", "a horse"),)),
    C(NEG, s.before, MODERATE, when=_predicate_follows,
      examples=(("A boat on a lake; a fisherman cannot be seen.", "a fisherman"),)),
    C(("not",), s.predicate, STRONG,
      examples=(("fruit but not apples", "an apple"), ("a baby that is not crying", "crying"))),
    C(NT, s.predicate, MODERATE,
      examples=(("a player who isn't running", "running"),)),
    # --- "no" and its kin
    C(("no",), None, then=(IDIOMS_AFTER_NO,),
      examples=(("There is no doubt this is a big cat.", ""),)),
    C(("no",), None, prev=frozenset({"a", "an", "the"}),
      examples=(("a no parking sign", ""),)),
    C(("no",), None, then=(_sign_label,),
      examples=(("two no smoking signs on a wall", ""),)),
    C(("no one", "nobody", "no-one"), s.person, STRONG,
      examples=(("No one sings at the concert.", "a person singing"),
                ("a bench that nobody sits on", "a person"))),
    C(("zero",), None, then=(words_in(PREPS, CONJ, AUX),),
      examples=(("zero at the side of a road", ""),)),
    C(("no", *WITHOUT, "w / o", "neither", "zero"), s.after, STRONG,
      examples=(("a car without wheels", "a wheel"), ("cat w/o collar", "a collar"),
                ("Neither a cat nor a dog is in the yard.", "a cat or a dog"),
                ("a desert with zero plants", "a plant"))),
    C(("none",), s.quantified, STRONG,
      examples=(("None of the kids are wearing helmets.", "a helmet"),)),
    C(("hardly", "barely", "scarcely"), s.after, WEAK, False,
      when=next_in("any", "a", "anyone", "anybody", "anything"),
      examples=(("a pond with barely any ducks", "a duck"),)),
    C(("devoid", "free", "void", "bereft"), s.after, STRONG, then=(frozenset({"of", "from"}),),
      examples=(("A field devoid of any horses.", "a horse"),)),
    C(("*-free",), s.compound, STRONG,
      examples=(("a car-free street", "a car"), ("a sugar-free drink", "sugar"))),
    C(("empty", "vacant", "absent"), s.after, WEAK, then=("of",),
      examples=(("The stadium is absent of fans.", "a fan"),
                ("a room empty of people", "a person"))),
    C(("empty", "vacant"), None, then=("of",)),
    C(("lacks", "lack", "lacking", "lacked"), s.after, MODERATE, then=(opt("of"),),
      examples=(("A kitchen with a stove, but it lacks a chair.", "a chair"),)),
    C(("absence",), s.after, MODERATE, then=(frozenset({"of", ":", "is", *DASHES}),),
      examples=(("a notable absence of cars", "a car"),)),
    C(("nothing",), s.after, MODERATE, then=(_verb_s, opt(frozenset({"at", "to", "of"}))),
      examples=(("nothing suggests the presence of a cup", "a cup"),)),
    C(("instead", "rather"), s.after, MODERATE, False, then=(frozenset({"of", "than"}),),
      examples=(("a dog instead of a cat", "a cat"),)),
    # --- absence and distance ("absent" weak, "missing" moderate, "nowhere" strong)
    C(ABSENCE, None, prev=DETS,
      examples=(("A shelf with a missing book.", ""),)),
    C(ABSENCE, s.after, then=(frozenset({":", *DASHES}),),
      examples=(("one thing is absent: a handbag", "a handbag"),)),
    C(ABSENCE, s.inverted, then=(PREPS,),
      examples=(("Absent from the image is a bench, but a tall tower stands.", "a bench"),)),
    C(ABSENCE, s.after, then=(BE,),
      examples=(("noticeably absent is a bottle", "a bottle"),)),
    C(("absent",), s.after, WEAK, False, when=next_in("a", "an", "any"),
      examples=(("Absent a chair, the room looks bare.", "a chair"),)),
    C(("missing",), s.after, MODERATE, False, when=next_in(POSSESSIVES), final=True,
      examples=(("a scooter missing its handlebar", "a handlebar"),)),
    C(("missing",), s.after, MODERATE, when=_missing_what, final=True,
      examples=(("a plate missing food", "food"),)),
    C(ABSENCE, s.before,
      examples=(("A desk with papers, but the laptop is missing.", "a laptop"),)),
    C(("far", "away"), None, prev=LITOTES_BEFORE,
      examples=(("a hotel not far from the station", ""),)),
    C(("far", "away"), s.after, WEAK, False, then=(opt("away"), "from"),
      when=next_in("any", "a", "an", "the", "all"),
      examples=(("a bench far away from the crowd", "a crowd"),)),
    C(("left out of",), s.inverted, MODERATE, False,
      examples=(("left out of the frame is a car", "a car"),)),
    C(("left out of",), s.before, MODERATE, False,
      examples=(("the car is left out of the picture", "a car"),)),
    C(("out",), None, prev=frozenset({"left"})),
    C(("out",), s.before, WEAK, False, then=("of", opt(frozenset({"the", "this"})), OUT_OF_VIEW),
      examples=(("the dog is out of sight", "a dog"),)),
    # --- exclusion
    C(("except", "excluding", "excepting", "barring"), s.exclusion, MODERATE, False,
      then=(opt("for"),), when=_no_blocker_before,
      examples=(("A fridge full of food, except for milk.", "milk"),
                ("a kitchen excluding the sink and the stove", "a stove"))),
    C(("other than", "apart from", "aside from"), s.exclusion, MODERATE, False,
      examples=(("anything other than a dog", "a dog"),
                ("a kitchen apart from the fridge", "a fridge"))),
    C(("but",), s.exclusion, MODERATE, False, prev=frozenset({"anything", "everything"}),
      examples=(("anything but a cat", "a cat"),
                ("everything but the kitchen sink", "a kitchen sink"))),
    # --- implicit absence: nobody is there
    C(("un*ed",), s.agent, WEAK, False, then=("by",),
      examples=(("A girl walks her dog, unaccompanied by any adult.", "an adult"),)),
    C(("empty", "vacant", *ALWAYS_PEOPLE, "unaccompanied", "unattended"), s.absent_person,
      WEAK, False, when=_empty_place,
      examples=(("The hotel room is unoccupied.", "a person"),
                ("A deserted street with traffic lights at night.", "a person"))),
    C(("*less",), s.compound, WEAK, False, when=_less_word,
      examples=(("The living room has a couch, but it is notably chairless.", "a chair"),
                ("Two zebras stare into the lens in a person-less scene.", "a person"))),
)
# fmt: on


def _gate(row: Construction):
    """A quick test of the token after the trigger (the first step, when it is not optional)."""
    first = row.then[0] if row.then else None
    if isinstance(first, str):
        return frozenset([first])
    return None if isinstance(first, (opt, many)) else first


# trigger word (or first two words) -> (table index, the trigger's other words, row, gate).
_BY_WORD: dict[str, list[tuple[int, list[str], Construction, frozenset[str] | None]]] = {}
_BY_PAIR: dict[
    tuple[str, str], list[tuple[int, list[str], Construction, frozenset[str] | None]]
] = {}
_BY_SHAPE: list[tuple[int, str, Construction]] = []
for _k, _row in enumerate(TABLE):
    for _t in sorted(_row.triggers, key=len, reverse=True):
        if "*" in _t:
            _BY_SHAPE.append((_k, _t, _row))
        else:
            _first, *_rest = _t.split()
            _key = (_first, _rest[0]) if _rest else _first
            _BY_PAIR.setdefault(_key, []).append((_k, _rest, _row, _gate(_row)))
for _key, _rows in list(_BY_PAIR.items()):
    if isinstance(_key, str):
        _BY_WORD[_key] = _BY_PAIR.pop(_key)
for (_first, _), _rows in _BY_PAIR.items():
    _rows[:0] = _BY_WORD.setdefault(_first, [])
    _rows.sort(key=lambda e: e[0])
_TRIGGERS = frozenset(_BY_WORD)
_PAIRED = frozenset(first for first, _ in _BY_PAIR)
# The "*" triggers as one quick test on the text.
_SHAPES = re.compile(r"-free\b|\w-?less\b|\b[Uu]n\w+ed\b")
_SHAPE_ENDS = tuple(g.rpartition("*")[2] for _, g, _ in _BY_SHAPE)


def _entries(w: str, nxt: str = "", shaped: bool = True):
    words = (w in _PAIRED and _BY_PAIR.get((w, nxt))) or _BY_WORD.get(w, [])
    if not shaped or not w.endswith(_SHAPE_ENDS):
        return words
    shaped = [(k, [], row, _gate(row)) for k, glob, row in _BY_SHAPE if _shape(glob, w)]
    return sorted(words + shaped, key=lambda e: e[0]) if shaped else words


def read(c: Caption, i: int, shaped: bool = True) -> Cue | None:
    """The cue of the first row that finds one at token ``i`` (None: no negation there)."""
    low = c.low
    nxt = low[i + 1] if i + 1 < c.n else ""
    w = low[i]
    entries = (w in _PAIRED and _BY_PAIR.get((w, nxt))) or _BY_WORD.get(w, [])
    if shaped and w.endswith(_SHAPE_ENDS):
        entries = _entries(w, nxt)
    for _, rest, row, gate in entries:
        if rest:
            body = i + 1 + len(rest)
            if low[i + 1 : body] != rest:
                continue
        else:
            body = i + 1
        if gate is not None and not (
            body < c.n and (low[body] in gate if type(gate) is frozenset else gate(low, body))
        ):
            continue
        if row.prev is not None and (i == 0 or low[i - 1] not in row.prev):
            continue
        m = row.fits(c, i, body)
        if m is None:
            continue
        found = None if row.scope is None else row.scope(c, m)
        if found is not None or row.final or row.scope is None:
            return found
    return None


def find_cues(c: Caption) -> list[tuple[tuple[int, int], Cue]]:
    """Every cue of the caption with its rank (explicit, scene-level), in caption order."""
    low = c.low
    quoted = set()
    if not QUOTES.isdisjoint(c.text):
        for a, b in quoted_spans(c):
            quoted.update(range(a + 1, b))
    present = _TRIGGERS.intersection(low)
    shaped = _SHAPES.search(c.text) is not None
    if shaped:
        hits = [
            i
            for i, w in enumerate(low)
            if w in present or (w.endswith(_SHAPE_ENDS) and _entries(w))
        ]
    elif present:
        hits = [i for i, w in enumerate(low) if w in present]
    else:
        return []
    out = []
    for i in hits:
        if i in quoted or (i > 0 and low[i - 1] in MENTION):  # "a sign that says no dogs"
            continue
        found = read(c, i, shaped)
        if found is not None:
            out.append(((int(found.explicit), int(_scene_level(c, found))), found))
    return out


def best_cue(cues: list[tuple[tuple[int, int], Cue]]) -> Cue | None:
    """Explicit beats implicit, a cue about the scene beats a local one, then the first wins."""
    best, best_rank = None, (-1, -1)
    for rank, found in cues:
        if rank > best_rank:
            best, best_rank = found, rank
    return best


def _scene_level(c: Caption, cue: Cue) -> bool:
    """Whether the negation is about the scene ("no cup in sight", "there is no cup")."""
    low = c.low
    start = max(cue.start - 3, 0)
    for k in range(start, min(c.n, max(cue.end, start) + 2 * WINDOW)):
        if low[k] in SCENE_WORDS:
            return True
        if k >= cue.end and low[k] in _CLAUSE_STOP:
            return False
    return False


_CLAUSE_STOP = BOUNDARY_PUNCT | CLAUSE_CONJ | {"and"}


def affirmed(c: Caption, i: int) -> str:
    """The caption with its negator affirmed ("isn't" -> "is"): a negated predicate's cf."""
    left, right = c.text[: c.starts[i]].rstrip(), c.text[c.ends[i] :].lstrip()
    return " ".join(f"{left} {POSITIVE_AUX.get(c.low[i], '')} {right}".split())
