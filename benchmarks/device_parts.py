"""The parts of the device suite (:mod:`benchmarks.device_suite`), one function each.

Every part takes a :class:`Setup` and returns a JSON-able dict of measurements. FLOPs are counted
analytically (model FLOPs: two per multiply-add; attention over the full T x T, causal or not)
and set against the chip's datasheet limits, so a number reads as "x% of the chip".
Timing reuses :func:`benchmarks.bench_scoring.timed` (wall clock until the outputs are ready).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Setup:
    """What every part needs: the mesh, the chip's limits, sizes and where to write."""

    mesh: object
    chip: dict
    out_dir: Path
    smoke: bool
    repeats: int
    backbones: list[str]
    dtypes: list[str]
    batch_sizes: list[int]
    text_length: int
    torch: bool
    encode_budget_s: float
    score_shape: tuple[int, int]
    topk_shape: tuple[int, int]
    topk_chunk: int
    attention_variants: list[str]


# ------------------------------------------------------------------ shared helpers
def median_time(fn, repeats: int) -> dict:
    """First call (compilation + one run) timed alone, then the median of ``repeats`` calls."""
    from benchmarks.bench_scoring import timed

    first = timed(fn)
    times = [timed(fn) for _ in range(repeats)]
    return {"first_call_s": first, "median_s": statistics.median(times), "times_s": times}


def rates(flops: float, nbytes: float, seconds: float, chip: dict) -> dict:
    """Achieved TFLOP/s and TB/s and, where the chip is known, their share of its limits."""
    tflops, tbps = flops / seconds / 1e12, nbytes / seconds / 1e12
    peak, bw = chip.get("bf16_tflops"), chip.get("hbm_tbps")
    return {
        "tflops": tflops,
        "tbps": tbps,
        "frac_bf16_peak": tflops / peak if peak else None,
        "frac_hbm": tbps / bw if bw else None,
    }


def tower_flops(width: int, mlp: int, layers: int, tokens: int) -> float:
    """Model FLOPs of one sequence through a pre-LN transformer tower.

    Per layer: q, k, v, out projections ``4 * 2 T d^2``; MLP ``2 * 2 T d m``; attention logits and
    the weighted sum ``2 * 2 T^2 d``.
    """
    t, d = tokens, width
    return layers * (8 * t * d * d + 4 * t * d * mlp + 4 * t * t * d)


def image_flops(cfg) -> float:
    """Model FLOPs of one image: patch embedding, the vision tower, the projection."""
    v = cfg.vision
    patches = v.num_patches
    embed = 2 * patches * v.patch_size**2 * 3 * v.hidden_size
    tower = tower_flops(v.hidden_size, v.intermediate_size, v.num_hidden_layers, patches + 1)
    return embed + tower + 2 * v.hidden_size * cfg.projection_dim


def text_flops(cfg, length: int) -> float:
    """Model FLOPs of one text of ``length`` tokens: the text tower and the projection."""
    t = cfg.text
    tower = tower_flops(t.hidden_size, t.intermediate_size, t.num_hidden_layers, length)
    return tower + 2 * t.hidden_size * cfg.projection_dim


def random_encoder(backbone: str, dtype: str, mesh, batch_size: int):
    """``load_clip("random:<backbone>")``; where CLIP's BPE vocabulary cannot be found (a GPU
    image without ``open_clip_torch``) the same random weights without a tokenizer, since the
    suite feeds token ids, never strings."""
    from drc_jax.clip import get_config, load_clip
    from drc_jax.clip.encoder import ClipEncoder
    from drc_jax.clip.load import _random_params
    from drc_jax.clip.tokenizer import find_bpe_vocab

    try:
        find_bpe_vocab()
    except FileNotFoundError:
        cfg = get_config(backbone)
        return ClipEncoder(
            cfg,
            _random_params(cfg, 0),
            tokenizer=None,
            dtype=dtype,
            weights_id=f"random:{backbone}:seed0:{dtype}",
            mesh=mesh,
            batch_size=batch_size,
        )
    return load_clip(f"random:{backbone}", dtype=dtype, mesh=mesh, batch_size=batch_size)


def token_ids(n: int, length: int, seed: int = 0):
    """(n, length) int32 rows ``BOS, random ids, EOT``: full-length texts (no padding)."""
    import numpy as np

    from drc_jax.clip.config import BOS_TOKEN_ID, EOT_TOKEN_ID

    ids = np.random.default_rng(seed).integers(1, BOS_TOKEN_ID, (n, length), dtype=np.int32)
    ids[:, 0], ids[:, -1] = BOS_TOKEN_ID, EOT_TOKEN_ID
    return ids


# ------------------------------------------------------------------ part: CLIP encoding
def _encode_cases(s: Setup):
    """(backbone, dtype) pairs, most important first: bf16 before f32, B/32 before L/14 before
    B/16, so a time budget cuts the least important ones."""
    rank = {"ViT-B/32": 0, "ViT-L/14": 1, "ViT-B/16": 2}
    pairs = [(b, d) for d in s.dtypes for b in s.backbones]
    return sorted(pairs, key=lambda p: (p[1] != "bfloat16", rank.get(p[0], 3)))


def encode(s: Setup) -> dict:
    """Images/s and texts/s of the sharded jitted encoder with inputs already on the devices
    (the device forward), TFLOP/s against the bf16 peak, end-to-end ``encode_images`` from host
    numpy at the largest batch, and transformers' CLIPModel (bf16, SDPA) on the same shapes.
    Each (backbone, dtype) case and the torch side are guarded: a failure is recorded in
    ``errors`` and the other cases still run."""
    t_start = time.perf_counter()
    rows, skipped, errors = [], [], {}
    for backbone, dtype in _encode_cases(s):
        if time.perf_counter() - t_start > s.encode_budget_s:
            skipped.append(f"{backbone} {dtype}")
            continue
        try:
            _encode_case(s, backbone, dtype, rows)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory in one case
            errors[f"{backbone} {dtype}"] = f"{type(e).__name__}: {str(e)[:300]}"
    torch_rows = []
    if s.torch:
        try:
            torch_rows = _torch_encode(s, [r for r in rows if r["dtype"] == "bfloat16"])
        except Exception as e:  # noqa: BLE001
            errors["torch"] = f"{type(e).__name__}: {str(e)[:300]}"
    if not rows:
        raise RuntimeError(f"no encoder case ran: {errors or skipped}")
    return {
        "rows": rows,
        "torch_rows": torch_rows,
        "skipped_for_time_budget": skipped,
        "errors": errors,
    }


def _encode_case(s: Setup, backbone: str, dtype: str, rows: list) -> None:
    """Append one (backbone, dtype)'s rows: every batch size, images and texts, then the
    attention variant and the end-to-end row."""
    import jax
    import numpy as np

    from drc_jax.clip.encoder import _encode_fn
    from drc_jax.parallel import batch_sharding

    clip = random_encoder(backbone, dtype, s.mesh, max(s.batch_sizes))
    cfg = clip.config
    size = cfg.vision.image_size
    for batch in s.batch_sizes:
        batch = max(s.mesh.size, -(-batch // s.mesh.size) * s.mesh.size)
        pixels = jax.jit(
            lambda k, b=batch: jax.random.normal(k, (b, size, size, 3)),
            out_shardings=batch_sharding(s.mesh),
        )(jax.random.key(batch))
        ids = jax.device_put(token_ids(batch, s.text_length), batch_sharding(s.mesh))
        for kind, x, flops in (
            ("images", pixels, image_flops(cfg)),
            ("texts", ids, text_flops(cfg, s.text_length)),
        ):
            fn = _encode_fn(cfg, dtype, s.mesh, "image" if kind == "images" else "text")
            t = median_time(lambda fn=fn, x=x: fn(clip.params, x), s.repeats)
            row = {
                "backbone": backbone,
                "dtype": dtype,
                "batch": batch,
                "kind": kind,
                "devices": s.mesh.size,
                "compile_and_first_s": t["first_call_s"],
                "median_s": t["median_s"],
                "items_per_s": batch / t["median_s"],
                **rates(batch * flops, 0.0, t["median_s"], s.chip),
            }
            rows.append(row)
            print(
                f"  {backbone} {dtype} {kind} batch {batch}: {row['items_per_s']:,.0f}/s, "
                f"{row['tflops']:.3g} TFLOP/s, first call {row['compile_and_first_s']:.1f}s",
                flush=True,
            )
        del pixels, ids
    if dtype == "bfloat16" and backbone in s.attention_variants:
        rows.append(_attention_variant(s, backbone, clip, "cudnn"))
    # End to end from host numpy (transfer, padding, fetch): two batches of the largest size.
    e2e_n = 2 * clip.batch_size
    host = np.random.default_rng(0).random((e2e_n, size, size, 3), np.float32)
    t = median_time(lambda: clip.encode_images(host), max(1, s.repeats // 2))
    rows.append(
        {
            "backbone": backbone,
            "dtype": dtype,
            "batch": clip.batch_size,
            "kind": "images_end_to_end",
            "devices": s.mesh.size,
            "compile_and_first_s": t["first_call_s"],
            "median_s": t["median_s"],
            "items_per_s": e2e_n / t["median_s"],
        }
    )


def _attention_variant(s: Setup, backbone: str, clip, implementation: str) -> dict:
    """Images/s at the largest batch with the model's attention forced to
    ``jax.nn.dot_product_attention(implementation=...)``, traced in a jit of its own (the
    encoder's cached functions are untouched). Measures what switching
    ``drc_jax.clip.model.attention`` to cuDNN's fused kernel would give; on a backend without
    that kernel the row records the error instead."""
    from unittest import mock

    import jax

    from drc_jax.clip import model as clip_model
    from drc_jax.clip.encoder import DTYPES
    from drc_jax.parallel import batch_sharding, replicated

    cfg, batch = clip.config, clip.batch_size
    size = cfg.vision.image_size
    net = clip_model.CLIP(cfg, DTYPES[clip.dtype])
    fn = jax.jit(
        lambda p, x: net.apply({"params": p}, x, method=clip_model.CLIP.encode_image),
        in_shardings=(replicated(s.mesh), batch_sharding(s.mesh)),
        out_shardings=replicated(s.mesh),
    )
    pixels = jax.jit(
        lambda k: jax.random.normal(k, (batch, size, size, 3)),
        out_shardings=batch_sharding(s.mesh),
    )(jax.random.key(1))

    def forced(q, k, v, *, scale, causal):
        return jax.nn.dot_product_attention(
            q, k, v, scale=scale, is_causal=causal, implementation=implementation
        )

    row = {
        "backbone": backbone,
        "dtype": clip.dtype,
        "batch": batch,
        "kind": f"images_attention_{implementation}",
        "devices": s.mesh.size,
    }
    try:
        with mock.patch.object(clip_model, "attention", forced):
            t = median_time(lambda: fn(clip.params, pixels), s.repeats)
    except Exception as e:  # noqa: BLE001 - e.g. no cuDNN kernel on this backend
        return {**row, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    return {
        **row,
        "compile_and_first_s": t["first_call_s"],
        "median_s": t["median_s"],
        "items_per_s": batch / t["median_s"],
        **rates(batch * image_flops(cfg), 0.0, t["median_s"], s.chip),
    }


def _hf_config(cfg):
    """transformers' ``CLIPConfig`` of the same shape as drc_jax's ``cfg``."""
    from transformers import CLIPConfig

    from drc_jax.clip.config import hf_config_dict

    return CLIPConfig(**hf_config_dict(cfg))


def _torch_encode(s: Setup, bf16_rows: list[dict]) -> list[dict]:
    """transformers' CLIPModel, bf16 with SDPA attention, on torch's GPU if it has one (else
    CPU), at every (backbone, batch) the JAX bf16 rows measured; the ratio is JAX / torch."""
    import torch
    from transformers import CLIPModel

    from drc_jax.clip import get_config

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    out = []
    for backbone in dict.fromkeys(r["backbone"] for r in bf16_rows):
        cfg = get_config(backbone)
        v = cfg.vision
        with dev:
            model = CLIPModel._from_config(_hf_config(cfg), attn_implementation="sdpa")
        model = model.to(dev, torch.bfloat16).eval()
        for r in bf16_rows:
            if r["backbone"] != backbone or r["kind"] not in ("images", "texts"):
                continue
            b = r["batch"]
            if r["kind"] == "images":
                x = torch.randn(b, 3, v.image_size, v.image_size, device=dev, dtype=torch.bfloat16)
                call = lambda x=x, m=model: m.get_image_features(pixel_values=x)
            else:
                x = torch.from_numpy(token_ids(b, s.text_length)).long().to(dev)
                call = lambda x=x, m=model: m.get_text_features(input_ids=x)

            def run(call=call):
                with torch.inference_mode():
                    call()
                sync()

            tm = median_time(run, s.repeats)
            per_s = b / tm["median_s"]
            out.append(
                {
                    "backbone": backbone,
                    "kind": r["kind"],
                    "batch": b,
                    "torch_device": str(dev),
                    "attn_implementation": model.config._attn_implementation,
                    "median_s": tm["median_s"],
                    "items_per_s": per_s,
                    "jax_over_torch": r["items_per_s"] / per_s,
                }
            )
        del model
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return out


# ------------------------------------------------------------------ part: drc_score
def score(s: Setup) -> dict:
    """``drc_score`` at the COCO-Neg shape with bf16 images, against the two bf16 GEMMs of that
    shape timed alone (its floor), and checked against the NumPy equations on 256 queries."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.bench_scoring import make_case, numpy_four_sim, xla_gemm
    from drc_jax import drc_score

    nq, n = s.score_shape
    dim = 512
    images, aff, neg, cf, full, strength = make_case(nq, n, dim)
    dev = {k: jnp.asarray(v) for k, v in dict(aff=aff, neg=neg, cf=cf, full=full).items()}
    img16 = jnp.asarray(images, jnp.bfloat16)
    st = jnp.asarray(strength)
    args = (dev["aff"], dev["neg"], dev["cf"], dev["full"], st)

    few = slice(0, min(nq, 256))
    want = numpy_four_sim(images, aff[few], neg[few], cf[few], full[few], strength[few])
    got = np.asarray(drc_score(img16, *(a[few] for a in args)))
    max_err = float(np.max(np.abs(got - want)))
    # f32 images should score in f32; a backend that runs f32 GEMMs as TF32 (XLA's default on
    # recent NVIDIA GPUs) shows errors near 1e-3 here instead of 1e-6.
    got32 = np.asarray(drc_score(jnp.asarray(images), *(a[few] for a in args)))
    max_err32 = float(np.max(np.abs(got32 - want)))

    a16, n16 = dev["aff"].astype(jnp.bfloat16), dev["neg"].astype(jnp.bfloat16)
    two_gemms = jax.jit(lambda q, ng, im: (xla_gemm(q, im), xla_gemm(ng, im)))
    t_drc = median_time(lambda: drc_score(img16, *args), s.repeats)
    t_gemm = median_time(lambda: two_gemms(a16, n16, img16), s.repeats)
    flops = 2 * 2 * nq * n * dim
    drc_bytes = n * dim * 2 + 4 * nq * dim * 4 + nq * 4 + nq * n * 4
    gemm_bytes = n * dim * 2 + 2 * nq * dim * 2 + 2 * nq * n * 4
    return {
        "Q": nq,
        "N": n,
        "D": dim,
        "max_abs_err_bf16_vs_numpy_f32": max_err,
        "max_abs_err_f32_vs_numpy_f32": max_err32,
        "drc_score_bf16": {**t_drc, **rates(flops, drc_bytes, t_drc["median_s"], s.chip)},
        "two_gemms_bf16": {**t_gemm, **rates(flops, gemm_bytes, t_gemm["median_s"], s.chip)},
        "drc_over_two_gemms": t_drc["median_s"] / t_gemm["median_s"],
    }


# ------------------------------------------------------------------ part: streamed top_k
def topk(s: Setup) -> dict:
    """The streamed ``top_k`` of every query over bf16 images made on the devices, with
    ground-truth ranks; first call (with compilation) and a second, steady-state call. Checked:
    each of 4 queries' best score equals the best exact ``drc_score`` over all images."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from drc_jax import Queries, drc_score, query_vectors, top_k

    nq, n = s.topk_shape
    dim, k = 512, 10
    keys = jax.random.split(jax.random.key(0), 6)
    unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)
    images = jax.jit(lambda kk: unit(jax.random.normal(kk, (n, dim))).astype(jnp.bfloat16))(keys[0])
    aff = unit(jax.random.normal(keys[1], (nq, dim)))
    near = lambda kk, sc: unit(aff + sc * jax.random.normal(kk, aff.shape) / math.sqrt(dim) * 8)
    queries = Queries(
        aff,
        near(keys[2], 0.1),
        near(keys[3], 0.08),
        near(keys[4], 0.05),
        strength=jax.random.randint(keys[5], (nq,), 1, 4, jnp.int32),
    )
    gt = np.random.default_rng(0).integers(0, n, nq)
    run = lambda: top_k(  # the whole search as a caller runs it, query vectors included
        images,
        query_vectors("drc", queries),
        k,
        gt_index=gt,
        chunk_size=s.topk_chunk,
        mesh=s.mesh,
        image_dtype=jnp.bfloat16,
    )
    t = median_time(run, max(1, s.repeats // 3))
    res = run()
    few = slice(0, 4)
    exact = drc_score(
        images,
        queries.aff[few],
        queries.neg[few],
        queries.cf[few],
        queries.full[few],
        queries.strength[few],
    )
    top1_gap = float(jnp.max(jnp.abs(jnp.max(exact, axis=1) - res.scores[few, 0])))
    block = inspect.signature(top_k).parameters["query_block"].default
    n_blocks = -(-nq // block)  # top_k streams every image once per query block
    flops = 2 * 2 * nq * n * dim
    streamed = n_blocks * n * dim * 2 + 4 * nq * dim * 4
    return {
        "Q": nq,
        "N": n,
        "D": dim,
        "k": k,
        "chunk": s.topk_chunk,
        "query_blocks": n_blocks,
        "devices": s.mesh.size,
        "compile_and_first_s": t["first_call_s"],
        "median_s": t["median_s"],
        "pairs_per_s": nq * n / t["median_s"],
        **rates(flops, streamed, t["median_s"], s.chip),
        "top1_vs_exact_max_abs": top1_gap,
        "gt_rank_in_range": bool(
            np.all((np.asarray(res.gt_rank) >= 1) & (np.asarray(res.gt_rank) <= n))
        ),
    }


# ------------------------------------------------------------------ part: NEAT
def _neat_api():
    """The one place the suite names NEAT's API (``drc_jax.neat``, and the PyTorch
    transcription its tests compare against); None where NEAT is not in this checkout."""
    if importlib.util.find_spec("drc_jax.neat") is None:
        return None
    from drc_jax.neat import NEATConfig, init_state
    from drc_jax.neat.adapt import split_text_layer_norms, step_fn
    from tests.neat_reference import TorchNEAT

    return NEATConfig, init_state, split_text_layer_norms, step_fn, TorchNEAT


def neat(s: Setup) -> dict:
    """One NEAT adaptation step (captions, pos, neg and inv encoded, coarse alignment against
    the images, the loss, LayerNorm gradients, one AdamW update): the jitted JAX step against
    the PyTorch transcription (bf16 through autocast) on the same device kind, per dtype, on
    synthetic token ids (every caption negated)."""
    api = _neat_api()
    if api is None:
        return {"status": "not_available", "reason": "drc_jax.neat is not in this checkout"}
    neat_config, init_state, split_ln, step_fn, torch_neat = api
    import jax
    import numpy as np

    from drc_jax.parallel import batch_sharding, replicated

    backbone = s.backbones[0]
    batch = min(256, max(s.batch_sizes))
    n_images = 64 if s.smoke else 5000
    rows = []
    for dtype in s.dtypes[:1] if s.smoke else s.dtypes:  # smoke: one compile of the step
        clip = random_encoder(backbone, dtype, s.mesh, batch)
        cfg = neat_config(batch_size=batch)
        ids = token_ids(4 * batch, s.text_length, seed=1)
        images = np.random.default_rng(2).standard_normal((n_images, clip.embed_dim))
        images = (images / np.linalg.norm(images, axis=1, keepdims=True)).astype(np.float32)
        negated = np.ones(batch, bool)
        rep = replicated(s.mesh)
        rows_sharding = batch_sharding(s.mesh) if len(ids) % s.mesh.size == 0 else rep
        args = (
            jax.device_put(ids, rows_sharding),
            jax.device_put(negated, rep),
            jax.device_put(images, rep),
        )
        fn = step_fn(clip.config, clip.dtype, cfg)
        _, frozen = split_ln(clip.params)
        state = init_state(clip, cfg)
        carry = [state.ln, state.opt_state]

        def jax_step(fn=fn, frozen=frozen, args=args, carry=carry):
            ln, opt, scores, _ = fn(carry[0], carry[1], frozen, *args)
            carry[:] = [ln, opt]
            return scores

        t = median_time(jax_step, s.repeats)
        row = {
            "backbone": backbone,
            "dtype": dtype,
            "batch": batch,
            "images": n_images,
            "jax_first_call_s": t["first_call_s"],
            "jax_step_s": t["median_s"],
        }
        try:
            row.update(_torch_neat_step(s, clip.config, dtype, ids, images, torch_neat, batch))
            row["jax_over_torch"] = row["torch_step_s"] / row["jax_step_s"]
        except Exception as e:  # noqa: BLE001 - the JAX number stands on its own
            row["torch_error"] = f"{type(e).__name__}: {str(e)[:300]}"
        rows.append(row)
    return {"rows": rows}


def _torch_neat_step(s: Setup, cfg, dtype, ids, images, torch_neat, batch) -> dict:
    """The PyTorch transcription's step on a transformers CLIPModel of the same shape."""
    import contextlib

    import numpy as np
    import torch
    from transformers import CLIPModel

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with dev:
        model = CLIPModel._from_config(_hf_config(cfg), attn_implementation="sdpa")
    ref = torch_neat(model.to(dev), torch.from_numpy(images).to(dev))
    groups = torch.from_numpy(ids.astype(np.int64)).to(dev).split(batch)
    ctx = (
        (lambda: torch.autocast(dev.type, dtype=torch.bfloat16))
        if dtype == "bfloat16"
        else contextlib.nullcontext
    )

    def run():
        with ctx():
            ref.step(*groups)
        sync()

    t = median_time(run, s.repeats)
    return {
        "torch_device": str(dev),
        "torch_first_call_s": t["first_call_s"],
        "torch_step_s": t["median_s"],
    }


# ------------------------------------------------------------------ part: the launcher
def launcher(s: Setup) -> dict:
    """``python -m drc_jax.launch --benchmark synthetic`` end to end in a subprocess, timed
    (interpreter start, imports, rendering the set, encoding, scoring, the report). The run goes
    to a temporary directory; its log is kept as ``launcher.log`` beside the report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cmd = [
            sys.executable,
            "-m",
            "drc_jax.launch",
            "--benchmark",
            "synthetic",
            "--output_dir",
            str(out / "run"),
            "--data_dir",
            str(out / "data"),
            "--cache_dir",
            "",
            "--noprogress",
        ]
        if s.smoke:
            cmd += ["--weights", "random:test-tiny", "--synthetic_images", "8"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
        wall = time.perf_counter() - t0
        (s.out_dir / "launcher.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise RuntimeError(
                f"launcher exited {proc.returncode} after {wall:.1f}s: {' | '.join(tail)}"
            )
        wrote = (out / "run" / "results.json").is_file()
    shown = [str(c).replace(tmp, "$TMP") for c in cmd[1:]]
    return {"command": " ".join(shown), "wall_s": wall, "results_json": wrote}
