"""Every hot path on an accelerator in one command: one JSON + Markdown report under ``--out``.

Parts (:mod:`benchmarks.device_parts`), each guarded so that one failure is reported and the rest
still run:

- ``encode``: CLIP images and texts, ViT-B/32, B/16, L/14 (random weights), bf16 and f32, batch
  256 and 1024, data parallel over the devices: items/s and TFLOP/s against the chip's bf16 peak,
  and transformers' CLIPModel (bf16, SDPA) on the same device as the side-by-side ratio;
- ``score``: ``drc_score`` at the COCO-Neg shape (Q=25,000, N=5,000, bf16 images) against two
  bf16 GEMMs of that shape timed alone;
- ``topk``: the streamed ``top_k`` at Q=25,000, N=1,000,000 bf16 images;
- ``neat``: one NEAT adaptation step, JAX vs its PyTorch transcription (when NEAT is present);
- ``launcher``: ``python -m drc_jax.launch --benchmark synthetic`` end to end, timed.

Sized for <= 6 minutes on one H200 including compilation (``--encode_budget_s`` cuts the least
important encoder cases when compilation runs long). ``--smoke`` runs every part at tiny sizes on
CPU in well under a minute (CI runs it). The exit status is 1 when any part failed; the report
is written either way.

    PYTHONPATH=. python -m benchmarks.device_suite --out $OUT/suite               # all devices
    PYTHONPATH=. python -m benchmarks.device_suite --out $OUT/suite1 --devices 1  # one device
    PYTHONPATH=. python -m benchmarks.device_suite --smoke --out /tmp/suite       # CPU, tiny
"""

from __future__ import annotations

import os

# Torch and JAX share the GPU in this process: JAX must not take 75% of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from absl import app, flags  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import device_parts  # noqa: E402

PARTS = {
    "encode": device_parts.encode,
    "score": device_parts.score,
    "topk": device_parts.topk,
    "neat": device_parts.neat,
    "launcher": device_parts.launcher,
}

# device_kind substring -> (dense bf16 TFLOP/s, HBM TB/s), vendor datasheets (SXM parts unless
# named). First match wins, so the more specific names come first.
CHIPS = (
    ("H200", 989.0, 4.8),
    ("H100 PCIe", 756.0, 2.0),
    ("H100", 989.0, 3.35),
    ("A100-SXM4-80GB", 312.0, 2.04),
    ("A100", 312.0, 1.56),
    ("L40S", 362.0, 0.86),
    ("L4", 121.0, 0.3),
    ("A10", 125.0, 0.6),
)

SMOKE = dict(
    backbones=["test-tiny"],
    batch_sizes=["16"],
    text_length=16,
    repeats=2,
    score_shape=["300", "512"],
    topk_shape=["300", "5000"],
    topk_chunk=1024,
    attention_variants=["test-tiny"],
)


def define_flags() -> None:
    """The CLI's flags (defined on demand, so importing this module has no side effects)."""
    flags.DEFINE_string("out", "device_suite_out", "Directory for report.json and report.md.")
    flags.DEFINE_bool("smoke", False, "Every part at tiny sizes (CPU, well under a minute).")
    flags.DEFINE_enum(
        "devices",
        "all",
        ["1", "all"],
        "Use one device or every visible device (the launcher part always uses every device).",
    )
    flags.DEFINE_list("parts", list(PARTS), f"Parts to run, of {list(PARTS)}.")
    flags.DEFINE_list(
        "backbones", ["ViT-B/32", "ViT-B/16", "ViT-L/14"], "CLIP backbones to encode."
    )
    flags.DEFINE_list("dtypes", ["bfloat16", "float32"], "Encoder dtypes.")
    flags.DEFINE_list("batch_sizes", ["256", "1024"], "Encoder batch sizes (global, all devices).")
    flags.DEFINE_integer(
        "text_length", 32, "Tokens per text: one of the encoder's buckets 16/32/48/64/77."
    )
    flags.DEFINE_integer("repeats", 5, "Timed calls per measurement after the first (median).")
    flags.DEFINE_bool("torch", True, "Also time transformers' PyTorch CLIPModel (bf16, SDPA).")
    flags.DEFINE_float(
        "encode_budget_s", 150.0, "Start no new encoder case after this many seconds."
    )
    flags.DEFINE_list("score_shape", ["25000", "5000"], "drc_score Q,N (COCO-Neg).")
    flags.DEFINE_list("topk_shape", ["25000", "1000000"], "top_k Q,N.")
    flags.DEFINE_integer("topk_chunk", 8192, "top_k image chunk per device.")
    flags.DEFINE_list(
        "attention_variants",
        ["ViT-B/32", "ViT-L/14"],
        "bf16 backbones also timed with cuDNN's fused attention forced (images, largest batch).",
    )


def chip_limits(device) -> dict:
    """The chip's dense bf16 peak and memory bandwidth by ``device_kind`` (None: unknown peak)."""
    kind = getattr(device, "device_kind", str(device))
    for name, tflops, tbps in CHIPS:
        if name.lower() in kind.lower():
            return {"device_kind": kind, "bf16_tflops": tflops, "hbm_tbps": tbps}
    return {"device_kind": kind, "bf16_tflops": None, "hbm_tbps": None, "note": "unknown peak"}


def run_parts(parts: dict, setup, on_part=None) -> dict:
    """Run each part; an exception becomes ``status: failed`` with its message and traceback
    tail, and the next part still runs. A part may return its own ``status``
    (``not_available``). ``on_part(report)`` is called after each part (the CLI rewrites
    report.json, so a run cut off by a time limit still leaves the parts it finished)."""
    report = {}
    for name, fn in parts.items():
        t0 = time.perf_counter()
        print(f"[device_suite] {name} ...", flush=True)
        try:
            result = fn(setup)
            status = result.pop("status", "ok") if isinstance(result, dict) else "ok"
            entry = {"status": status, **result}
        except Exception as e:  # noqa: BLE001 - one part's failure must not stop the rest
            entry = {
                "status": "failed",
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc().strip().splitlines()[-6:],
            }
        entry["seconds"] = time.perf_counter() - t0
        print(f"[device_suite] {name}: {entry['status']} ({entry['seconds']:.1f}s)", flush=True)
        report[name] = entry
        if on_part is not None:
            on_part(report)
    return report


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("jax", "jaxlib", "flax", "torch", "transformers", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def markdown(report: dict) -> str:
    """The human-readable report: environment, then one table per part."""
    env, parts = report["env"], report["parts"]
    chip = env["chip"]
    lines = [
        "# drc-jax device suite" + (" (SMOKE: tiny sizes, numbers mean nothing)" * env["smoke"]),
        "",
        f"{chip['device_kind']} x{env['devices_used']} (of {env['devices_visible']}), "
        f"backend {env['backend']}, jax {env['versions']['jax']}; bf16 peak "
        f"{_fmt(chip['bf16_tflops'])} TFLOP/s, HBM {_fmt(chip['hbm_tbps'])} TB/s "
        f"(datasheet{'' if chip['bf16_tflops'] else ': unknown peak'}); "
        f"total {env['total_s']:.0f} s",
        "",
        "| part | status | seconds | note |",
        "|---|---|---|---|",
    ]
    for name, p in parts.items():
        note = p.get("error") or p.get("reason") or ""
        lines.append(f"| {name} | {p['status']} | {p['seconds']:.1f} | {note[:160]} |")
    enc = parts.get("encode", {})
    if enc.get("status") == "ok":
        lines += [
            "",
            "## CLIP encoding (device forward; end-to-end rows include host transfer)",
            "",
            "float32 rows use XLA's default matmul precision (TF32 on recent NVIDIA GPUs).",
            "",
            "| backbone | dtype | kind | batch | items/s | TFLOP/s | of bf16 peak | first call s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in enc["rows"]:
            if "error" in r:
                lines.append(
                    f"| {r['backbone']} | {r['dtype']} | {r['kind']} | {r['batch']} | "
                    f"not run: {r['error'][:100]} | | | |"
                )
                continue
            lines.append(
                f"| {r['backbone']} | {r['dtype']} | {r['kind']} | {r['batch']} | "
                f"{r['items_per_s']:,.0f} | {_fmt(r.get('tflops'))} | "
                f"{_fmt(r.get('frac_bf16_peak'), '.1%')} | {r['compile_and_first_s']:.1f} |"
            )
        if enc["torch_rows"]:
            lines += [
                "",
                "| backbone | kind | batch | torch items/s | drc-jax / torch (bf16, SDPA) |",
                "|---|---|---|---|---|",
            ]
            for r in enc["torch_rows"]:
                lines.append(
                    f"| {r['backbone']} | {r['kind']} | {r['batch']} | {r['items_per_s']:,.0f} | "
                    f"{r['jax_over_torch']:.2f}x |"
                )
        for case, err in enc["errors"].items():
            lines.append(f"\nFailed: {case}: {err[:200]}")
        if enc["skipped_for_time_budget"]:
            lines.append(f"\nSkipped (time budget): {', '.join(enc['skipped_for_time_budget'])}")
    sc = parts.get("score", {})
    if sc.get("status") == "ok":
        lines += [
            "",
            f"## drc_score, Q={sc['Q']:,} N={sc['N']:,} D={sc['D']} (bf16 images)",
            "",
            "| what | median s | TFLOP/s | of bf16 peak | TB/s | of HBM |",
            "|---|---|---|---|---|---|",
        ]
        for what in ("drc_score_bf16", "two_gemms_bf16"):
            r = sc[what]
            lines.append(
                f"| {what} | {r['median_s']:.4g} | {r['tflops']:.3g} | "
                f"{_fmt(r['frac_bf16_peak'], '.1%')} | {r['tbps']:.3g} | "
                f"{_fmt(r['frac_hbm'], '.1%')} |"
            )
        lines.append(
            f"\ndrc_score / two GEMMs: {sc['drc_over_two_gemms']:.2f}x; max |bf16 - NumPy f32| "
            f"{sc['max_abs_err_bf16_vs_numpy_f32']:.2g}; f32 images: "
            f"{sc['max_abs_err_f32_vs_numpy_f32']:.2g} (near 1e-3 means TF32 GEMMs)"
        )
    tk = parts.get("topk", {})
    if tk.get("status") == "ok":
        lines += [
            "",
            f"## top_k, Q={tk['Q']:,} N={tk['N']:,} bf16, k={tk['k']}, {tk['devices']} device(s)",
            "",
            f"steady {tk['median_s']:.3g} s (first call {tk['compile_and_first_s']:.3g} s), "
            f"{tk['pairs_per_s']:.3g} pairs/s, {tk['tflops']:.3g} TFLOP/s "
            f"({_fmt(tk['frac_bf16_peak'], '.1%')} of peak), {tk['tbps']:.3g} TB/s streamed "
            f"({_fmt(tk['frac_hbm'], '.1%')} of HBM); "
            f"top-1 vs exact {tk['top1_vs_exact_max_abs']:.2g}",
        ]
    la = parts.get("launcher", {})
    if la.get("status") == "ok":
        lines += ["", f"## launcher\n\n`{la['command']}`: {la['wall_s']:.1f} s end to end"]
    ne = parts.get("neat", {})
    if ne.get("status") == "ok":
        lines += [
            "",
            "## NEAT adaptation step (JAX vs the PyTorch transcription)",
            "",
            "| backbone | dtype | batch | JAX step s | torch step s | JAX speed-up |",
            "|---|---|---|---|---|---|",
        ]
        for r in ne["rows"]:
            torch_s = _fmt(r.get("torch_step_s"), ".4g") if "torch_error" not in r else "-"
            ratio = _fmt(r.get("jax_over_torch"), ".2f") + "x" if "jax_over_torch" in r else "-"
            lines.append(
                f"| {r['backbone']} | {r['dtype']} | {r['batch']} | {r['jax_step_s']:.4g} | "
                f"{torch_s} | {ratio} |"
            )
            if "torch_error" in r:
                lines.append(f"\ntorch side failed: {r['torch_error'][:200]}")
    return "\n".join(lines) + "\n"


def run(argv):
    del argv
    FLAGS = flags.FLAGS
    if FLAGS.smoke:
        for k, v in SMOKE.items():
            if not FLAGS[k].present:
                setattr(FLAGS, k, v)
    unknown = [p for p in FLAGS.parts if p not in PARTS]
    if unknown:
        raise app.UsageError(f"--parts: unknown {unknown}; choose from {list(PARTS)}")
    t0 = time.perf_counter()
    import jax

    from drc_jax.parallel import make_mesh

    devices = jax.devices()
    mesh = make_mesh(devices[:1] if FLAGS.devices == "1" else devices)
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    setup = device_parts.Setup(
        mesh=mesh,
        chip=chip_limits(devices[0]),
        out_dir=out,
        smoke=FLAGS.smoke,
        repeats=FLAGS.repeats,
        backbones=FLAGS.backbones,
        dtypes=FLAGS.dtypes,
        batch_sizes=[int(b) for b in FLAGS.batch_sizes],
        text_length=FLAGS.text_length,
        torch=FLAGS.torch,
        encode_budget_s=FLAGS.encode_budget_s,
        score_shape=tuple(int(x) for x in FLAGS.score_shape),
        topk_shape=tuple(int(x) for x in FLAGS.topk_shape),
        topk_chunk=FLAGS.topk_chunk,
        attention_variants=FLAGS.attention_variants,
    )

    def write(parts: dict, done: bool) -> dict:
        report = {"env": env(done), "parts": parts}
        (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        return report

    def env(done: bool) -> dict:
        return {
            "smoke": FLAGS.smoke,
            "chip": setup.chip,
            "backend": jax.default_backend(),
            "devices_visible": len(devices),
            "devices_used": mesh.size,
            "versions": _versions(),
            "python": platform.python_version(),
            "host": platform.node(),
            "argv": sys.argv[1:],
            "total_s": time.perf_counter() - t0,
            "complete": done,
        }

    parts = run_parts(
        {p: PARTS[p] for p in FLAGS.parts}, setup, on_part=lambda r: write(r, done=False)
    )
    report = write(parts, done=True)
    md = markdown(report)
    (out / "report.md").write_text(md)
    print(md)
    print(f"wrote {out / 'report.json'} and {out / 'report.md'}")
    failed = [name for name, p in parts.items() if p["status"] == "failed"]
    if failed:  # the report is written either way; CI needs to see a broken part
        raise SystemExit(f"device_suite: parts failed: {', '.join(failed)} (see {out})")


def main(argv=None):
    define_flags()
    app.run(run, argv)


if __name__ == "__main__":
    main()
