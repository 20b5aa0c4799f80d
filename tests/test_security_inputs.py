"""Hostile inputs given on the command line end in one ``error:`` paragraph and exit 2, never a
traceback or a hang (issue 18, low items: query files, CSV cells, weights the CLI loads)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from drc_jax.data.negbench import COCO_COLUMNS, DataError, load_benchmark
from tests.clip_fixtures import make_hf_clip
from tests.conftest import REPO


def _search(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "drc_jax.search", *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip


def _one_error(out, said):
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert said in out.stderr, out.stderr


@pytest.mark.parametrize(
    "kind, said",
    [
        ("/dev/zero", "not a regular file"),
        ("fifo", "not a regular file"),
        ("folder", "not a regular file"),
        ("huge", "more than the 16777216"),
        ("binary", "not UTF-8"),
        ("missing", "cannot read it"),
    ],
)
def test_a_queries_file_that_is_no_regular_bounded_text_file_is_refused(tmp_path, kind, said):
    path = {"/dev/zero": "/dev/zero"}.get(kind, str(tmp_path / kind))
    if kind == "fifo":
        os.mkfifo(path)  # no writer: reading it would block for ever
    elif kind == "folder":
        os.mkdir(path)
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate((16 << 20) + 1)
    elif kind == "binary":
        with open(path, "wb") as f:
            f.write(b"a dog\n\xff\xfe\x00 not on a beach\n")
    out = _search("query", "--index", str(tmp_path / "idx"), "--queries_file", path)
    _one_error(out, said)


def test_a_caption_cell_too_long_is_named_with_its_line_not_as_an_unclosed_quote(tmp_path):
    path = tmp_path / "coco.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COCO_COLUMNS)
        w.writerow(["['dog']", "['cat']", "a.jpg", "1", "['a dog']"])
        w.writerow(["['dog']", "['cat']", "b.jpg", "2", str(["a dog " * 40_000])])
    with pytest.raises(DataError, match=r"line 3: a cell longer than 131072 characters") as e:
        load_benchmark("coco", path)
    assert "never closed" not in str(e.value)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf") / "m"
    make_hf_clip(d, tiny=True)
    return d


def _bomb(src, dst, edit):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    edit(cfg)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize(
    "edit, said",
    [
        (lambda c: c["text_config"].update(max_position_embeddings=10**9), "max_position"),
        (lambda c: c["text_config"].update(num_hidden_layers=10**8), "num_hidden_layers"),
        (lambda c: c["text_config"].update(eos_token_id=[]), "eos_token_id"),
        (lambda c: c.update(text_config=json.loads("[" * 50_000 + "]" * 50_000)), "nested"),
    ],
    ids=["positions", "layers", "eos-empty", "deep"],
)
def test_a_hostile_config_json_is_one_error_from_the_index_cli(tmp_path, hf_dir, edit, said):
    pytest.importorskip("torch")
    if said == "nested":  # json.dumps itself cannot write it: splice the text in
        shutil.copytree(hf_dir, tmp_path / "m")
        cfg = (tmp_path / "m" / "config.json").read_text()
        (tmp_path / "m" / "config.json").write_text(
            cfg.replace('"text_config": {', '"deep": ' + "[" * 50_000 + "]" * 50_000 + ', "t": {')
        )
        d = tmp_path / "m"
    else:
        d = _bomb(hf_dir, tmp_path / "m", edit)
    (tmp_path / "photos").mkdir()
    out = _search(
        "index", "--images", str(tmp_path / "photos"), "--index", str(tmp_path / "idx"),
        "--weights", str(d), "--cache_dir", str(tmp_path / "c"), "--noprogress",
    )  # fmt: skip
    _one_error(out, said)
    assert "config.json" in out.stderr
