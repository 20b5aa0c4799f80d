"""The search server's JSON API and files, over HTTP (FastAPI's TestClient) on a real index."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from drc_jax.search.server import create_app, embed_upload, is_loopback
from tests.search_server_fixtures import build_server_index, open_warm_searcher


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root, index, outside = build_server_index(tmp_path_factory.mktemp("server"))
    searcher = open_warm_searcher(index)
    with TestClient(create_app(searcher), base_url="http://127.0.0.1:8000") as client:
        yield client, searcher, root, outside


def test_health_reports_size_freshness_and_model(served):
    client, searcher, root, _ = served
    h = client.get("/api/health").json()
    assert h["status"] == "ok"
    assert h["images"] == len(searcher.store) == 11  # 9 scenes, escape.png, the red image
    assert h["roots"] == [str(root.resolve())]
    assert h["model"].startswith("random:test-tiny") and h["random_weights"] is True
    assert h["last_indexed"] and h["last_indexed"].startswith("20")
    assert h["image_dtype"] == "bfloat16" and h["decomposer"] == "rules"


def test_health_counts_a_failure_recorded_in_the_same_generation(served, monkeypatch):
    """An index run records failures before its generation moves on: the count follows."""
    import drc_jax.search.server as server

    client, searcher, _, _ = served
    monkeypatch.setattr(server, "FAILED_TTL_S", 1e-9)  # every request a tick of its own
    before = client.get("/api/health").json()["failed"]
    keys = list(searcher.store._known())
    searcher.store.put_errors({"sha1:" + "f" * 40: ("1:1", "cannot identify image file")})
    try:
        assert client.get("/api/health").json()["failed"] == before + 1
    finally:
        searcher.store.prune(keys)
    assert client.get("/api/health").json()["failed"] == before


def test_search_returns_ranked_hits_equal_to_the_searcher_with_the_decomposition(served):
    client, searcher, _, _ = served
    r = client.get("/api/search", params={"q": "a dog not on a beach", "k": 5}).json()
    direct = searcher.search("a dog not on a beach", k=5)["drc"][0]
    assert [h["id"] for h in r["hits"]] == [h.id for h in direct.hits]
    np.testing.assert_allclose([h["score"] for h in r["hits"]], [h.score for h in direct.hits])
    assert [h["rank"] for h in r["hits"]] == [1, 2, 3, 4, 5]
    assert r["decomposition"]["aff"] == "a dog" and r["decomposition"]["neg"] == "a beach"
    assert r["overridden"] is False and r["method"] == "drc"
    assert r["hits"][0]["thumb"] == "/api/thumb/" + quote(r["hits"][0]["path"], safe="")
    everything = client.get("/api/search", params={"q": "a dog", "k": 11}).json()["hits"]
    available = {h["id"]: h["available"] for h in everything}
    assert len(available) == 11
    assert available.pop("escape.png") is False  # the symlink out of the root: never served
    assert all(available.values())


def test_each_method_scores_its_own_way(served):
    client, _, _, _ = served
    q = {"q": "a cat without a street", "k": 11}
    by_method = {m: client.get("/api/search", params={**q, "method": m}).json() for m in
                 ("drc", "clip", "spacevlm")}  # fmt: skip
    scores = {m: [h["score"] for h in r["hits"]] for m, r in by_method.items()}
    assert not np.allclose(scores["drc"], scores["clip"])
    assert not np.allclose(scores["spacevlm"], scores["clip"])
    for r in by_method.values():
        assert len(r["hits"]) == 11 and sorted(h["id"] for h in r["hits"]) == sorted(
            h["id"] for h in by_method["clip"]["hits"]
        )


def test_overrides_replace_the_decomposers_split(served):
    client, searcher, _, _ = served
    from drc_jax.decompose import Decomposition

    r = client.get(
        "/api/search", params={"q": "a cat", "neg": "a sofa", "k": 4, "strength": "weak"}
    ).json()
    assert r["decomposed"]["negated"] is False  # the decomposer saw no negation ...
    d = r["decomposition"]  # ... the user's exclusion made one
    assert (d["caption"], d["negated"], d["aff"], d["neg"], d["cf"], d["strength"]) == (
        "a cat", True, "a cat", "a sofa", "a cat with a sofa", "weak"
    )  # fmt: skip
    assert r["overridden"] is True
    used = Decomposition.from_dict(d)
    direct = searcher.search(["a cat"], k=4, decompositions=[used])["drc"][0]
    assert [h["id"] for h in r["hits"]] == [h.id for h in direct.hits]
    plain = searcher.search(["a cat"], k=4)["drc"][0]  # without the override: plain CLIP
    assert not np.allclose([h["score"] for h in r["hits"]], [h.score for h in plain.hits])

    cleared = client.get("/api/search", params={"q": "a dog not on a beach", "neg": ""}).json()
    assert cleared["decomposition"]["negated"] is False  # neg="" removes the negation
    assert cleared["decomposition"]["aff"] == "a dog not on a beach"  # plain CLIP of the query

    aff = client.get("/api/search", params={"q": "a dog not on a beach", "aff": "a cat"}).json()
    assert (aff["decomposition"]["aff"], aff["decomposition"]["neg"]) == ("a cat", "a beach")
    empty = client.get("/api/search", params={"q": "no people", "aff": ""}).json()
    assert empty["decomposition"]["aff"] == "a photo"  # a neutral affirmative, not ""


def test_minus_terms_in_the_query_name_the_concept_to_exclude(served):
    client, _, _, _ = served
    r = client.get("/api/search", params={"q": "cat -sofa", "k": 3}).json()
    d = r["decomposition"]
    assert (d["negated"], d["aff"], d["neg"], d["strength"]) == (True, "cat", "a sofa", "strong")
    assert r["overridden"] is False and len(r["hits"]) == 3


@pytest.mark.parametrize(
    "params, message",
    [
        ({"q": ""}, "at least 1 character"),
        ({"q": "   "}, "the query is empty"),
        ({"q": "a dog", "k": 0}, "greater than or equal to 1"),
        ({"q": "a dog", "k": 100000}, "less than or equal to 200"),
        ({"q": "a dog", "method": "bm25"}, "should match pattern"),
        ({"q": "a dog", "neg": "a cat", "strength": "huge"}, "strength must be one of"),
    ],
)
def test_bad_search_requests_get_422_with_the_reason(served, params, message):
    client, _, _, _ = served
    r = client.get("/api/search", params=params)
    assert r.status_code == 422
    assert message in str(r.json()["detail"])


def _url(kind: str, path) -> str:
    return f"/api/{kind}/{quote(str(path), safe='')}"  # percent-encoded, as the page gets it


def test_thumbnails_are_small_jpegs_and_files_are_the_originals(served):
    client, _, root, _ = served
    red = root.resolve() / "wide red.png"
    t = client.get(_url("thumb", red), params={"size": 128})
    assert t.status_code == 200 and t.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(t.content))
    assert img.format == "JPEG" and img.size == (40, 30)  # never enlarged
    scene = next(p for p in sorted(root.resolve().rglob("*.png")) if p.parent.name != "photos")
    small = client.get(_url("thumb", scene), params={"size": 128}).content
    assert Image.open(io.BytesIO(small)).size == (128, 96)  # 256 x 192 shrunk, aspect kept
    f = client.get(_url("file", scene))
    assert f.status_code == 200 and f.content == scene.read_bytes()
    assert client.get(f"/api/file{scene}").status_code == 200  # slashes need no encoding
    assert client.get(_url("thumb", red), params={"size": 99}).status_code == 422


@pytest.mark.parametrize(
    "attempt",
    [
        "{root}/../private/secret.png",  # traversal out of the root
        "{root}%2F..%2Fprivate%2Fsecret.png",  # ... with encoded slashes
        "{root}/%2E%2E/private/secret.png",  # ... with encoded dots
        "{root}/park/../../private/secret.png",  # through an indexed folder
        "{private}/secret.png",  # a file outside the roots, by its absolute path
        "%2Fetc%2Fpasswd",  # absolute, encoded
        "../../../../etc/passwd",  # relative traversal
        "{root}/escape.png",  # indexed, but a symlink that resolves outside the root
        "{root}/not-indexed.png",  # inside the root, but not in the index
        "wide%20red.png",  # an id instead of the path
    ],
)
def test_only_indexed_files_inside_the_roots_are_served(served, attempt):
    client, _, root, outside = served
    (root / "not-indexed.png").write_bytes((root / "wide red.png").read_bytes())
    target = attempt.format(root=root.resolve(), private=outside.parent)
    for kind in ("file", "thumb"):
        r = client.get(f"/api/{kind}/{target.lstrip('/')}")
        assert r.status_code == 404, (kind, attempt, r.status_code)
        assert outside.read_bytes() not in r.content


def test_the_page_and_its_scripts_are_served(served):
    client, _, _, _ = served
    page = client.get("/")
    assert page.status_code == 200 and 'id="search-form"' in page.text
    assert "/static/app.js" in page.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/api/search" in js.text
    assert client.get("/static/style.css").status_code == 200


def test_loopback_detection_guards_remote_binding():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    assert not is_loopback("example.org")


def test_servable_path_resolves_dots_and_symlinks_before_checking_containment(tmp_path):
    from drc_jax.search.files import NotServable, servable_path

    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "sub" / "a.jpg").write_bytes(b"a")
    (elsewhere / "b.jpg").write_bytes(b"b")
    (root / "linkdir").symlink_to(elsewhere, target_is_directory=True)
    (root / "inside_link.jpg").symlink_to(root / "sub" / "a.jpg")
    assert servable_path(root / "sub" / "a.jpg", [root]) == (root / "sub" / "a.jpg").resolve()
    assert servable_path(root / "inside_link.jpg", [root]) == (root / "sub" / "a.jpg").resolve()
    assert servable_path(root / "linkdir" / "b.jpg", [root, elsewhere]).name == "b.jpg"
    for bad in (
        root / ".." / "elsewhere" / "b.jpg",
        root / "linkdir" / "b.jpg",
        root / "sub",  # a folder, not a file
        root / "missing.jpg",
        None,  # not in the index
    ):
        with pytest.raises(NotServable):
            servable_path(bad, [root])


def test_a_warmed_server_compiles_nothing_for_an_everyday_query(served):
    """Searcher.warm compiled every shape a short query needs: the first request is warm."""
    import jax

    client, _, _, _ = served
    compiles = []
    listening = [True]

    def on_event(event: str, duration: float, **_) -> None:
        if listening[0] and event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        for q in ("a sunny park with no cars", "two puppies", "a red kite but not a bird"):
            for method in ("drc", "clip", "spacevlm"):
                assert client.get("/api/search", params={"q": q, "method": method}).is_success
                filtered = {"q": q, "method": method, "folder": "park"}  # a masked search
                assert client.get("/api/search", params=filtered).is_success
    finally:
        listening[0] = False
    assert compiles == []


def test_every_excluded_concept_is_reported_and_an_unedited_panel_reproduces_the_ranking(served):
    client, _, _, _ = served
    first = client.get("/api/search", params={"q": "dog -beach -sand", "k": 8}).json()
    d = first["decomposition"]
    assert d["negs"] == ["a beach", "sand"] and len(first["cfs"]) == 2
    echo = {"q": "dog -beach -sand", "k": 8, "aff": d["aff"], "neg": d["negs"]}
    again = client.get("/api/search", params={**echo, "strength": d["strength"]}).json()
    assert again["decomposition"] == d and again["overridden"] is False
    assert [h["path"] for h in again["hits"]] == [h["path"] for h in first["hits"]]
    assert [h["score"] for h in again["hits"]] == [h["score"] for h in first["hits"]]
    one = client.get("/api/search", params={**echo, "neg": ["a beach"]}).json()
    assert one["decomposition"]["negs"] == ["a beach"]


def test_clearing_every_exclusion_searches_the_edited_affirmative_text(served):
    client, searcher, _, _ = served
    r = client.get("/api/search", params={"q": "a dog not on a beach", "aff": "a puppy", "neg": ""})
    d = r.json()["decomposition"]
    assert (d["negated"], d["caption"], d["aff"]) == (False, "a puppy", "a puppy")
    plain = searcher.search("a puppy", k=24)["drc"][0]
    assert [h["path"] for h in r.json()["hits"]] == [h.path for h in plain.hits]


def test_pages_continue_the_ranking_and_say_when_more_remain(served):
    client, _, _, _ = served
    q = {"q": "a cat without a street"}
    whole = client.get("/api/search", params={**q, "k": 11}).json()
    first = client.get("/api/search", params={**q, "k": 4}).json()
    rest = client.get("/api/search", params={**q, "k": 8, "offset": 4}).json()
    paged = [h["path"] for h in first["hits"] + rest["hits"]]
    assert paged == [h["path"] for h in whole["hits"]] and len(paged) == 11
    assert [h["rank"] for h in rest["hits"]] == list(range(5, 12))
    assert first["more"] is True and rest["more"] is False and whole["total"] == 11


def test_a_filter_is_applied_inside_the_search_and_still_returns_k(served):
    client, _, root, _ = served
    park = {h["path"] for h in client.get("/api/search", params={"q": "a dog", "k": 11}).json()[
        "hits"] if "/park/" in h["path"]}  # fmt: skip
    r = client.get("/api/search", params={"q": "a dog", "k": 3, "folder": "park"}).json()
    assert len(r["hits"]) == 3 and {h["path"] for h in r["hits"]} <= park
    assert r["total"] == len(park)
    absolute = client.get(
        "/api/search", params={"q": "a dog", "k": 3, "folder": str(root / "park")}
    )
    assert [h["path"] for h in absolute.json()["hits"]] == [h["path"] for h in r["hits"]]
    red = client.get("/api/search", params={"q": "a dog", "k": 5, "name": "RED"}).json()
    assert [h["id"] for h in red["hits"]] == ["wide red.png"] and red["total"] == 1
    none = client.get("/api/search", params={"q": "a dog", "type": "video"}).json()
    assert none["hits"] == [] and none["total"] == 0
    dated = client.get("/api/search", params={"q": "a dog", "taken_after": "2000-01-01"}).json()
    assert len(dated["hits"]) == 11 and all(h["taken_source"] == "mtime" for h in dated["hits"])
    future = client.get("/api/search", params={"q": "a dog", "taken_before": "1999-12-31"})
    assert future.json()["total"] == 0
    bad = client.get(
        "/api/search", params={"q": "a", "taken_after": "2024-02-01", "taken_before": "2024-01-01"}
    )
    assert bad.status_code == 422 and "later than" in bad.text


def test_similar_to_an_indexed_photo_with_or_without_words(served):
    client, searcher, root, _ = served
    example = str(root.resolve() / "beach" / "dog_on_beach_0.png")
    alone = client.get("/api/search", params={"like": example, "k": 10}).json()
    assert len(alone["hits"]) == 10 and example not in [h["path"] for h in alone["hits"]]
    assert alone["total"] == 10 and alone["like"] == example
    direct = searcher.search(["a photo"], k=10, like=example)["drc"][0]
    assert [h["path"] for h in alone["hits"]] == [h.path for h in direct.hits]
    hidden = client.get("/api/search", params={"like": example, "q": "no people", "k": 10}).json()
    assert hidden["decomposition"]["negs"] == ["a person"]
    assert [h["score"] for h in hidden["hits"]] != [h["score"] for h in alone["hits"]]
    assert client.get("/api/search", params={"like": "/etc/passwd"}).status_code == 422
    assert client.get("/api/search", params={"k": 3}).status_code == 422


def test_the_first_screen_lists_the_newest_files(served):
    client, searcher, root, _ = served
    r = client.get("/api/recent", params={"k": 3}).json()["hits"]
    assert len(r) == 3 and all(h["taken_source"] == "mtime" for h in r)
    assert [h["taken"] for h in r] == sorted((h["taken"] for h in r), reverse=True)
    newest = max(searcher.catalogue.paths, key=lambda p: Path(p).lstat().st_mtime_ns)
    assert (
        r[0]["taken"] >= searcher.catalogue.facts(searcher.catalogue.paths.index(newest))["taken"]
    )


def test_a_text_only_server_loads_the_image_tower_for_an_uploaded_photo(served):
    client, searcher, root, _ = served
    assert searcher.clip.towers == ("text",)  # as `serve --nowatch` loads it
    photo = root / "beach" / "dog_on_beach_0.png"
    r = client.post("/api/upload", content=photo.read_bytes())
    assert r.status_code == 200, r.text
    assert client.get("/api/search", params={"like": r.json()["like"], "k": 3}).json()["hits"]
    # the image tower it loaded is the index's: the photo embeds as it was indexed
    got = embed_upload(searcher.image_clip(), photo.read_bytes(), searcher.info.preprocess)
    snap = searcher.snapshot()
    stored = np.asarray(snap.images[snap.catalogue.row_of_path(str(photo.resolve()))], np.float32)
    np.testing.assert_allclose(got, stored, atol=1e-2)
