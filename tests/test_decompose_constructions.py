"""The construction table: every row reads the examples it exists for; the word lists are sound."""

from __future__ import annotations

import pytest

from drc_jax.decompose import lexicon as lx
from drc_jax.decompose.caption import Caption, Cue
from drc_jax.decompose.constructions import (
    _CLAUSE_STOP,
    ABSENCE,
    TABLE,
    WORD_STRENGTH,
    read,
)
from drc_jax.decompose.morphology import SINGULAR, pairs
from drc_jax.decompose.rules import RuleDecomposer

RULES = RuleDecomposer()
EXAMPLES = [
    pytest.param(k, caption, neg, id=f"{k}:{caption[:40]}")
    for k, row in enumerate(TABLE)
    for caption, neg in row.examples
]


def test_every_row_that_reads_a_concept_names_the_examples_it_exists_for():
    assert all(row.examples for row in TABLE if row.scope is not None)


@pytest.mark.parametrize("k, caption, neg", EXAMPLES)
def test_each_row_reads_its_examples(k, caption, neg):
    row, c = TABLE[k], Caption(caption)
    found = [(i, m) for i in range(c.n) if (m := row.match(c, i)) is not None]
    assert found, f"row {k} ({row.triggers}) does not match {caption!r}"
    i, m = found[0]
    cue = read(c, i)
    d = RULES.decompose_one(caption)
    if not neg:  # a row that says the words are no negation here
        assert cue is None, (caption, cue)
        return
    assert cue is not None and cue.strength == m.strength, (caption, cue)
    assert neg in d.negs and d.strength == m.strength, (caption, d)


def test_the_phrasings_the_issue_names_are_one_row_each():
    free = [r for r in TABLE if "*-free" in r.triggers]
    but = [r for r in TABLE if r.triggers == ("but",)]
    assert len(free) == len(but) == 1
    for query, aff, neg in [
        ("a car-free street", "a street", "a car"),
        ("a sugar-free drink", "a drink", "sugar"),
        ("anything but a cat", "anything", "a cat"),
    ]:
        d = RULES.decompose_one(query)
        assert (d.aff, d.negs) == (aff, (neg,)), d


def test_a_cue_is_built_once_and_cannot_be_changed():
    cue = read(Caption("a dog without a leash"), 2)
    assert isinstance(cue, Cue)
    with pytest.raises(AttributeError):
        cue.start = 0  # type: ignore[misc]


def test_a_word_list_names_each_word_once():
    with pytest.raises(ValueError, match="word listed twice"):
        lx.words("no not no")
    with pytest.raises(ValueError, match="listed twice"):
        pairs("men:man men:male")
    assert SINGULAR["people"] == "person"


@pytest.mark.parametrize(
    "a, b",
    [
        # a scene word inside the clause decides before the clause ends (_scene_level)
        (lx.SCENE_WORDS, _CLAUSE_STOP),
        # "not a", "not any" are read before the idioms "not only", "not just"
        (lx.INDEFINITE, lx.NOT_IDIOMS),
        # an idiom after "no" ("no doubt") is never the start of a noun phrase
        (lx.IDIOMS_AFTER_NO, lx.DETS | lx.NP_LEAD),
        # a -less adjective that means "without" is never in the list of those that do not
        (lx.LEXICAL_LESS, lx.ALWAYS_PEOPLE),
        (lx.WITHOUT, lx.PREPS - {"without"}),
    ],
)
def test_word_classes_that_must_not_overlap_do_not(a, b):
    assert not a & b, sorted(a & b)


def test_absence_words_each_carry_one_strength():
    assert set(WORD_STRENGTH) == set(ABSENCE)
