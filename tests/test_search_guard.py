"""The search server admits only the Host names it was started for, and with --allow_remote only
clients holding its token; refused requests reach no handler (FastAPI's TestClient, a real app)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from drc_jax.search.guard import Access, split_host
from drc_jax.search.server import create_app
from tests.search_server_fixtures import build_server_index, open_warm_searcher

PORT = 8000
LOCAL = f"http://127.0.0.1:{PORT}"


class CountingSearcher:
    """Counts every use, so a test can assert a refused request ran nothing."""

    def __init__(self, searcher):
        self._searcher, self.uses = searcher, 0

    def __getattr__(self, name):
        self.uses += 1
        return getattr(self._searcher, name)


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    _, index, _ = build_server_index(tmp_path_factory.mktemp("guard"))
    return open_warm_searcher(index)


def _client(searcher, access: Access, base_url: str = LOCAL) -> tuple[TestClient, CountingSearcher]:
    counting = CountingSearcher(searcher)
    app = create_app(counting, access=access)
    counting.uses = 0  # create_app reads searcher.info
    return TestClient(app, base_url=base_url), counting


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:8000",  # a page whose DNS name rebinds to 127.0.0.1
        "evil.example",
        "127.0.0.1.evil.example:8000",
        "localhost:9999",  # the right name, another port
        "127.0.0.1:8000@evil.example",
        "",
    ],
)
def test_a_foreign_host_is_refused_before_any_handler_runs(searcher, host):
    client, counting = _client(searcher, Access.loopback(PORT))
    for path in ("/api/health", "/api/search?q=a+dog", "/", "/static/app.js", "/api/file/x.png"):
        r = client.get(path, headers={"host": host})
        assert r.status_code == 421, (host, path)
        assert "does not answer to the Host" in r.json()["detail"]
    assert counting.uses == 0


def test_a_rebinding_style_request_to_127_0_0_1_gets_nothing(searcher):
    """The browser connects to 127.0.0.1 but sends the attacker's name as Host."""
    client, counting = _client(searcher, Access.loopback(PORT), "http://evil.example:8000")
    r = client.get("/api/search", params={"q": "a dog"})
    assert r.status_code == 421 and "hits" not in r.text
    assert client.get("/api/health").status_code == 421
    assert counting.uses == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST:8000"]
)
def test_loopback_names_with_the_bound_port_are_served(searcher, host):
    client, _ = _client(searcher, Access.loopback(PORT))
    r = client.get("/api/health", headers={"host": host})
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_requests_from_another_sites_page_are_refused(searcher):
    client, counting = _client(searcher, Access.loopback(PORT))
    for headers in (
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:3000"},  # another local server's page
        {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"},  # <img src=...>
        {"sec-fetch-site": "same-site", "sec-fetch-mode": "cors"},
    ):
        r = client.get("/api/search", params={"q": "a dog"}, headers=headers)
        assert r.status_code == 403, headers
    assert counting.uses == 0
    own = {"origin": LOCAL, "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors"}
    assert client.get("/api/search", params={"q": "a dog"}, headers=own).status_code == 200
    link = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    assert client.get("/", headers=link).status_code == 200  # a link to the page still opens


def test_a_remote_request_without_the_token_is_refused(searcher):
    access = Access.remote("192.0.2.7", PORT, token="s3cret-token")
    client, counting = _client(searcher, access, f"http://192.0.2.7:{PORT}")
    for path in ("/", "/api/health", "/api/search?q=a+dog", "/api/file/x.png"):
        r = client.get(path)
        assert r.status_code == 401 and "access token" in r.json()["detail"], path
        assert r.headers["www-authenticate"] == "Bearer"
    for wrong in ({"x-drc-token": "s3cret-tokeX"}, {"authorization": "Bearer nope"},
                  {"cookie": "drc_token=nope"}):  # fmt: skip
        assert client.get("/api/health", headers=wrong).status_code == 401
    assert client.get("/api/health", params={"token": "s3cret"}).status_code == 401
    assert counting.uses == 0


def test_a_remote_request_with_the_token_in_a_header_is_served(searcher):
    access = Access.remote("192.0.2.7", PORT, token="s3cret-token")
    client, _ = _client(searcher, access, f"http://192.0.2.7:{PORT}")
    for headers in ({"x-drc-token": "s3cret-token"}, {"authorization": "Bearer s3cret-token"}):
        r = client.get("/api/search", params={"q": "a dog", "k": 3}, headers=headers)
        assert r.status_code == 200 and len(r.json()["hits"]) == 3
        assert "set-cookie" not in r.headers


def test_opening_the_printed_url_sets_a_cookie_and_the_pages_requests_keep_working(searcher):
    access = Access.remote("192.0.2.7", PORT, token="s3cret-token")
    assert access.url("192.0.2.7") == f"http://192.0.2.7:{PORT}/?token=s3cret-token"
    client, _ = _client(searcher, access, f"http://192.0.2.7:{PORT}")
    page = client.get("/?token=s3cret-token")
    assert page.status_code == 200 and 'id="search-form"' in page.text
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("drc_token=s3cret-token;")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # What the page then asks for, carrying only the cookie (as the browser sends it).
    assert client.get("/static/app.js").status_code == 200
    hit = client.get("/api/search", params={"q": "a dog", "k": 2}).json()["hits"][0]
    assert client.get(hit["thumb"]).status_code == 200
    assert client.get(hit["file"]).status_code == 200
    client.cookies.clear()
    assert client.get("/api/health").status_code == 401


def test_remote_access_accepts_its_host_loopback_and_given_names_only(searcher):
    access = Access.remote("0.0.0.0", PORT, names=["photos.example.org"], token="t")
    assert access.accepts_host(f"photos.example.org:{PORT}")
    assert access.accepts_host(f"127.0.0.1:{PORT}")
    assert not access.accepts_host(f"evil.example:{PORT}")
    assert not access.accepts_host("photos.example.org:1234")
    assert "0.0.0.0" not in access.names
    assert access.url("0.0.0.0") == f"http://127.0.0.1:{PORT}/?token=t"


@pytest.mark.parametrize(
    "value, parsed",
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("[::1]:8000", ("[::1]", 8000)),
        ("[::1]", ("[::1]", None)),
        ("Example.ORG", ("example.org", None)),
        ("a:b", None),
        ("[::1]x", None),
        (":8000", None),
        ("a:0", None),
        ("a:99999", None),
    ],
)
def test_host_values_are_parsed_strictly(value, parsed):
    assert split_host(value) == parsed


# ------------------------------------------------------- roots: the user's, not the index's


@pytest.fixture
def own_index(tmp_path, monkeypatch):
    """``photos/`` (with ``photos/sub``) indexed by this user (its record under a private cache),
    and ``private/secret.png`` outside it, a file the user never indexed."""
    from PIL import Image

    from drc_jax.clip import load_clip
    from drc_jax.search import build_index

    monkeypatch.setenv("DRC_JAX_CACHE", str(tmp_path / "cache"))
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    Image.new("RGB", (32, 32), (0, 90, 30)).save(tmp_path / "photos" / "a.png")
    Image.new("RGB", (32, 32), (0, 30, 90)).save(tmp_path / "photos" / "sub" / "b.png")
    Image.new("RGB", (32, 32), (255, 0, 255)).save(tmp_path / "private" / "secret.png")
    clip = load_clip("random:test-tiny")
    build_index(tmp_path / "photos", tmp_path / "index", weights="random:test-tiny", clip=clip,
                progress=False)  # fmt: skip
    return tmp_path.resolve(), clip


def _craft(index, roots, name):
    from drc_jax.store import Store

    with Store.open(index, None) as store:
        names = store.names()
        store.set_names({**names, name: next(iter(names.values()))})
        store.set_setting("roots", roots)


def test_an_index_the_user_built_is_searched_and_served_without_naming_its_folders(own_index):
    from drc_jax.search import Searcher

    base, clip = own_index
    searcher = Searcher.open(base / "index", clip=clip)
    assert searcher.roots == [base / "photos"] and searcher.unconfirmed_roots == []
    hits = searcher.search("a photo", k=5, methods=("clip",))["clip"][0].hits
    assert sorted(h.id for h in hits) == ["a.png", "sub/b.png"]


def test_a_crafted_index_with_root_slash_serves_nothing_outside_what_the_user_indexed(own_index):
    from drc_jax.search import Searcher

    base, clip = own_index
    secret = base / "private" / "secret.png"
    _craft(base / "index", ["/"], str(secret))  # the index now claims all of "/"
    searcher = Searcher.open(base / "index", clip=clip)
    assert searcher.roots == [base / "photos"] and searcher.unconfirmed_roots == []
    hits = searcher.search("a photo", k=5, methods=("clip",))["clip"][0].hits
    assert sorted(h.path for h in hits) == [str(base / "photos" / "a.png"),
                                            str(base / "photos" / "sub" / "b.png")]  # fmt: skip
    assert sorted(h.id for h in hits) == ["a.png", "sub/b.png"]
    assert searcher.path_of(str(secret)) is None
    client = TestClient(create_app(searcher), base_url=LOCAL)
    for kind in ("file", "thumb"):
        r = client.get(f"/api/{kind}{secret}")
        assert r.status_code == 404 and secret.read_bytes() not in r.content
    assert client.get("/api/health").json()["roots"] == [str(base / "photos")]


def test_an_index_not_built_by_this_user_here_serves_only_folders_given_on_the_command_line(
    own_index,
):
    import shutil

    from drc_jax.search import Searcher

    base, clip = own_index
    shutil.copytree(base / "index", base / "shared")  # someone else's copy: nothing recorded
    with pytest.raises(ValueError, match=r"not built by you here.*pass --images FOLDER"):
        Searcher.open(base / "shared", clip=clip)
    sub = Searcher.open(base / "shared", clip=clip, roots=[base / "photos" / "sub"])
    assert sub.roots == [base / "photos" / "sub"]
    assert sub.unconfirmed_roots == []
    hits = sub.search("a photo", k=5, methods=("clip",))["clip"][0].hits
    assert [h.id for h in hits] == ["b.png"]  # ids relative to the confirmed folder
    with pytest.raises(ValueError, match="not confirmed"):
        Searcher.open(base / "shared", clip=clip, roots=[base / "private"])


@pytest.mark.slow
def test_search_query_on_an_unconfirmed_index_is_an_error_and_images_confirms_it(own_index):
    import shutil

    from tests.test_search_cli import cli

    base, _ = own_index
    shutil.copytree(base / "index", base / "shared")
    proc = cli("query", "--index", str(base / "shared"), "a photo", "--k", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "are not confirmed; pass --images FOLDER" in proc.stderr
    proc = cli("query", "--index", str(base / "shared"), "a photo", "--k", "5", "--json",
               "--images", str(base / "photos" / "sub"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    import json

    assert [h["id"] for h in json.loads(proc.stdout)["results"][0]["hits"]] == ["b.png"]
