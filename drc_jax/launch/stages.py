"""What each stage of a run hands to the next: data -> decompose -> encode -> score -> report.

Each stage returns one of these frozen values; nothing else travels between stages (no shared
mutable state), and :func:`drc_jax.launch.report.build` makes the report from them once.
"""

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
    """The data stage: the queries and media to evaluate, and what was left out.

    ``paths[i]`` is where ``bench.media[i]`` was found under ``root``. ``skipped`` lists media
    left out (not found, or unreadable) and ``skipped_captions`` the captions left out, each as
    ``{"file"/"caption", "line", "reason"}``.
    """

    bench: Benchmark
    paths: tuple[Path, ...]
    root: Path
    skipped: tuple[dict, ...] = ()
    skipped_captions: tuple[dict, ...] = ()

    def without_media(self, drop: dict[int, str]) -> tuple[Corpus, np.ndarray]:
        """This corpus without the media ``drop`` (index -> reason) nor their queries; also the
        indices of the queries kept."""
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
    """The decompose stage: one Decomposition per query (in ``Corpus.bench.queries`` order) and
    the decomposer's description (name, fallbacks, ...)."""

    per_query: tuple
    source: dict

    def take(self, queries: np.ndarray) -> Decomposed:
        return dataclasses.replace(self, per_query=tuple(self.per_query[i] for i in queries))

    def stats(self) -> dict:
        """Counts over the queries evaluated (a caption shared by two queries counts twice)."""
        negated = [d for d in self.per_query if d.negated]
        return {
            **self.source,
            "captions": len(self.per_query),
            "unique_captions": len({d.caption for d in self.per_query}),
            "negated": len(negated),
            "strength": {s: sum(d.strength == s for d in negated) for s in STRENGTHS},
        }


@dataclass(frozen=True)
class Texts:
    """What every row scores, per query (:mod:`drc_jax.texts`): per
    :class:`~drc_jax.texts.TextSet` the rows of [aff, neg, cf, full] and the strengths;
    per NEAT row its (captions, pos, neg, inv) lists."""

    sets: dict  # TextSet -> (list of [aff, neg, cf, full], (Q,) int32 strength)
    neat: dict  # row name -> (captions, pos, neg, inv)

    def take(self, queries: np.ndarray) -> Texts:
        idx = [int(i) for i in queries]
        sets = {
            k: ([rows[i] for i in idx], strength[idx]) for k, (rows, strength) in self.sets.items()
        }
        neat = {k: tuple([xs[i] for i in idx] for xs in v) for k, v in self.neat.items()}
        return Texts(sets, neat)


@dataclass(frozen=True)
class MediaEmbeddings:
    """One backbone's unit-norm media embeddings, valid where ``valid[i]`` (``errors``: index ->
    why not); videos also keep the ``unnormalized`` frame means."""

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

    def take(self, keep: np.ndarray) -> MediaEmbeddings:
        index = {int(old): new for new, old in enumerate(keep)}
        errors = {index[i]: r for i, r in self.errors.items() if i in index}
        raw = None if self.unnormalized is None else self.unnormalized[keep]
        return dataclasses.replace(
            self, vectors=self.vectors[keep], valid=self.valid[keep], errors=errors,
            unnormalized=raw,
        )  # fmt: skip


@dataclass(frozen=True)
class Encoded:
    """The encode stage, per backbone: media embeddings, the queries' text embeddings (one
    :class:`~drc_jax.scoring.Queries` per text set) and NEAT rows' (Q, N) scores, which need the
    encoder itself (test-time adaptation)."""

    weights: str  # as named in the config
    weights_id: str  # what was loaded (file fingerprint, dtype)
    media: MediaEmbeddings
    queries: dict  # TextSet -> drc_jax.queries.Queries, rows in Corpus.bench.queries order
    text_stats: dict
    probe: str | None = None  # content fingerprint of the loaded parameters
    neat_scores: dict = dataclasses.field(default_factory=dict)  # row name -> (Q, N) float32

    def take(self, media: np.ndarray, queries: np.ndarray) -> Encoded:
        return dataclasses.replace(
            self,
            media=self.media.take(media),
            queries={k: q.take(queries) for k, q in self.queries.items()},
            neat_scores={k: s[queries][:, media] for k, s in self.neat_scores.items()},
        )

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
