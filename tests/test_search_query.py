"""Searching an index: negation moves results away from the negated concept; batching; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from drc_jax.figures import GREEN, RED
from drc_jax.search import Searcher, build_index, path_mentions, render_search_figure, search
from tests.conftest import run_with_devices
from tests.scenes import make_scene_folder

# Colours drawn by tests.scenes, and the concept each one shows.
CONCEPT_COLOURS = {
    "dog": (130, 85, 45),
    "cat": (120, 120, 125),
    "beach": (235, 210, 150),
    "park": (80, 160, 70),
    "street": (90, 90, 95),
}
CONCEPTS = list(CONCEPT_COLOURS)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class ConceptClip:
    """A stand-in CLIP whose embedding space is known: one axis per concept plus a shared one.

    An image embeds the concepts whose colour it shows; a text the concept words it contains. So
    "a dog, but no beach" (the full caption) is closest to dogs on beaches, and only a method that
    understands the negation ranks dogs elsewhere first.
    """

    weights_id = "concept-clip"
    image_size = 64
    embed_dim = len(CONCEPTS) + 1

    def preprocess(self, images, mode="spacevlm"):
        return np.stack(
            [np.asarray(im.convert("RGB").resize((64, 64), Image.NEAREST)) for im in images]
        )

    def encode_images(self, pixels):
        feats = []
        for px in np.asarray(pixels):
            frac = [
                (np.abs(px.astype(int) - c).sum(-1) < 6).mean() for c in CONCEPT_COLOURS.values()
            ]
            # presence, plus a tiny layout-dependent term so that no two scenes tie
            feats.append([float(f > 0.01) * (1 + 0.05 * f) for f in frac] + [0.5])
        return _unit(np.asarray(feats))

    def encode_texts(self, texts):
        rows = [[float(c in t.lower()) for c in CONCEPTS] + [0.5] for t in texts]
        return _unit(np.asarray(rows))


class CountingRules:
    """The rule decomposer, counting how often (and with how many captions) it is called."""

    def __init__(self):
        from drc_jax.decompose import get_decomposer

        self._d = get_decomposer("rules")
        self.calls: list[int] = []

    def decompose(self, captions):
        self.calls.append(len(captions))
        return self._d.decompose(captions)

    @property
    def stats(self):
        return self._d.stats


@pytest.fixture(scope="module")
def concept_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    contents = make_scene_folder(root, per_combination=2)
    index = root.parent / "concept_index"
    build_index(root, index, clip=ConceptClip(), progress=False)
    return index, contents


def test_drc_ranks_the_subject_away_from_the_negated_place_while_clip_does_not(concept_index):
    index, contents = concept_index
    searcher = Searcher.open(index, clip=ConceptClip())
    out = searcher.search("a dog, but no beach", k=4, methods=("clip", "drc"))
    clip_top = [contents[h.id] for h in out["clip"][0].hits]
    drc_top = [contents[h.id] for h in out["drc"][0].hits]
    assert clip_top[:2] == [("dog", "beach")] * 2  # CLIP matches the words, negation ignored
    assert all(subject == "dog" and place != "beach" for subject, place in drc_top)
    dec = out["drc"][0].decomposition
    assert (dec.negated, dec.neg) == (True, "a beach")


def test_query_without_negation_is_plain_clip(concept_index):
    index, _ = concept_index
    searcher = Searcher.open(index, clip=ConceptClip())
    out = searcher.search("a cat in a park", k=5, methods=("clip", "drc"))
    assert not out["drc"][0].decomposition.negated
    assert [h.id for h in out["drc"][0].hits] == [h.id for h in out["clip"][0].hits]
    np.testing.assert_allclose(
        [h.score for h in out["drc"][0].hits], [h.score for h in out["clip"][0].hits], atol=1e-6
    )


def test_several_queries_are_decomposed_and_scored_as_one_batch(concept_index):
    index, contents = concept_index
    decomposer = CountingRules()
    searcher = Searcher.open(index, clip=ConceptClip(), decomposer=decomposer)
    queries = ["a cat, but no street", "a dog without a park", "a beach"]
    results = searcher.search(queries, k=3)["drc"]
    assert decomposer.calls == [3]
    assert [r.query for r in results] == queries
    assert all(contents[h.id] == ("cat", contents[h.id][1]) for h in results[0].hits)
    assert all(contents[h.id][1] != "street" for h in results[0].hits)
    for r in results:
        scores = [h.score for h in r.hits]
        assert scores == sorted(scores, reverse=True) and [h.rank for h in r.hits] == [1, 2, 3]
        assert all(h.path.endswith(h.id) for h in r.hits)
    json.dumps([r.to_dict() for r in results])  # JSON-ready


def test_search_function_matches_searcher(concept_index):
    index, _ = concept_index
    a = search(index, ["a dog, but no beach"], k=3, clip=ConceptClip())[0]
    b = Searcher.open(index, clip=ConceptClip()).search("a dog, but no beach", k=3)["drc"][0]
    assert [h.id for h in a.hits] == [h.id for h in b.hits]


def test_loading_other_weights_than_the_index_was_built_with_is_refused(concept_index):
    index, _ = concept_index

    class Other(ConceptClip):
        weights_id = "other-weights"

    with pytest.raises(ValueError, match="built with weights 'concept-clip'"):
        Searcher.open(index, clip=Other())


def test_empty_index_says_to_run_index_first(tmp_path):
    (tmp_path / "empty").mkdir()
    build_index(tmp_path / "empty", tmp_path / "index", clip=ConceptClip(), progress=False)
    with pytest.raises(ValueError, match="holds no images"):
        search(tmp_path / "index", "a dog", clip=ConceptClip())


def test_path_hint_names_the_negated_concept():
    assert path_mentions("beach/dog_on_beach_0.png", "a beach") is True
    assert path_mentions("park/dog_on_park_0.png", "a beach") is False
    assert path_mentions("trips/Beaches/IMG_1.jpg", "the beach") is True
    assert path_mentions("pets/Puppies/1.jpg", "a puppy") is True
    assert path_mentions("street/bus_glass.png", "glasses") is True
    assert path_mentions("red_car.png", "a red bus") is False  # every content word must appear
    assert path_mentions("x.png", "") is None


def test_search_figure_has_clip_and_drc_rows_with_path_hint_borders(concept_index, tmp_path):
    index, _ = concept_index
    searcher = Searcher.open(index, clip=ConceptClip())
    out = searcher.search("a dog, but no beach", k=4, methods=("clip", "drc"))
    path = render_search_figure(
        tmp_path / "fig.png",
        {"clip": out["clip"][0], "drc": out["drc"][0]},
        hint_from_path=True,
    )
    arr = np.asarray(Image.open(path).convert("RGB"))
    h = arr.shape[0]
    top, bottom = arr[: h // 2], arr[h // 2 : h - 70]  # the rows, without the legend

    def n(a, c):
        return int((a == np.asarray(c)).all(-1).sum())

    assert n(top, RED) > 1000  # CLIP's row: dogs on beaches, red borders
    assert n(bottom, GREEN) > 4 * 1000 and n(bottom, RED) == 0  # DRC's row: all green


def test_sharded_search_matches_single_device(concept_index):
    index, _ = concept_index
    code = f"""
    import json, jax
    from tests.test_search_query import ConceptClip
    from drc_jax.search import Searcher
    assert jax.local_device_count() == 8
    s = Searcher.open({str(index)!r}, clip=ConceptClip())
    out = s.search(["a dog, but no beach", "a cat", "a park without a cat"], k=5,
                   methods=("clip", "drc"))
    print(json.dumps({{m: [[(h.id, h.score) for h in r.hits] for r in rs]
                      for m, rs in out.items()}}))
    """
    sharded = json.loads(run_with_devices(code).strip().splitlines()[-1])
    single = Searcher.open(index, clip=ConceptClip()).search(
        ["a dog, but no beach", "a cat", "a park without a cat"], k=5, methods=("clip", "drc")
    )
    for m, rs in single.items():
        for r, s in zip(rs, sharded[m], strict=True):
            np.testing.assert_allclose([h.score for h in r.hits], [x[1] for x in s], atol=1e-5)
            assert [h.id for h in r.hits] == [x[0] for x in s]


def test_many_queries_stream_and_rank_as_a_few_do(concept_index, monkeypatch):
    """A batch whose score matrix exceeds retrieval's one-pass budget is streamed chunk by chunk;
    its rankings equal those of a few queries searched in one pass."""
    from drc_jax import retrieval

    index, _ = concept_index
    searcher = Searcher.open(index, clip=ConceptClip())
    few = ["a dog, but no beach", "a cat", "a park without a cat"]
    many = few + [f"a street without a dog {i}" for i in range(16)]
    n = len(searcher._device_images()[0])
    # One pass for <= 2 * len(few) GEMM rows, streamed 2 images at a time beyond.
    monkeypatch.setattr(retrieval, "ONE_PASS_SCORES", 2 * len(few) * n)
    monkeypatch.setattr(retrieval, "DEFAULT_CHUNK", 2)
    plans = []
    plan = retrieval._plan
    monkeypatch.setattr(retrieval, "_plan", lambda *a: plans.append(plan(*a)) or plans[-1])
    direct = searcher.search(few, k=5, methods=("clip", "drc"))
    streamed = searcher.search(many, k=5, methods=("clip", "drc"))
    assert [p[0] for p in plans] == [n, n, 2, 2]  # chunk: one pass, then streamed
    for m in ("clip", "drc"):
        for a, b in zip(direct[m], streamed[m][: len(few)], strict=True):
            assert [h.id for h in a.hits] == [h.id for h in b.hits]
            np.testing.assert_allclose(
                [h.score for h in a.hits], [h.score for h in b.hits], atol=1e-6
            )


def test_repeated_texts_are_encoded_once(concept_index):
    index, _ = concept_index

    class CountingClip(ConceptClip):
        encoded: list[str] = []

        def encode_texts(self, texts):
            self.encoded.extend(texts)
            return super().encode_texts(texts)

    clip = CountingClip()
    searcher = Searcher.open(index, clip=clip)
    searcher.search("a dog, but no beach", k=3)
    assert len(clip.encoded) == 4  # aff, neg, cf, full
    # CLIP's column scores the raw caption (the launcher's CLIP baseline): one new text.
    searcher.search("a dog, but no beach", k=3, methods=("clip", "drc"))
    assert clip.encoded[4:] == ["a dog, but no beach"]
    searcher.search("a dog without a beach", k=3)  # same aff / neg / cf, a new full caption
    assert clip.encoded[5:] == ["A photo of a dog without a beach"]


def test_search_by_example_ranks_by_the_example_and_hides_the_text_concepts(concept_index):
    from drc_jax.decompose import Decomposition
    from drc_jax.search.example import example_queries

    index, contents = concept_index
    searcher = Searcher.open(index, clip=ConceptClip())
    root = searcher.info.root
    example = next(
        str(root / p) for p, (s, place) in contents.items() if (s, place) == ("dog", "beach")
    )
    plain = Decomposition.plain("a photo")
    hits = searcher.search(["a photo"], k=5, decompositions=[plain], like=example)["drc"][0].hits
    assert example not in [h.path for h in hits]  # never its own result
    assert contents[hits[0].id] == ("dog", "beach")  # its twin, the other dog on a beach
    # Plain "like": an empty beach (shares the beach) outranks a dog in a park or street ...
    liked = searcher.search(["a photo"], k=17, decompositions=[plain], like=example)["drc"][0]
    order = [contents[h.id] for h in liked.hits]
    assert order.index((None, "beach")) < order.index(("dog", "street"))
    # ... "like this, but no beach": every dog elsewhere outranks every other beach scene.
    no_beach = [
        contents[h.id] for h in searcher.search("no beach", k=17, like=example)["drc"][0].hits
    ]
    elsewhere = [i for i, c in enumerate(no_beach) if c[0] == "dog" and c[1] != "beach"]
    beaches = [i for i, c in enumerate(no_beach) if c[0] != "dog" and c[1] == "beach"]
    assert max(elsewhere) < min(beaches)

    # The definition (example.py): aff = full = x, cf = unit(aff + neg), concepts unchanged.
    from drc_jax.queries import embed_queries

    dec = searcher.decomposer.decompose(["a photo without a beach"])[0]
    q = embed_queries(searcher.encode_texts, [dec])
    x = np.zeros(q.aff.shape[-1], np.float32)
    x[0] = 1.0
    e = example_queries(q, x, np.asarray([False]))
    np.testing.assert_allclose(np.asarray(e.aff)[0], x)
    np.testing.assert_allclose(np.asarray(e.full), np.asarray(e.aff))
    np.testing.assert_allclose(np.asarray(e.neg), np.asarray(q.neg))
    cf = x + np.asarray(q.neg)[0]
    np.testing.assert_allclose(np.asarray(e.cf)[0], cf / np.linalg.norm(cf), atol=1e-6)
    with pytest.raises(ValueError, match="not a file of index"):
        searcher.search("a dog", like="/nowhere.png")
