"""What /api/file and /api/thumb read: opened beneath the root without following links (no
check-then-open race), and thumbnails decoded within a pixel cap, a few at a time."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from drc_jax.search import files, thumbs
from drc_jax.search.files import NotServable, open_servable
from drc_jax.search.server import create_app

WEIGHTS = "random:test-tiny"


@pytest.fixture(scope="module")
def swapped(tmp_path_factory):
    """An index of ``photos/album/a.png``; ``outside/a.png`` (other pixels) is what a link swapped
    in for ``album`` would lead to."""
    from drc_jax.clip import load_clip
    from drc_jax.search import Searcher, build_index

    base = tmp_path_factory.mktemp("race")
    (base / "photos" / "album").mkdir(parents=True)
    (base / "outside").mkdir()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(base / "photos" / "album" / "a.png")
    Image.new("RGB", (64, 48), (250, 0, 250)).save(base / "outside" / "a.png")
    build_index(
        base / "photos", base / "index", weights=WEIGHTS, clip=load_clip(WEIGHTS), progress=False
    )
    searcher = Searcher.open(base / "index")
    with TestClient(create_app(searcher), base_url="http://127.0.0.1:8000") as client:
        yield client, searcher, base.resolve()


def _swap_album(base, link: bool) -> None:
    album = base / "photos" / "album"
    if link:
        album.rename(base / "photos" / "album.real")
        album.symlink_to(base / "outside", target_is_directory=True)
    else:
        album.unlink()
        (base / "photos" / "album.real").rename(album)


def test_a_folder_swapped_for_a_link_after_the_check_is_never_opened(swapped, monkeypatch):
    """The check passes on the real folder; the link appears before the open: refused."""
    _, searcher, base = swapped
    target = base / "photos" / "album" / "a.png"
    check = files.servable_path

    def check_then_swap(candidate, roots):
        real = check(candidate, roots)
        _swap_album(base, link=True)
        return real

    monkeypatch.setattr(files, "servable_path", check_then_swap)
    try:
        with pytest.raises(NotServable):
            open_servable(searcher.path_of(str(target)), searcher.roots)
    finally:
        _swap_album(base, link=False)
    monkeypatch.undo()
    fd, st = open_servable(searcher.path_of(str(target)), searcher.roots)
    try:
        assert os.read(fd, st.st_size) == target.read_bytes()
    finally:
        os.close(fd)


def test_fetching_while_a_folder_is_swapped_for_a_link_never_serves_the_outside_file(swapped):
    client, _, base = swapped
    inside = (base / "photos" / "album" / "a.png").read_bytes()
    outside = (base / "outside" / "a.png").read_bytes()
    url = f"/api/file/{quote(str(base / 'photos' / 'album' / 'a.png'), safe='')}"
    thumb = url.replace("/api/file/", "/api/thumb/") + "?size=128"
    stop = threading.Event()

    def swapper():
        while not stop.is_set():
            _swap_album(base, link=True)
            _swap_album(base, link=False)

    thread = threading.Thread(target=swapper)
    thread.start()
    served, refused = 0, 0
    try:
        for i in range(400):
            r = client.get(url if i % 2 else thumb)
            if r.status_code == 200:
                served += 1
                assert r.content != outside
                if i % 2:
                    assert r.content == inside
                else:  # a thumbnail of the inside photo: green, never magenta
                    px = Image.open(io.BytesIO(r.content)).convert("RGB").getpixel((5, 5))
                    assert px[1] > 150 and px[0] < 100, px
            else:
                assert r.status_code == 404, r.status_code
                refused += 1
    finally:
        stop.set()
        thread.join()
    assert served + refused == 400 and served > 0


def test_a_file_response_reads_what_was_opened_even_if_the_name_changes_after(swapped):
    client, searcher, base = swapped
    target = base / "photos" / "album" / "a.png"
    from drc_jax.search.server import OpenedFileResponse

    fd, st = open_servable(searcher.path_of(str(target)), searcher.roots)
    response = OpenedFileResponse(fd, st, str(target))
    assert response.media_type == "image/png"
    _swap_album(base, link=True)  # the name now leads outside; the response still has the inode
    try:
        from starlette.applications import Starlette
        from starlette.routing import Route

        app = Starlette(routes=[Route("/", lambda request: response)])
        body = TestClient(app).get("/").content
    finally:
        _swap_album(base, link=False)
    assert body == target.read_bytes()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed once sent


def test_a_thumbnail_over_the_pixel_cap_is_refused_with_413_before_decoding(tmp_path, monkeypatch):
    from drc_jax.clip import load_clip
    from drc_jax.search import Searcher, build_index

    (tmp_path / "photos").mkdir()
    big = tmp_path / "photos" / "big.png"
    Image.new("RGB", (1200, 1000), (1, 2, 3)).save(big)  # 1.2 Mpx: over the cap set below
    Image.new("RGB", (300, 200), (1, 2, 3)).save(tmp_path / "photos" / "small.png")
    build_index(
        tmp_path / "photos",
        tmp_path / "index",
        weights=WEIGHTS,
        clip=load_clip(WEIGHTS),
        progress=False,
    )
    shutil.rmtree(tmp_path / "index" / "thumbs", ignore_errors=True)  # none kept from indexing
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(
        Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self)
    )
    monkeypatch.setattr(thumbs.thumbnail, "__kwdefaults__", {"fd": None, "max_pixels": 1_000_000})
    client = TestClient(create_app(Searcher.open(tmp_path / "index")), base_url="http://127.0.0.1")
    r = client.get(f"/api/thumb/{quote(str(big.resolve()), safe='')}")
    assert r.status_code == 413
    assert "1200 x 1000 pixels is over the thumbnail limit of 1 Mpx" in r.json()["detail"]
    assert (1200, 1000) not in decoded
    small = client.get(f"/api/thumb/{quote(str((tmp_path / 'photos' / 'small.png').resolve()))}")
    assert small.status_code == 200
    assert client.get(f"/api/file/{quote(str(big.resolve()), safe='')}").status_code == 200


def test_large_jpegs_decode_at_a_reduced_scale_for_thumbnails(tmp_path, monkeypatch):
    photo = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (200, 100, 50)).save(photo, quality=80)
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(
        Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self)
    )
    out = Image.open(io.BytesIO(thumbs.thumbnail(photo, 256, max_pixels=2_000_000)))
    assert out.size == (256, 192)
    assert decoded and max(w * h for w, h in decoded) <= 1000 * 750  # 1/4 scale, not 12 Mpx


def test_concurrent_thumbnails_decode_at_most_the_semaphores_count_at_once(tmp_path, monkeypatch):
    for i in range(8):
        Image.new("RGB", (600, 400), (i, 0, 0)).save(tmp_path / f"{i}.png")
    live, peak, lock = [0], [0], threading.Lock()
    real_thumbnail = Image.Image.thumbnail
    gate = threading.Barrier(3, timeout=0.5)  # would pass only if 3 decodes ran at once

    def counting(self, *a, **k):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()
        try:
            return real_thumbnail(self, *a, **k)
        finally:
            with lock:
                live[0] -= 1

    monkeypatch.setattr(Image.Image, "thumbnail", counting)
    threads = [
        threading.Thread(target=thumbs.thumbnail, args=(tmp_path / f"{i}.png", 128))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


def test_indexing_decodes_within_a_pixel_budget_and_a_larger_image_decodes_alone(
    tmp_path, monkeypatch
):
    from drc_jax.clip import load_clip
    from drc_jax.media import embed as media_embed
    from drc_jax.media.embed import MediaEmbedder, PixelBudget

    for i in range(6):
        Image.new("RGB", (400, 300), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")  # 0.12 Mpx
    Image.new("RGB", (600, 500), (0, 0, 9)).save(tmp_path / "big.png")  # over the budget
    live, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(3, timeout=0.5)  # passes only if 3 decodes are in flight
    real_read = media_embed.read_image

    def counting(path, draft_size=None):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait()
        try:
            return real_read(path, draft_size)
        finally:
            with lock:
                live[0] -= 1

    monkeypatch.setattr(media_embed, "read_image", counting)
    clip = load_clip(WEIGHTS)
    with MediaEmbedder(clip, root=tmp_path, num_workers=8) as embedder:
        embedder.budget = PixelBudget(250_000)
        out = embedder.embed([*(f"{i}.png" for i in range(6)), "big.png"])
    assert out.failed == {} and len(out.keys) == 7
    assert peak[0] == 2
    assert embedder.budget.used == 0
