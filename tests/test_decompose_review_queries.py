"""Everyday search-box queries written by a reviewer *before* reading the rules
(tests/data/search_queries_review.jsonl), and the constructions added to cover what they found:
each is checked here on phrasings that appear in neither query file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from drc_jax.decompose import NEUTRAL_AFF, Decomposition, RuleDecomposer
from drc_jax.decompose.lexicon import DANGLING_END, DANGLING_START
from drc_jax.decompose.search_eval import is_right, leaks, load_search_queries
from drc_jax.texts import query_texts, with_prefix

REVIEW = Path(__file__).parent / "data" / "search_queries_review.jsonl"
RULES = RuleDecomposer()


@pytest.fixture(scope="module")
def review():
    queries = load_search_queries(REVIEW)
    return queries, RULES.decompose([q.query for q in queries])


def test_the_review_set_is_large_and_varied(review):
    queries, _ = review
    kinds = Counter(q.construction for q in queries)
    assert len(queries) >= 120
    assert kinds["plain"] >= 20 and len(kinds) >= 25


def test_every_review_query_names_what_it_excludes_and_aff_keeps_none_of_it(review):
    queries, decs = review
    wrong = [(q.query, d.negs) for q, d in zip(queries, decs, strict=True) if not is_right(q, d)]
    leaked = [(q.query, d.aff) for q, d in zip(queries, decs, strict=True) if leaks(q, d)]
    assert wrong == [] and leaked == []


def test_review_affs_are_never_empty_nor_left_dangling(review):
    queries, decs = review
    for q, d in zip(queries, decs, strict=True):
        words = d.aff.lower().split()
        assert words, q.query
        assert words[-1].strip(",;:") not in DANGLING_END, (q.query, d.aff)
        assert words[0].strip(",;:") not in DANGLING_START, (q.query, d.aff)
        if q.construction == "nothing_left":
            assert d.aff == NEUTRAL_AFF, (q.query, d.aff)


@pytest.mark.parametrize(
    "query, aff, negs, strength",
    [
        # a negated modal or do-support verb: its object is what is excluded
        ("a cat that won't eat fish", "a cat", ("a fish",), "moderate"),
        ("a boy who can't ride a bike", "a boy", ("a bike",), "moderate"),
        ("a man who never drinks coffee", "a man", ("coffee",), "moderate"),
        ("a bar that no longer serves beer", "a bar", ("beer",), "moderate"),
        ("a van that hasn't got wheels", "a van", ("a wheel",), "moderate"),  # "have got"
        ("a girl who has never ridden a horse", "a girl", ("a horse",), "moderate"),  # perfect
        # a place where something never goes: the subject is absent
        ("a shop where customers never come", "a shop", ("a customer",), "moderate"),
        # a negated intransitive verb: its activity, with its particle
        ("a bird that didn't fly away", "a bird", ("flying away",), "moderate"),
        ("a horse that can't run", "a horse", ("running",), "moderate"),
        # "w/o" abbreviates "without"
        ("cat w/o collar", "cat", ("a collar",), "strong"),
        # contracted copula before a negated adjective
        ("a jacket that's not black", "a jacket", ("black",), "strong"),
        # a part missing from its whole
        ("a scooter missing its handlebar", "a scooter", ("a handlebar",), "moderate"),
        ("a fence with its paint missing", "a fence", ("a paint",), "moderate"),
        # a passive participle spelled like its base verb
        ("a bowl of rice that is not being stirred", "a bowl of rice", None, "strong"),
        ("a tent not being put up", "a tent", ("putting tent",), "strong"),
        # a phrasal verb's particle goes with the negated verb, not into aff
        ("a dog that is not sitting down", "a dog", ("sitting down",), "strong"),
        # quantifiers of absence and near-absence
        ("a desert with zero plants", "a desert", ("a plant",), "strong"),
        ("a pond with barely any ducks", "a pond", ("a duck",), "weak"),
        # a relative clause whose subject is "no one" leaves aff whole
        ("a bench that no one is sitting on", "a bench", ("a person sitting",), "strong"),
        # ... and so does a resumptive "in it" after the absent person
        ("a boat that has no one in it", "a boat", ("a person",), "strong"),
        # a negated time as well as a negated place
        ("not during the holidays", NEUTRAL_AFF, ("a holiday",), "strong"),
        # a mass noun takes no article
        ("toast without butter", "toast", ("butter",), "strong"),
        # "in sight" is no setting; the place after it is
        ("no boats in sight over the harbour", "the harbour", ("a boat",), "strong"),
        # two bare noun phrases contrasted by "not"
        ("bicycles not motorcycles", "bicycles", ("a motorcycle",), "strong"),
        # the existential "there's" is glue, never left at the end of aff
        ("two girls and there's no dog", "two girls", ("a dog",), "strong"),
    ],
)
def test_added_constructions_split_fresh_phrasings(query, aff, negs, strength):
    d = RULES.decompose_one(query)
    assert d.negated and d.aff == aff and d.strength == strength
    if negs is not None:
        assert d.negs == negs
    else:
        assert d.negs == ("stirring rice",)


@pytest.mark.parametrize(
    "query",
    [
        "a hotel not far from the station",  # litotes: near the station
        "a banner that reads no entry",  # a verb of saying quotes the sign
        "a horse called Nobody",  # a verb of naming
        "a cup of non-dairy milk",
    ],
)
def test_mentions_and_litotes_are_not_negations(query):
    assert RULES.decompose_one(query) == Decomposition.plain(query)


def test_the_neutral_aff_is_prefixed_without_a_photo_of_a_photo():
    d = RULES.decompose_one("no dogs")
    assert d.aff == NEUTRAL_AFF
    texts, _ = query_texts([d])
    assert texts[0][0] == "A photo"  # aff
    assert texts[0][1] == "A photo of a dog"  # neg
    assert not any(t.lower().startswith("a photo of a photo") for t in texts[0])
    assert with_prefix("a photo with a dog") == "A photo with a dog"
    # only the neutral aff is special: a photo booth is still a thing in the photo
    assert with_prefix("a photo booth at a party") == "A photo of a photo booth at a party"
    assert with_prefix("a dog") == "A photo of a dog"
