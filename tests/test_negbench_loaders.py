"""NegBench CSV loaders: real dev files parse, bad files give messages naming file, line, fix."""

from __future__ import annotations

import csv

import pytest

from drc_jax import media as media_io
from drc_jax.data.negbench import (
    DataError,
    load_benchmark,
    load_coco_neg,
    load_msrvtt_neg,
    negated_object,
)


def test_coco_dev_file_gives_one_image_per_row_and_each_caption_its_rows_image(negbench_dir):
    bench = load_coco_neg(negbench_dir / "coco_neg_dev.csv")
    assert bench.kind == "image" and bench.objects_complete
    assert len(bench.media) == 4000
    with open(negbench_dir / "coco_neg_dev.csv", newline="") as f:
        first = next(csv.DictReader(f))
    assert bench.media[0].id == first["image_id"]
    assert bench.media[0].file_name == "000000397133.jpg"
    assert "oven" in bench.media[0].positive_objects
    # 5 captions per image (a few 6-7): 20,012 queries, each pointing at its own row.
    assert len(bench.queries) == 20012
    assert [q.gt for q in bench.queries[:6]] == [0, 0, 0, 0, 0, 1]
    assert bench.queries[0].caption.startswith("A man in a kitchen is making pizzas")


def test_coco_images_without_objects_have_an_empty_object_list(negbench_dir):
    bench = load_coco_neg(negbench_dir / "coco_neg_dev.csv", limit=30)
    assert bench.media[25].positive_objects == ()  # line 27 lists "['']"
    assert all(all(bench.media[i].positive_objects) for i in range(30))


def test_coco_negated_object_is_found_for_nearly_every_dev_caption(negbench_dir):
    bench = load_coco_neg(negbench_dir / "coco_neg_dev.csv")
    named = [q for q in bench.queries if q.negated is not None]
    assert len(named) / len(bench.queries) > 0.95
    q0 = bench.queries[0]
    assert q0.negated == "chair"  # "... but there is no chair in sight."
    # The negated object is one of the row's negative objects, never a present one.
    for q in named[:2000]:
        assert q.negated not in bench.media[q.gt].positive_objects


def test_negated_object_handles_plurals_synonyms_and_ambiguity():
    assert negated_object("No people are walking by.", ("person", "car")) == "person"
    assert negated_object("A street without any cars.", ("person", "car")) == "car"
    assert negated_object("A room with no television.", ("tv",)) == "tv"
    assert negated_object("No dining table here.", ("dining table", "cup")) == "dining table"
    assert negated_object("No car and no person.", ("person", "car")) is None
    assert negated_object("Empty street.", ("person", "car")) is None


def test_msrvtt_dev_file_gives_one_video_and_one_caption_per_row(negbench_dir):
    bench = load_msrvtt_neg(negbench_dir / "msrvtt_neg_dev.csv")
    assert bench.kind == "video" and not bench.objects_complete
    assert len(bench.media) == len(bench.queries) == 200
    assert bench.media[0].id == "video9838" and bench.media[0].file_name == "video9838.mp4"
    assert bench.queries[0].negated == "hiking"
    assert all(q.gt == i for i, q in enumerate(bench.queries))


def test_limit_keeps_the_first_rows_and_their_captions(negbench_dir):
    bench = load_coco_neg(negbench_dir / "coco_neg_dev.csv", limit=3)
    assert len(bench.media) == 3 and {q.gt for q in bench.queries} == {0, 1, 2}


def test_missing_captions_csv_names_the_file_to_get():
    with pytest.raises(DataError) as e:
        load_benchmark("coco", None)
    msg = str(e.value)
    assert "--captions_csv" in msg and "COCO_val_negated_retrieval" in msg and "negbench" in msg
    with pytest.raises(DataError, match="msr_vtt_retrieval_rephrased_llama.csv"):
        load_benchmark("msrvtt", "/nonexistent/file.csv")


def test_csv_with_wrong_columns_names_missing_columns(negbench_dir, tmp_path):
    with pytest.raises(DataError) as e:
        load_coco_neg(negbench_dir / "msrvtt_neg_dev.csv")
    assert "missing ['positive_objects', 'negative_objects']" in str(e.value)
    # The decomposition file is a common mix-up: say so.
    with pytest.raises(DataError, match="decomposition file"):
        load_coco_neg(negbench_dir / "coco_neg_mistral_decomp_dev.csv")


def test_malformed_list_cell_names_file_line_and_column_and_is_never_evaluated(tmp_path):
    path = tmp_path / "bad.csv"
    sentinel = tmp_path / "pwned"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["positive_objects", "negative_objects", "filepath", "image_id", "captions"])
        w.writerow(["['cat']", "['dog']", "a/1.jpg", "1", "['A cat, no dog.']"])
        w.writerow(["['cat']", "['dog']", "a/2.jpg", "2", f"__import__('os').mkdir('{sentinel}')"])
    with pytest.raises(DataError) as e:
        load_coco_neg(path)
    msg = str(e.value)
    assert str(path) in msg and "line 3" in msg and "'captions'" in msg
    assert not sentinel.exists()


def test_media_are_found_by_file_name_whatever_the_recorded_path(tmp_path):
    (tmp_path / "deep" / "val2017").mkdir(parents=True)
    target = tmp_path / "deep" / "val2017" / "000000397133.jpg"
    target.write_bytes(b"x")
    index = media_io.MediaIndex(tmp_path)
    for recorded in (
        "/data/healthy-ml/scratch/kumail/projects/data/coco/images/val2017/000000397133.jpg",
        "data/coco/images/val2017/000000397133.jpg",
        "C:\\coco\\val2017\\000000397133.jpg",
    ):
        assert index.find(recorded) == target
    assert index.find("val2017/000000000001.jpg") is None


def test_corrupt_image_raises_media_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(media_io.MediaError) as e:
        media_io.read_image(bad)
    assert e.value.path == str(bad) and "re-download" in e.value.reason
    with pytest.raises(media_io.MediaError, match="not found"):
        media_io.read_image(tmp_path / "absent.jpg")


def _write_coco(path, rows, *, bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f)
        w.writerow(["positive_objects", "negative_objects", "filepath", "image_id", "captions"])
        w.writerows(rows)


def test_a_csv_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM, which must not become part of the first column."""
    path = tmp_path / "bom.csv"
    _write_coco(path, [["['cat']", "['dog']", "a/1.jpg", "1", "['A cat, no dog.']"]], bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    bench = load_coco_neg(path)
    assert bench.media[0].positive_objects == ("cat",)
    assert [q.caption for q in bench.queries] == ["A cat, no dog."]


def test_an_unterminated_quote_is_an_error_naming_file_and_row(tmp_path):
    path = tmp_path / "torn.csv"
    _write_coco(path, [["['cat']", "['dog']", "a/1.jpg", "1", "['A cat, no dog.']"]])
    with open(path, "a") as f:  # row 3 opens a quote that never closes
        f.write("['cat'],['dog'],a/2.jpg,2,\"['A cat\n['cat'],['dog'],a/3.jpg,3,['x']\n")
    with pytest.raises(DataError) as e:
        load_coco_neg(path)
    msg = str(e.value)
    assert str(path) in msg and "line 3" in msg and "Close the quote" in msg


def test_captions_that_are_all_empty_lists_are_an_error_naming_the_file(tmp_path):
    path = tmp_path / "empty.csv"
    _write_coco(path, [["['cat']", "['dog']", f"a/{i}.jpg", str(i), "[]"] for i in range(3)])
    with pytest.raises(DataError, match=r"every row's 'captions' list is empty \(lines 2-4\)"):
        load_coco_neg(path)
    msr = tmp_path / "msr.csv"
    with open(msr, "w", newline="") as f:
        csv.writer(f).writerows([["image_id", "captions", "filepath", "negative_concept"],
                                 ["video1", "[]", "video1.mp4", "dog"]])  # fmt: skip
    with pytest.raises(DataError, match="every row's 'captions' list is empty"):
        load_msrvtt_neg(msr)
