"""Failure behaviour: every user mistake gives a message naming the file/row and what to do,
a non-zero exit where the run cannot go on, and never a bare traceback."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from drc_jax.data.synthetic import SyntheticSpec, build
from drc_jax.errors import UserError
from drc_jax.launch.pipeline import run
from tests.conftest import REPO
from tests.test_launch_end_to_end import options

SPEC = SyntheticSpec(num_images=6, captions_per_image=2, num_videos=3, frames_per_video=4)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "drc_jax.launch", "--noprogress", *args],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--benchmark", "coco", "--captions_csv", "{negbench}/coco_neg_dev.csv",
          "--data_dir", "{tmp}/absent"],
         ["absent does not exist", "COCO val2017", "val2017.zip", "DATA_DIR/val2017/"]),
        (["--benchmark", "msrvtt"],
         ["needs --captions_csv", "msr_vtt_retrieval_rephrased_llama.csv", "negbench"]),
        (["--benchmark", "coco", "--captions_csv", "{negbench}/msrvtt_neg_dev.csv",
          "--data_dir", "{tmp}"],
         ["wrong columns", "positive_objects", "use --benchmark msrvtt"]),
        (["--benchmark", "msrvtt", "--captions_csv", "{negbench}/msrvtt_neg_dev.csv",
          "--data_dir", "{tmp}", "--limit", "3"],
         ["3 of 3 media file(s)", "video9838.mp4 (line 2)", "MSRVTT.zip",
          "--on_missing_media skip"]),
        (["--config", "tabel3"], ["no configs/tabel3.py", "table3"]),
        (["--config.variants.drcc.label=x"],
         ["--config.variants.drcc.label: no such field", 'Did you mean "drc"']),
        (["--config.benchmark=cocoa"], ["--config.benchmark='cocoa': expected one of", "coco"]),
    ],
    ids=["missing_data_dir", "no_captions_csv", "wrong_columns", "missing_videos", "bad_config",
         "unknown_field", "bad_choice"],
)  # fmt: skip
def test_cli_errors_exit_nonzero_with_an_actionable_message(args, expected, negbench_dir, tmp_path):
    args = [a.format(negbench=negbench_dir, tmp=tmp_path) for a in args]
    proc = cli(*args, "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in proc.stderr, (text, proc.stderr)


def _synthetic_root(tmp_path):
    root = tmp_path / "data"
    build(root, SPEC)
    return root


@pytest.mark.slow
def test_missing_image_fails_naming_file_and_line_or_is_skipped_and_listed(tmp_path):
    root = _synthetic_root(tmp_path)
    (root / "images" / "synthetic_000002.jpg").unlink()
    with pytest.raises(UserError) as e:
        run(options(tmp_path, data_dir=str(root), synthetic=SPEC))
    assert "synthetic_000002.jpg (line 4)" in str(e.value)
    assert "--on_missing_media skip" in str(e.value)

    r = run(options(tmp_path, data_dir=str(root), synthetic=SPEC, on_missing_media="skip"))
    assert r["num_media"] == 5 and r["num_queries"] == 10
    assert r["skipped"] == [{"file": "synthetic_000002.jpg", "line": 4, "reason": "not found"}]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["skipped"] == r["skipped"]
    assert "synthetic_000002.jpg: not found" in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.parametrize("kind", ["image", "video"])
def test_corrupt_media_fails_naming_the_file_or_is_skipped_and_listed(tmp_path, kind):
    root = _synthetic_root(tmp_path)
    bad = root / ("images/synthetic_000001.jpg" if kind == "image" else "videos/video1.mp4")
    bad.write_bytes(bad.read_bytes()[:40])  # truncated download
    benchmark = "synthetic" if kind == "image" else "synthetic_video"
    kw = dict(data_dir=str(root), synthetic=SPEC, benchmark=benchmark)
    with pytest.raises(UserError) as e:
        run(options(tmp_path, **kw))
    assert str(bad) in str(e.value) and "--on_missing_media skip" in str(e.value)

    r = run(options(tmp_path, on_missing_media="skip", **kw))
    assert [s["file"] for s in r["skipped"]] == [bad.name]
    assert r["num_media"] == (SPEC.num_images if kind == "image" else SPEC.num_videos) - 1
    # "N of M captions negated" counts the queries evaluated, not those of the dropped medium.
    d = r["decomposition"]
    assert d["captions"] == r["num_queries"] and d["negated"] <= d["captions"]
    assert (
        f"{d['negated']} of {r['num_queries']} captions negated"
        in (tmp_path / "out" / "results.md").read_text()
    )


def _rewrite_caption(root, line, caption):
    path = root / "synthetic_coco_neg.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows[line - 1][4] = repr([caption])
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_empty_caption_fails_naming_the_line_unless_skipped(tmp_path):
    root = _synthetic_root(tmp_path)
    _rewrite_caption(root, 3, "   ")
    with pytest.raises(UserError, match=r"empty caption\(s\) at line 3.*--on_bad_caption skip"):
        run(options(tmp_path, data_dir=str(root), synthetic=SPEC))
    r = run(options(tmp_path, data_dir=str(root), synthetic=SPEC, on_bad_caption="skip"))
    assert r["num_queries"] == 2 * SPEC.num_images - 2  # line 3 held one (empty) caption
    assert r["skipped_captions"][0]["line"] == 3
    r = run(options(tmp_path, data_dir=str(root), synthetic=SPEC, on_bad_caption="keep"))
    assert r["num_queries"] == 2 * SPEC.num_images - 1 and not r["skipped_captions"]


def test_caption_over_77_tokens_is_truncated_with_a_warning_naming_the_line(tmp_path):
    root = _synthetic_root(tmp_path)
    long = "A red circle " + "and a very long tail of words " * 20 + "but no blue square."
    _rewrite_caption(root, 2, long)
    r = run(options(tmp_path, data_dir=str(root), synthetic=SPEC))
    assert r["long_captions"][0]["line"] == 2 and r["long_captions"][0]["tokens"] > 77
    assert any("line 2" in w and "truncated" in w for w in r["warnings"])
    assert np.isfinite(r["methods"]["drc"]["R@1"])


def test_unreachable_weights_fail_with_what_to_pass_instead(tmp_path):
    with pytest.raises(UserError) as e:
        run(options(tmp_path, weights=str(tmp_path / "missing" / "clip.safetensors")))
    msg = str(e.value)
    assert "cannot load these CLIP weights" in msg and "random:ViT-B/32" in msg


def test_precomputed_embeddings_of_the_wrong_shape_are_refused(tmp_path):
    path = tmp_path / "emb.npy"
    np.save(path, np.ones((3, 32), np.float32))
    with pytest.raises(UserError, match=r"shape \(3, 32\), expected \(8, D\)"):
        run(options(tmp_path, image_embeddings=str(path)))


def test_unreachable_sglang_server_fails_with_alternatives(tmp_path):
    with pytest.raises(UserError) as e:
        run(options(tmp_path, decomposer="sglang", sglang_url="http://127.0.0.1:9"))
    msg = str(e.value)
    assert "cannot reach the SGLang server at http://127.0.0.1:9" in msg
    assert "--decomposer rules" in msg and "--decompositions" in msg


@pytest.mark.parametrize("where", ["a_file", "under_a_file"])
def test_an_unwritable_output_dir_fails_before_any_work(tmp_path, monkeypatch, where):
    from drc_jax.launch import pipeline

    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a directory")
    out = blocker if where == "a_file" else blocker / "out"

    def no_work(*args, **kwargs):
        raise AssertionError("the run started working before checking --output_dir")

    monkeypatch.setattr(pipeline, "load_corpus", no_work)
    monkeypatch.setattr(pipeline, "load_clip_checked", no_work)
    with pytest.raises(UserError, match=f"--output_dir {out}: cannot write there"):
        run(options(tmp_path, output_dir=str(out)))


def test_a_decompression_bomb_in_the_data_dir_fails_naming_it_or_is_skipped(tmp_path):
    from tests.test_media_decode import png_bomb

    root = _synthetic_root(tmp_path)
    bad = png_bomb(root / "images" / "synthetic_000001.jpg")  # a PNG header claiming 100000^2
    kw = dict(data_dir=str(root), synthetic=SPEC)
    with pytest.raises(UserError) as e:
        run(options(tmp_path, **kw))
    assert f"{bad}: refused as a possible decompression bomb" in str(e.value)
    assert "--on_missing_media skip" in str(e.value)
    r = run(options(tmp_path, on_missing_media="skip", **kw))
    assert [s["file"] for s in r["skipped"]] == [bad.name]


def test_a_captions_csv_saved_with_a_byte_order_mark_runs_like_the_plain_one(tmp_path):
    root = _synthetic_root(tmp_path)
    plain = root / "synthetic_coco_neg.csv"
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    kw = dict(benchmark="coco", data_dir=str(root), synthetic=SPEC)
    want = run(options(tmp_path, captions_csv=str(plain), **kw))
    got = run(options(tmp_path, captions_csv=str(bom), output_dir=str(tmp_path / "o2"), **kw))
    assert got["num_queries"] == want["num_queries"] == 2 * SPEC.num_images
    assert got["methods"] == want["methods"]


def test_an_unterminated_quote_in_the_captions_csv_stops_the_launcher_naming_the_line(tmp_path):
    root = _synthetic_root(tmp_path)
    torn = tmp_path / "torn.csv"
    torn.write_text((root / "synthetic_coco_neg.csv").read_text() + "['a'],['b'],x.jpg,9,\"['x\n")
    proc = cli("--benchmark", "coco", "--captions_csv", str(torn), "--data_dir", str(root),
               "--weights", "random:test-tiny", "--output_dir", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{torn}, line {SPEC.num_images + 2}: malformed CSV row" in proc.stderr
    assert "Close the quote" in proc.stderr
