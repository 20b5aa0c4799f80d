"""End to end: ``python -m drc_jax.launch`` on the synthetic set, on NegBench dev rows with
stand-in media, sharded over 8 devices, and with every table encoded once."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from drc_jax.data.synthetic import SyntheticSpec, render_image, write_video
from drc_jax.errors import UserError
from drc_jax.launch import pipeline
from drc_jax.launch.config import load_config
from drc_jax.launch.pipeline import run
from drc_jax.media import file_name
from tests.conftest import REPO, run_with_devices

TINY = "random:test-tiny"
SMALL = SyntheticSpec(num_images=8, captions_per_image=2, num_videos=4, frames_per_video=4)
METRICS = ("R@1", "R@5", "R@10", "medR")


def options(tmp_path, config="paper", synthetic=SMALL, **overrides):
    """The run config ``config`` (a shipped name or a path) for a quick run under ``tmp_path``."""
    overrides.setdefault("weights", TINY)
    overrides.setdefault("cache_dir", str(tmp_path / "cache"))
    overrides.setdefault("output_dir", str(tmp_path / "out"))
    spec = {f"synthetic.{k}": v for k, v in dataclasses.asdict(synthetic).items()}
    path = config if config.endswith(".py") else str(REPO / "configs" / f"{config}.py")
    return load_config(path, progress=False, **spec, **overrides)


class CountingClip:
    """A real CLIP that counts how many media and texts went through its encoders."""

    def __init__(self, clip):
        self._clip, self.media, self.texts = clip, 0, 0

    def __getattr__(self, name):
        return getattr(self._clip, name)

    def encode_images(self, pixels):
        self.media += len(pixels)
        return self._clip.encode_images(pixels)

    def encode_videos(self, frames, **kw):
        self.media += len(frames)
        return self._clip.encode_videos(frames, **kw)

    def encode_texts(self, texts):
        self.texts += len(texts)
        return self._clip.encode_texts(texts)


@pytest.fixture
def counting(monkeypatch):
    loaded = []
    real = pipeline.load_clip_checked

    def load(weights, dtype):
        loaded.append(CountingClip(real(weights, dtype)))
        return loaded[-1]

    monkeypatch.setattr(pipeline, "load_clip_checked", load)
    return loaded


@pytest.mark.slow
def test_synthetic_cli_writes_results_with_the_papers_four_rows(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "drc_jax.launch", "--benchmark", "synthetic",
         "--output_dir", str(out), "--weights", TINY, "--cache_dir", str(tmp_path / "cache"),
         "--synthetic_images", "8", "--figures", "1", "--noprogress"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["benchmark"] == "synthetic" and results["config"]["random_weights"]
    assert set(results["methods"]) == {"clip", "neat", "spacevlm", "drc"}
    for m in results["methods"].values():
        assert set(METRICS) <= set(m) and 0 <= m["R@1"] <= m["R@5"] <= m["R@10"] <= 100
    assert results["num_media"] == 8 and results["num_queries"] == 24
    assert {"decomposer", "captions", "negated"} <= set(results["decomposition"])
    assert {"encode_images_s", "decompose_s", "total_s"} <= set(results["timing"])
    assert "neg@5" in results["methods"]["drc"]  # the synthetic set lists every object
    assert "RANDOM WEIGHTS" in proc.stdout and "SpaceVLM-DRC" in proc.stdout
    assert (out / "results.md").read_text().count("|") > 20
    assert (out / "figures" / "query_00.png").stat().st_size > 0
    rankings = np.load(out / "rankings.npz")
    assert rankings["drc/top10"].shape == (24, 8)  # k = min(10, #images)
    ranks = rankings["drc/gt_rank"]
    assert results["methods"]["drc"]["R@5"] == pytest.approx(100 * np.mean(ranks <= 5))


@pytest.mark.slow
def test_sharded_run_on_8_devices_gives_the_single_device_numbers(tmp_path):
    single = run(options(tmp_path / "one", config="table3"))
    code = f"""
        import json, jax
        from tests.test_launch_end_to_end import options
        from drc_jax.launch.pipeline import run
        from pathlib import Path
        assert jax.device_count() == 8
        r = run(options(Path({str(tmp_path / "eight")!r}), config="table3"))
        print(json.dumps(r["methods"]))
    """
    sharded = json.loads(run_with_devices(code).strip().splitlines()[-1])
    assert set(sharded) == set(single["methods"])
    for name, m in single["methods"].items():
        for k in (*METRICS, "neg@5"):
            assert sharded[name][k] == pytest.approx(m[k], abs=1e-9), (name, k)


def test_a_table_is_produced_from_one_encoding_pass_and_reruns_use_the_cache(tmp_path, counting):
    r3 = run(options(tmp_path, config="table3"))
    assert len(r3["methods"]) == 5 and len(counting) == 1
    clip = counting[0]
    assert clip.media == r3["num_media"] == SMALL.num_images
    unique_texts = clip.texts
    # DRC's four prefixed fields, and the raw caption of the CLIP row; each text once.
    assert unique_texts == r3["encoding"][TINY]["texts"]["unique"]
    assert 0 < unique_texts <= 5 * r3["num_queries"]
    # Table 4 on the same data: every embedding comes from the cache.
    r4 = run(options(tmp_path, config="table4", output_dir=str(tmp_path / "out4")))
    assert len(r4["methods"]) == 6 and counting[1].media == 0 and counting[1].texts == 0
    assert r4["encoding"][TINY]["media"] == {"embedded": 0, "cached": SMALL.num_images}
    # The CLIP row is the same in both tables: same embeddings, same scoring.
    assert r4["methods"]["clip"] == r3["methods"]["clip"]


@pytest.mark.slow
def test_synthetic_videos_run_end_to_end(tmp_path):
    r = run(options(tmp_path, benchmark="synthetic_video", cache_dir=""))
    assert r["media_kind"] == "video" and r["num_media"] == SMALL.num_videos
    assert set(r["methods"]) == {"clip", "neat", "spacevlm", "drc"}


# --------------------------------------------------------------------------- NegBench dev rows


def _first_rows(src, dst, n):
    with open(src, newline="") as f:
        reader = csv.DictReader(f)
        rows = [next(reader) for _ in range(n)]
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=reader.fieldnames)
        w.writeheader()
        w.writerows(rows)
    return rows


@pytest.fixture
def coco_subset(negbench_dir, tmp_path):
    """First 6 rows of the COCO dev file, with small generated JPEGs named as in the CSV."""
    import numpy as np

    rows = _first_rows(negbench_dir / "coco_neg_dev.csv", tmp_path / "coco.csv", 6)
    media = tmp_path / "coco_media" / "val2017"
    media.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for row in rows:
        render_image(["red circle"], 64, rng).save(media / file_name(row["filepath"]))
    return tmp_path / "coco.csv", tmp_path / "coco_media", rows


@pytest.mark.slow
def test_coco_dev_rows_run_with_stand_in_images(coco_subset, tmp_path):
    csv_path, data_dir, rows = coco_subset
    r = run(options(tmp_path, benchmark="coco", captions_csv=str(csv_path),
                    data_dir=str(data_dir)))  # fmt: skip
    n_captions = sum(len(eval_free_list(row["captions"])) for row in rows)
    assert r["num_media"] == 6 and r["num_queries"] == n_captions
    assert r["benchmark_name"] == "COCO Retrieval-Neg"
    assert set(r["methods"]) == {"clip", "neat", "spacevlm", "drc"}
    assert "neg@5" in r["methods"]["clip"] and r["negated_object_coverage"] > 50


def eval_free_list(cell):
    import ast

    return ast.literal_eval(cell)


def test_msrvtt_dev_rows_run_with_stand_in_videos(negbench_dir, tmp_path):
    import numpy as np

    rows = _first_rows(negbench_dir / "msrvtt_neg_dev.csv", tmp_path / "msrvtt.csv", 4)
    media = tmp_path / "videos" / "all"
    media.mkdir(parents=True)
    rng = np.random.default_rng(0)
    spec = SyntheticSpec(frames_per_video=4, size=64)
    for row in rows:
        write_video(media / file_name(row["filepath"]), ["blue square"], spec, rng)
    r = run(options(tmp_path, benchmark="msrvtt", captions_csv=str(tmp_path / "msrvtt.csv"),
                    data_dir=str(tmp_path / "videos")))  # fmt: skip
    assert r["media_kind"] == "video" and r["num_media"] == r["num_queries"] == 4
    assert "neg@5" not in r["methods"]["drc"]  # MSR-VTT concepts are not exhaustive


def test_precomputed_decompositions_and_image_embeddings_replace_those_stages(tmp_path):
    from drc_jax.decompose import get_decomposer, write_decompositions_jsonl

    opts = options(tmp_path)
    corpus, _ = pipeline.load_corpus(opts)
    bench = corpus.bench
    reference = run(opts)

    clip = pipeline.load_clip_checked(TINY, "float32")
    emb = pipeline.media_embedder(clip, bench, opts)([str(p) for p in corpus.paths])
    np.save(tmp_path / "emb.npy", emb)
    captions = list(dict.fromkeys(q.caption for q in bench.queries))
    decs = get_decomposer("rules").decompose(captions)
    with open(tmp_path / "decs.jsonl", "w") as f:
        write_decompositions_jsonl(decs, f)

    r = run(options(tmp_path, image_embeddings=str(tmp_path / "emb.npy"),
                    decompositions=str(tmp_path / "decs.jsonl"), cache_dir=""))  # fmt: skip
    assert r["decomposition"]["decomposer"].startswith("jsonl:")
    assert r["encoding"][TINY]["media"] == {"precomputed": str(tmp_path / "emb.npy")}
    for name, m in reference["methods"].items():
        for k in METRICS:
            assert r["methods"][name][k] == pytest.approx(m[k]), (name, k)

    with open(tmp_path / "partial.jsonl", "w") as f:
        write_decompositions_jsonl(decs[1:], f)
    with pytest.raises(UserError, match="lacks 1 of"):
        run(options(tmp_path, decompositions=str(tmp_path / "partial.jsonl")))


def test_each_backbone_is_encoded_once_and_compared_to_its_own_clip_row(tmp_path, monkeypatch):
    loaded = {}
    real = pipeline.load_clip_checked

    def load(weights, dtype):  # two stand-in backbones, both tiny random CLIPs
        clip = CountingClip(real(TINY, dtype))
        clip.weights_id = f"{weights}:{dtype}"
        loaded[weights] = clip
        return clip

    monkeypatch.setattr(pipeline, "load_clip_checked", load)
    path = tmp_path / "two.py"
    path.write_text(
        "from drc_jax.launch.config import base_config, row\n"
        "def get_config():\n"
        "    c = base_config()\n"
        "    c.name = 'two'\n"
        "    for w in ('tiny-a', 'tiny-b'):\n"
        "        for m in ('clip', 'drc'):\n"
        "            c.variants[f'{w}_{m}'.replace('-', '_')] = row(m, weights=w)\n"
        "    c.rows = ('tiny_a_clip', 'tiny_a_drc', 'tiny_b_clip', 'tiny_b_drc')\n"
        "    return c\n"
    )
    r = run(options(tmp_path, config=str(path)))
    assert sorted(loaded) == ["tiny-a", "tiny-b"]
    assert all(c.media == SMALL.num_images for c in loaded.values())
    assert {k: m["baseline"] for k, m in r["methods"].items()} == {
        "tiny_a_clip": "tiny_a_clip",
        "tiny_a_drc": "tiny_a_clip",
        "tiny_b_clip": "tiny_b_clip",
        "tiny_b_drc": "tiny_b_clip",
    }
    assert r["config"]["backbones"] == ["tiny-a", "tiny-b"]


def test_an_interrupted_run_resumes_without_re_encoding_finished_batches(tmp_path, monkeypatch):
    real = pipeline.load_clip_checked

    class Interrupting(CountingClip):
        def encode_images(self, pixels):
            if self.media >= 4:  # the second batch of 4
                raise KeyboardInterrupt
            return super().encode_images(pixels)

    monkeypatch.setattr(pipeline, "load_clip_checked", lambda w, d: Interrupting(real(w, d)))
    with pytest.raises(KeyboardInterrupt):
        run(options(tmp_path, batch_size=4))

    monkeypatch.setattr(pipeline, "load_clip_checked", real)
    r = run(options(tmp_path, batch_size=4))
    assert r["encoding"][TINY]["media"] == {"embedded": SMALL.num_images - 4, "cached": 4}


def test_cache_is_not_reused_when_the_same_weights_name_holds_other_numbers(
    tmp_path, counting, monkeypatch
):
    import jax

    run(options(tmp_path))
    assert counting[0].media == SMALL.num_images
    real = pipeline.load_clip_checked

    def reinitialised(weights, dtype):  # same weights_id, different parameters
        clip = real(weights, dtype)
        clip.params = jax.tree_util.tree_map(lambda x: x + 1, clip._clip.params)
        return clip

    monkeypatch.setattr(pipeline, "load_clip_checked", reinitialised)
    r = run(options(tmp_path))
    assert counting[1].media == SMALL.num_images
    assert r["encoding"][TINY]["media"]["cached"] == 0


def test_an_empty_cache_dir_turns_off_the_decomposition_cache_too(tmp_path, monkeypatch):
    """``--cache_dir ''``: no embedding cache and no decomposition cache (not even the default
    one), so a second run asks the SGLang server again; with a cache it asks nothing."""
    from tests.test_sglang_client import FakeServer

    monkeypatch.setenv("DRC_JAX_CACHE", str(tmp_path / "default_cache"))
    default = tmp_path / "default_cache" / "decompositions"
    server = FakeServer()
    try:
        kw = dict(decomposer="sglang", sglang_url=server.url, sglang_model="fake",
                  decomposer_mode="merged")  # fmt: skip
        for _ in range(2):
            r = run(options(tmp_path, cache_dir="", **kw))
        asked = len(server.requests)
        assert asked == 2 * r["decomposition"]["unique_captions"] > 0
        assert not default.exists() and not (tmp_path / "cache").exists()

        for _ in range(2):
            run(options(tmp_path, **kw))
        assert len(server.requests) == asked + r["decomposition"]["unique_captions"]
        assert (tmp_path / "cache" / "decompositions").is_dir()
    finally:
        server.stop()
