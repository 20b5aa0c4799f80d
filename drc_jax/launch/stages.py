"""The frozen values a run's stages hand on: data -> decompose -> encode -> score -> report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drc_jax.data.negbench import Benchmark
from drc_jax.launch.config import Variant

STRENGTHS = ("weak", "moderate", "strong")


@dataclass(frozen=True)
class Corpus:
    """The data stage: ``bench.media[i]`` found at ``paths[i]`` under ``root``.

    ``skipped`` / ``skipped_captions``: left out, as ``{"file"/"caption", "line", "reason"}``.
    """

    bench: Benchmark
    paths: tuple[Path, ...]
    root: Path
    skipped: tuple[dict, ...] = ()
    skipped_captions: tuple[dict, ...] = ()

    def without_media(self, drop: dict[int, str]) -> tuple[Corpus, np.ndarray]:
        """This corpus less media ``drop`` (index -> reason) and their queries; the kept queries."""
        keep = [i for i in range(len(self.paths)) if i not in drop]
        kept_queries = np.asarray(
            [q for q, query in enumerate(self.bench.queries) if query.gt not in drop], np.int64
        )
        skipped = [
            {"file": self.bench.media[i].file_name, "line": self.bench.media[i].line, "reason": r}
            for i, r in sorted(drop.items())
        ]
        corpus = dataclasses.replace(
            self,
            bench=self.bench.subset(set(keep)),
            paths=tuple(self.paths[i] for i in keep),
            skipped=(*self.skipped, *skipped),
        )
        return corpus, kept_queries


@dataclass(frozen=True)
class Decomposed:
    """The decompose stage: one Decomposition per query, and the decomposer's description."""

    per_query: tuple
    source: dict

    def stats(self, evaluated: np.ndarray | None = None) -> dict:
        """Counts over the queries evaluated (a caption shared by two queries counts twice)."""
        rows = [d for i, d in enumerate(self.per_query) if evaluated is None or evaluated[i]]
        negated = [d for d in rows if d.negated]
        return {
            **self.source,
            "captions": len(rows),
            "unique_captions": len({d.caption for d in rows}),
            "negated": len(negated),
            "strength": {s: sum(d.strength == s for d in negated) for s in STRENGTHS},
        }


@dataclass(frozen=True)
class Texts:
    """The texts every row scores, per :class:`~drc_jax.texts.TextSet` and per NEAT row."""

    sets: dict  # TextSet -> (list of [aff, neg, cf, full], (Q,) int32 strength)
    neat: dict  # row name -> (captions, pos, neg, inv)
    neat_source: dict = dataclasses.field(default_factory=dict)  # row name -> record "texts"


@dataclass(frozen=True)
class MediaEmbeddings:
    """One backbone's unit-norm media embeddings; ``errors``: index -> why not ``valid``."""

    vectors: np.ndarray  # (N, D) float32, zero rows where not valid
    valid: np.ndarray  # (N,) bool
    errors: dict[int, str]
    stats: dict  # {"embedded": n, "cached": n} or {"precomputed": path}
    unnormalized: np.ndarray | None = None  # (N, D), videos only

    @classmethod
    def of(cls, raw, valid, errors, stats, kind: str, *, unit: bool = False) -> MediaEmbeddings:
        """From stored ``raw``: renormalised (images already ``unit`` kept as they are)."""
        raw = np.asarray(raw, np.float32)
        if kind == "image" and unit:
            return cls(raw, valid, errors, stats)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        vectors = np.where(norms > 0, raw / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        return cls(vectors, valid, errors, stats, raw if kind == "video" else None)

    def for_mean(self, video_mean: str) -> np.ndarray:
        """The (N, D) embeddings a row with ``video_mean`` scores (images: always ``vectors``)."""
        if video_mean == "unnormalized" and self.unnormalized is not None:
            return self.unnormalized
        return self.vectors


@dataclass(frozen=True)
class Encoded:
    """The encode stage, per backbone: media and query embeddings, and NEAT rows' adaptations."""

    weights: str  # as named in the config
    weights_id: str  # what was loaded (file fingerprint, dtype)
    media: MediaEmbeddings
    queries: dict  # TextSet -> drc_jax.queries.Queries, rows in Corpus.bench.queries order
    text_stats: dict
    probe: str | None = None  # content fingerprint of the loaded parameters
    neat: dict = dataclasses.field(default_factory=dict)  # row name -> neat_rows.NEATRun

    def stats(self) -> dict:
        return {
            "weights_id": self.weights_id,
            "params_probe": self.probe,
            "media": self.media.stats,
            "texts": self.text_stats,
        }


@dataclass(frozen=True)
class Ranking:
    """The score stage, per table row: top-K media per query and the ground truth's rank."""

    variant: Variant
    weights: str
    top: np.ndarray  # (Q, K) media indices, best first
    gt_rank: np.ndarray  # (Q,) 1-indexed rank of each query's ground truth
    metrics: dict  # R@1, R@5, R@10, medR (and neg@5 where measurable)
    neg_coverage: float | None  # % of queries whose negated object is named (neg@5's base)
    seconds: float
    per_seed: dict | None = None  # NEAT, several seeds: {"seeds", "spread"}; top: the first's
