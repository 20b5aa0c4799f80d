"""Search's CLIP / SpaceVLM / DRC columns rank exactly as the launcher's rows of those methods."""

from __future__ import annotations

import csv

import numpy as np

from drc_jax.decompose import get_decomposer, write_decompositions_jsonl
from drc_jax.launch import pipeline
from drc_jax.launch.pipeline import run
from drc_jax.search import Searcher, build_index
from drc_jax.search.index import indexed_files
from tests.scenes import make_scene_folder
from tests.test_launch_end_to_end import TINY, options

QUERIES = ["a dog, but no beach", "a cat that is not in a park", "a dog on a street"]


def test_search_hits_are_the_launchers_rankings_for_the_same_decomposition_and_weights(tmp_path):
    photos = tmp_path / "photos"
    scenes = sorted(make_scene_folder(photos, per_combination=1))
    assert len(scenes) <= 10  # the launcher's top 10 is then each query's whole ranking
    clip = pipeline.load_clip_checked(TINY, "float32")
    # float32 vectors: the launcher renormalises --image_embeddings rows, and bf16-rounded rows
    # (the index's default) are unit-norm only to ~1e-3, enough to swap scenes 3e-5 apart
    build_index(photos, tmp_path / "index", clip=clip, progress=False, store_dtype="float32")
    searcher = Searcher.open(tmp_path / "index", clip=clip, decomposer="rules")
    decs = get_decomposer("rules").decompose(QUERIES)
    assert [d.negated for d in decs] == [True, True, False] and all(len(d.negs) < 2 for d in decs)
    hits = searcher.search(QUERIES, k=len(scenes), methods=("clip", "spacevlm", "drc"))

    # The same images, in the index's own embeddings, as a COCO-format benchmark.
    keys, vectors = searcher.store.vectors()
    files = indexed_files(searcher.store, searcher.roots)  # key -> (path, id)
    order = [files[k][1] for k in keys]
    np.save(tmp_path / "emb.npy", np.asarray(vectors, np.float32))
    with open(tmp_path / "photos.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["positive_objects", "negative_objects", "filepath", "image_id", "captions"])
        for i, rel in enumerate(order):
            caps = [QUERIES[i]] if i < len(QUERIES) else []
            w.writerow(["['x']", "[]", rel, str(i), repr(caps)])
    with open(tmp_path / "decs.jsonl", "w") as f:
        write_decompositions_jsonl(decs, f)
    run(
        options(tmp_path, rows=("clip", "spacevlm", "drc"), benchmark="coco",
                captions_csv=str(tmp_path / "photos.csv"), data_dir=str(photos),
                decompositions=str(tmp_path / "decs.jsonl"),
                image_embeddings=str(tmp_path / "emb.npy"))
    )  # fmt: skip
    rankings = np.load(tmp_path / "out" / "rankings.npz")
    for method in ("clip", "spacevlm", "drc"):
        launcher = [[order[i] for i in row] for row in rankings[f"{method}/top10"]]
        searched = [[h.id for h in r.hits] for r in hits[method]]
        assert searched == launcher, method
