"""The launcher's "CLIP + NEAT" rows as NEAT runs: its own logic-inversion CSV, its shuffled
loader's order per seed, the mean and spread over seeds, and what the record says of each."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest

from drc_jax.errors import UserError
from drc_jax.launch.pipeline import run
from drc_jax.neat import pre_caption
from tests.neat_fixtures import write_neat_csv
from tests.test_launch_end_to_end import coco_subset, options

__all__ = ["coco_subset"]  # the fixture, shared with test_launch_end_to_end


def _run(tmp_path, coco_subset, out, **kw):
    csv_path, data_dir, _ = coco_subset
    kw.setdefault("methods", "clip,neat")
    return run(options(tmp_path, benchmark="coco", captions_csv=str(csv_path),
                       data_dir=str(data_dir), output_dir=str(tmp_path / out),
                       **{"variants.neat.neat.batch_size": 8}, **kw))  # fmt: skip


def _rankings(tmp_path, out):
    with np.load(tmp_path / out / "rankings.npz") as z:
        return z["neat/top10"], z["neat/gt_rank"]


@pytest.mark.slow
def test_neat_rows_adapt_on_neats_csv_in_its_loader_order_per_seed(tmp_path, coco_subset):
    """The done-when of issue 19: NEAT's CSV by sha256 and the seed in the record; two seeds give
    two orders, the same seed the same rankings; the texts scored are the CSV's, pre_caption'd."""
    _, _, rows = coco_subset
    neat_csv = tmp_path / "neat.csv"
    texts = write_neat_csv(rows, neat_csv)
    sha = hashlib.sha256(neat_csv.read_bytes()).hexdigest()

    a = _run(tmp_path, coco_subset, "a", neat_texts=str(neat_csv))
    rec = a["methods"]["neat"]["record"]
    assert rec["texts"] == {"source": "neat_csv", "path": str(neat_csv), "sha256": sha}
    assert rec["neat_seed"] == 0 and len(rec["neat_order"]) == 64
    assert a["inputs"]["neat_texts_sha256"] == sha
    lines = [json.loads(x) for x in (tmp_path / "a" / "decompositions.jsonl").open()]
    flat = [t for row in texts for t in row]
    assert len(lines) == len(flat) > 8 * 3
    for line, (pos, neg, inv) in zip(lines, flat, strict=True):
        assert line["scored"]["neat"] == {
            "caption": pre_caption(line["caption"]),
            "pos": pre_caption(pos),
            "neg": pre_caption(neg),
            "inv": pre_caption(inv),
        }
    assert "not on NEAT's own LLM texts" not in (tmp_path / "a" / "results.md").read_text()

    b = _run(tmp_path, coco_subset, "b", neat_texts=str(neat_csv), neat_seed=1)
    again = _run(tmp_path, coco_subset, "c", neat_texts=str(neat_csv))
    assert b["methods"]["neat"]["record"]["neat_seed"] == 1
    assert b["methods"]["neat"]["record"]["neat_order"] != rec["neat_order"]
    assert again["methods"]["neat"]["record"] == rec
    for x, y in zip(_rankings(tmp_path, "a"), _rankings(tmp_path, "c"), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_several_seeds_report_their_mean_and_spread(tmp_path, coco_subset):
    r = _run(tmp_path, coco_subset, "s", neat_seeds="0,1")
    m = r["methods"]["neat"]
    assert set(m["seeds"]) == {"0", "1"}
    for k in ("R@1", "R@5", "R@10", "medR"):
        values = [m["seeds"][s][k] for s in ("0", "1")]
        assert m[k] == pytest.approx(np.mean(values)) and m["spread"][k] == pytest.approx(
            np.std(values)
        )
    assert m["record"]["neat_seed"] == [0, 1] and len(set(m["record"]["neat_order"])) == 2
    md = (tmp_path / "s" / "results.md").read_text()
    assert "mean over NEAT seeds 0, 1" in md
    # without --config.neat_texts the texts are ours, and the table and the record say so
    assert m["record"]["texts"] == "decomposition" and "not on NEAT's own LLM texts" in md


def _rewrite(src, dst, line, column, value):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[line - 2][column] = value
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_a_neat_csv_that_does_not_line_up_is_refused_by_line(tmp_path, coco_subset):
    csv_path, _, rows = coco_subset
    good = tmp_path / "neat.csv"
    write_neat_csv(rows, good)
    bad = tmp_path / "bad.csv"
    _rewrite(good, bad, 3, "image_id", "999")
    with pytest.raises(UserError) as e:
        _run(tmp_path, coco_subset, "x", neat_texts=str(bad))
    msg = str(e.value)
    assert f"--config.neat_texts: --config.neat_texts {bad} does not line up with {csv_path}" in msg
    assert "line 3: image_id '999', but" in msg and "line 3 has" in msg
    assert "one row per query row, in the same order" in msg
    _rewrite(good, bad, 4, "captions", repr(["Another caption."]))
    with pytest.raises(UserError, match=r"line 4: caption 1 is 'Another caption\.', but"):
        _run(tmp_path, coco_subset, "x", neat_texts=str(bad))
    _rewrite(good, bad, 2, "inverted_captions", repr(["only one"]))
    with pytest.raises(UserError, match=r"line 2: 1 inverted_captions for \d captions"):
        _run(tmp_path, coco_subset, "x", neat_texts=str(bad))
    with pytest.raises(UserError, match="missing.*inverted_captions"):
        _run(tmp_path, coco_subset, "x", neat_texts=str(csv_path))  # the query CSV itself


def test_msrvtt_format_neat_csv_is_read_per_caption_and_may_run_past_a_limited_query_set(
    negbench_dir, tmp_path
):
    """MSR-VTT's logic-inversion CSV (one caption per video row) aligns by row with a query set
    read with ``--limit``: every caption gets its own pos / neg / inv."""
    from drc_jax.data.neat_csv import load_neat_csv
    from drc_jax.data.negbench import load_msrvtt_neg
    from tests.test_launch_end_to_end import _first_rows

    rows = _first_rows(negbench_dir / "msrvtt_neg_dev.csv", tmp_path / "q.csv", 5)
    texts = write_neat_csv(rows, tmp_path / "neat.csv", absent_column="negative_concept")
    read = load_msrvtt_neg(tmp_path / "q.csv", limit=3)
    got = load_neat_csv(tmp_path / "neat.csv", read)
    assert got.texts == {(q.line, q.caption): texts[q.gt][0] for q in read.queries}
    assert (
        len(got.texts) == 3
        and got.sha256 == hashlib.sha256((tmp_path / "neat.csv").read_bytes()).hexdigest()
    )
    assert texts[0][0][1] == "hiking present"  # pos / neg / inv in NEAT's shape
