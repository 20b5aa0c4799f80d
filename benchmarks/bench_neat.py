"""One NEAT adaptation step: drc_jax.neat (JAX) vs the PyTorch transcription of the reference.

A step (reference ``src/train_TTA.py``): encode a batch of captions and their pos, neg and inv
texts, coarse alignment against every image, the NEAT loss, gradients for the text LayerNorms,
one AdamW update. Both sides get the same random full-size CLIP (made by transformers, saved with
``save_pretrained``, loaded through ``load_clip``), the same token ids, the same image embeddings,
in float32 and bfloat16 (JAX: bf16 matmuls, f32 LayerNorms and optimiser; PyTorch: the same
through ``torch.autocast``), in interleaved rounds of one run. Tokenisation is outside the timed
step on both sides.

Cases: ``jax``; ``torch`` on the very same ids (all four groups padded to the shortest of
drc_jax's length buckets that holds the batch: the like-for-like comparison the target is taken
against); ``torch_77`` (with ``--torch_77``) on ids padded to 77, as the reference's open_clip
tokenizer feeds them.

    python benchmarks/bench_neat.py --batch 256 --rounds 3 --out bench_neat.json
"""

from __future__ import annotations

import ast
import contextlib
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
flags.DEFINE_string("backbone", "ViT-B/32", "ViT-B/32 | ViT-B/16 | ViT-L/14 | test-tiny")
flags.DEFINE_integer("batch", 256, "captions per adaptation batch")
flags.DEFINE_integer("images", 5000, "image embeddings the captions are aligned against")
flags.DEFINE_integer("rounds", 3, "timed rounds (each times every case once, in turn)")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "dtypes to measure")
flags.DEFINE_bool("torch_77", False, "also time PyTorch on ids padded to 77 (the reference's)")
flags.DEFINE_string(
    "captions", str(REPO.parent / "shared" / "negbench" / "coco_neg_dev.csv"), "NegBench csv"
)
flags.DEFINE_string("out", "bench_neat.json", "where to write the JSON results")


def _captions(path: str, n: int) -> list[str]:
    out: list[str] = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.extend(ast.literal_eval(row["captions"]))
            if len(out) >= n:
                break
    if not out:
        raise SystemExit(f"{path}: no captions found (expected a NegBench 'captions' column)")
    return (out * (n // len(out) + 1))[:n]


def _hf_model(backbone: str):
    import torch
    from transformers import CLIPConfig, CLIPModel

    from drc_jax.clip import get_config
    from drc_jax.clip.config import hf_config_dict

    cfg = get_config(backbone)
    torch.manual_seed(0)
    hf_config = CLIPConfig(**hf_config_dict(cfg))
    hf_config._attn_implementation = "eager"
    model = CLIPModel(hf_config).eval()
    with torch.no_grad():  # no exact zeros or ones: LayerNorms start away from their init
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(y / x for x, y in zip(a, b, strict=True))


def main(argv):
    del argv
    import copy

    import jax
    import numpy as np
    import torch

    from benchmarks.bench_scoring import cpu_flags
    from drc_jax.clip import load_clip
    from drc_jax.clip.tokenizer import tokenizer_from_bpe
    from drc_jax.decompose import get_decomposer
    from drc_jax.neat import NEATConfig, init_state, neat_texts
    from drc_jax.neat.adapt import split_text_layer_norms, step_fn
    from tests.neat_reference import TorchNEAT

    cfg = NEATConfig(batch_size=FLAGS.batch)
    captions = _captions(FLAGS.captions, FLAGS.batch)
    texts = neat_texts(get_decomposer("rules").decompose(captions)).preprocessed()
    groups = (texts.captions, texts.pos, texts.inv, texts.neg)  # drc_jax.neat's stacking
    model = _hf_model(FLAGS.backbone)
    rng = np.random.default_rng(0)
    d = model.config.projection_dim
    images = rng.standard_normal((FLAGS.images, d)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)

    results, rounds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer_from_bpe().save_pretrained(tmp)
        for dtype in FLAGS.dtypes:
            clip = load_clip(tmp, dtype=dtype, use_cache=False)
            tok = clip.tokenizer
            # JAX: the jitted step on the stacked (4B, L) ids, state threaded through (donated)
            ids = tok([t for g in groups for t in g])
            fn = step_fn(clip.config, clip.dtype, cfg)
            _, frozen = split_text_layer_norms(clip.params)
            state = init_state(clip, cfg)
            j_args = [jax.device_put(x) for x in (ids, texts.negated, images)]
            carry = [state.ln, state.opt_state]

            def jax_step(fn=fn, frozen=frozen, j_args=j_args, carry=carry):
                ln, opt, scores, aux = fn(carry[0], carry[1], frozen, *j_args)
                carry[:] = [ln, opt]
                return np.asarray(jax.block_until_ready(scores))

            # PyTorch: the transcription, four encodes per step, on the same or 77-long ids
            tdt = {"float32": None, "bfloat16": torch.bfloat16}[dtype]
            t_ids = torch.from_numpy(ids.astype(np.int64)).split(FLAGS.batch)
            same = [t_ids[i] for i in (0, 1, 3, 2)]  # TorchNEAT.step(text, pos, neg, inv)
            full = [
                torch.from_numpy(tok(list(groups[i]), length=77).astype(np.int64))
                for i in (0, 1, 3, 2)
            ]

            def torch_case(t_ids, tdt=tdt):
                ref = TorchNEAT(copy.deepcopy(model), torch.from_numpy(images))

                def run():
                    ctx = torch.autocast("cpu", dtype=tdt) if tdt else contextlib.nullcontext()
                    with ctx:
                        scores, _ = ref.step(*t_ids)
                    return scores.float().numpy()

                return run

            cases = {"jax": jax_step, "torch": torch_case(same)}
            if FLAGS.torch_77:
                cases["torch_77"] = torch_case(full)
            # Warm-up: JAX compiles on its first step (PyTorch has nothing to compile, so its
            # first timed step is its first step; both first steps' scores are compared).
            first = {"jax": jax_step()}
            times = {k: [] for k in cases}
            for r in range(FLAGS.rounds):
                for k, f in cases.items():
                    t0 = time.perf_counter()
                    scores = f()
                    times[k].append(time.perf_counter() - t0)
                    if r == 0 and k != "jax":
                        first[k] = scores
            med = {k: statistics.median(v) for k, v in times.items()}
            results[dtype] = {
                **{f"{k}_s": med[k] for k in cases},
                "ratio_vs_torch": med["torch"] / med["jax"],
                **({"ratio_vs_torch_77": med["torch_77"] / med["jax"]} if FLAGS.torch_77 else {}),
                "median_round_ratio_vs_torch": _median_ratio(times["jax"], times["torch"]),
                # the first step's scores agree (same weights, same texts, same step)
                "first_step_max_abs_diff": float(np.abs(first["jax"] - first["torch"]).max()),
                "token_length": int(ids.shape[1]),
            }
            rounds[dtype] = times
            del clip

    env = {
        "backbone": FLAGS.backbone,
        "batch": FLAGS.batch,
        "text_rows_per_step": 4 * FLAGS.batch,
        "images": FLAGS.images,
        "rounds": FLAGS.rounds,
        "negated_captions": int(texts.negated.sum()),
        "neat_config": cfg.to_dict(),
        "jax": jax.__version__,
        "torch": torch.__version__,
        "devices": [str(x) for x in jax.devices()],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "cpu_flags": cpu_flags(),
    }
    print(
        f"\nNEAT adaptation step, CLIP {FLAGS.backbone} text tower, batch {FLAGS.batch} "
        f"({4 * FLAGS.batch} texts), {FLAGS.images} images, median of {FLAGS.rounds} rounds "
        f"(load average {env['load_average'][0]:.1f})"
    )
    print(
        f"{'dtype':<9} {'jax s':>8} {'torch s':>8} {'vs torch':>9} {'torch77 s':>10} {'vs 77':>7}"
    )
    for dtype, r in results.items():
        t77 = f"{r['torch_77_s']:10.2f} {r['ratio_vs_torch_77']:6.2f}x" if FLAGS.torch_77 else ""
        print(f"{dtype:<9} {r['jax_s']:8.2f} {r['torch_s']:8.2f} {r['ratio_vs_torch']:8.2f}x {t77}")
    out = {"env": env, "results": results, "rounds_s": rounds}
    print(json.dumps(results, indent=2))
    Path(FLAGS.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
