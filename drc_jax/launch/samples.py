"""``--figures N``: N sample queries, one row of top-5 results per method (videos: middle frame)."""

from __future__ import annotations

import numpy as np

from drc_jax.media import MediaError, read_image, read_video_frames

TILES = 5


def pick_queries(bench, decompositions, n: int) -> list[int]:
    """``n`` negated queries spread evenly over the benchmark (deterministic)."""
    negated = [i for i, d in enumerate(decompositions) if d.negated] or list(
        range(len(bench.queries))
    )
    if n >= len(negated):
        return negated
    return [negated[int(j)] for j in np.linspace(0, len(negated) - 1, n).round()]


def _thumbnail(path, kind: str, opts):
    try:
        if kind == "image":
            img = read_image(path)
        else:
            frames = read_video_frames(path, opts.video_frames, opts.video_sampling)
            img = frames[len(frames) // 2]
    except MediaError:
        return None
    img.thumbnail((256, 256))
    return img


def render_samples(opts, corpus, decompositions, rankings) -> list[str]:
    """Write ``figures/query_XX.png`` under the output dir from every row's ranking; their paths."""
    from drc_jax.figures import FigureStyle, FigureTile, render_comparison
    from drc_jax.launch.config import output_dir

    bench, paths = corpus.bench, corpus.paths
    out_dir = output_dir(opts) / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[int, object] = {}

    def thumb(i: int):
        if i not in cache:
            cache[i] = _thumbnail(paths[i], bench.kind, opts)
        return cache[i]

    # Row labels are method names ("SpaceVLM-DRC"): make room for the longest word.
    longest = max(len(w) for r in rankings for w in r.variant.label.split())
    style = FigureStyle(row_label_width=int(min(360, max(120, 18 * longest + 24))))
    warning = ""
    if any(r.weights.startswith("random") for r in rankings):
        warning = "random weights: results only exercise the pipeline"
    written = []
    for n, qi in enumerate(pick_queries(bench, decompositions, opts.figures)):
        q = bench.queries[qi]
        rows = {}
        for r in rankings:
            tiles = []
            for rank, i in enumerate(r.top[qi][:TILES]):
                i = int(i)
                if i < 0 or thumb(i) is None:
                    continue
                contains = None
                if bench.objects_complete and q.negated:
                    contains = q.negated in bench.media[i].positive_objects
                tiles.append(
                    FigureTile(
                        image=thumb(i),
                        label=bench.media[i].id,
                        rank=rank + 1,
                        contains_negated=contains,
                        is_ground_truth=i == q.gt,
                    )
                )
            rows[r.variant.label] = tiles
        d = decompositions[qi]
        subtitle = (
            f"aff: {d.aff} | neg: {d.neg} | cf: {d.cf} | strength: {d.strength}"
            if d.negated
            else "no negation found: plain CLIP score"
        )
        path = out_dir / f"query_{n:02d}.png"
        render_comparison(
            path, f'"{q.caption}"', rows, subtitle=subtitle, warning=warning, style=style
        )
        written.append(str(path))
    return written
