"""The run record written beside a table: :func:`row_record` (all that decides a row's scores),
:func:`environment`, :func:`inputs` (hashes, fingerprints) and :func:`decompositions_jsonl`."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

from drc_jax.data.spacevlm_split import sha256_file
from drc_jax.metrics import MEDR
from drc_jax.scoring import STRENGTHS
from drc_jax.texts import scored_texts, text_set

PACKAGES = ("drc-jax", "jax", "jaxlib", "flax", "transformers", "numpy", "optax")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(path: Path | None = None) -> dict | None:
    """``{"commit", "dirty"}`` of the checkout holding this package, or None (no checkout/git)."""
    root = Path(path or Path(__file__).resolve().parents[2])
    if not (root / ".git").exists():
        return None
    try:
        run = lambda *a: subprocess.run(
            ["git", *a], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    """Versions, the checkout's commit, and the devices the run used."""
    import jax

    devices = jax.devices()
    return {
        "versions": {p: _version(p) for p in PACKAGES},
        "python": platform.python_version(),
        "git": git_commit(),
        "backend": jax.default_backend(),
        "device_kinds": sorted({d.device_kind for d in devices}),
        "device_count": len(devices),
        "process_count": jax.process_count(),
    }


def inputs(opts, corpus, read, encoded) -> dict:
    """What the numbers were computed from: file hashes, weights fingerprints, media counts."""
    from drc_jax.launch.evaluate import evaluated_queries, readable

    valid = readable(encoded)
    csv_path = Path(read.csv_path)
    out = {
        "captions_csv": str(csv_path),
        "captions_csv_sha256": sha256_file(csv_path) if csv_path.is_file() else None,
        "weights": {
            e.weights: {"weights_id": e.weights_id, "params_probe": e.probe} for e in encoded
        },
        "media": {
            "listed": len(read.media),
            "found": len(corpus.bench.media),
            "missing": len(corpus.skipped),
            "unreadable": int((~valid).sum()),
        },
        "queries": {
            "listed": len(read.queries),
            "evaluated": int(evaluated_queries(corpus.bench, valid).sum()),
        },
    }
    if opts.spacevlm_split:
        out["spacevlm_split"] = str(opts.spacevlm_split)
        out["spacevlm_split_sha256"] = sha256_file(opts.spacevlm_split)
    if opts.decompositions:
        out["decompositions_sha256"] = sha256_file(opts.decompositions)
    if opts.neat_texts:
        out["neat_texts"] = str(opts.neat_texts)
        out["neat_texts_sha256"] = sha256_file(opts.neat_texts)
    return out


def decomposer(opts) -> dict:
    """Where the run's decomposition came from (and, if the config's paper used another, which)."""
    if opts.decompositions:
        out = {"backend": "jsonl", "path": str(opts.decompositions)}
    elif opts.decomposer == "sglang":
        out = {
            "backend": "sglang",
            "mode": opts.decomposer_mode,
            "model": opts.sglang_model,
            "url": opts.sglang_url,
        }
    else:
        out = {"backend": opts.decomposer}
    note = paper_decomposer_note(opts)
    return {**out, "paper_used": opts.paper_decomposer, "note": note} if note else out


def paper_decomposer_note(opts) -> str | None:
    """A line for a paper config run with another decomposer than the paper's; else None."""
    if not opts.paper_decomposer or opts.decompositions or opts.decomposer == "sglang":
        return None
    return (
        f"decomposer {opts.decomposer}: the paper used {opts.paper_decomposer} "
        "(--decomposer sglang)"
    )


def row_record(variant, opts) -> dict:
    """Everything that decides a row's scores (only the settings its method reads)."""
    p = variant.params
    rec = {
        "method": variant.method,
        "prompts": variant.prompts.to_dict(),
        "texts": "spacevlm_split" if variant.split else "decomposition",
        "concepts_per_caption": variant.concepts,
        "video_mean": variant.video_mean,
        "medr": {"name": opts.medr, "definition": MEDR[opts.medr]},
    }
    if variant.method == "clip":
        rec["score"] = "eq. 2: images . full (full = the caption with prompts.full)"
        return rec
    if variant.split:
        rec["decomposer"] = {
            "backend": "spacevlm_split",
            "path": variant.split,
            "prompts": "texts scored verbatim, as in the file",
        }
    else:
        rec["decomposer"] = decomposer(opts)
    if variant.method == "spacevlm":
        rec.update(t=p.spacevlm_t, operator=p.operator, repulsion=False)
    elif variant.method == "drc":
        rec.update(
            t={s: p.t[i] for i, s in enumerate(STRENGTHS) if i},
            w_base={s: p.w_base[i] for i, s in enumerate(STRENGTHS) if i},
            weights={"w1": p.w1, "w2": p.w2, "wctx": p.wctx},
            terms={"d1": p.use_d1, "d2": p.use_d2, "dctx": p.use_dctx},
            repulsion=p.use_repulsion,
            rho=p.rho,
            operator=p.operator,
        )
    elif variant.method == "neat":
        rec["neat"] = dict(variant.neat)  # texts, neat_seed, neat_order: launch.neat_rows.record
    return rec


def _neat_scored(texts: tuple, cfg) -> list[dict]:
    from drc_jax.neat import NEATTexts

    t = NEATTexts.from_lists(*texts)
    if cfg.pre_caption:
        t = t.preprocessed()
    return [
        {"caption": c, "pos": p, **({"neg": n, "inv": v} if m else {})}
        for c, p, n, v, m in zip(t.captions, t.pos, t.neg, t.inv, t.negated, strict=True)
    ]


def decompositions_jsonl(table, corpus, decomposed, texts, evaluated=None):
    """``decompositions.jsonl``'s writer: per query its line, ground truth, caption, decomposition
    and each row's texts as scored; queries out of the metrics get ``"evaluated": false``."""
    neat = {
        v.name: _neat_scored(texts.neat[v.name], v.neat_config())
        for v in table.variants
        if v.method == "neat"
    }

    def write(f) -> None:
        for i, (q, d) in enumerate(zip(corpus.bench.queries, decomposed.per_query, strict=True)):
            scored = {}
            for v in table.variants:
                if v.method == "neat":
                    scored[v.name] = neat[v.name][i]
                    continue
                rows, strength = texts.sets[text_set(v)]
                scored[v.name] = scored_texts(v.method, rows[i], int(strength[i]))
            line = {
                "query": i,
                "line": q.line,
                "gt": q.gt,
                "caption": q.caption,
                "decomposition": d.to_dict(),
                "scored": scored,
                **({} if evaluated is None or evaluated[i] else {"evaluated": False}),
            }
            f.write((json.dumps(line, ensure_ascii=False) + "\n").encode())

    return write
