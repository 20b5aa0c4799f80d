"""Encoding throughput: drc_jax's Flax CLIP vs transformers' PyTorch CLIPModel, same weights.

Both sides get the same random full-size CLIP (made by transformers, saved with
``save_pretrained`` and loaded through ``load_clip``), in float32 and bfloat16, in the same run.
Images/s are measured on CLIP-normalised 224x224 pixels; texts/s on NegBench COCO captions, with
tokenisation included on both sides (transformers pads each batch to its longest text; drc_jax
pads each group of texts to the shortest of the 16/32/48/64/77 buckets that holds it).

    python benchmarks/bench_encode.py --images 256 --texts 1024 --out bench_encode.json
"""

from __future__ import annotations

import ast
import copy
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLAGS = flags.FLAGS
flags.DEFINE_string("backbone", "ViT-B/32", "ViT-B/32 | ViT-B/16 | ViT-L/14")
flags.DEFINE_integer("images", 256, "images per timed run")
flags.DEFINE_integer("texts", 1024, "texts per timed run")
flags.DEFINE_integer("batch_size", 64, "batch size for both implementations")
flags.DEFINE_integer("repeats", 3, "timed rounds per measurement (the median is reported)")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "dtypes to measure")
flags.DEFINE_string(
    "captions", str(REPO.parent / "shared" / "negbench" / "coco_neg_dev.csv"), "NegBench csv"
)
flags.DEFINE_string("out", "bench_encode.json", "where to write the JSON results")


def _captions(path: str, n: int) -> list[str]:
    out: list[str] = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.extend(ast.literal_eval(row["captions"]))
            if len(out) >= n:
                break
    if len(out) < n:  # reuse captions if the file is short
        out = (out * (n // max(len(out), 1) + 1))[:n]
    return out[:n]


def _interleaved_rates(fns: dict, n: int, repeats: int) -> dict[str, float]:
    """Items/s of each function: one warm-up call each (compiles every shape for jax), then
    ``repeats`` rounds that time every function once in turn, so load from other processes on a
    shared machine hits both sides alike; the median round is reported."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: n / statistics.median(v) for k, v in times.items()}


def _torch_fns(model, tok, pixels, texts, dtype: str, bs: int):
    import torch

    tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    m = copy.deepcopy(model).to(tdt)
    px = torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()).to(tdt)

    def images():
        with torch.inference_mode():
            for i in range(0, len(px), bs):
                e = m.get_image_features(pixel_values=px[i : i + bs]).pooler_output
                (e / e.norm(dim=-1, keepdim=True)).float().numpy()

    def text():
        with torch.inference_mode():
            for i in range(0, len(texts), bs):
                batch = tok(
                    texts[i : i + bs],
                    padding="longest",
                    truncation=True,
                    max_length=77,
                    return_tensors="pt",
                )
                e = m.get_text_features(**batch).pooler_output
                (e / e.norm(dim=-1, keepdim=True)).float().numpy()

    return images, text


def main(argv):
    del argv
    import jax
    import numpy as np
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from benchmarks.bench_scoring import cpu_flags
    from drc_jax.clip import get_config, load_clip
    from drc_jax.clip.config import hf_config_dict
    from drc_jax.clip.tokenizer import tokenizer_from_bpe

    cfg = get_config(FLAGS.backbone)
    torch.manual_seed(0)
    v = cfg.vision
    hf_config = CLIPConfig(**hf_config_dict(cfg))
    model = CLIPModel(hf_config).eval()
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((FLAGS.images, v.image_size, v.image_size, 3)).astype(np.float32)
    texts = _captions(FLAGS.captions, FLAGS.texts)
    bs = FLAGS.batch_size

    results = {}
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        tokenizer_from_bpe().save_pretrained(d)
        tok = CLIPTokenizer.from_pretrained(d)
        for dtype in FLAGS.dtypes:
            clip = load_clip(d, dtype=dtype, batch_size=bs, use_cache=False)
            # sanity: same weights give the same embeddings (checks the run compares like for like)
            ref = load_clip(d, dtype="float32", use_cache=False).encode_images(pixels[:2])
            t_images, t_texts = _torch_fns(model, tok, pixels, texts, dtype, bs)
            r_img = _interleaved_rates(
                {"flax": lambda c=clip: c.encode_images(pixels), "torch": t_images},
                len(pixels),
                FLAGS.repeats,
            )
            r_txt = _interleaved_rates(
                {"flax": lambda c=clip: c.encode_texts(texts), "torch": t_texts},
                len(texts),
                FLAGS.repeats,
            )
            jimg, timg, jtxt, ttxt = r_img["flax"], r_img["torch"], r_txt["flax"], r_txt["torch"]
            results[dtype] = {
                "flax_images_per_s": jimg,
                "torch_images_per_s": timg,
                "flax_texts_per_s": jtxt,
                "torch_texts_per_s": ttxt,
                "image_ratio": jimg / timg,
                "text_ratio": jtxt / ttxt,
                "flax_vs_f32_cosine_min": float(
                    np.min(np.sum(clip.encode_images(pixels[:2]) * ref, -1))
                ),
            }
            del clip
    best = {
        k: max(results[d][k] for d in results)
        for k in (
            "flax_images_per_s",
            "torch_images_per_s",
            "flax_texts_per_s",
            "torch_texts_per_s",
        )
    }
    summary = {
        "best_image_ratio": best["flax_images_per_s"] / best["torch_images_per_s"],
        "best_text_ratio": best["flax_texts_per_s"] / best["torch_texts_per_s"],
    }
    env = {
        "backbone": FLAGS.backbone,
        "images": FLAGS.images,
        "texts": FLAGS.texts,
        "batch_size": bs,
        "repeats": FLAGS.repeats,
        "jax": jax.__version__,
        "torch": torch.__version__,
        "devices": [str(x) for x in jax.devices()],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "cpu_flags": cpu_flags(),  # bf16 speed depends on AVX512-BF16 / AMX
    }
    print(
        f"\nCLIP {FLAGS.backbone} encoding throughput ({env['devices'][0]} x{len(jax.devices())}, "
        f"torch threads {env['torch_threads']}, batch {bs})"
    )
    print(f"{'dtype':<9} {'what':<7} {'flax/s':>9} {'torch/s':>9} {'ratio':>7}")
    for dtype, r in results.items():
        for what in ("images", "texts"):
            f, tt = r[f"flax_{what}_per_s"], r[f"torch_{what}_per_s"]
            print(f"{dtype:<9} {what:<7} {f:9.1f} {tt:9.1f} {f / tt:7.2f}x")
    print(
        f"best dtype vs best dtype: images {summary['best_image_ratio']:.2f}x, "
        f"texts {summary['best_text_ratio']:.2f}x"
    )
    Path(FLAGS.out).write_text(
        json.dumps({"env": env, "results": results, "summary": summary}, indent=2)
    )
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
