"""The printed / Markdown table follows the paper's layout with gains over CLIP."""

from __future__ import annotations

import json

from drc_jax.launch import report


def _results():
    row = lambda r1, r5, r10, med, **kw: {"R@1": r1, "R@5": r5, "R@10": r10, "medR": med, **kw}
    return {
        "benchmark": "coco",
        "benchmark_name": "COCO Retrieval-Neg",
        "media_kind": "image",
        "num_media": 2,
        "num_queries": 10,
        "config": {"name": "paper", "backbones": ["random:test-tiny"], "random_weights": True},
        "methods": {
            "clip": row(40.0, 70.0, 80.0, 2.0, label="CLIP", baseline="clip", **{"neg@5": 30.0}),
            "drc": row(45.5, 72.0, 79.0, 1.5, label="DRC", baseline="clip", **{"neg@5": 20.0}),
        },
        "decomposition": {"decomposer": "rules", "captions": 10, "negated": 9},
        "negated_object_coverage": 90.0,
        "skipped": [{"file": "x.jpg", "line": 3, "reason": "not found"}],
        "warnings": [],
    }


def test_table_shows_gains_over_clip_in_parentheses():
    header, rows = report.table_rows(_results())
    assert header == ["Method", "R@1", "R@5", "R@10", "medR", "neg@5 (%)"]
    assert rows[0] == ["CLIP", "40.0", "70.0", "80.0", "2.0", "30.0"]
    assert rows[1] == [
        "DRC",
        "45.5 (+5.5)",
        "72.0 (+2.0)",
        "79.0 (-1.0)",
        "1.5 (-0.5)",
        "20.0 (-10.0)",
    ]


def test_text_and_markdown_label_random_weights_and_list_skipped_media(tmp_path):
    text = report.format_text(_results())
    assert "RANDOM WEIGHTS" in text and "x.jpg: not found" in text
    json_path, md_path = report.write(tmp_path, _results())
    md = md_path.read_text()
    assert "| DRC | 45.5 (+5.5) |" in md and "RANDOM WEIGHTS" in md
    assert json.loads(json_path.read_text())["methods"]["drc"]["R@1"] == 45.5
