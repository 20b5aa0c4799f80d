"""Run report: the paper-layout table (text and Markdown) and results.json.

R@1, R@5, R@10 and medR per row, each with its change against the same backbone's CLIP row; neg@5
where the object lists are complete (COCO, synthetic).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

COLUMNS = ("R@1", "R@5", "R@10", "medR")
NEG_COLUMN = "neg@5"  # % of top-5 results containing the negated object
BOOTSTRAP_RESAMPLES = 1000  # paired bootstrap over queries for each row's change vs CLIP
BOOTSTRAP_SEED = 0


def _cell(value: float, base: float | None, digits: int = 1) -> str:
    text = f"{value:.{digits}f}"
    if base is None or math.isnan(base):
        return text
    return f"{text} ({value - base:+.{digits}f})"


def table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    methods = results["methods"]
    has_neg = any(NEG_COLUMN in m for m in methods.values())
    header = ["Method", *COLUMNS] + ([f"{NEG_COLUMN} (%)"] if has_neg else [])
    rows = []
    for name, m in methods.items():
        base_name = m.get("baseline")
        base = methods.get(base_name) if base_name and base_name != name else None
        row = [m.get("label", name)]
        for col in COLUMNS:
            row.append(_cell(m[col], base[col] if base else None))
        if has_neg:
            neg = m.get(NEG_COLUMN)
            row.append("-" if neg is None else _cell(neg, base.get(NEG_COLUMN) if base else None))
        rows.append(row)
    return header, rows


def _title(results: dict) -> str:
    c = results["config"]
    title = (
        f"{results['benchmark_name']}: {results['num_queries']} queries, "
        f"{results['num_media']} {results['media_kind']}s; config {c['name']}; weights "
        f"{', '.join(c['backbones'])}"
    )
    if c.get("random_weights"):
        title += " (RANDOM WEIGHTS: numbers only check the pipeline)"
    if results.get("decomposer_note"):
        title += f"; {results['decomposer_note']}"
    return title


def format_text(results: dict) -> str:
    header, rows = table_rows(results)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
    )
    sep = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [_title(results), sep, line(header), sep, *map(line, rows), sep]
    out += _notes(results)
    return "\n".join(out)


def ci_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Per row the R@K change vs its CLIP row and bootstrap 95% interval: ``+1.2 [+0.3, +2.0]``."""
    methods = results["methods"]
    ks = [c for c in COLUMNS if c.startswith("R@")]
    rows = []
    for name, m in methods.items():
        ci = m.get("ci")
        if not ci:
            continue
        cells = [f"{ci[k]['delta']:+.1f} [{ci[k]['lo']:+.1f}, {ci[k]['hi']:+.1f}]" for k in ks]
        rows.append([m.get("label", name), *cells])
    return ["Method", *(f"{k} change [95% CI]" for k in ks)], rows


def format_markdown(results: dict) -> str:
    header, rows = table_rows(results)
    out = [f"### {_title(results)}", ""]
    out.append("| " + " | ".join(header) + " |")
    out.append("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")
    out += ["| " + " | ".join(r) + " |" for r in rows]
    ci_header, ci = ci_rows(results)
    if ci:
        b = results.get("bootstrap", {})
        out += [
            "",
            f"Paired bootstrap over queries ({b.get('resamples')} resamples, seed "
            f"{b.get('seed')}): change vs CLIP in points, [95% confidence interval].",
            "",
            "| " + " | ".join(ci_header) + " |",
            "| " + " | ".join(["---"] + ["---:"] * (len(ci_header) - 1)) + " |",
            *("| " + " | ".join(r) + " |" for r in ci),
        ]
    notes = _notes(results)
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def _notes(results: dict) -> list[str]:
    medr = results.get("medr", {})
    notes = [
        "R@K in %, medR in ranks"
        + (f" (medR: {medr['definition']})" if medr else "")
        + "; (change vs CLIP on the same backbone)."
    ]
    z = results.get("zeroshot")
    if z:
        notes.append(
            f"zero-shot: {z['marked_negated']} of {z['captions']} captions without negation "
            f"({z['marked_negated_pct']:.2f}%) were marked negated by the decomposer; only those "
            "can move DRC off CLIP."
        )
    if any(NEG_COLUMN in m for m in results["methods"].values()):
        cov = results.get("negated_object_coverage")
        notes.append(
            f"{NEG_COLUMN}: share of top-5 results showing the negated object (lower is better)"
            + (f"; measured on {cov:.1f}% of queries (negated object named)." if cov else ".")
        )
    d = results.get("decomposition", {})
    if d:
        notes.append(
            f"decomposer {d.get('decomposer')}: {d.get('negated', '?')} of "
            f"{d.get('captions', '?')} captions negated"
            + (f", {d['fallbacks']} fell back to plain CLIP" if d.get("fallbacks") else "")
            + "."
        )
    skipped = results.get("skipped", [])
    if skipped:
        notes.append(
            f"{len(skipped)} media item(s) skipped (--on_missing_media skip), e.g. "
            + "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        )
    notes += _neat_notes(results["methods"])
    for w in results.get("warnings", []):
        notes.append(w)
    return notes


def _neat_notes(methods: dict) -> list[str]:
    from drc_jax.launch.neat_rows import DECOMPOSITION, DECOMPOSITION_NOTE

    rows = {n: m for n, m in methods.items() if m.get("method") == "neat"}
    notes = (
        [DECOMPOSITION_NOTE]
        if any(m["record"].get("texts") == DECOMPOSITION for m in rows.values())
        else []
    )
    for name, m in rows.items():
        if "spread" in m:
            spread = ", ".join(f"{k} {m['spread'][k]:.2f}" for k in COLUMNS if k in m["spread"])
            notes.append(
                f"{m.get('label', name)}: mean over NEAT seeds {', '.join(map(str, m['seeds']))} "
                f"(standard deviation {spread})."
            )
    return notes


def unreadable(corpus, encoded) -> list[dict]:
    """The media some backbone could not embed, as ``{"file", "line", "reason"}``."""
    out = {}
    for e in encoded:
        for i in map(int, (~e.media.valid).nonzero()[0]):
            m = corpus.bench.media[i]
            out.setdefault(
                i,
                {
                    "file": m.file_name,
                    "line": m.line,
                    "reason": e.media.errors.get(i, "unreadable"),
                },
            )
    return [out[i] for i in sorted(out)]


def build(
    config, table, corpus, decomposed, encoded, rankings, *, timing, extra=None, row_records=None
) -> dict:
    """results.json's content from the config and stage outputs; ``extra`` and ``row_records`` add
    top-level and per-row entries."""
    import jax

    from drc_jax.data.negbench import DATASETS
    from drc_jax.launch.config import SYNTHETIC, resolved_weights
    from drc_jax.launch.evaluate import evaluated_queries, readable
    from drc_jax.launch.record import paper_decomposer_note, row_record
    from drc_jax.metrics import MEDR, paired_bootstrap

    bench = corpus.bench
    valid = readable(encoded)
    evaluated = evaluated_queries(bench, valid)
    backbones = [e.weights for e in encoded]
    settings = {k: v for k, v in config.to_dict().items() if k not in ("variants", "rows")}
    if config.benchmark not in SYNTHETIC:
        del settings["synthetic"]
    methods = {}
    by_name = {r.variant.name: r for r in rankings}
    for r in rankings:
        base = table.baseline_of(r.variant)
        ci = None
        if base and base.name != r.variant.name and base.name in by_name:
            ci = paired_bootstrap(
                by_name[base.name].gt_rank[evaluated], r.gt_rank[evaluated],
                resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED,
            )  # fmt: skip
        methods[r.variant.name] = {
            **r.metrics,
            "label": r.variant.label,
            "method": r.variant.method,
            "weights": r.weights,
            **({"baseline": base.name} if base else {}),
            **({"ci": ci} if ci else {}),
            **(r.per_seed or {}),
            "record": {
                **row_record(r.variant, config),
                **(row_records or {}).get(r.variant.name, {}),
            },
        }
    results = {
        "benchmark": config.benchmark,
        "benchmark_name": DATASETS[bench.name].name if bench.name in DATASETS else bench.name,
        "media_kind": bench.kind,
        "num_media": int(valid.sum()),
        "num_queries": int(evaluated.sum()),
        "captions_csv": str(bench.csv_path),
        "config": {
            **settings,
            "variants": {v.name: v.to_json() for v in table.variants},
            "backbones": backbones,
            "random_weights": any(w.startswith("random") for w in backbones),
            "weights": resolved_weights(config),
            "devices": jax.device_count(),
            "processes": jax.process_count(),
            "platform": jax.devices()[0].platform,
        },
        "methods": methods,
        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "level": 0.95},
        "decomposition": decomposed.stats(evaluated),
        "medr": {"name": config.medr, "definition": MEDR[config.medr]},
        **({"decomposer_note": note} if (note := paper_decomposer_note(config)) else {}),
        **({"zeroshot": zeroshot(decomposed)} if config.query_kind == "plain" else {}),
        "encoding": {e.weights: e.stats() for e in encoded},
        "timing": {
            **{k: round(v, 3) for k, v in timing.items()},
            **{f"score_{r.variant.name}_s": round(r.seconds, 3) for r in rankings},
        },
        "skipped": [*corpus.skipped, *unreadable(corpus, encoded)],
        "skipped_captions": list(corpus.skipped_captions),
        **(extra or {}),
    }
    if bench.objects_complete and rankings and rankings[-1].neg_coverage is not None:
        results["negated_object_coverage"] = rankings[-1].neg_coverage
    return results


def zeroshot(decomposed) -> dict:
    """On captions without negation: how many the decomposer marked negated (false positives)."""
    n = len(decomposed.per_query)
    marked = sum(bool(d.negated) for d in decomposed.per_query)
    return {
        "captions": n,
        "marked_negated": marked,
        "marked_negated_pct": 100.0 * marked / n if n else 0.0,
    }


def files(results: dict) -> dict[str, str]:
    """``results.json`` and ``results.md``: name -> text."""
    return {
        "results.json": json.dumps(results, indent=2, ensure_ascii=False) + "\n",
        "results.md": format_markdown(results),
    }


def write(output_dir: str | Path, results: dict) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``output_dir`` as one atomic step."""
    from drc_jax import atomic

    json_path, md_path = atomic.write_all(output_dir, files(results))
    return json_path, md_path
