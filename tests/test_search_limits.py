"""Bounds on what one search request costs: concept counts bucketed and capped (a query with many
-terms compiles nothing new and cannot stall the server), and clear 4xx answers where the server
once answered 500."""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pytest
from fastapi.testclient import TestClient

from drc_jax.queries import queries_from_table
from drc_jax.scoring import METHODS, query_vectors, score_vectors
from drc_jax.search.query import CONCEPT_BUCKETS, MAX_CONCEPTS, TooManyConcepts, concept_bucket
from drc_jax.search.server import create_app
from tests.search_server_fixtures import build_server_index, open_warm_searcher

LOCAL = "http://127.0.0.1:8000"


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _lookup(d: int = 32):
    rng, table = np.random.default_rng(0), {}

    def lookup(texts):
        return np.stack([table.setdefault(t, _unit(rng.normal(size=d))) for t in texts])

    return lookup


def _rows(m: int) -> list[list[str]]:
    """A caption with ``m`` concepts, one with fewer, and one without negation."""
    extra = [t for i in range(1, m) for t in (f"n{i}", f"c{i}")]
    return [["a", "n0", "c0", "full", *extra], ["b", "x0", "y0", "full b", *extra[:2]], ["p"] * 4]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("m", [1, 2, 3, 5, 9])
def test_padding_the_concepts_to_a_bucket_leaves_every_score_unchanged(method, m):
    images = jax.numpy.asarray(_unit(np.random.default_rng(m).normal(size=(50, 32))))
    strength = [3, 1, 0]
    plain = queries_from_table(_lookup(), _rows(m), strength)
    padded = queries_from_table(_lookup(), _rows(m), strength, concepts=concept_bucket(m + 1))
    assert padded.neg.shape == (3, concept_bucket(m + 1), 32)
    np.testing.assert_allclose(
        score_vectors(images, query_vectors(method, padded)),
        score_vectors(images, query_vectors(method, plain)),
        atol=1e-6,
    )


def test_concept_counts_round_up_to_powers_of_two_and_past_the_cap_is_refused():
    assert [concept_bucket(m) for m in (0, 1, 2, 3, 4, 5, 8, 9, 16)] == [
        1,
        1,
        2,
        4,
        4,
        8,
        8,
        16,
        16,
    ]
    assert CONCEPT_BUCKETS[-1] == MAX_CONCEPTS == 16
    with pytest.raises(TooManyConcepts, match="at most 16"):
        concept_bucket(17)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("limits")
    _, index, _ = build_server_index(base)
    searcher = open_warm_searcher(index)
    with TestClient(create_app(searcher), base_url=LOCAL) as client:
        yield client, searcher, base, index


def _minus_terms(n: int) -> str:
    words = ["sofa", "car", "tree", "dog", "cat", "boat", "lamp", "bird", "chair", "cup", "bike",
             "kite", "hat", "shoe", "book", "door", "road", "bag", "fish", "ball"]  # fmt: skip
    return "a photo " + " ".join(f"-{w}" for w in words[:n])


def test_a_query_with_too_many_minus_terms_gets_a_clear_422(served):
    client, searcher, _, _ = served
    r = client.get("/api/search", params={"q": _minus_terms(17)})
    assert r.status_code == 422
    assert "excludes 17 concepts; at most 16" in r.json()["detail"]
    with pytest.raises(TooManyConcepts, match="excludes 17 concepts"):
        searcher.search(_minus_terms(17), k=3)
    assert client.get("/api/search", params={"q": _minus_terms(16), "k": 3}).status_code == 200


def test_many_minus_terms_compile_nothing_after_warm(served):
    """warm() compiled every concept bucket: 3 to 16 -terms reuse those programs."""
    client, _, _, _ = served
    compiles = []
    listening = [True]

    def on_event(event: str, duration: float, **_) -> None:
        if listening[0] and event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        for n in (3, 5, 7, 9, 12, 16):
            for method in METHODS:
                r = client.get("/api/search", params={"q": _minus_terms(n), "method": method})
                assert r.status_code == 200 and r.json()["decomposition"]["negs"][n - 1]
    finally:
        listening[0] = False
    assert compiles == []


def _tiny_index(base, monkeypatch, names=("a.png",)):
    from PIL import Image

    from drc_jax.clip import load_clip
    from drc_jax.search import Searcher, build_index

    monkeypatch.setenv("DRC_JAX_CACHE", str(base / "cache"))
    (base / "photos").mkdir()
    for i, name in enumerate(names):
        Image.new("RGB", (40, 30), (10 * i, 100, 50)).save(base / "photos" / name)
    clip = load_clip("random:test-tiny")
    build_index(base / "photos", base / "index", weights="random:test-tiny", clip=clip,
                progress=False)  # fmt: skip
    searcher = Searcher.open(base / "index", clip=clip)
    return searcher, TestClient(create_app(searcher), base_url=LOCAL)


def test_searching_an_empty_index_is_a_clear_409_not_a_500(tmp_path, monkeypatch):
    _, client = _tiny_index(tmp_path, monkeypatch, names=())
    r = client.get("/api/search", params={"q": "a dog"})
    assert r.status_code == 409
    assert "holds no images; run `python -m drc_jax.search index" in r.json()["detail"]
    assert client.get("/api/health").json()["images"] == 0


def test_health_after_the_index_folder_is_removed_is_a_clear_error_not_a_500(tmp_path, monkeypatch):
    _, client = _tiny_index(tmp_path, monkeypatch)
    assert client.get("/api/health").status_code == 200
    shutil.rmtree(tmp_path / "index")
    r = client.get("/api/health")
    assert r.status_code == 503 and r.json()["status"] == "error"
    assert "it was moved or deleted; rebuild it" in r.json()["detail"]


def test_a_file_whose_name_holds_a_newline_is_indexed_and_served(tmp_path, monkeypatch):
    searcher, client = _tiny_index(tmp_path, monkeypatch, names=("two\nlines.png", "b.png"))
    hits = client.get("/api/search", params={"q": "a photo", "k": 2}).json()["hits"]
    odd = next(h for h in hits if h["id"] == "two\nlines.png")
    assert odd["available"] is True and "%0A" in odd["file"]
    f = client.get(odd["file"])
    assert f.status_code == 200
    assert f.content == (tmp_path / "photos" / "two\nlines.png").read_bytes()
    assert client.get(odd["thumb"]).status_code == 200


@pytest.mark.slow
def test_search_query_with_too_many_minus_terms_is_an_error_message(tmp_path, monkeypatch):
    from tests.test_search_cli import cli

    _tiny_index(tmp_path, monkeypatch)
    proc = cli("query", "--index", str(tmp_path / "index"), _minus_terms(17))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: a query excludes 17 concepts; at most 16 can be searched" in proc.stderr


def test_a_smaller_k_is_served_by_the_top_k_already_compiled_not_a_new_one(tmp_path, monkeypatch):
    searcher, _ = _tiny_index(tmp_path, monkeypatch, names=[f"{i}.png" for i in range(20)])
    searcher.warm(k=24, concepts=(1,))  # k's bucket 64: runs at k = 20, every image
    wide = searcher.search("a photo", k=20, methods=METHODS)
    compiles = []
    listening = [True]

    def on_event(event: str, duration: float, **_) -> None:
        if listening[0] and event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        narrow = searcher.search("a photo", k=5, methods=METHODS)  # bucket 16: not compiled
    finally:
        listening[0] = False
    assert compiles == []
    for method in METHODS:
        assert [h.path for h in narrow[method][0].hits] == [
            h.path for h in wide[method][0].hits[:5]
        ]
