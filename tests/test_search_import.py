"""``drc-search import --clip_retrieval``: clip-retrieval's output searched without re-embedding."""

from __future__ import annotations

import json

import faiss
import ml_dtypes
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from benchmarks.sphere import centres, clustered
from drc_jax.search import Searcher
from drc_jax.search.clip_retrieval import import_clip_retrieval, model_id
from tests.test_search_cli import cli

WEIGHTS = "random:test-tiny"


@pytest.fixture(scope="module")
def tiny_clip():
    from drc_jax.clip import load_clip

    return load_clip(WEIGHTS)


class NoImages:
    """A text tower that fails the test if anything asks it for an image embedding."""

    def __init__(self, clip):
        self._clip = clip

    def __getattr__(self, name):
        if name.startswith("encode_image") or name == "preprocess":
            raise AssertionError("import must not re-embed images")
        return getattr(self._clip, name)


def clip_retrieval_folder(tmp_path, dim: int, sizes=(700, 500), *, faiss_index=True):
    """clip-retrieval's inference output (float16 npy + parquet parts) and an autofaiss-like
    IVF inner-product index over all rows in order; a few of the images exist on disk."""
    out, photos = tmp_path / "cr", tmp_path / "photos"
    (out / "img_emb").mkdir(parents=True)
    (out / "metadata").mkdir()
    photos.mkdir()
    x, _ = clustered(sum(sizes), centres(16, dim), spread=0.8)
    paths = [str(photos / f"{i // 100}" / f"{i:05d}.jpg") for i in range(len(x))]
    for i in range(3):
        (photos / "0").mkdir(exist_ok=True)
        Image.new("RGB", (16, 16), (i * 80, 0, 0)).save(paths[i])
    start = 0
    for part, n in enumerate(sizes):
        np.save(out / "img_emb" / f"img_emb_{part}.npy", x[start : start + n].astype(np.float16))
        table = pa.table({"image_path": paths[start : start + n], "caption": ["c"] * n})
        pq.write_table(table, out / "metadata" / f"metadata_{part}.parquet")
        start += n
    if faiss_index:
        index = faiss.index_factory(dim, "IVF16,Flat", faiss.METRIC_INNER_PRODUCT)
        index.train(x)
        index.add(x)
        (out / "index").mkdir()
        faiss.write_index(index, str(out / "index" / "image.index"))
    return out, x, paths


def test_a_clip_retrieval_folder_is_searched_without_re_embedding(tmp_path, tiny_clip):
    folder, x, paths = clip_retrieval_folder(tmp_path, tiny_clip.embed_dim)
    n = import_clip_retrieval(
        folder, tmp_path / "idx", NoImages(tiny_clip), weights=WEIGHTS, clip_model=WEIGHTS
    )
    assert n == len(x)
    searcher = Searcher.open(tmp_path / "idx", clip=tiny_clip)
    status = searcher.ann_status()
    assert status["used"] and status["factory"].startswith("adopted:") and status["nlist"] == 16
    res = searcher.search("a dog not on a beach", k=10)["drc"][0]
    scan = searcher.search("a dog not on a beach", k=10, exact=True)["drc"][0]
    assert not res.exact and scan.exact and scan.candidates == len(x)
    assert len({h.path for h in res.hits} & {h.path for h in scan.hits}) >= 8
    # the stored vectors are clip-retrieval's rows (as bf16), under their own paths
    rows, array = searcher.store.rows()
    np.testing.assert_array_equal(array[:], x.astype(np.float16).astype(ml_dtypes.bfloat16))
    assert {h.path for h in scan.hits} <= set(paths)
    assert searcher.path_of(paths[0]) is not None and searcher.path_of("/etc/passwd") is None


def test_import_without_a_faiss_index_builds_one_on_request_or_scans(tmp_path, tiny_clip):
    folder, x, _ = clip_retrieval_folder(tmp_path, tiny_clip.embed_dim, faiss_index=False)
    import_clip_retrieval(folder, tmp_path / "a", tiny_clip, weights=WEIGHTS, clip_model=WEIGHTS)
    assert not Searcher.open(tmp_path / "a", clip=tiny_clip).ann_status()["used"]  # auto: small
    import_clip_retrieval(
        folder, tmp_path / "b", tiny_clip, weights=WEIGHTS, clip_model=WEIGHTS, ann="ivf"
    )
    status = Searcher.open(tmp_path / "b", clip=tiny_clip).ann_status()
    assert status["used"] and status["factory"].startswith("IVF")


def test_clip_retrieval_model_names_compare_with_weights_ids():
    assert model_id("ViT-B/32") == model_id("openai/clip-vit-base-patch32@ab12:float32")
    assert model_id("hf_clip:openai/clip-vit-large-patch14") == "openai/clip-vit-large-patch14"
    assert model_id("random:test-tiny") == model_id("random:test-tiny:seed0:float32")
    assert model_id("ViT-L/14") != model_id("ViT-B/32")


@pytest.mark.parametrize(
    "damage, message",
    [
        ("model", r"made by 'ViT-L/14' \(openai/clip-vit-large-patch14\).*'random:test-tiny"),
        ("norm", r"img_emb_1.npy: row 7 has norm 2"),
        ("width", r"img_emb_0.npy: float16 array of shape \(700, 3\)"),
        ("faiss", r"image.index: not a faiss IVF inner-product index of the 1200"),
        ("relative", r"row 0 has the relative path '0/00000.jpg'; pass --images"),
    ],
)
def test_a_bad_clip_retrieval_folder_is_one_error_naming_what_to_fix(tmp_path, damage, message):
    folder, x, paths = clip_retrieval_folder(tmp_path, 32)
    model = WEIGHTS
    if damage == "model":
        model = "ViT-L/14"
    elif damage == "norm":
        part = np.load(folder / "img_emb" / "img_emb_1.npy")
        part[7] *= 2
        np.save(folder / "img_emb" / "img_emb_1.npy", part)
    elif damage == "width":
        np.save(folder / "img_emb" / "img_emb_0.npy", np.zeros((700, 3), np.float16))
    elif damage == "faiss":
        (folder / "index" / "image.index").write_bytes(b"IwFl" + b"\xff" * 4000)
    else:
        rel = [p.removeprefix(str(tmp_path / "photos") + "/") for p in paths[:700]]
        pq.write_table(pa.table({"image_path": rel}), folder / "metadata" / "metadata_0.parquet")
    proc = cli(
        "import", "--clip_retrieval", str(folder), "--index", str(tmp_path / "idx"),
        "--weights", WEIGHTS, "--clip_model", model,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    import re

    assert re.search(message, proc.stderr.replace("\n", " ")), proc.stderr[-2000:]


def test_the_import_command_then_query_works(tmp_path):
    folder, _, _ = clip_retrieval_folder(tmp_path, 32)
    idx = str(tmp_path / "idx")
    proc = cli(
        "import", "--clip_retrieval", str(folder), "--index", idx, "--weights", WEIGHTS,
        "--clip_model", WEIGHTS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "imported 1200 embeddings" in proc.stdout and "ANN adopted:" in proc.stdout
    proc = cli("query", "--index", idx, "--json", "--cache_dir", "", "a dog not on grass")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)["results"][0]
    assert len(result["hits"]) == 10 and result["exact"] is False and result["candidates"] > 10
