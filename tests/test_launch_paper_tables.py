"""The paper's tables from the launcher: Tables 1/2 row for row (CLIP on raw captions, CLIP + NEAT,
SpaceVLM with its own settings or its own split, DRC), Table 4's rho = 0 row, the decomposer's
mode, and the run record (results.json, decompositions.jsonl, bootstrap intervals)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drc_jax.errors import UserError
from drc_jax.launch import pipeline
from drc_jax.launch.config import Table, Variant
from drc_jax.launch.decomposition import decompose
from drc_jax.launch.encode import embed_texts
from drc_jax.launch.pipeline import row_texts, run
from drc_jax.launch.stages import Decomposed
from drc_jax.metrics import ranks_from_scores
from drc_jax.scoring import STRENGTHS, DRCParams, query_vectors
from drc_jax.texts import RAW_PROMPTS, text_set
from tests.conftest import REPO
from tests.test_launch_end_to_end import TINY, CountingClip, _first_rows, coco_subset, options

__all__ = ["coco_subset"]  # the fixture, shared with test_launch_end_to_end

PAPER_LABELS = ["CLIP Baseline", "CLIP + NEAT", "SpaceVLM", "SpaceVLM-DRC (Ours)"]


@pytest.mark.slow
def test_paper_cli_prints_four_rows_and_writes_a_record_a_reviewer_can_check(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "drc_jax.launch", "--benchmark", "synthetic", "--config", "paper",
         "--output_dir", str(out), "--weights", TINY, "--cache_dir", str(tmp_path / "cache"),
         "--synthetic_images", "8", "--noprogress"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [ln.split("  ")[0] for ln in proc.stdout.splitlines()]
    assert [ln for ln in printed if ln in PAPER_LABELS] == PAPER_LABELS

    results = json.loads((out / "results.json").read_text())
    methods = results["methods"]
    assert list(methods) == ["clip", "neat", "spacevlm", "drc"]
    # Per row, what decides its scores.
    rec = {k: m["record"] for k, m in methods.items()}
    assert rec["clip"]["prompts"]["full"] == "" and rec["clip"]["prompts"]["fallback"] == ""
    assert rec["spacevlm"]["t"] == 0.92 and rec["spacevlm"]["prompts"]["aff"] == ""
    assert rec["drc"]["t"] == {"weak": 0.94, "moderate": 0.92, "strong": 0.90}
    assert rec["drc"]["weights"] == {"w1": 0.35, "w2": 0.35, "wctx": 0.30}
    assert rec["drc"]["rho"] == 1.5 and rec["drc"]["operator"] == "spacevlm"
    assert rec["drc"]["prompts"]["neg"] == "A photo of" and rec["drc"]["prompts"]["fallback"] == ""
    # Rules, not the paper's LLM: the table's first line and the record say so.
    assert rec["drc"]["decomposer"]["backend"] == "rules"
    assert rec["drc"]["decomposer"]["paper_used"] == "Qwen/Qwen2.5-14B-Instruct"
    assert (
        "the paper used Qwen/Qwen2.5-14B-Instruct (--decomposer sglang)"
        in (proc.stdout.splitlines()[0])
    )
    # Per-row settings: texts, concepts, frame mean, medR definition.
    assert rec["spacevlm"]["video_mean"] == "unnormalized"
    assert rec["clip"]["video_mean"] == rec["drc"]["video_mean"] == "renormalized"
    assert rec["drc"]["concepts_per_caption"] == "one"
    assert rec["clip"]["texts"] == rec["drc"]["texts"] == "decomposition"
    assert rec["drc"]["medr"]["name"] == results["medr"]["name"] == "median"
    assert rec["neat"]["neat"]["lr"] == 2e-4 and rec["neat"]["neat"]["steps"] == 3
    # Environment and inputs.
    env = results["environment"]
    assert env["versions"]["jax"] and env["versions"]["flax"] and env["versions"]["transformers"]
    assert env["backend"] == "cpu" and env["device_count"] >= 1 and env["device_kinds"]
    assert len(env["git"]["commit"]) == 40  # run from a checkout
    inputs = results["inputs"]
    csv_bytes = Path(inputs["captions_csv"]).read_bytes()
    assert inputs["captions_csv_sha256"] == hashlib.sha256(csv_bytes).hexdigest()
    assert inputs["media"] == {"listed": 8, "found": 8, "missing": 0}
    assert inputs["weights"][TINY]["params_probe"]
    # Paired bootstrap intervals, against CLIP, in results.json and results.md.
    for name in ("neat", "spacevlm", "drc"):
        for k in ("R@1", "R@5", "R@10"):
            ci = methods[name]["ci"][k]
            assert ci["lo"] <= ci["delta"] <= ci["hi"]
            assert ci["delta"] == pytest.approx(methods[name][k] - methods["clip"][k])
    assert "ci" not in methods["clip"]
    md = (out / "results.md").read_text()
    assert "95% confidence interval" in md and md.count("SpaceVLM-DRC (Ours)") == 2
    # decompositions.jsonl: one line per query, exactly the texts each row scored.
    lines = [json.loads(x) for x in (out / "decompositions.jsonl").read_text().splitlines()]
    assert len(lines) == results["num_queries"] == 24
    for line in lines:
        scored, d = line["scored"], line["decomposition"]
        assert scored["clip"] == {"full": line["caption"]}  # the raw caption
        if d["negated"]:
            bare = d["neg"].removeprefix("an ").removeprefix("a ")
            assert scored["spacevlm"] == {"aff": d["aff"], "neg": "A photo of a " + bare}
            assert scored["drc"]["neg"] == "A photo of " + d["neg"]
            assert scored["drc"]["full"] == "A photo of " + " ".join(line["caption"].split())
            assert set(scored["neat"]) == {"caption", "pos", "neg", "inv"}


class RecordingClip(CountingClip):
    """A real CLIP that keeps every text it was asked to encode."""

    def __init__(self, clip):
        super().__init__(clip)
        self.encoded: list[str] = []

    def encode_texts(self, texts):
        self.encoded += list(texts)
        return super().encode_texts(texts)


def test_clip_scores_the_raw_caption_and_each_distinct_text_is_encoded_once(tmp_path, monkeypatch):
    real = pipeline.load_clip_checked
    clips = []
    monkeypatch.setattr(
        pipeline,
        "load_clip_checked",
        lambda w, d: clips.append(RecordingClip(real(w, d))) or clips[-1],
    )
    opts = options(tmp_path, cache_dir="", rows=("clip", "clip_prefixed", "spacevlm", "drc"))
    r = run(opts)
    (clip,) = clips
    assert len(clip.encoded) == len(set(clip.encoded)) == r["encoding"][TINY]["texts"]["unique"]

    corpus, _ = pipeline.load_corpus(opts)
    captions = [q.caption for q in corpus.bench.queries]
    assert set(captions) <= set(clip.encoded)
    images = pipeline.media_embedder(clip, corpus.bench, opts)([str(p) for p in corpus.paths])
    gt = [q.gt for q in corpus.bench.queries]
    rankings = np.load(tmp_path / "out" / "rankings.npz")
    raw = ranks_from_scores(np.asarray(clip.encode_texts(captions)) @ images.T, gt)
    np.testing.assert_array_equal(rankings["clip/gt_rank"], raw)
    prefixed = [f"A photo of {c}" for c in captions]
    photo = ranks_from_scores(np.asarray(clip.encode_texts(prefixed)) @ images.T, gt)
    np.testing.assert_array_equal(rankings["clip_prefixed/gt_rank"], photo)


def _with_strengths(decomposed: Decomposed) -> Decomposed:
    """The decomposition with the negated captions' strengths cycling weak, moderate, strong."""
    cycle = ("weak", "moderate", "strong")
    per_query = tuple(
        dataclasses.replace(d, strength=cycle[i % 3]) if d.negated else d
        for i, d in enumerate(decomposed.per_query)
    )
    return dataclasses.replace(decomposed, per_query=per_query)


def test_spacevlm_and_the_d1_row_differ_exactly_where_the_strength_is_not_moderate(tmp_path):
    """SpaceVLM composes with its one t (the paper's 0.92 = DRC's "moderate"), "+ d1" with the
    strength's t: on the same texts they agree on moderate captions and differ on weak and strong
    ones wherever the operator acts at either t. (A random CLIP puts aff and neg far apart, so
    the thresholds are lowered here, keeping SpaceVLM's t equal to the moderate one.)"""
    opts = options(tmp_path, cache_dir="")
    corpus, read = pipeline.load_corpus(opts)
    decomposed = _with_strengths(decompose([q.caption for q in corpus.bench.queries], opts))
    t = (1.0, 0.35, 0.25, 0.15)
    base = DRCParams(t=t, spacevlm_t=t[STRENGTHS.index("moderate")])
    d1 = dataclasses.replace(base, use_d2=False, use_dctx=False, use_repulsion=False)
    rows = Table(
        "t",
        (
            Variant("spacevlm", "spacevlm", base, prompts=RAW_PROMPTS),
            Variant("d1", "drc", d1, prompts=RAW_PROMPTS),
        ),
    )
    texts = row_texts(rows, corpus, read, decomposed, opts)
    clip = pipeline.load_clip_checked(TINY, "float32")
    queries, _ = embed_texts(clip, texts.sets, opts)
    q = queries[text_set(rows.variants[0])]
    q_d1 = queries[text_set(rows.variants[1])]  # + d1 also encodes cf and full; aff, neg shared
    np.testing.assert_array_equal(np.asarray(q.aff), np.asarray(q_d1.aff))
    np.testing.assert_array_equal(np.asarray(q.neg), np.asarray(q_d1.neg))
    spacevlm = np.asarray(query_vectors("spacevlm", q, base).q)
    plus_d1 = np.asarray(query_vectors("drc", q_d1, d1).q)
    strength = np.asarray(q.strength)
    theta = np.arccos(np.clip(np.sum(np.asarray(q.aff) * np.asarray(q.neg), -1), -1, 1))
    t_row = np.asarray(t)[strength]
    acts = theta < 2 * np.arccos(np.minimum(t_row, base.spacevlm_t))  # turns at either t
    differs = np.abs(spacevlm - plus_d1).max(-1) > 1e-5
    moderate = strength == STRENGTHS.index("moderate")
    assert set(strength) == {1, 2, 3} and np.any(acts & ~moderate)
    assert not np.any(differs[moderate])
    np.testing.assert_array_equal(differs[~moderate], acts[~moderate])


def _split_subset(negbench_dir, dst, n=6):
    return _first_rows(negbench_dir / "coco_neg_mistral_decomp_dev.csv", dst, n)


def test_spacevlm_row_can_score_spacevlms_own_mistral_split_verbatim(
    coco_subset, negbench_dir, tmp_path
):
    import ast

    csv_path, data_dir, _ = coco_subset
    split_rows = _split_subset(negbench_dir, tmp_path / "split.csv")
    kw = dict(benchmark="coco", captions_csv=str(csv_path), data_dir=str(data_dir))
    r = run(options(tmp_path, rows=("clip", "spacevlm", "drc"), cache_dir="",
                    spacevlm_split=str(tmp_path / "split.csv"), **kw))  # fmt: skip
    rec = r["methods"]["spacevlm"]["record"]
    assert rec["decomposer"]["backend"] == "spacevlm_split"
    assert r["methods"]["drc"]["record"]["decomposer"]["backend"] == "rules"
    split_bytes = (tmp_path / "split.csv").read_bytes()
    assert r["inputs"]["spacevlm_split_sha256"] == hashlib.sha256(split_bytes).hexdigest()
    lines = [json.loads(x) for x in (tmp_path / "out" / "decompositions.jsonl").open()]
    expected = [
        {"aff": a, "neg": n}
        for row in split_rows
        for a, n in zip(*ast.literal_eval(row["captions"]), strict=True)
    ]
    assert [ln["scored"]["spacevlm"] for ln in lines] == expected
    assert expected[0]["neg"] == "A photo of a chair"  # the file's prefix, kept as written

    # A split that does not line up with the query CSV is refused, naming the line.
    rows = _split_subset(negbench_dir, tmp_path / "bad.csv")
    affs, negs = ast.literal_eval(rows[0]["captions"])
    rows[0]["captions"] = repr([affs[:-1], negs[:-1]])
    with open(tmp_path / "bad.csv", "w", newline="") as f:
        import csv

        w = csv.DictWriter(f, fieldnames=["captions"])
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(UserError, match=r"bad.csv, line 2: 4 split captions, but .* has 5"):
        run(options(tmp_path, rows=("clip", "spacevlm"), spacevlm_split=str(tmp_path / "bad.csv"),
                    **kw))  # fmt: skip


def test_table4_rho_0_ranks_exactly_as_table3_plus_dctx(tmp_path):
    """The paper says its rho = 0 row is the "+ dctx" row (though its numbers differ); here it
    is, query by query."""
    run(options(tmp_path, config="table3", output_dir=str(tmp_path / "t3")))
    run(options(tmp_path, config="table4", output_dir=str(tmp_path / "t4")))
    t3, t4 = np.load(tmp_path / "t3" / "rankings.npz"), np.load(tmp_path / "t4" / "rankings.npz")
    np.testing.assert_array_equal(t4["rho_0/gt_rank"], t3["dctx/gt_rank"])
    np.testing.assert_array_equal(t4["rho_0/top10"], t3["dctx/top10"])
    assert not np.array_equal(t4["rho_2/gt_rank"], t3["dctx/gt_rank"]) or not np.array_equal(
        t4["rho_2/top10"], t3["dctx/top10"]
    )  # the repulsion does change the ranking: the comparison is not vacuous


@pytest.mark.parametrize("mode", ["two_prompt", "merged"])
def test_the_decomposer_mode_reaches_the_sglang_client_and_the_record(tmp_path, mode):
    """two_prompt asks every caption the decomposer and the strength-estimator prompts (the
    paper's protocol); merged asks the one merged prompt. (Counted by prompt, not by request:
    the client retries an answer it cannot use.)"""
    from drc_jax.decompose.prompts import DECOMPOSER_SYSTEM, MERGED_SYSTEM, STRENGTH_SYSTEM
    from tests.test_sglang_client import FakeServer

    server = FakeServer()
    try:
        kw = dict(decomposer="sglang", sglang_url=server.url, sglang_model="fake")
        r = run(options(tmp_path, rows=("clip", "drc"), cache_dir="", decomposer_mode=mode, **kw))
    finally:
        server.stop()
    asked: dict[str, set] = {}
    for body in server.requests:
        asked.setdefault(body["messages"][-1]["content"], set()).add(body["messages"][0]["content"])
    expected = {DECOMPOSER_SYSTEM, STRENGTH_SYSTEM} if mode == "two_prompt" else {MERGED_SYSTEM}
    assert len(asked) == r["decomposition"]["unique_captions"] > 0
    assert all(systems == expected for systems in asked.values())
    rec = r["methods"]["drc"]["record"]["decomposer"]
    assert rec["backend"] == "sglang" and rec["mode"] == mode and rec["model"] == "fake"
