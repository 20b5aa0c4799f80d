"""The device suite (benchmarks/device_suite.py) cannot rot: its smoke mode runs every part on 8
host CPU devices and writes a report whose numbers are checked, and one failing part is reported
without stopping the others."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PARTS = ("encode", "score", "topk", "neat", "launcher")


def _positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.device_suite", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,  # a hang guard, not a speed check
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_smoke_report_has_every_part_with_a_status(smoke_report):
    report, md = smoke_report
    assert report["env"]["smoke"] is True and report["env"]["complete"] is True
    assert report["env"]["devices_used"] == 8  # data parallel over every visible device
    assert report["env"]["chip"]["bf16_tflops"] is None  # CPU: unknown peak, not a made-up one
    for part in PARTS:
        entry = report["parts"][part]
        assert entry["status"] in ("ok", "not_available"), (part, entry)
        assert entry["seconds"] >= 0
        assert f"| {part} | {entry['status']} |" in md
    assert "SMOKE" in md
    # NEAT is measured where drc_jax.neat exists; where it does not, the report says why.
    neat = report["parts"]["neat"]
    if importlib.util.find_spec("drc_jax.neat") is None:
        assert neat["status"] == "not_available" and "drc_jax.neat" in neat["reason"]
    else:
        assert neat["status"] == "ok", neat
        for r in neat["rows"]:
            assert "torch_error" not in r, r
            assert _positive(r["jax_step_s"]) and _positive(r["torch_step_s"])
            assert r["jax_over_torch"] == pytest.approx(r["torch_step_s"] / r["jax_step_s"])
    for part in ("encode", "score", "topk", "launcher"):
        assert report["parts"][part]["status"] == "ok", report["parts"][part]


def test_smoke_encoder_rows_are_sane(smoke_report):
    from benchmarks.device_parts import image_flops, text_flops
    from drc_jax.clip import get_config

    tiny = get_config("test-tiny")
    enc = smoke_report[0]["parts"]["encode"]
    assert enc["errors"] == {} and enc["skipped_for_time_budget"] == []
    measured = {(r["dtype"], r["kind"]) for r in enc["rows"] if "error" not in r}
    for dtype in ("bfloat16", "float32"):
        for kind in ("images", "texts", "images_end_to_end"):
            assert (dtype, kind) in measured
    for r in enc["rows"]:
        if r["kind"] == "images_attention_cudnn":  # no cuDNN on CPU: recorded, not hidden
            assert "error" in r or _positive(r["items_per_s"])
            continue
        assert r["devices"] == 8
        assert _positive(r["items_per_s"]) and _positive(r["median_s"])
        assert r["batch"] % 8 == 0
        if r["kind"] in ("images", "texts"):
            # TFLOP/s = model FLOPs per item x items/s (texts at the smoke length of 16 tokens).
            per_item = image_flops(tiny) if r["kind"] == "images" else text_flops(tiny, 16)
            assert r["tflops"] == pytest.approx(per_item * r["items_per_s"] / 1e12, rel=1e-9)
    torch_rows = enc["torch_rows"]
    assert {r["kind"] for r in torch_rows} == {"images", "texts"}
    for r in torch_rows:
        assert r["attn_implementation"] == "sdpa"
        assert _positive(r["items_per_s"]) and _positive(r["jax_over_torch"])


def test_smoke_scoring_and_topk_are_correct_and_timed(smoke_report):
    parts = smoke_report[0]["parts"]
    sc = parts["score"]
    assert sc["max_abs_err_bf16_vs_numpy_f32"] < 2e-2  # bf16 inputs, f32 accumulation
    assert sc["max_abs_err_f32_vs_numpy_f32"] < 1e-4  # f32 on CPU is true f32
    for what in ("drc_score_bf16", "two_gemms_bf16"):
        assert _positive(sc[what]["median_s"]) and _positive(sc[what]["tflops"])
    assert _positive(sc["drc_over_two_gemms"])
    tk = parts["topk"]
    assert tk["top1_vs_exact_max_abs"] <= 1e-4
    assert tk["gt_rank_in_range"] is True
    assert tk["devices"] == 8
    assert _positive(tk["median_s"]) and _positive(tk["pairs_per_s"]) and _positive(tk["tbps"])
    la = parts["launcher"]
    assert la["results_json"] is True and _positive(la["wall_s"])


@pytest.mark.parametrize(
    "backbone, gmacs", [("ViT-B/32", 4.41), ("ViT-B/16", 17.58), ("ViT-L/14", 81.08)]
)
def test_image_flops_match_open_clips_profile(backbone, gmacs):
    """The analytic count behind TFLOP/s and % of peak agrees with open_clip's published
    per-image GMACs (its model profile; FLOPs = 2 x MACs)."""
    from benchmarks.device_parts import image_flops
    from drc_jax.clip import get_config

    assert image_flops(get_config(backbone)) / 2e9 == pytest.approx(gmacs, rel=0.01)


def test_a_failing_part_is_reported_and_the_rest_still_run():
    from benchmarks.device_suite import run_parts

    def broken(setup):
        raise RuntimeError("out of memory on purpose")

    report = run_parts({"broken": broken, "fine": lambda setup: {"value": 1}}, setup=None)
    assert report["broken"]["status"] == "failed"
    assert "out of memory on purpose" in report["broken"]["error"]
    assert report["fine"] == {"status": "ok", "value": 1, "seconds": report["fine"]["seconds"]}


def test_a_failing_encoder_case_is_recorded_and_the_others_still_run(tmp_path):
    import jax

    from benchmarks import device_parts
    from drc_jax.parallel import make_mesh

    setup = device_parts.Setup(
        mesh=make_mesh(jax.devices()[:1]),
        chip={"bf16_tflops": None, "hbm_tbps": None},
        out_dir=tmp_path,
        smoke=True,
        repeats=1,
        backbones=["ViT-X/99", "test-tiny"],
        dtypes=["float32"],
        batch_sizes=[4],
        text_length=16,
        torch=False,
        encode_budget_s=600.0,
        score_shape=(1, 1),
        topk_shape=(1, 1),
        topk_chunk=1,
        attention_variants=[],
    )
    enc = device_parts.encode(setup)
    assert "unknown CLIP backbone" in enc["errors"]["ViT-X/99 float32"]
    assert {(r["backbone"], r["kind"]) for r in enc["rows"]} == {
        ("test-tiny", "images"),
        ("test-tiny", "texts"),
        ("test-tiny", "images_end_to_end"),
    }


def test_encoder_runs_without_the_bpe_vocabulary(monkeypatch):
    """The GPU image has no open_clip_torch: the suite's encoder falls back to the same random
    weights without a tokenizer and still encodes token ids, identically."""
    import jax
    import numpy as np

    from benchmarks.device_parts import random_encoder, token_ids
    from drc_jax.parallel import make_mesh

    mesh = make_mesh(jax.devices()[:1])
    with_tok = random_encoder("test-tiny", "float32", mesh, 4)
    monkeypatch.setenv("DRC_JAX_CLIP_BPE", "/nonexistent/bpe_simple_vocab_16e6.txt.gz")
    without = random_encoder("test-tiny", "float32", mesh, 4)
    assert with_tok.tokenizer is not None and without.tokenizer is None
    ids = token_ids(4, 16)
    np.testing.assert_array_equal(without.encode_token_ids(ids), with_tok.encode_token_ids(ids))


@pytest.mark.parametrize(
    "kind, tflops, tbps",
    [
        ("NVIDIA H200", 989.0, 4.8),
        ("NVIDIA H100 80GB HBM3", 989.0, 3.35),
        ("NVIDIA H100 PCIe", 756.0, 2.0),
        ("cpu", None, None),
    ],
)
def test_chip_limits_come_from_the_device_kind(kind, tflops, tbps):
    from types import SimpleNamespace

    from benchmarks.device_suite import chip_limits

    chip = chip_limits(SimpleNamespace(device_kind=kind))
    assert (chip["bf16_tflops"], chip["hbm_tbps"]) == (tflops, tbps)
