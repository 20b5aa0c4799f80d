"""Query an image index with negation-aware text ("a dog not on a beach").

Data flows one way: queries -> decomposer (aff, neg, cf, strength) -> per method the texts the
launcher's row of that method scores (:func:`drc_jax.texts.text_set`) -> CLIP text embeddings ->
``retrieval.top_k`` over the index's image embeddings -> ranked paths. All queries of a call are
decomposed, embedded and scored as one batch by ``top_k``, which plans a person's handful of
queries as one pass over the index and streams larger batches; the image embeddings are sharded
over the local devices when there are several (``top_k(..., mesh=...)``).

A :class:`Searcher` is the warm, reusable object a server keeps: CLIP, the decomposer and the
image embeddings are loaded once, :meth:`Searcher.warm` compiles the shapes a query needs (text
encoding at the short length buckets, the top-k per method), texts already embedded are
remembered, and the top-k runs at ``k`` rounded up to a few buckets, so a new ``k`` rarely
compiles again.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ml_dtypes import bfloat16

from drc_jax.retrieval import top_k
from drc_jax.scoring import METHODS, DRCParams, query_vectors
from drc_jax.search.index import IndexInfo, indexed_files, read_info, weights_to_load
from drc_jax.store import Store, StoreError, unusable_rows

METHOD_LABELS = {"clip": "CLIP", "spacevlm": "SpaceVLM", "drc": "DRC"}
_STOPWORDS = frozenset(
    {"a", "an", "the", "some", "any", "of", "on", "in", "at", "with", "by", "to", "from"}
    | {"near", "under", "over", "and", "or", "no", "not", "without"}
)
DEFAULT_PARAMS = DRCParams()  # the paper's constants
IMAGE_DTYPES = {"float32": np.float32, "bfloat16": bfloat16}
# The top-k compiles once per k (static); Searcher runs it at the smallest bucket >= k and slices.
K_BUCKETS = (16, 64, 256, 1024)
# Warm-up shapes of the text encoder: a query embeds 1 (no negation) to 4 texts (aff, neg, cf,
# full), grouped by token-length bucket and padded to 1, 2 or 4 rows (clip.encode_texts);
# everyday queries fit the 16- and 32-token buckets.
WARM_TEXT_BATCHES = (1, 2, 4)
WARM_TEXT_LENGTHS = (16, 32)
WARM_LONG_LENGTHS = (48, 64, 77)  # a long query's caption (many -terms) alone, at batch 1
TEXT_CACHE_ENTRIES = 4096  # prefixed text -> embedding: re-runs (compare, edits) skip encoding
# Concepts a query may exclude; a query's count is padded (masked) up to a bucket, so many
# "-terms" compile no new program, and the buckets are compiled by warm().
CONCEPT_BUCKETS = (1, 2, 4, 8, 16)
MAX_CONCEPTS = CONCEPT_BUCKETS[-1]


class EmptyIndex(ValueError):
    """The index (within its confirmed folders) holds no images to search."""


class TooManyConcepts(ValueError):
    """A query excludes more than :data:`MAX_CONCEPTS` concepts."""


def concept_bucket(m: int) -> int:
    """The concept count a query of ``m`` concepts is scored at (:data:`CONCEPT_BUCKETS`)."""
    for b in CONCEPT_BUCKETS:
        if m <= b:
            return b
    raise TooManyConcepts(f"{m} concepts to exclude; at most {MAX_CONCEPTS} are searched at once")


def k_bucket(k: int, n: int) -> int:
    """The ``k`` that :func:`top_k` runs at for a request of ``k`` over ``n`` images."""
    for b in K_BUCKETS:
        if k <= b:
            return min(b, n)
    return min(k, n)


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-indexed
    score: float
    path: str  # absolute path of the image
    id: str  # path relative to the indexed folder


@dataclass(frozen=True)
class SearchResult:
    query: str
    method: str
    decomposition: Any  # drc_jax.decompose.Decomposition
    hits: list[Hit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = self.decomposition
        return {
            "query": self.query,
            "method": self.method,
            "decomposition": d.to_dict(),
            "hits": [vars(h) for h in self.hits],
        }


@dataclass
class Searcher:
    """An opened index plus a loaded CLIP and decomposer, reusable across calls (notebooks).

    The image embeddings are moved to the accelerator(s) once (as ``image_dtype``: bfloat16
    halves memory and scoring time, with float32 accumulation), on the first search or
    :meth:`warm`; reopen the Searcher to see later index updates.
    """

    info: IndexInfo
    store: Store
    clip: Any
    decomposer: Any
    params: DRCParams = DEFAULT_PARAMS
    image_dtype: str = "float32"
    _images: Any = field(default=None, init=False, repr=False)
    _mesh: Any = field(default=None, init=False, repr=False)
    _text_cache: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _files: list[tuple[Path, str]] = field(default_factory=list, init=False, repr=False)
    # The index's roots the user confirmed (roots.py); None: all of them (a caller's own index).
    confirmed_roots: tuple[Path, ...] | None = None
    _paths: frozenset[str] = field(default=frozenset(), init=False, repr=False)
    _ran: set = field(default_factory=set, init=False, repr=False)  # (shape, k) top-k compiled

    @classmethod
    def open(
        cls,
        index: str | os.PathLike,
        *,
        weights: str | None = None,
        clip=None,
        dtype: str = "float32",
        decomposer="rules",
        decomposer_options: dict[str, Any] | None = None,
        params: DRCParams = DEFAULT_PARAMS,
        image_dtype: str = "float32",
        roots: Sequence[str | os.PathLike] = (),
    ) -> Searcher:
        """Open ``index``; load the weights it was built with (or ``weights``/``clip``).

        Only the index's roots inside folders this user indexed into it (recorded outside the
        index, :mod:`~drc_jax.search.roots`) or inside ``roots`` are searched and served; none
        confirmed raises ``ValueError``.

        The index's own weights load only when they are a hub id, ``random:`` or inside the index
        (:func:`~drc_jax.search.index.weights_to_load`); a local path elsewhere needs ``weights``.

        The weights must produce the same ``weights_id`` the index was built with; otherwise the
        image and text embeddings would live in different spaces and the error says so. Only
        CLIP's text tower is loaded: the index already holds the image embeddings.
        """
        if image_dtype not in IMAGE_DTYPES:
            raise ValueError(
                f"image_dtype must be one of {sorted(IMAGE_DTYPES)}, got {image_dtype!r}"
            )
        from drc_jax.search import roots as user_roots

        info = read_info(index)
        kept = user_roots.confirmed(info.roots, [*user_roots.recorded_roots(index), *roots])
        if not kept:
            raise ValueError(
                f"index {info.index} was not built by you here (or was moved), so its folders "
                f"{[str(r) for r in info.roots]} are not confirmed; pass --images FOLDER "
                "(Searcher.open(..., roots=[...])) for each folder you want searched and served"
            )
        if clip is None:
            from drc_jax.clip import load_clip

            clip = load_clip(weights_to_load(info, weights), dtype=dtype, towers=("text",))
        if clip.weights_id != info.weights_id:
            raise ValueError(
                f"index {info.index} was built with weights {info.weights_id!r} but the loaded "
                f"model is {clip.weights_id!r}; pass --weights {info.weights} (or re-index)"
            )
        store = Store.open(info.index, None)
        if isinstance(decomposer, str):
            from drc_jax.decompose import get_decomposer

            decomposer = get_decomposer(decomposer, **(decomposer_options or {}))
        return cls(info, store, clip, decomposer, params, image_dtype, confirmed_roots=tuple(kept))

    @property
    def roots(self) -> list[Path]:
        """The confirmed folders of this index; only files inside them are searched or served."""
        return list(self.info.roots if self.confirmed_roots is None else self.confirmed_roots)

    @property
    def unconfirmed_roots(self) -> list[Path]:
        """The index's roots with nothing confirmed inside them (neither searched nor served)."""
        return [r for r in self.info.roots if not any(c.is_relative_to(r) for c in self.roots)]

    def path_of(self, path: str) -> Path | None:
        """``path`` (a :attr:`Hit.path`) if the index lists that file, else ``None``."""
        self._device_images()  # reads the index's file names
        return Path(path) if path in self._paths else None

    def warm(
        self,
        *,
        k: int = 10,
        methods: Sequence[str] = METHODS,
        concepts: Sequence[int] = CONCEPT_BUCKETS,
    ) -> None:
        """Compile now what a query will need, so the first request is as fast as the next.

        Moves the image embeddings to the device(s), encodes texts at the batch sizes and token
        lengths everyday queries use (:data:`WARM_TEXT_BATCHES` x :data:`WARM_TEXT_LENGTHS`)
        and runs the top-k once per method at ``k``'s bucket for each of ``concepts`` (counts of
        excluded concepts, :data:`CONCEPT_BUCKETS`). With the persistent compilation cache
        (:mod:`drc_jax.search.compile_cache`) a second start loads these from disk.
        """
        from drc_jax.decompose import Decomposition

        self._device_images()
        for length in WARM_TEXT_LENGTHS:
            # "A photo of a a a ...": BOS + 3 + (length - 5) + EOT = ``length`` tokens.
            text = "A photo of " + " ".join(["a"] * (length - 5))
            for n in WARM_TEXT_BATCHES:
                self.clip.encode_texts([text] * n)
        for length in WARM_LONG_LENGTHS:
            self.clip.encode_texts(["A photo of " + " ".join(["a"] * (length - 5))])
        if not len(self.store):
            return
        for m in concepts:
            negs = tuple(f"b{i}" for i in range(m))
            dec = Decomposition("a warm-up query", True, "a", "b0", "a with b0", "strong", negs)
            self.search([dec.caption], k=k, methods=methods, decompositions=[dec])

    def search(
        self,
        queries: str | Sequence[str],
        *,
        k: int = 10,
        methods: Sequence[str] = ("drc",),
        decompositions: Sequence | None = None,
    ) -> dict[str, list[SearchResult]]:
        """Top-``k`` images per query for each method: ``{method: [SearchResult per query]}``.

        ``decompositions`` (one :class:`~drc_jax.decompose.Decomposition` per query) replaces
        the decomposer's, e.g. after a user corrected aff / neg / strength.
        """
        from drc_jax.decompose import decompose_queries
        from drc_jax.queries import queries_from_table
        from drc_jax.texts import text_set, texts_of

        queries = [queries] if isinstance(queries, str) else list(queries)
        if not queries:
            raise ValueError("no query given")
        if decompositions is not None and len(decompositions) != len(queries):
            raise ValueError(f"got {len(decompositions)} decompositions for {len(queries)} queries")
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; expected some of {METHODS}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        images, mesh = self._device_images()
        files = self._files
        if not files:
            raise EmptyIndex(
                f"index {self.info.index} holds no images; run `python -m drc_jax.search index "
                f"--images DIR --index {self.info.index}` first"
            )
        if decompositions is None:  # understands "cat -sofa"
            decompositions = decompose_queries(self.decomposer, queries)
        most = max(len(d.negs) if d.negated else 0 for d in decompositions)
        if most > MAX_CONCEPTS:
            raise TooManyConcepts(
                f"a query excludes {most} concepts; at most {MAX_CONCEPTS} can be searched at "
                "once: drop some -terms (or --exclude) or split the query"
            )
        out: dict[str, list[SearchResult]] = {}
        for method in methods:
            texts, strength = texts_of(text_set(method), decompositions)
            m = concept_bucket(max(len(row) - 2 for row in texts) // 2)  # padded: no new shape
            q = queries_from_table(self.encode_texts, texts, strength, concepts=m)
            shape = (method, len(q), q.neg.shape)
            # A k already compiled for this shape serves any smaller k: no compile (no stall).
            done = [r for s, r in self._ran if s == shape and r >= min(k, len(files))]
            k_run = min(done) if done else k_bucket(k, len(files))
            res = top_k(images, query_vectors(method, q, self.params), k_run, mesh=mesh)
            self._ran.add((shape, k_run))
            scores, indices = np.asarray(res.scores)[:, :k], np.asarray(res.indices)[:, :k]
            out[method] = [
                SearchResult(
                    query=query,
                    method=method,
                    decomposition=dec,
                    hits=[
                        Hit(r + 1, float(s), str(files[i][0]), files[i][1])
                        for r, (s, i) in enumerate(zip(scores[qi], indices[qi], strict=True))
                    ],
                )
                for qi, (query, dec) in enumerate(zip(queries, decompositions, strict=True))
            ]
        return out

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """CLIP text embeddings (B, D), remembered for the last :data:`TEXT_CACHE_ENTRIES` texts."""
        cache = self._text_cache
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            for t, e in zip(todo, np.asarray(self.clip.encode_texts(todo)), strict=True):
                cache[t] = e
        for t in texts:
            cache.move_to_end(t)
        out = np.stack([cache[t] for t in texts])
        while len(cache) > TEXT_CACHE_ENTRIES:
            cache.popitem(last=False)
        return out

    def _device_images(self):
        """The index embeddings on device (sharded over local devices when there are several)."""
        if self._images is None:
            import jax

            from drc_jax.parallel import make_mesh

            self._mesh = make_mesh(jax.local_devices()) if jax.local_device_count() > 1 else None
            keys, vectors = self.store.vectors()  # memory-mapped
            bad = np.flatnonzero(unusable_rows(vectors))
            if len(bad):  # a crafted or damaged index: inf / NaN scores would rank at random
                raise StoreError(
                    f"index {self.info.index} holds {len(bad)} vector(s) that are not finite or "
                    f"too large to score, e.g. of {[keys[i] for i in bad[:3]]}; the index is "
                    "damaged or was crafted: delete it and re-run `python -m drc_jax.search index`"
                )
            files = _within(indexed_files(self.store, self.info.roots), self.roots)
            named = [i for i, key in enumerate(keys) if key in files]  # all, unless a run crashed
            if len(named) < len(keys):
                vectors = vectors[np.asarray(named, np.int64)]
            self._files = [files[keys[i]] for i in named]
            self._paths = frozenset(str(path) for path, _ in self._files)
            self._images = jax.device_put(
                np.asarray(vectors).astype(IMAGE_DTYPES[self.image_dtype], copy=False)
            )
        return self._images, self._mesh


def _within(files: dict[str, tuple[str, str]], roots: Sequence[Path]) -> dict[str, tuple]:
    """The ``hash -> (path, id)`` entries under ``roots``, ids made relative to their root."""
    prefixes = [str(r).rstrip("/") + "/" for r in roots]
    out = {}
    for key, (name, _) in files.items():
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        if prefix is not None:
            out[key] = (name, name[len(prefix) :])
    return out


def search(
    index: str | os.PathLike,
    queries: str | Sequence[str],
    *,
    k: int = 10,
    method: str = "drc",
    decomposer="rules",
    weights: str | None = None,
    clip=None,
    params: DRCParams = DEFAULT_PARAMS,
) -> list[SearchResult]:
    """Search ``index`` with one query or a batch; one :class:`SearchResult` per query.

    For repeated calls (a notebook), keep a :class:`Searcher` instead: it loads CLIP once.
    """
    searcher = Searcher.open(
        index, weights=weights, clip=clip, decomposer=decomposer, params=params
    )
    return searcher.search(queries, k=k, methods=(method,))[method]


def _singular(w: str) -> str:
    """Crude English singular, enough to match "beaches"/"beach", "puppies"/"puppy", "dogs"."""
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def _words(text: str) -> set[str]:
    return {_singular(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS}


def path_mentions(path: str, concept: str) -> bool | None:
    """Whether a file path names ``concept`` (all its content words): a hint for figure borders.

    ``None`` when there is no concept (query without negation). "beach" matches
    ``photos/dog_on_beach_02.jpg``; plural/singular are folded.
    """
    wanted = _words(concept)
    if not wanted:
        return None
    return wanted <= _words(path)


def _drawable(hit: Hit) -> Any:
    """The hit's file if, links resolved, it still lies inside the root it was indexed under (as
    the server serves it); otherwise a blank tile, so a figure never draws a file from outside."""
    from PIL import Image

    from drc_jax.search.files import NotServable, servable_path

    try:
        return servable_path(Path(hit.path), [Path(hit.path[: len(hit.path) - len(hit.id)])])
    except NotServable:
        return Image.new("RGB", (1, 1), (128, 128, 128))


def render_search_figure(
    out_path: str | os.PathLike,
    results: dict[str, SearchResult],
    *,
    hint_from_path: bool = False,
    warning: str = "",
) -> Path:
    """One query's rankings as a figure: a row per method (e.g. CLIP above DRC), top-k each.

    With ``hint_from_path`` a tile's border is red when its path names the negated concept and
    green when it does not (an optional, name-based hint; no border otherwise). ``warning`` is
    drawn as an orange line under the title (e.g. that the weights are random).
    """
    from drc_jax.figures import FigureTile, render_comparison

    first = next(iter(results.values()))
    dec = first.decomposition
    if dec.negated:
        subtitle = f'aff "{dec.aff}" · neg "{dec.neg}" · cf "{dec.cf}" · strength {dec.strength}'
    else:
        subtitle = "no negation found: plain CLIP scoring"
    rows = {}
    for method, res in results.items():
        rows[METHOD_LABELS.get(method, method)] = [
            FigureTile(
                image=_drawable(h),
                label=f"{h.score:.4f}\n{Path(h.id).name}",
                contains_negated=path_mentions(h.id, dec.neg) if hint_from_path else None,
                rank=h.rank,
            )
            for h in res.hits
        ]
    return render_comparison(out_path, first.query, rows, subtitle=subtitle, warning=warning)
