"""A crafted, read-only or full store gives one clear message, never a traceback, and never
vectors of the wrong file (issue 18, item 9 and the store/index low items)."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from drc_jax import store as store_module
from drc_jax.store import CATALOGUE, Store, StoreError
from tests.conftest import REPO

META = {"kind": "test"}


def _store(d, n=3, dim=4):
    with Store.open(d, META) as s:
        s.put([f"k{i}" for i in range(n)], ["f"] * n, np.eye(n, dim, dtype=np.float32) + 1)
    return d


def _sql(d, *statements):
    db = sqlite3.connect(d / CATALOGUE)
    for s in statements:
        db.execute(s)
    db.commit()
    db.close()


def _fewer_rows(d):
    _sql(d, "UPDATE settings SET value='2' WHERE name='rows'")


def _shared_row(d):  # the UNIQUE constraint dropped, then one item pointed at another's row
    _sql(
        d,
        "CREATE TABLE items2 AS SELECT * FROM items",
        "DROP TABLE items",
        "ALTER TABLE items2 RENAME TO items",
        "UPDATE items SET row = 0 WHERE row = 1",
    )


def _array_is_a_folder(d):
    (d / "vectors-0.bin").unlink()
    (d / "vectors-0.bin").mkdir()


def _dropped_table(d):
    _sql(d, "DROP TABLE names")


def _huge_vector(d):
    with open(d / "vectors-0.bin", "r+b") as f:
        f.seek(4 * 4)  # row 1
        f.write(np.full(4, 3e38, np.float32).tobytes())


CRAFTED = {
    "fewer_rows": (_fewer_rows, "array holds rows 0..1"),
    "shared_row": (_shared_row, "each item needs its own"),
    "array_is_a_folder": (_array_is_a_folder, "not a regular file"),
    "dropped_table": (_dropped_table, "table names is missing"),
}


@pytest.mark.parametrize("craft", sorted(CRAFTED))
def test_a_crafted_catalogue_or_array_is_refused_by_name(tmp_path, craft):
    d = _store(tmp_path / "s")
    fn, said = CRAFTED[craft]
    fn(d)
    with pytest.raises(StoreError, match=said), Store.open(d, None) as s:
        s.vectors()


def test_a_vector_whose_norm_overflows_is_refused_on_write_and_found_by_the_check(tmp_path):
    d = _store(tmp_path / "s")
    with Store.open(d, META) as s, pytest.raises(ValueError, match="non-finite.*'x'"):
        s.put(["x"], ["f"], np.full((1, 4), 3e38, np.float32))
    _huge_vector(d)
    with Store.open(d, None) as s:
        keys, vectors = s.vectors()
        assert [keys[i] for i in np.flatnonzero(store_module.unusable_rows(vectors))] == ["k1"]


def _read_only_sqlite(monkeypatch):
    """SQLite as on a read-only folder or medium: any connection that may write is refused with
    SQLite's own message; an immutable one reads."""
    real = sqlite3.connect

    def connect(database, *args, **kwargs):
        if "immutable=1" not in str(database):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *args, **kwargs)

    monkeypatch.setattr(store_module.sqlite3, "connect", connect)


def test_a_read_only_store_is_read_and_a_write_says_read_only_not_damaged(tmp_path, monkeypatch):
    d = _store(tmp_path / "s")
    _read_only_sqlite(monkeypatch)
    with Store.open(d, None) as s:
        assert s.vectors()[0] == ["k0", "k1", "k2"]
    with pytest.raises(StoreError, match="read-only.*nothing is damaged") as e:
        Store.open(d, META)
    assert "delete" not in str(e.value)


@pytest.fixture
def world_readable_dir():
    """A fresh folder under the system temp dir that another user can reach (pytest's is 0700)."""
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp(prefix="drc-ro-"))
    d.chmod(0o755)
    yield d
    for p in (d, *d.rglob("*")):
        p.chmod(0o755)
    shutil.rmtree(d)


def test_a_really_read_only_index_folder_is_searched_and_not_called_damaged(world_readable_dir):
    """The same, on a folder the process cannot write (as an unprivileged user when root)."""
    d = _store(world_readable_dir / "s")
    for p in (d, *d.iterdir()):
        p.chmod(0o555 if p.is_dir() else 0o444)
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        from drc_jax.store import Store, StoreError
        with Store.open({str(d)!r}, None) as s:
            print(s.vectors()[0])
        try:
            Store.open({str(d)!r}, {META!r})
        except StoreError as e:
            print(e)
    """)
    cmd = [sys.executable, "-c", script]
    if os.geteuid() == 0:  # root writes anywhere: drop to nobody
        cmd = [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    assert "['k0', 'k1', 'k2']" in out.stdout
    assert "read-only" in out.stdout and "delete" not in out.stdout


def test_a_full_disk_while_storing_says_no_space_and_loses_nothing(tmp_path, monkeypatch):
    d = _store(tmp_path / "s")

    def full(*a):
        raise OSError(errno.ENOSPC, "No space left on device")

    with Store.open(d, META) as s:
        monkeypatch.setattr(store_module.os, "pwrite", full)
        with pytest.raises(StoreError, match="no space left on device.*free space") as e:
            s.put(["new"], ["f"], np.ones((1, 4), np.float32))
        assert "delete" not in str(e.value)
        monkeypatch.undo()
        assert s.vectors()[0] == ["k0", "k1", "k2"]


# --- the same through a real index and the CLIs -------------------------------------------------
@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from PIL import Image

    from drc_jax.clip import load_clip
    from drc_jax.search import build_index

    root = tmp_path_factory.mktemp("idx")
    (root / "photos").mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (60 * i, 90, 30)).save(root / "photos" / f"{i}.png")
    clip = load_clip("random:test-tiny")
    build_index(
        root / "photos", root / "index", weights="random:test-tiny", clip=clip, progress=False
    )
    return root / "index", clip


def _cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "drc_jax.search", *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize("craft", [*sorted(CRAFTED), "huge_vector"])
def test_a_crafted_index_is_one_error_paragraph_from_search_and_its_cli(tmp_path, index, craft):
    from drc_jax.search import Searcher

    src, clip = index
    d = tmp_path / "index"
    shutil.copytree(src, d)
    with Store.open(d, None) as s:
        key_of_row1 = s.vectors()[0][1]
        rows = {k: r for k, r in s._db.execute("SELECT key, row FROM items")}
    assert rows[key_of_row1] == 1
    (_huge_vector if craft == "huge_vector" else CRAFTED[craft][0])(d)
    photos = str(src.parent / "photos")  # a copy elsewhere: its folder confirmed by hand
    with pytest.raises(StoreError):
        Searcher.open(d, clip=clip, roots=[photos]).search("a photo")
    if craft == "huge_vector":
        out = _cli("query", "--index", str(d), "--images", photos, "--noprogress", "a photo")
    else:
        out = _cli("export", "--index", str(d), "--output", str(tmp_path / "x.parquet"))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert "damaged" in out.stderr
