"""Videos in the search app: segment rows at index time, a hit that says when, a poster frame."""

from __future__ import annotations

import io
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from drc_jax.search import Searcher, build_index
from drc_jax.search.catalogue import Filter
from drc_jax.search.server import create_app


class BrightClip:
    """A stand-in CLIP: an image embeds its brightness; the text "bright" is the bright end."""

    weights_id = "bright-clip"
    image_size = 8
    embed_dim = 2

    def __init__(self):
        self.frames_encoded = 0

    def preprocess(self, images, mode="spacevlm"):
        return np.stack([np.asarray(im.convert("L").resize((8, 8)), np.float32) for im in images])

    def encode_images(self, pixels):
        self.frames_encoded += len(pixels)
        b = np.asarray(pixels).reshape(len(pixels), -1).mean(1) / 255.0
        e = np.stack([b, 1.0 - b], 1)
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)

    def encode_videos(self, frames, renormalize=True):
        frames = np.asarray(frames)
        e = self.encode_images(frames.reshape(-1, *frames.shape[2:]))
        e = e.reshape(frames.shape[0], frames.shape[1], -1).mean(1)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def encode_texts(self, texts):
        e = np.asarray([[1.0, 0.05] if "bright" in t else [0.05, 1.0] for t in texts])
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


def write_video(path, levels_per_second, fps: int = 10, size=(32, 24), codec: str = "mpeg4"):
    """A video, one flat grey level per second."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for level in levels_per_second:
            img = np.full((size[1], size[0], 3), level, np.uint8)
            for _ in range(fps):
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def video_index(tmp_path_factory):
    base = tmp_path_factory.mktemp("video")
    root = base / "media"
    root.mkdir()
    for i, level in enumerate((90, 110, 130)):  # mid-grey photos: never "bright"
        Image.new("RGB", (40, 30), (level,) * 3).save(root / f"photo_{i}.png")
    write_video(root / "night_then_day.mp4", [20] * 8 + [250] * 4)  # bright from 8 s on
    clip = BrightClip()
    build_index(root, base / "index", clip=clip, progress=False)
    return root, base / "index", clip


def test_a_video_hit_names_its_best_segment_and_appears_once(video_index):
    root, index, _ = video_index
    searcher = Searcher.open(index, clip=BrightClip())
    keys = searcher.store.vectors()[0]
    assert sorted(k.rpartition("=")[2] for k in keys if "#t=" in k) == ["0.000", "4.000", "8.000"]
    hits = searcher.search("bright", k=10)["drc"][0].hits
    assert hits[0].path == str(root.resolve() / "night_then_day.mp4") and hits[0].time == 8.0
    assert len(hits) == 4 and len({h.path for h in hits}) == 4  # the video once, 3 photos
    assert all(h.time is None for h in hits[1:])
    dark = searcher.search("dark", k=1)["drc"][0].hits[0]
    assert dark.id == "night_then_day.mp4" and dark.time in (0.0, 4.0)
    only = searcher.search("bright", k=10, where=Filter(type="image"))["drc"][0]
    assert [h.id for h in only.hits] == ["photo_2.png", "photo_1.png", "photo_0.png"]


def test_reindexing_an_unchanged_video_embeds_no_segment_again(video_index, tmp_path):
    root, index, clip = video_index
    before = clip.frames_encoded
    report = build_index(root, index, clip=clip, progress=False)
    assert report.embedded == 0 and clip.frames_encoded == before


def test_the_api_gives_a_video_hit_its_time_length_and_a_poster_jpeg(video_index):
    root, index, _ = video_index
    searcher = Searcher.open(index, clip=BrightClip())
    with TestClient(create_app(searcher), base_url="http://127.0.0.1:8000") as client:
        r = client.get("/api/search", params={"q": "bright", "k": 2}).json()
        video = r["hits"][0]
        assert (video["kind"], video["time"]) == ("video", 8.0)
        assert video["duration"] == pytest.approx(12.0, abs=0.5)
        assert r["hits"][1]["kind"] == "image" and r["hits"][1]["time"] is None
        poster = client.get(video["thumb"], params={"size": 128})
        assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
        img = Image.open(io.BytesIO(poster.content))
        assert img.format == "JPEG" and img.size == (32, 24)
        assert np.asarray(img).mean() < 60  # the dark first second, not a broken image
        at = client.get(video["thumb"], params={"size": 128, "t": video["time"]})
        assert np.asarray(Image.open(io.BytesIO(at.content))).mean() > 200  # the bright match
        assert client.get("/api/health").json()["images"] == 4  # files, not segment rows
        only = client.get("/api/search", params={"q": "bright", "type": "video"}).json()
        assert [h["id"] for h in only["hits"]] == ["night_then_day.mp4"] and only["total"] == 1
        f = client.get(f"/api/file/{quote(video['path'], safe='')}")
        assert f.status_code == 200 and f.content[4:8] == b"ftyp"


def test_thumbnails_are_written_at_index_time_and_served_from_disk(tmp_path):
    from drc_jax.search import thumbs

    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (1600, 400), (10, 200, 30)).save(root / "panorama.png")  # 4:1
    build_index(root, tmp_path / "index", clip=BrightClip(), progress=False)
    cached = list((tmp_path / "index" / "thumbs").rglob("*.jpg"))
    assert len(cached) == 1 and Image.open(cached[0]).size == (512, 128)  # aspect kept
    searcher = Searcher.open(tmp_path / "index", clip=BrightClip())
    thumbs._thumbnail.cache_clear()
    (root / "panorama.png").write_bytes(b"")  # the original unreadable: only the cache can answer
    import os

    os.utime(root / "panorama.png", ns=(1, 1))
    with TestClient(create_app(searcher), base_url="http://127.0.0.1:8000") as client:
        hit = client.get("/api/search", params={"q": "green"}).json()["hits"][0]
        r = client.get(hit["thumb"], params={"size": 256})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (256, 64)


def test_an_uploaded_photo_is_searched_by_example(video_index):
    root, index, _ = video_index
    searcher = Searcher.open(index, clip=BrightClip())
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (250, 250, 250)).save(buf, format="PNG")
    with TestClient(create_app(searcher), base_url="http://127.0.0.1:8000") as client:
        like = client.post("/api/upload", content=buf.getvalue()).json()["like"]
        assert like.startswith("upload:")
        hits = client.get("/api/search", params={"like": like, "k": 4}).json()["hits"]
        assert hits[0]["id"] == "night_then_day.mp4" and hits[0]["time"] == 8.0  # the bright part
        assert len(hits) == 4  # an upload is no indexed file: nothing is left out
        bad = client.post("/api/upload", content=b"not an image")
        assert bad.status_code == 422 and "not a readable image" in bad.text
        gone = client.get("/api/search", params={"like": "upload:" + "0" * 40})
        assert gone.status_code == 422 and "upload the photo again" in gone.text


def test_identical_files_are_one_hit_listing_the_other_paths(tmp_path):
    root = tmp_path / "media"
    (root / "copies").mkdir(parents=True)
    Image.new("RGB", (30, 20), (240, 240, 240)).save(root / "white.png")
    (root / "copies" / "white again.png").write_bytes((root / "white.png").read_bytes())
    Image.new("RGB", (30, 20), (20, 20, 20)).save(root / "black.png")
    build_index(root, tmp_path / "index", clip=BrightClip(), progress=False)
    searcher = Searcher.open(tmp_path / "index", clip=BrightClip())
    assert searcher.catalogue.files == 3 and len(searcher.catalogue) == 2
    hits = searcher.search("bright", k=5)["drc"][0].hits
    assert [h.id for h in hits] == ["copies/white again.png", "black.png"]
    assert hits[0].duplicates == (str(root.resolve() / "white.png"),)
    only = searcher.search("bright", k=5, where=Filter(folder="/"))["drc"][0].hits
    assert only[0].duplicates == hits[0].duplicates  # an absolute "/" folder: every file
    top = searcher.search("bright", k=5, where=Filter(name="white.png"))["drc"][0].hits
    assert [h.id for h in top] == ["white.png"] and top[0].duplicates == ()  # filtered copy shown
