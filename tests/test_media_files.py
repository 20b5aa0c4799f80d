"""Finding media on disk never hangs: link loops, FIFOs named like photos; fingerprints."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from drc_jax.media import MediaError, MediaIndex, fingerprint, read_image, walk_files
from tests.conftest import REPO

HANG_BOUND_S = 120  # generous on a shared 2-core machine; the fixed code takes well under 5 s


def run_bounded(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; fail (not hang) if it runs past HANG_BOUND_S."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            capture_output=True,
            text=True,
            timeout=HANG_BOUND_S,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for over {HANG_BOUND_S} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def photo(path, color=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), color).save(path)
    return path


@pytest.fixture
def loop_tree(tmp_path):
    """A data dir whose two links point back up: walking through them never ends."""
    root = tmp_path / "data"
    photo(root / "val2017" / "000000397133.jpg")
    os.symlink(root, root / "val2017" / "again")
    os.symlink(root / "val2017", root / "val2017" / "self")
    return root


def test_media_index_does_not_hang_on_a_symlink_loop_under_the_data_dir(loop_tree):
    proc = run_bounded(
        """
        import sys
        from drc_jax.media import MediaIndex
        index = MediaIndex(sys.argv[1])
        print(index.find("/elsewhere/coco/000000397133.jpg"))
        print(index.find("/elsewhere/coco/absent.jpg"))
        """,
        str(loop_tree),
    )
    found, absent = proc.stdout.split()
    assert found == str(loop_tree / "val2017" / "000000397133.jpg") and absent == "None"


def test_fifo_named_like_a_photo_is_never_opened(tmp_path):
    root = tmp_path / "photos"
    photo(root / "a.jpg")
    os.mkfifo(root / "x.jpg")  # opening it would block until a writer appears: forever
    proc = run_bounded(
        """
        import sys
        from pathlib import Path
        from drc_jax.media import MediaError, MediaIndex, fingerprint, read_image, walk_files
        root = Path(sys.argv[1])
        skipped = []
        found = list(walk_files(root, on_skip=lambda p, why: skipped.append((p.name, why))))
        print([p.name for p in found], skipped)
        assert MediaIndex(root).find("other/machine/x.jpg") is None
        for read in (read_image, fingerprint):
            try:
                read(root / "x.jpg")
            except MediaError as e:
                print(e)
        """,
        str(root),
    )
    listed, *errors = proc.stdout.splitlines()
    assert listed == "['a.jpg'] [('x.jpg', 'a FIFO, not a regular file; not opened')]"
    assert errors == [f"{root / 'x.jpg'}: not a regular file (a FIFO); not read"] * 2


def test_search_index_skips_a_fifo_and_a_link_loop_in_the_photo_folder(tmp_path, loop_tree):
    os.mkfifo(loop_tree / "val2017" / "x.jpg")
    run_bounded(
        """
        import sys
        from drc_jax.clip import load_clip
        from drc_jax.search import build_index
        report = build_index(sys.argv[1], sys.argv[2], clip=load_clip("random:test-tiny"),
                             progress=False)
        assert report.added == 1 and not report.failed, report
        """,
        str(loop_tree),
        str(tmp_path / "index"),
    )


def test_links_are_followed_only_on_request_and_each_folder_is_walked_once(tmp_path):
    outside = tmp_path / "outside"
    photo(outside / "far.png")
    root = tmp_path / "root"
    photo(root / "b" / "near.png")
    os.symlink(outside, root / "a_link")
    os.symlink(outside / "far.png", root / "c.png")
    os.symlink(root / "b", root / "b" / "loop")
    reasons = {}
    plain = [p.relative_to(root).as_posix() for p in walk_files(root, on_skip=reasons.setdefault)]
    assert plain == ["b/near.png"]
    assert sorted(p.name for p in reasons) == ["a_link", "c.png", "loop"]
    followed, skipped = [], []
    for p in walk_files(root, follow_symlinks=True, on_skip=lambda p, why: skipped.append(why)):
        followed.append(p.relative_to(root).as_posix())
    assert followed == ["c.png", "a_link/far.png", "b/near.png"]  # files, then folders
    assert skipped == ["folder already walked (symbolic link loop or duplicate)"]


def test_walk_reports_links_it_does_not_follow(tmp_path):
    root = tmp_path / "root"
    photo(root / "real.jpg")
    os.symlink(root / "real.jpg", root / "alias.jpg")
    os.symlink(root / "gone.jpg", root / "broken.jpg")
    reasons = {}
    found = list(walk_files(root, on_skip=lambda p, why: reasons.setdefault(p.name, why)))
    assert [p.name for p in found] == ["real.jpg"]
    assert set(reasons) == {"alias.jpg", "broken.jpg"}
    assert all("symbolic link not followed" in r for r in reasons.values())
    reasons.clear()
    found = list(walk_files(root, follow_symlinks=True, on_skip=reasons.setdefault))
    assert [p.name for p in found] == ["alias.jpg", "real.jpg"]
    assert reasons == {root / "broken.jpg": "cannot stat (No such file or directory)"}


def test_fingerprint_by_stat_changes_with_the_file_and_by_hash_survives_a_copy(tmp_path):
    a = photo(tmp_path / "a.png")
    b = tmp_path / "b.png"
    b.write_bytes(a.read_bytes())
    assert fingerprint(a, "sha1") == fingerprint(b, "sha1")
    before = fingerprint(a)
    photo(a, color=(1, 2, 3))
    os.utime(a, ns=(1, 2))
    assert fingerprint(a) != before and fingerprint(a).endswith(":2")
    assert fingerprint(a, "sha1") != fingerprint(b, "sha1")
    with pytest.raises(MediaError, match="absent.png: file not found"):
        fingerprint(tmp_path / "absent.png")
    with pytest.raises(ValueError, match="fingerprint must be one of"):
        fingerprint(a, "md5")


def test_recorded_paths_cannot_reach_outside_the_data_dir(tmp_path):
    root = tmp_path / "data"
    photo(root / "inside.jpg")
    photo(tmp_path / "secret.jpg")
    index = MediaIndex(root)
    assert index.find("../secret.jpg") is None and index.find("/secret.jpg") is None
    assert index.find("C:\\images\\..\\inside.jpg") == root / "inside.jpg"
    assert read_image(index.find("x/inside.jpg")).size == (32, 24)
