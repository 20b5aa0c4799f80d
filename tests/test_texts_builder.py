"""The texts stage: each method's texts, SpaceVLM's as its retrieval script writes them."""

from __future__ import annotations

import ast
import csv

import pytest

from drc_jax.decompose import Decomposition
from drc_jax.texts import (
    SPACEVLM_NEG_PREFIX,
    SPACEVLM_PROMPTS,
    scored_texts,
    text_set,
    texts_of,
    with_prefix,
)


def _neg(caption, aff, neg, strength="strong"):
    return Decomposition(caption, True, aff, neg, f"{aff} with {neg}", strength)


def test_spacevlm_encodes_a_photo_of_a_concept_with_one_article_and_its_aff_raw():
    decs = [
        _neg("a dog, not on a beach", "a dog", "a beach"),
        _neg("a fruit bowl, but no apple", "a fruit bowl", "an apple"),
        _neg("No dancing; a man talks.", "A man talks.", "dancing"),
        _neg("not at night", "a photo", "night"),  # nothing affirmative left
    ]
    rows, strength = texts_of(text_set("spacevlm"), decs)
    got = [scored_texts("spacevlm", r, int(s)) for r, s in zip(rows, strength, strict=True)]
    assert got == [
        {"aff": "a dog", "neg": "A photo of a beach"},
        {"aff": "a fruit bowl", "neg": "A photo of a apple"},  # as SpaceVLM's script writes it
        {"aff": "A man talks.", "neg": "A photo of a dancing"},
        {"aff": "This is a photo", "neg": "A photo of a night"},
    ]


def test_the_spacevlm_rule_rebuilds_every_negated_text_of_spacevlms_own_split(negbench_dir):
    """Mistral-7B's bare concept and our decomposer's "a <concept>" give SpaceVLM's file text."""
    seen = 0
    for name in ("coco_neg_mistral_decomp_dev.csv", "msrvtt_neg_mistral_decomp_dev.csv"):
        with open(negbench_dir / name, newline="") as f:
            for row in csv.DictReader(f):
                for neg in ast.literal_eval(row["captions"])[1]:
                    bare = neg.removeprefix("A photo of a ").strip()
                    if not bare:
                        continue
                    assert with_prefix(bare, SPACEVLM_NEG_PREFIX) == neg
                    assert with_prefix(f"a {bare}", SPACEVLM_NEG_PREFIX) == neg
                    seen += 1
    assert seen > 20000


def test_a_caption_without_negation_is_its_raw_caption_for_clip_spacevlm_and_drc():
    plain = Decomposition.plain("Two dogs play in the snow.")
    for method in ("clip", "spacevlm", "drc"):
        rows, strength = texts_of(text_set(method), [plain])
        assert rows == [[plain.caption] * 4] and strength.tolist() == [0]


def test_drc_scores_one_concept_or_all_as_concepts_per_caption_says():
    two = Decomposition(
        "a street with no cars and no people", True, "a street", "a car",
        "a street with a car", "strong", ("a car", "a person"),
    )  # fmt: skip
    rows_all, _ = texts_of(text_set("drc", concepts="all"), [two])
    rows_one, _ = texts_of(text_set("drc", concepts="one"), [two])
    assert rows_all[0][:4] == rows_one[0] and rows_all[0][4] == "A photo of a person"
    assert len(texts_of(text_set("spacevlm", concepts="all"), [two])[0][0]) == 4
    with pytest.raises(ValueError, match="concepts_per_caption"):
        text_set("drc", concepts="two")


def test_spacevlm_prompts_are_a_named_preset_for_any_row():
    from drc_jax.launch.config import PROMPT_PRESETS

    assert PROMPT_PRESETS["spacevlm"] == SPACEVLM_PROMPTS
