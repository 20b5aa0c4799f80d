"""JSONL decompositions (the launcher's --decompositions), the on-disk cache, and the rules CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from drc_jax.decompose import Decomposition, load_decompositions_jsonl
from drc_jax.decompose.cache import DecompositionCache
from drc_jax.decompose.rules import RuleDecomposer

CAPS = ["a dog not on a beach", "two cats on a sofa", "A street without cars at night."]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_rules_writes_one_object_per_input_line_in_order(tmp_path):
    lines = CAPS + ["", "No fork is present, but a baker rolls dough."]
    proc = subprocess.run(
        [sys.executable, "-m", "drc_jax.decompose", "--decomposer", "rules"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    objs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [o["caption"] for o in objs] == lines
    assert [Decomposition.from_dict(o) for o in objs] == RuleDecomposer().decompose(lines)
    assert list(objs[0]) == ["caption", "negated", "aff", "neg", "cf", "strength", "negs"]
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    assert stats["captions"] == 5 and stats["negated"] == 3


def test_cli_output_loads_back_as_decompositions(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "drc_jax.decompose"],
        input="\n".join(CAPS),
        capture_output=True,
        text=True,
        timeout=120,
    )
    table = load_decompositions_jsonl(_write(tmp_path / "d.jsonl", proc.stdout.splitlines()))
    assert [table[c] for c in CAPS] == RuleDecomposer().decompose(CAPS)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "not valid JSON"),
        ('{"caption": "x", "negated": true}', "missing field 'aff'"),
        (
            '{"caption": "x", "negated": false, "aff": "x", "neg": "", "cf": "x", '
            '"strength": "none", "extra": 1}',
            "unexpected field 'extra'",
        ),
        (
            '{"caption": "x", "negated": "yes", "aff": "x", "neg": "", "cf": "x", '
            '"strength": "none"}',
            "'negated' must be a boolean",
        ),
        (
            '{"caption": "x", "negated": true, "aff": "x", "neg": "", "cf": "x", '
            '"strength": "strong"}',
            "neg is empty",
        ),
        (
            '{"caption": "x", "negated": true, "aff": "x", "neg": "y", "cf": "x y", '
            '"strength": "huge"}',
            "strength",
        ),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_jsonl_lines_raise_errors_naming_file_and_line(tmp_path, bad_line, message):
    good = Decomposition.plain("fine").to_json()
    path = _write(tmp_path / "d.jsonl", [good, "", bad_line])
    with pytest.raises(ValueError, match=rf"d\.jsonl:3: .*{message}"):
        load_decompositions_jsonl(path)


def test_conflicting_duplicate_captions_are_rejected_with_both_lines(tmp_path):
    a = Decomposition.plain("a cat").to_json()
    b = Decomposition("a cat", True, "a", "cat", "a cat", "weak").to_json()
    with pytest.raises(ValueError, match=r"d\.jsonl:3: .*line 1"):
        load_decompositions_jsonl(_write(tmp_path / "d.jsonl", [a, a, b]))


def test_cache_persists_each_answer_as_it_arrives(tmp_path):
    decs = RuleDecomposer().decompose(CAPS)
    c1 = DecompositionCache(tmp_path, "sglang", "qwen", "v1")
    c1.put(decs[0])
    c1.put(decs[1])
    # Nothing is closed or flushed by hand: a second reader already sees both answers.
    c2 = DecompositionCache(tmp_path, "sglang", "qwen", "v1")
    assert c2.get(CAPS[0]) == decs[0]
    assert c2.get(CAPS[1]) == decs[1]
    assert c2.get(CAPS[2]) is None
    c1.close()
    c2.close()


def test_cache_is_keyed_by_backend_model_and_prompt_version(tmp_path):
    d = RuleDecomposer().decompose_one(CAPS[0])
    c = DecompositionCache(tmp_path, "sglang", "qwen", "v1")
    c.put(d)
    c.close()
    for other in [("sglang", "qwen", "v2"), ("sglang", "llama", "v1"), ("x", "qwen", "v1")]:
        assert DecompositionCache(tmp_path, *other).get(CAPS[0]) is None
    assert DecompositionCache(tmp_path, "sglang", "qwen", "v1").get(CAPS[0]) == d


def test_cache_survives_a_torn_last_line_and_keeps_appending(tmp_path):
    decs = RuleDecomposer().decompose(CAPS)
    c = DecompositionCache(tmp_path, "b", "m", "v")
    c.put(decs[0])
    c.close()
    with open(c.path, "a", encoding="utf-8") as f:  # killed in the middle of a write
        f.write(decs[1].to_json()[:20])
    c2 = DecompositionCache(tmp_path, "b", "m", "v")
    assert len(c2) == 1
    c2.put(decs[2])
    c2.close()
    c3 = DecompositionCache(tmp_path, "b", "m", "v")
    assert c3.get(CAPS[0]) == decs[0] and c3.get(CAPS[2]) == decs[2]
    c3.close()


def test_a_second_crash_after_a_torn_line_loses_only_the_torn_answers(tmp_path):
    """Torn line, one more answer, torn again: every completed answer is still read back."""
    extra = "no cats on the sofa"
    decs = RuleDecomposer().decompose([*CAPS, extra])
    c = DecompositionCache(tmp_path, "b", "m", "v")
    c.put(decs[0])
    c.close()
    for torn, kept in ((decs[1], decs[2]), (decs[3], None)):
        with open(c.path, "a", encoding="utf-8") as f:  # killed in the middle of a write
            f.write(torn.to_json()[:20])
        c = DecompositionCache(tmp_path, "b", "m", "v")
        if kept is not None:
            c.put(kept)
        c.close()
    c = DecompositionCache(tmp_path, "b", "m", "v")
    assert len(c) == 2 and c.get(CAPS[0]) == decs[0] and c.get(CAPS[2]) == decs[2]
    c.put(decs[3])
    c.close()
    assert DecompositionCache(tmp_path, "b", "m", "v").get(extra) == decs[3]
