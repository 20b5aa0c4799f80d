"""`python -m drc_jax.search index|query|export` end to end on generated scenes, random weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from drc_jax.defaults import SGLANG_MODEL
from drc_jax.figures import GREEN, RED
from tests.conftest import REPO
from tests.scenes import draw_scene, make_scene_folder
from tests.test_sglang_client import FakeServer

pytestmark = pytest.mark.slow
WEIGHTS = "random:test-tiny"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "drc_jax.search", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    make_scene_folder(root, per_combination=1)
    (root / "broken.png").write_bytes(b"\x89PNG but truncated")
    os.mkfifo(root / "pipe.jpg")  # never opened: a read would block forever
    (root / "link.png").symlink_to(next(root.rglob("*.png")))  # not followed by default
    index = root.parent / "idx"
    proc = cli("index", "--images", str(root), "--index", str(index), "--weights", WEIGHTS)
    assert proc.returncode == 0, proc.stderr
    return root, index, proc.stdout


def test_index_reports_counts_random_weights_and_unreadable_files(indexed):
    root, index, out = indexed
    assert "weights are RANDOM" in out
    assert "9 added, 0 changed, 0 removed, 0 unchanged, 1 failed" in out
    assert "broken.png: " in out
    assert "2 entr(ies) skipped by the walk (not indexed):" in out
    assert "  link.png: symbolic link not followed" in out
    assert "  pipe.jpg: a FIFO, not a regular file; not opened" in out


def test_reindex_after_adding_and_deleting_files_touches_only_those(indexed, tmp_path):
    root, index, _ = indexed
    draw_scene("cat", "park", seed=42).save(root / "park" / "extra_cat.png")
    os.rename(root / "street" / "street_0.png", tmp_path / "street_0.png")
    args = ("index", "--images", str(root), "--index", str(index), "--weights", WEIGHTS)
    try:
        proc = cli(*args)
    finally:  # put the folder back as the other tests expect it, and re-sync the index
        os.rename(tmp_path / "street_0.png", root / "street" / "street_0.png")
        (root / "park" / "extra_cat.png").unlink()
        restored = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "1 added, 0 changed, 1 removed, 8 unchanged, 1 failed" in proc.stdout
    assert restored.returncode == 0, restored.stderr
    assert "1 added, 0 changed, 1 removed, 8 unchanged, 1 failed" in restored.stdout


def test_export_parquet_writes_one_row_per_indexed_file(indexed, tmp_path):
    import pyarrow.parquet as pq

    _, index, _ = indexed
    out = tmp_path / "index.parquet"
    proc = cli("export", "--index", str(index), "--format", "parquet", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"exported 9 files of {index} -> {out} (parquet)" in proc.stdout
    table = pq.read_table(out)
    assert table.num_rows == 9 and table.column_names == ["id", "path", "hash", "embedding"]


def test_query_json_batches_queries_and_writes_one_figure_per_query(indexed, tmp_path):
    _, index, _ = indexed
    fig = tmp_path / "fig.png"
    proc = cli(
        "query", "--index", str(index), "a dog, but no beach", "a cat", "-k", "4", "--json",
        "--figure", str(fig), "--hint_from_path",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["random_weights"] is True and out["weights"] == WEIGHTS
    assert out["images"] == 9 and out["method"] == "drc"
    assert [r["query"] for r in out["results"]] == ["a dog, but no beach", "a cat"]
    first = out["results"][0]
    assert first["decomposition"]["neg"] == "a beach" and first["decomposition"]["negated"]
    assert [h["rank"] for h in first["hits"]] == [1, 2, 3, 4]
    assert all(os.path.exists(h["path"]) for h in first["hits"])
    assert out["figures"] == [str(tmp_path / "fig-0.png"), str(tmp_path / "fig-1.png")]
    arr = np.asarray(Image.open(out["figures"][0]).convert("RGB"))
    # With random weights which images come first is arbitrary, but the border hint (path names
    # "beach") colours every tile: 4 in each of the 2 rows, about 4 * 6 * 188 pixels per tile.
    n_red = int((arr == np.asarray(RED)).all(-1).sum())
    n_green = int((arr == np.asarray(GREEN)).all(-1).sum())
    assert n_red + n_green > 8 * 4 * 6 * 180
    assert Image.open(out["figures"][1]).format == "PNG"


def test_query_table_shows_decomposition_rank_score_path_and_random_note(indexed):
    root, index, _ = indexed
    proc = cli("query", "--index", str(index), "a cat without a street", "-k", "3")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("NOTE: weights are RANDOM")
    assert 'aff="a cat" | neg="a street"' in out and "strength=strong" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert all(r[2].startswith(str(root)) for r in rows)


def test_bad_invocations_are_clear_errors_not_tracebacks(tmp_path):
    proc = cli("query", "--index", str(tmp_path / "nope"), "a dog")
    assert proc.returncode == 2
    assert "error: no search index at" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("lookup")
    assert proc.returncode == 2 and "index|query" in proc.stderr


def test_sglang_query_without_a_model_flag_asks_for_the_default_model(indexed, tmp_path):
    _, index, _ = indexed
    srv = FakeServer()
    try:
        proc = cli(
            "query", "--index", str(index), "a dog, but no beach", "--decomposer", "sglang",
            "--sglang_url", srv.url, "--cache_dir", str(tmp_path), "--json",
        )  # fmt: skip
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr
    assert [r["model"] for r in srv.requests] == [SGLANG_MODEL]
    assert json.loads(proc.stdout)["results"][0]["decomposition"]["neg"] == "a beach"


def test_unreachable_sglang_server_is_reported_before_the_weights_load(indexed, tmp_path):
    _, index, _ = indexed
    url = "http://127.0.0.1:9"
    proc = cli(
        "query", "--index", str(index), "no dogs", "--decomposer", "sglang", "--sglang_url", url,
        "--cache_dir", str(tmp_path), "--weights", str(tmp_path / "absent.safetensors"),
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # The server's error, not the (also wrong) --weights': it was checked first.
    assert f"error: --decomposer sglang: cannot reach the SGLang server at {url}" in proc.stderr
    assert f"--model {SGLANG_MODEL}" in proc.stderr and "None" not in proc.stderr


def test_query_exclude_sets_the_negated_concept(indexed):
    _, index, _ = indexed
    proc = cli(
        "query", "--index", str(index), "a cat", "--exclude", "a street", "--strength", "weak",
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    dec = json.loads(proc.stdout)["results"][0]["decomposition"]
    assert (dec["negated"], dec["aff"], dec["neg"], dec["strength"]) == (
        True, "a cat", "a street", "weak"
    )  # fmt: skip


def test_serve_refuses_a_non_loopback_host_without_allow_remote(indexed):
    _, index, _ = indexed
    proc = cli("serve", "--index", str(index), "--host", "0.0.0.0", "--port", "1")
    assert proc.returncode == 2 and "--allow_remote" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = cli("serve", "--index", str(index), "--allowed_host", "photos.example", "--port", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pass --allow_remote too" in proc.stderr


def test_serve_reports_a_taken_port_and_an_unreachable_sglang_server_before_loading(
    indexed, tmp_path
):
    import socket

    _, index, _ = indexed
    absent = str(tmp_path / "absent.safetensors")  # would fail too, had the weights loaded first
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = cli("serve", "--index", str(index), "--port", port, "--weights", absent)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: --host 127.0.0.1 --port {port}: cannot listen there" in proc.stderr
    proc = cli(
        "serve", "--index", str(index), "--decomposer", "sglang", "--sglang_url",
        "http://127.0.0.1:9", "--weights", absent,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot reach the SGLang server at http://127.0.0.1:9" in proc.stderr


def test_serve_answers_health_and_search_then_stops(indexed):
    import socket
    import time

    import httpx

    _, index, _ = indexed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(
        [sys.executable, "-m", "drc_jax.search", "serve", "--index", str(index), "--port",
         str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "serve did not answer within 300 s"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health["images"] == 9 and health["random_weights"] is True
        assert health["indexing"]["watching"] is True  # serve watches its folders by default
        r = httpx.get(f"http://127.0.0.1:{port}/api/search", params={"q": "a dog", "k": 3})
        assert [h["rank"] for h in r.json()["hits"]] == [1, 2, 3]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert f"http://127.0.0.1:{port}/" in out and "weights are RANDOM" in out
    assert "watching its folders" in out


def test_a_cache_dir_that_is_a_file_is_a_user_error(indexed, tmp_path):
    _, index, _ = indexed
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder")
    proc = cli("query", "--index", str(index), "a dog", "--cache_dir", str(blocker))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: --cache_dir {blocker}: cannot keep the compilation cache there" in proc.stderr


def test_a_crafted_or_damaged_index_is_an_error_message_not_a_traceback(indexed, tmp_path):
    import shutil
    import sqlite3

    _, index, _ = indexed
    for name, value, message in [
        ("user.roots", "[5]", "not a readable search index (roots=[5])"),
        ("meta", "{}", "(setting meta is '{}'); the store is damaged"),
        ("rows", "-3", "(setting rows is '-3'); the store is damaged"),
    ]:
        crafted = tmp_path / name
        shutil.copytree(index, crafted)
        with sqlite3.connect(crafted / "catalogue.sqlite") as db:
            db.execute("UPDATE settings SET value=? WHERE name=?", (value, name))
        proc = cli("query", "--index", str(crafted), "a dog")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert message in proc.stderr


def test_a_decompression_bomb_in_the_photo_folder_is_listed_not_fatal(tmp_path):
    from tests.test_media_decode import png_bomb

    root = tmp_path / "photos"
    root.mkdir()
    png_bomb(root / "huge.png")
    draw_scene("dog", "park").save(root / "dog.png")
    proc = cli("index", "--images", str(root), "--index", str(tmp_path / "idx"),
               "--weights", WEIGHTS, "--noprogress")  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "1 added, 0 changed, 0 removed, 0 unchanged, 1 failed" in proc.stdout
    assert "huge.png: refused as a possible decompression bomb" in proc.stdout


def test_query_with_unloadable_weights_names_the_flag_and_what_to_pass(indexed, tmp_path):
    _, index, _ = indexed
    absent = tmp_path / "absent.safetensors"
    proc = cli("query", "--index", str(index), "a dog", "--weights", str(absent))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: --weights {absent}: cannot load these CLIP weights" in proc.stderr
    assert "Hugging Face CLIP directory" in proc.stderr


def test_serve_with_allow_remote_prints_a_token_url_and_refuses_requests_without_it(indexed):
    import re
    import socket
    import time

    import httpx

    _, index, _ = indexed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(
        [sys.executable, "-m", "drc_jax.search", "serve", "--index", str(index), "--port",
         str(port), "--allow_remote"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        line = ""
        while "serving" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "serve exited"
        token = re.search(rf"{re.escape(base)}/\?token=([\w-]+)", line).group(1)
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 401
        ok = httpx.get(f"{base}/api/health", headers={"X-DRC-Token": token}, timeout=5)
        assert ok.status_code == 200 and ok.json()["images"] == 9
        foreign = {"X-DRC-Token": token, "Host": f"evil.example:{port}"}
        assert httpx.get(f"{base}/api/health", headers=foreign, timeout=5).status_code == 421
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_help_lists_the_subcommands_also_as_a_console_script():
    code = "import sys; from drc_jax.search.__main__ import run; sys.argv[0] = 'drc-search'; run()"
    for cmd in ([sys.executable, "-m", "drc_jax.search"], [sys.executable, "-c", code]):
        proc = subprocess.run(
            [*cmd, "--help"], capture_output=True, text=True, cwd=REPO, timeout=300
        )
        assert "Commands: index" in proc.stdout and "serve" in proc.stdout, proc.stdout[:300]


def test_reindexing_without_weights_reuses_the_indexs_own(indexed, tmp_path):
    root, index, _ = indexed
    proc = cli("index", "--images", str(root), "--index", str(index))  # no --weights
    assert proc.returncode == 0, proc.stderr
    assert "random:test-tiny" in proc.stdout and "0 added" in proc.stdout
