"""The NegBench decomposition metric (negbench_eval): what counts as right and as a leak."""

from __future__ import annotations

from drc_jax.decompose.negbench_eval import coco_ground_truth, score_coco, score_msrvtt


def test_coco_truth_is_the_one_negative_object_the_caption_names():
    objs = ["chair", "dining table", "person"]
    assert coco_ground_truth("A kitchen, but no chairs in sight.", objs) == "chair"
    assert coco_ground_truth("A kitchen without a dining table.", objs) == "dining table"
    assert coco_ground_truth("An empty street with no one in sight.", objs) == "person"
    assert coco_ground_truth("People sit, but no chair in sight.", objs) is None  # two named
    assert coco_ground_truth("A kitchen.", objs) is None


def test_coco_neg_is_right_when_it_names_the_object_in_at_most_four_words():
    rows = [
        ("A photo of a chair", "", "chair"),  # prefix and article stripped
        ("chairs", "", "chair"),  # plural
        ("people", "", "person"),  # irregular plural
        ("a knife", "", "knife"),
        ("the big old wooden chair", "", "chair"),  # four words once "the" is stripped
        ("a very big old wooden chair", "", "chair"),  # five words: too long
        ("a table", "", "dining table"),  # only part of a two-word object
        ("a stool", "a chair in a kitchen", "chair"),  # wrong neg, leaking aff
    ]
    s = score_coco(rows)
    assert (s.total, s.correct, s.leaks) == (8, 5, 1)


def test_msrvtt_neg_is_right_when_a_word_shares_the_concepts_first_four_letters():
    rows = [
        ("dancing", "", "dancing"),
        ("a person dances", "", "dancing"),
        ("natural scenery", "a band plays", "nature"),
        ("a dog", "", "dogs"),  # "dog" != "dogs"[:4]
        ("hiking", "a man goes hiking", "hiking"),  # right, and aff leaks
    ]
    s = score_msrvtt(rows)
    assert (s.total, s.correct, s.leaks) == (5, 4, 1)
