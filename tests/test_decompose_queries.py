"""Search-box queries: the constructions people type, several excluded concepts, the ``-term``
syntax and user overrides, and a decomposer that stays linear in the caption's length."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from drc_jax.decompose import (
    NEUTRAL_AFF,
    Decomposer,
    Decomposition,
    DecompositionError,
    RuleDecomposer,
    SGLangDecomposer,
    apply_overrides,
    split_exclusions,
)
from drc_jax.decompose.lexicon import DANGLING_END, DANGLING_START
from drc_jax.decompose.search_eval import (
    is_right,
    leaks,
    load_search_queries,
    score_search_queries,
)
from drc_jax.decompose.syntax import decompose_queries

QUERIES = Path(__file__).parent / "data" / "search_queries.jsonl"
CONSTRUCTIONS = {
    "predicate": "negated state or action after a relative clause or 'but'",
    "contrast": "X but not Y / X, not Y",
    "exclusion": "excluding / except / other than / apart from / minus",
    "minus_term": "-term syntax",
    "nothing_left": "nothing affirmative left",
    "absence": "absence and distance predicates",
    "quantifier": "none of the / not one of",
    "passive": "passive negated activity",
    "multiple": "several excluded concepts",
    "classic": "NegBench-style cues",
}
RULES = RuleDecomposer()


def one(q: str) -> Decomposition:
    return RULES.decompose_one(q)


@pytest.fixture(scope="module")
def queries():
    return load_search_queries(QUERIES)


def test_the_query_set_covers_every_construction_and_plain_lookalikes(queries):
    kinds = Counter(q.construction for q in queries)
    assert set(kinds) == set(CONSTRUCTIONS) | {"plain"}
    assert sum(1 for q in queries if q.negs) >= 80
    assert kinds["plain"] >= 20
    for q in queries:
        if q.construction == "plain":  # words that merely contain "no", "not" or "non"
            assert not q.negs and any(s in q.query.lower() for s in ("no", "not", "non"))


@pytest.mark.parametrize("construction", sorted(CONSTRUCTIONS))
def test_every_construction_names_its_excluded_concepts_without_leaking_them(queries, construction):
    rows = [q for q in queries if q.construction == construction]
    decs = RULES.decompose([q.query for q in rows])
    wrong = [
        (q.query, d.negs, d.aff) for q, d in zip(rows, decs, strict=True) if not is_right(q, d)
    ]
    leaked = [(q.query, d.aff) for q, d in zip(rows, decs, strict=True) if leaks(q, d)]
    assert not wrong, f"{CONSTRUCTIONS[construction]}: {wrong}"
    assert not leaked, f"{CONSTRUCTIONS[construction]}: aff names the excluded concept {leaked}"


def test_plain_queries_that_contain_no_not_or_non_as_letters_are_not_negated(queries):
    plain = [q for q in queries if q.construction == "plain"]
    decs = RULES.decompose([q.query for q in plain])
    assert [q.query for q, d in zip(plain, decs, strict=True) if d.negated] == []
    assert all(d == Decomposition.plain(q.query) for q, d in zip(plain, decs, strict=True))


def test_the_score_counts_right_answers_leaks_and_wrong_constructions(queries):
    decs = RULES.decompose([q.query for q in queries])
    score = score_search_queries(queries, decs)
    assert (score.total, score.correct, score.leaks, score.wrong) == (len(queries),) * 2 + (0, {})
    # Plain CLIP for every query: every negated row is wrong, no plain row is.
    plain = score_search_queries(queries, [Decomposition.plain(q.query) for q in queries])
    assert plain.correct == sum(1 for q in queries if not q.negs)
    assert set(plain.wrong) == set(CONSTRUCTIONS)
    assert plain.leaks >= sum(1 for q in queries if q.negs) // 2  # the query names what it excludes


def test_a_bad_query_row_is_reported_with_file_and_line(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "a", "negs": []}\n{"query": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"q\.jsonl:2: .*'negs'"):
        load_search_queries(bad)


def test_aff_keeps_no_dangling_connective_and_is_never_empty(queries):
    for q in queries:
        d = one(q.query)
        words = d.aff.lower().split()
        assert words, q.query
        assert words[-1].strip(",;:") not in DANGLING_END, (q.query, d.aff)
        assert words[0].strip(",;:") not in DANGLING_START, (q.query, d.aff)


@pytest.mark.parametrize("query", ["not at night", "-dogs", "no people", "without any cars"])
def test_a_query_with_nothing_affirmative_left_gets_a_neutral_aff(query):
    d = one(query)
    assert d.negated and d.aff == NEUTRAL_AFF == "a photo"


@pytest.mark.parametrize(
    "query, aff, neg, cf",
    [
        ("a baby that is not crying", "a baby", "crying", "a baby that is crying"),
        ("a player who isn't running", "a player", "running", "a player who is running"),
        ("a chef cooking but not tasting", "a chef cooking", "tasting", None),
        ("fruit but not apples", "fruit", "an apple", "fruit with an apple"),
        ("a bike not locked to a post", "a bike", "locked", "a bike locked to a post"),
        ("anything but cats", "anything", "a cat", "anything with a cat"),
        ("a beach other than at sunset", "a beach", "sunset", "a beach at sunset"),
        ("none of the chairs are occupied", "the chairs", "occupied", None),
        ("a piano that is not being played", "a piano", "playing piano", None),
        ("A cat sits on a sofa that is not red.", "A cat sits on a sofa.", "red", None),
    ],
)
def test_negated_predicates_keep_their_subject_and_affirm_it_in_cf(query, aff, neg, cf):
    d = one(query)
    assert (d.aff, d.neg) == (aff, neg)
    if cf is not None:
        assert d.cf == cf


def test_an_activity_verb_before_a_place_is_what_is_negated_but_posture_is_not():
    assert one("a dog that is not barking at the mailman").neg == "barking"
    assert one("a man not sitting at a dining table").neg == "a dining table"
    assert one("cakes not displayed on a table").neg == "a table"


def test_several_negated_concepts_are_all_listed_and_all_leave_aff():
    d = one("a street with no cars and no people")
    assert (d.neg, d.negs, d.aff) == ("a car", ("a car", "a person"), "a street")
    assert d.cfs == ("a street with a car", "a street with a person")  # one per concept
    d = one("a living room without a tv, no plants and no rug")
    assert d.negs == ("a tv", "a plant", "a rug") and d.aff == "a living room"
    d = one("a kitchen excluding the sink and the stove")
    assert d.negs == ("a sink", "a stove") and d.aff == "a kitchen"
    # The same concept negated twice is one concept.
    assert one("No car is parked here, and there is no car in sight.").negs == ("a car",)


def test_minus_terms_are_excluded_concepts_and_hyphenated_words_are_not():
    assert split_exclusions("cat -sofa") == ("cat", ("a sofa",))
    assert split_exclusions("-snow mountain road") == ("mountain road", ("snow",))
    assert split_exclusions('forest -"mountain bike" -people') == (
        "forest",
        ("mountain bike", "a person"),
    )
    for plain in ("a man in a t-shirt", "-5 degrees outside", "a well-known bridge", "a - b"):
        assert split_exclusions(plain) == (" ".join(plain.split()), ())
    d = one("cat -sofa -blanket")
    assert (d.caption, d.aff, d.negs, d.strength) == (
        "cat -sofa -blanket",
        "cat",
        ("a sofa", "a blanket"),
        "strong",
    )
    d = one("a dog not on a beach -leash")  # a -term beside a negation in words
    assert d.negs == ("a beach", "a leash") and d.aff == "a dog"


def test_overrides_replace_add_or_turn_off_negated_concepts():
    d = one("a dog not on a beach")
    assert apply_overrides(d) == d  # nothing to apply: today's decomposition exactly
    more = apply_overrides(d, exclude=["a leash"])
    assert more.negs == ("a beach", "a leash") and more.cfs == (
        "a dog on a beach",
        "a dog with a leash",
    )
    assert apply_overrides(d, neg="a park").negs == ("a park",)
    assert apply_overrides(d, aff="").aff == NEUTRAL_AFF
    assert apply_overrides(d, strength="weak").strength == "weak"
    assert apply_overrides(d, strength="none") == Decomposition.plain(d.caption)
    assert apply_overrides(d, neg="") == Decomposition.plain(d.caption)
    plain = apply_overrides(one("two cats on a sofa"), exclude=["a dog"])
    assert (plain.negated, plain.aff, plain.neg, plain.strength) == (
        True,
        "two cats on a sofa",
        "a dog",
        "strong",
    )
    with pytest.raises(DecompositionError, match="strength must be one of"):
        apply_overrides(d, strength="extreme")


def test_clearing_every_exclusion_keeps_the_edited_affirmative_text():
    d = one("a dog not on a beach")
    assert apply_overrides(d, aff="a puppy", neg="") == Decomposition.plain("a puppy")
    assert apply_overrides(d, aff="a puppy", strength="none").caption == "a puppy"
    assert apply_overrides(d, aff="  ", neg="") == Decomposition.plain(d.caption)


class _Recorder:
    """A decomposer that records what it is asked (any backend must see no -terms)."""

    name = "recorder"

    def __init__(self):
        self.stats = {"captions": 0, "negated": 0, "fallbacks": 0, "requests": 0, "cache_hits": 0}
        self.seen: list[str] = []

    def decompose(self, captions):
        self.seen += captions
        return RULES.decompose(captions)

    def close(self):
        pass


def test_query_syntax_works_with_any_decomposer_and_keeps_the_query_as_typed():
    rec = _Recorder()
    assert isinstance(rec, Decomposer)
    out = decompose_queries(rec, ["cat -sofa", "a dog not on a beach"], exclude=["leashes"])
    assert rec.seen == ["cat", "a dog not on a beach"]
    assert [d.caption for d in out] == ["cat -sofa", "a dog not on a beach"]
    assert out[0].negs == ("a sofa", "a leash") and out[1].negs == ("a beach", "a leash")


def test_both_backends_implement_the_decomposer_protocol():
    for d in (RuleDecomposer(), SGLangDecomposer(cache_dir="")):
        assert isinstance(d, Decomposer)
        d.close()
        d.close()  # harmless twice


@pytest.mark.parametrize(
    "unit",
    [
        "no cup no cup ",  # explicit, not about the scene: every cue read (20 KB: 0.44 s before)
        "a dog without a leash ",
        "There is no cup There is no cup ",  # run-on sentences
        "a dog not on a beach and ",
        "no cars and no people and no dogs, ",
        "a room that is not empty, ",
        "fruit but not apples, cat -sofa ",
        "'no parking' no car excluding the sink and ",
    ],
)
def test_a_100_kb_caption_of_repeated_cues_costs_work_linear_in_its_length(unit):
    def calls(size: int) -> tuple[int, object]:
        """Function calls (Python and C) made decomposing ``unit`` repeated to ``size`` chars."""
        count = 0

        def profile(frame, event, arg):
            nonlocal count
            count += event in ("call", "c_call")

        sys.setprofile(profile)
        try:
            d = RuleDecomposer().decompose_one((unit * (size // len(unit) + 1))[:size])
        finally:
            sys.setprofile(None)
        return count, d

    small, _ = calls(10_000)
    large, d = calls(100_000)
    assert large < 15 * small  # linear gives 10x; quadratic work 100x
    assert d.negated and 1 <= len(d.negs) <= 8


def test_cli_reads_queries_from_arguments_with_minus_terms_and_exclude(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "drc_jax.decompose", "--exclude", "blanket", "cat -sofa"]
        + ["--", "-snow mountain road"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    objs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [(o["caption"], o["aff"], o["negs"]) for o in objs] == [
        ("cat -sofa", "cat", ["a sofa", "a blanket"]),
        ("-snow mountain road", "mountain road", ["snow", "a blanket"]),
    ]
    assert json.loads(proc.stderr.strip().splitlines()[-1])["negated"] == 2
