"""``--config zeroshot``: CLIP, SpaceVLM and DRC on captions without negation."""

from __future__ import annotations

import ast
import csv
import json

import numpy as np
import pytest

from drc_jax.data.synthetic import SyntheticSpec, render_image, write_video
from drc_jax.launch.pipeline import run
from drc_jax.launch.report import format_text
from drc_jax.media import file_name
from tests.test_launch_end_to_end import SMALL, options


def _drc_equals_clip_where_not_negated(out_dir) -> int:
    """Per query not marked negated, DRC's rank and top-10 are CLIP's; returns how many."""
    lines = [json.loads(x) for x in (out_dir / "decompositions.jsonl").read_text().splitlines()]
    plain = np.asarray([not line["decomposition"]["negated"] for line in lines])
    r = np.load(out_dir / "rankings.npz")
    for key in ("gt_rank", "top10"):
        np.testing.assert_array_equal(r[f"drc/{key}"][plain], r[f"clip/{key}"][plain])
    return int(plain.sum())


def _check_report(results, out_dir):
    assert list(results["methods"]) == ["clip", "spacevlm", "drc"]
    for m in results["methods"].values():
        assert {"R@1", "R@5", "R@10", "medR"} <= set(m)
    lines = (out_dir / "decompositions.jsonl").read_text().splitlines()
    marked = sum(json.loads(x)["decomposition"]["negated"] for x in lines)
    z = results["zeroshot"]
    assert z["captions"] == results["num_queries"] and z["marked_negated"] == marked
    assert f"{marked} of {z['captions']} captions without negation" in format_text(results)
    assert _drc_equals_clip_where_not_negated(out_dir) == z["captions"] - marked


@pytest.mark.slow
def test_zeroshot_runs_on_the_synthetic_sets_plain_captions(tmp_path):
    results = run(options(tmp_path, config="zeroshot"))
    lines = (tmp_path / "out" / "decompositions.jsonl").read_text().splitlines()
    captions = [json.loads(x)["caption"] for x in lines]
    assert len(captions) == SMALL.num_images * SMALL.captions_per_image
    assert not any(" no " in c or "without" in c for c in captions)
    _check_report(results, tmp_path / "out")
    assert results["zeroshot"]["marked_negated"] == 0  # the rules find no negation here


def _plain_coco(negbench_dir, tmp_path, n=5):
    """COCO rows of the dev file with their captions replaced by the row-aligned Mistral split's
    affirmative parts (plain captions of the same images), in COCO_val_retrieval.csv's columns."""
    with open(negbench_dir / "coco_neg_dev.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = [next(reader) for _ in range(n)]
    with open(negbench_dir / "coco_neg_mistral_decomp_dev.csv", newline="") as f:
        reader_split = csv.DictReader(f)
        split = [ast.literal_eval(next(reader_split)["captions"])[0] for _ in range(n)]
    path = tmp_path / "COCO_val_retrieval.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=reader.fieldnames)
        w.writeheader()
        for row, plain in zip(rows, split, strict=True):
            w.writerow({**row, "captions": repr(plain)})
    media = tmp_path / "coco_media"
    media.mkdir()
    rng = np.random.default_rng(0)
    for row in rows:
        render_image(["red circle"], 64, rng).save(media / file_name(row["filepath"]))
    return path, media


def test_zeroshot_runs_on_a_plain_coco_csv_and_drc_equals_clip_where_nothing_is_negated(
    negbench_dir, tmp_path
):
    path, media = _plain_coco(negbench_dir, tmp_path)
    results = run(
        options(tmp_path, config="zeroshot", benchmark="coco", captions_csv=str(path),
                data_dir=str(media))
    )  # fmt: skip
    _check_report(results, tmp_path / "out")
    assert results["methods"]["drc"]["record"]["concepts_per_caption"] == "one"


def test_zeroshot_runs_on_a_plain_msrvtt_csv_without_a_negative_concept_column(
    negbench_dir, tmp_path
):
    with open(negbench_dir / "msrvtt_neg_dev.csv", newline="") as f:
        rows = [r for _, r in zip(range(4), csv.DictReader(f), strict=False)]
    path = tmp_path / "msr_vtt_retrieval.csv"
    with open(path, "w", newline="") as f:  # msr_vtt_retrieval.csv's columns
        w = csv.DictWriter(f, fieldnames=["image_id", "captions", "filepath", "all_captions"])
        w.writeheader()
        for r in rows:
            plain = ast.literal_eval(r["all_captions"])[0]
            w.writerow({"image_id": r["image_id"], "captions": repr([plain]),
                        "filepath": r["filepath"], "all_captions": r["all_captions"]})  # fmt: skip
    media = tmp_path / "videos"
    media.mkdir()
    rng = np.random.default_rng(0)
    for r in rows:
        spec = SyntheticSpec(frames_per_video=4, size=64)
        write_video(media / file_name(r["filepath"]), ["blue square", "red circle"], spec, rng)
    results = run(
        options(tmp_path, config="zeroshot", benchmark="msrvtt", captions_csv=str(path),
                data_dir=str(media))
    )  # fmt: skip
    assert results["media_kind"] == "video" and results["num_queries"] == 4
    _check_report(results, tmp_path / "out")
    assert results["methods"]["spacevlm"]["record"]["video_mean"] == "unnormalized"
