"""The Decomposition record and its JSON schemas, compiled with XGrammar (SGLang's default)."""

from __future__ import annotations

import json

import pytest
import xgrammar as xgr

from drc_jax.decompose import DECOMPOSITION_SCHEMA, STRENGTHS, Decomposition, DecompositionError
from drc_jax.decompose.types import (
    FIELDS,
    MERGED_SCHEMA,
    SPLIT_SCHEMA,
    STRENGTH_SCHEMA,
    schema_problems,
)

ALL_SCHEMAS = [DECOMPOSITION_SCHEMA, MERGED_SCHEMA, SPLIT_SCHEMA, STRENGTH_SCHEMA]
GOOD = {
    "negated": True,
    "aff": "a dog",
    "neg": "a beach",
    "cf": "a dog on a beach",
    "strength": "strong",
}


def test_strengths_match_the_scoring_contract():
    from drc_jax.scoring import STRENGTHS as SCORING_STRENGTHS

    assert STRENGTHS == SCORING_STRENGTHS == ("none", "weak", "moderate", "strong")


@pytest.mark.parametrize("schema", ALL_SCHEMAS)
def test_schemas_are_flat_fully_required_and_free_of_pattern_or_length_keywords(schema):
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    for spec in schema["properties"].values():
        assert spec["type"] in ("string", "boolean", "array")
        assert not set(spec) - {"type", "enum", "items"}  # no pattern / min/maxLength / format
        if spec["type"] == "array":  # negs: a plain list of strings, nothing else
            assert spec["items"] == {"type": "string"}
    if "strength" in schema["properties"]:
        want = STRENGTHS[1:] if schema is STRENGTH_SCHEMA else STRENGTHS
        assert schema["properties"]["strength"]["enum"] == list(want)


def test_the_strength_estimator_has_exactly_the_papers_three_classes():
    from drc_jax.decompose.prompts import STRENGTH_SYSTEM

    assert STRENGTH_SCHEMA["properties"]["strength"]["enum"] == ["weak", "moderate", "strong"]
    for s in ("strong", "moderate", "weak"):
        assert f'"{s}"' in STRENGTH_SYSTEM
    assert '- "none"' not in STRENGTH_SYSTEM  # negated or not is the decomposer prompt's call


def test_record_schema_covers_every_field_in_order():
    assert tuple(DECOMPOSITION_SCHEMA["properties"]) == FIELDS


def _matcher(schema):
    vocab = [chr(i) for i in range(32, 127)] + ["\n"]
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo(vocab))
    compiled = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
    return lambda text: (
        (m := xgr.GrammarMatcher(compiled, terminate_without_stop_token=True)).accept_string(text)
        and m.is_terminated()
    )


@pytest.mark.parametrize("schema", ALL_SCHEMAS)
def test_schemas_compile_with_xgrammar(schema):
    _matcher(schema)


def test_xgrammar_accepts_valid_and_rejects_invalid_answers():
    accepts = _matcher(MERGED_SCHEMA)
    assert accepts(json.dumps(GOOD))
    assert not accepts(json.dumps({**GOOD, "strength": "very"}))
    assert not accepts(json.dumps({"negated": True, "aff": "a dog"}))
    assert not accepts(json.dumps({**GOOD, "extra": 1}))
    assert not accepts(json.dumps(GOOD, indent=2))  # compact: no runs of newlines to loop on


def test_validator_agrees_with_xgrammar_on_the_same_cases():
    assert schema_problems(GOOD, MERGED_SCHEMA) == []
    assert schema_problems({**GOOD, "strength": "very"}, MERGED_SCHEMA)
    assert schema_problems({"negated": True, "aff": "a dog"}, MERGED_SCHEMA)
    assert schema_problems({**GOOD, "extra": 1}, MERGED_SCHEMA)
    assert schema_problems({**GOOD, "negated": "yes"}, MERGED_SCHEMA)
    assert schema_problems(["not", "an", "object"], MERGED_SCHEMA)


@pytest.mark.parametrize(
    "fields, problem",
    [
        (dict(negated=True, neg="", strength="strong"), "neg is empty"),
        (dict(negated=True, neg="a cat", strength="none"), "strength is 'none'"),
        (dict(negated=False, neg="", strength="weak"), "not negated"),
        (dict(negated=True, neg="a cat", strength="extreme"), "strength must be one of"),
    ],
)
def test_decomposition_rejects_records_that_make_no_sense(fields, problem):
    base = dict(caption="c", aff="c", cf="c")
    with pytest.raises(DecompositionError, match=problem):
        Decomposition(**base, **fields)


def test_several_negated_concepts_are_listed_with_neg_as_the_first():
    d = Decomposition(
        "a street with no cars and no people",
        True,
        "a street",
        "a car",
        "a street with a car and a person",
        "strong",
        ("a car", "a person"),
    )
    assert d.negs == ("a car", "a person") and d.neg == "a car"
    assert Decomposition.from_dict(json.loads(d.to_json())) == d
    assert d.to_dict()["negs"] == ["a car", "a person"]
    # One concept given the old way: negs is (neg,); negs given alone sets neg.
    assert Decomposition("c", True, "a", "a cat", "a with a cat", "weak").negs == ("a cat",)
    assert Decomposition("c", True, "a", "", "a", "weak", ("a cat",)).neg == "a cat"
    with pytest.raises(DecompositionError, match="negs must"):
        Decomposition("c", True, "a", "a cat", "a", "weak", ("a dog", "a cat"))
    with pytest.raises(DecompositionError, match="not negated but negs"):
        Decomposition("c", False, "c", "", "c", "none", ("a cat",))


def test_records_written_before_negs_existed_still_load():
    old = {"caption": "no cats", "negated": True, "aff": "a photo", "neg": "a cat"}
    d = Decomposition.from_dict({**old, "cf": "a photo with a cat", "strength": "strong"})
    assert d.negs == ("a cat",)
    with pytest.raises(DecompositionError, match="'negs' must be a list of strings"):
        Decomposition.from_dict({**d.to_dict(), "negs": [1]})


def test_decomposition_round_trips_through_json():
    d = Decomposition(
        "a dog not on a beach", True, "a dog", "a beach", "a dog on a beach", "strong"
    )
    assert Decomposition.from_dict(json.loads(d.to_json())) == d
    assert schema_problems(d.to_dict(), DECOMPOSITION_SCHEMA) == []
    p = Decomposition.plain("two cats")
    assert (p.negated, p.aff, p.neg, p.cf, p.strength) == (
        False,
        "two cats",
        "",
        "two cats",
        "none",
    )
