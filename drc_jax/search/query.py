"""Query an image index with negation-aware text ("a dog not on a beach").

queries -> decomposer -> per method the texts it scores (:func:`drc_jax.texts.text_set`) -> CLIP
text embeddings -> ``retrieval.top_k`` over the image embeddings -> ranked paths, as one batch.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ml_dtypes import bfloat16

from drc_jax import ann
from drc_jax.decompose.morphology import plural_forms, singular
from drc_jax.retrieval import top_k
from drc_jax.scoring import METHODS, DRCParams, query_vectors
from drc_jax.search import ann_file
from drc_jax.search.catalogue import Catalogue, Filter
from drc_jax.search.index import (
    SEGMENT_MARK,
    IndexInfo,
    content_of,
    generation,
    indexed_files,
    read_info,
    segment_start,
    weights_to_load,
)
from drc_jax.store import Store, StoreError, unusable_rows
from drc_jax.vocab import NEUTRAL_AFF

METHOD_LABELS = {"clip": "CLIP", "spacevlm": "SpaceVLM", "drc": "DRC"}
_STOPWORDS = frozenset(
    {"a", "an", "the", "some", "any", "of", "on", "in", "at", "with", "by", "to", "from"}
    | {"near", "under", "over", "and", "or", "no", "not", "without"}
)
DEFAULT_PARAMS = DRCParams()
IMAGE_DTYPES = {"float32": np.float32, "bfloat16": bfloat16}
# k is static in top_k: it runs at the smallest bucket >= k, then slices.
K_BUCKETS = (16, 64, 256, 1024)
# Text-encoder warm-up shapes: a query embeds 1-4 texts, padded to 1, 2 or 4 rows.
WARM_TEXT_BATCHES = (1, 2, 4)
WARM_TEXT_LENGTHS = (16, 32)
WARM_LONG_LENGTHS = (48, 64, 77)  # a long query's caption alone, at batch 1
TEXT_CACHE_ENTRIES = 4096
# A query's excluded-concept count is padded (masked) up to a bucket: no new compile.
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
    return min(1 << (k - 1).bit_length(), n)


@dataclass(frozen=True)
class Hit:
    """One ranked file: ``id`` its path under its root, ``time`` a video segment's start."""

    rank: int  # 1-indexed
    score: float
    path: str
    id: str
    duplicates: tuple[str, ...] = ()  # other indexed files with the same content
    time: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    query: str
    method: str
    decomposition: Any  # drc_jax.decompose.Decomposition
    hits: list[Hit] = field(default_factory=list)
    exact: bool = True  # the scan, or a certified exhaustive ANN search
    candidates: int = 0  # vectors scored exactly
    total: int = 0  # rows the search ranked (after the filter)
    offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = self.decomposition
        return {
            "query": self.query,
            "method": self.method,
            "decomposition": d.to_dict(),
            "total": self.total,
            "hits": [vars(h) for h in self.hits],
            "exact": self.exact,
            "candidates": self.candidates,
        }


@dataclass
class Searcher:
    """An opened index plus a loaded CLIP and decomposer, reusable across calls.

    The image embeddings go to the device(s) once, as ``image_dtype``; :meth:`reload` picks up
    later index runs. An index with an ANN file is searched through it (``ann_candidates`` per
    probe, ``ann_nprobe`` lists) unless a search asks for ``exact``.
    """

    info: IndexInfo
    store: Store
    clip: Any
    decomposer: Any
    params: DRCParams = DEFAULT_PARAMS
    image_dtype: str = "float32"
    ann_candidates: int = ann.DEFAULT_CANDIDATES
    ann_nprobe: int | None = None  # None: the index's own
    ann_note: str | None = None  # why the ANN file is not used
    _mesh: Any = field(default=None, init=False, repr=False)
    _text_cache: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _snapshot: Snapshot | None = field(default=None, init=False, repr=False)
    _ann: Any = field(default=None, init=False, repr=False)  # (faiss index, its meta) or None
    confirmed_roots: tuple[Path, ...] | None = None  # None: all of the index's roots
    weights: str | None = None  # what ``clip`` was loaded from (``image_clip`` loads it again)
    dtype: str = "float32"
    _image_clip: Any = field(default=None, init=False, repr=False)
    _image_lock: Any = field(default_factory=threading.Lock, init=False, repr=False)
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
        towers: tuple[str, ...] = ("text",),
    ) -> Searcher:
        """Open ``index`` with the weights it was built with (or ``weights``/``clip``).

        Only roots confirmed by :mod:`~drc_jax.search.roots` or inside ``roots`` are searched;
        none raises ``ValueError``, as do weights whose ``weights_id`` differs from the index's.
        ``towers``: the CLIP towers to load (a server that indexes new files needs "image").
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

            weights = weights_to_load(info, weights)
            clip = load_clip(weights, dtype=dtype, towers=towers)
        if clip.weights_id != info.weights_id:
            raise ValueError(
                f"index {info.index} was built with weights {info.weights_id!r} but the loaded "
                f"model is {clip.weights_id!r}; pass --weights {info.weights} (or re-index)"
            )
        store = Store.open(info.index, None)
        if isinstance(decomposer, str):
            from drc_jax.decompose import get_decomposer

            decomposer = get_decomposer(decomposer, **(decomposer_options or {}))
        return cls(
            info,
            store,
            clip,
            decomposer,
            params,
            image_dtype,
            confirmed_roots=tuple(kept),
            weights=weights,
            dtype=dtype,
        )

    def image_clip(self):
        """A CLIP with the image tower: ``clip``, or (loaded with only the text tower) the image
        tower of the same weights, loaded on first use (search by an uploaded photo)."""
        if "image" in getattr(self.clip, "towers", ("image",)):
            return self.clip
        if self.weights is None:
            raise ValueError("this Searcher was given a CLIP without its image tower")
        with self._image_lock:
            if self._image_clip is None:
                from drc_jax.clip import load_clip

                self._image_clip = load_clip(self.weights, dtype=self.dtype, towers=("image",))
            return self._image_clip

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
        return Path(path) if path in self.snapshot().path_set else None

    def snapshot(self) -> Snapshot:
        """The index as last loaded (loaded on first use); :meth:`reload` swaps in a new one."""
        if self._snapshot is None:
            self._snapshot = self._load()
        return self._snapshot

    def reload(self) -> bool:
        """Load the index again if an index run finished since; whether it did."""
        if self._snapshot is not None and generation(self.store) == self._snapshot.generation:
            return False
        self._snapshot = self._load()
        self._ann, self.ann_note = None, None
        return True

    @property
    def catalogue(self) -> Catalogue:
        return self.snapshot().catalogue

    def ann_status(self) -> dict[str, Any]:
        """Whether searches go through an ANN index, and its settings (or why not)."""
        try:
            got = self._ann_index()
        except (StoreError, ImportError) as e:  # a search says so too, as an error
            return {"used": False, "note": str(e)}
        if got is None:
            return {"used": False, "note": self.ann_note}
        index, meta = got
        keep = ("factory", "ntotal", "nlist")
        return {"used": True, **{k: meta[k] for k in keep}, "nprobe": ann.faiss_nprobe(index)}

    def warm(
        self,
        *,
        k: int = 10,
        methods: Sequence[str] = METHODS,
        concepts: Sequence[int] = CONCEPT_BUCKETS,
    ) -> None:
        """Compile the text encoder and top-k shapes queries use, so the first request is fast."""
        from drc_jax.decompose import Decomposition

        self.snapshot()
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
            # a filtered search is its own compiled program
            self.search([dec.caption], k=k, methods=methods, decompositions=[dec],
                        where=Filter(type="image"))  # fmt: skip

    def search(
        self,
        queries: str | Sequence[str],
        *,
        k: int = 10,
        methods: Sequence[str] = ("drc",),
        decompositions: Sequence | None = None,
        offset: int = 0,
        where: Filter | None = None,
        like: str | np.ndarray | None = None,
        exact: bool = False,
    ) -> dict[str, list[SearchResult]]:
        """Top-``k`` images per query for each method: ``{method: [SearchResult per query]}``.

        ``decompositions`` replace the decomposer's; ``offset`` pages; ``where`` filters inside
        the search; ``like`` (an indexed path or an embedding (D,)) anchors every query on an
        example (:mod:`drc_jax.search.example`); ``exact`` skips the ANN file.
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
        if k < 1 or offset < 0:
            raise ValueError(f"k must be >= 1 and offset >= 0, got k={k}, offset={offset}")
        snap = self.snapshot()
        images, mesh, cat = snap.images, self._mesh, snap.catalogue
        if not len(cat):
            raise EmptyIndex(
                f"index {self.info.index} holds no images; run `python -m drc_jax.search index "
                f"--images DIR --index {self.info.index}` first"
            )
        if decompositions is None:
            decompositions = decompose_queries(self.decomposer, queries)
        contents, chosen = cat.row_mask(where)
        if like is not None:
            from drc_jax.search.example import example_queries

            row = cat.row_of_path(like) if isinstance(like, str) else None
            if isinstance(like, str) and row is None:
                raise ValueError(f"like={like!r} is not a file of index {self.info.index}")
            x = np.asarray(snap.images[row] if row is not None else like, np.float32)
            if x.shape != (images.shape[1],) or not np.isfinite(x).all():
                raise ValueError(f"an example embedding must be finite ({images.shape[1]},)")
            said = [(d.aff if d.negated else d.caption).strip().lower() for d in decompositions]
            shows = np.asarray([t not in ("", NEUTRAL_AFF) for t in said])
            if row is not None:
                contents = np.ones(len(cat), bool) if contents is None else contents.copy()
                contents[row] = False
        total = len(cat) if contents is None else int(contents.sum())
        plain = where is None and like is None and not len(snap.segments)
        # one read of the ANN state: a reload (the watcher's thread) may clear it meanwhile
        ann_state = self._ann_index() if not exact and plain else None
        valid = cat.searchable(contents)
        most = max(len(d.negs) if d.negated else 0 for d in decompositions)
        if most > MAX_CONCEPTS:
            raise TooManyConcepts(
                f"a query excludes {most} concepts; at most {MAX_CONCEPTS} can be searched at "
                "once: drop some -terms (or --exclude) or split the query"
            )
        out: dict[str, list[SearchResult]] = {}
        for method in methods:
            texts, strength = texts_of(text_set(method), decompositions)
            m = concept_bucket(max(len(row) - 2 for row in texts) // 2)
            q = queries_from_table(self.encode_texts, texts, strength, concepts=m)
            if like is not None:
                q = example_queries(q, x, shows)
            vectors = query_vectors(method, q, self.params)
            nq = len(queries)
            counts, exacts = np.full(nq, cat.rows), np.ones(nq, bool)
            if ann_state is not None:
                ranked, counts, exacts = self._ann_ranked(snap, ann_state, vectors, offset + k)
            else:
                # a k already compiled for this shape serves any smaller k
                shape = (method, len(q), q.neg.shape, valid is None)
                done = [r for sh, r in self._ran if sh == shape and r >= min(offset + k, cat.rows)]
                first = min(done) if done else k_bucket(offset + k, cat.rows)
                ranked = _ranked(cat, images, vectors, offset + k, mesh, valid, total, first)
                self._ran.add((shape, first))
            out[method] = [
                SearchResult(
                    query=query,
                    method=method,
                    decomposition=dec,
                    hits=[
                        _hit(cat, offset + r + 1, s, row, t, chosen)
                        for r, (row, s, t) in enumerate(ranked[qi][offset : offset + k])
                    ],
                    total=total,
                    offset=offset,
                    exact=bool(exacts[qi]),
                    candidates=int(counts[qi]),
                )
                for qi, (query, dec) in enumerate(zip(queries, decompositions, strict=True))
            ]
        return out

    def _ann_ranked(self, snap: Snapshot, ann_state, vectors, need: int):
        """:func:`_ranked` through the ANN index, plus candidates and exact per query."""
        cat = snap.catalogue
        res = self._ann_search(snap, ann_state, vectors, k_bucket(need, cat.rows))
        ranked = []
        for qs, qr in zip(res.scores.tolist(), res.rows.tolist(), strict=True):
            seen: dict[int, tuple[int, float, float | None]] = {}
            for sc, r in zip(qs, qr, strict=True):
                if 0 <= r < len(snap.position) and snap.position[r] >= 0:
                    row, start = cat.content_row(int(snap.position[r]))
                    seen.setdefault(row, (row, sc, start))
            ranked.append(list(seen.values()))
        return ranked, res.candidates, res.exact

    def _ann_search(self, snap: Snapshot, ann_state, vectors, k: int):
        """:func:`drc_jax.ann.search` over the snapshot; non-finite scores raise ``StoreError``."""
        index, meta = ann_state
        nprobe = self.ann_nprobe or meta["nprobe"]
        res = ann.search(
            index,
            snap.array,
            vectors,
            k,
            candidates=self.ann_candidates,
            nprobe=nprobe,
            live=snap.position >= 0,
            dtype=IMAGE_DTYPES[self.image_dtype],
            exhaustive_exact=nprobe >= meta["nlist"] and meta["factory"].endswith(",Flat"),
        )
        bad = res.rows[(res.rows >= 0) & ~np.isfinite(res.scores)]
        if len(bad):
            raise StoreError(
                f"index {self.info.index} holds vectors that are not finite or too large to "
                f"score, e.g. in rows {bad[:3].tolist()}; the index is damaged or was crafted: "
                "delete it and re-run `python -m drc_jax.search index`"
            )
        return res

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

    def _ann_index(self):
        """``(faiss index, meta)`` of the index's ANN file, read and checked once (``None``: scan;
        see :attr:`ann_note`)."""
        got = self._ann
        if got is None and self.ann_note is None:
            meta = ann_file.info(self.store)
            why = (
                None
                if meta is None
                else ann_file.stale(self.store, meta, self.snapshot().live_rows)
            )
            if meta is None:
                self.ann_note = "the index has no ANN file"
            elif why is not None:
                self.ann_note = f"{why}; re-run `drc-search index` to update the ANN index"
            else:
                got = self._ann = (ann_file.load(self.store, meta), meta)
        return got

    def _device_images(self):
        """The index embeddings on device and the mesh they are sharded over (or ``None``)."""
        return self.snapshot().images, self._mesh

    def _load(self) -> Snapshot:
        """One consistent read of the index (one SQLite snapshot), its vectors on device."""
        import jax

        from drc_jax.parallel import make_mesh

        if self._mesh is None and jax.local_device_count() > 1:
            self._mesh = make_mesh(jax.local_devices())
        with self.store.transaction("BEGIN"):
            gen = generation(self.store)
            keys, vectors = self.store.vectors()
            live_rows, array = self.store.rows()
            bad = np.flatnonzero(unusable_rows(vectors))
            if len(bad):  # inf / NaN scores would rank at random
                raise StoreError(
                    f"index {self.info.index} holds {len(bad)} vector(s) that are not finite or "
                    f"too large to score, e.g. of {[keys[i] for i in bad[:3]]}; the index is "
                    "damaged or was crafted: delete it and re-run `python -m drc_jax.search index`"
                )
            files = _within(indexed_files(self.store, self.info.roots), self.roots)
            names, info = self.store.names(), self.store.info()
        named = [i for i, key in enumerate(keys) if key in files]
        segs = [i for i, key in enumerate(keys) if SEGMENT_MARK in key and content_of(key) in files]
        if len(named) + len(segs) < len(keys) or segs:
            vectors = vectors[np.asarray(named + segs, np.int64)]
        position = np.full(len(array), -1, np.int64)  # store row -> row of ``images``
        position[live_rows[np.asarray(named + segs, np.int64)]] = np.arange(len(named) + len(segs))
        segments = [(content_of(keys[i]), segment_start(keys[i])) for i in segs]
        keys = [keys[i] for i in named]
        prefixes = {str(r).rstrip("/") + "/": r for r in self.roots}
        names = {n: v for n, v in names.items() if any(n.startswith(p) for p in prefixes)}

        def id_of(path: str) -> str:
            return next(path[len(p) :] for p in prefixes if path.startswith(p))

        cat = Catalogue.build(tuple(self.roots), keys, names, info, id_of, segments)
        images = jax.device_put(
            np.asarray(vectors).astype(IMAGE_DTYPES[self.image_dtype], copy=False)
        )
        return Snapshot(images, cat, gen, frozenset(cat.paths), array, live_rows, position, segs)


@dataclass(frozen=True)
class Snapshot:
    """The embeddings on device and the files behind them, of one commit."""

    images: Any
    catalogue: Catalogue
    generation: int
    path_set: frozenset[str]
    array: Any = None  # the store's whole array file (the ANN re-ranks from it)
    live_rows: Any = None
    position: Any = None  # store row -> row of ``images`` (-1: none)
    segments: Any = ()


def _ranked(cat: Catalogue, images, vectors, need: int, mesh, valid, total: int, first: int):
    """Per query the best ``need`` distinct contents as ``(content row, score, segment start)``.

    Segments of one video may fill the top rows, so the search reruns 4x deeper until enough."""
    k_run = first
    while True:
        res = top_k(images, vectors, k_run, mesh=mesh, valid=valid)
        scores, indices = np.asarray(res.scores), np.asarray(res.indices)
        ranked = []
        for qs, qi in zip(scores, indices, strict=True):
            seen: dict[int, tuple[int, float, float | None]] = {}
            for s, i in zip(qs.tolist(), qi.tolist(), strict=True):
                if s == -np.inf:  # past the filter's last row
                    break
                row, start = cat.content_row(i)
                seen.setdefault(row, (row, s, start))
            ranked.append(list(seen.values()))
        if k_run >= cat.rows or all(len(r) >= min(need, total) for r in ranked):
            return ranked
        k_run = k_bucket(4 * k_run, cat.rows)


def _hit(cat: Catalogue, rank: int, score: float, row: int, time, chosen) -> Hit:
    """Row ``row`` as a hit: its first selected file shown, the others as duplicates."""
    files = [f for f in cat.files_of(row) if chosen is None or chosen[f]]
    f = files[0]
    dups = tuple(cat.paths[g] for g in files[1:])
    return Hit(rank, score, cat.paths[f], cat.ids[f], dups, time, cat.facts(f))


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

    Loads CLIP on every call; keep a :class:`Searcher` for repeated searches.
    """
    searcher = Searcher.open(
        index, weights=weights, clip=clip, decomposer=decomposer, params=params
    )
    return searcher.search(queries, k=k, methods=(method,))[method]


def _words(text: str) -> list[set[str]]:
    """Per content word of ``text`` every spelling of it: singular and plurals."""
    found = re.findall(r"[a-z0-9]+", text.lower())
    return [{w} | plural_forms(singular(w)) for w in found if w not in _STOPWORDS]


def path_mentions(path: str, concept: str) -> bool | None:
    """Whether ``path`` names every content word of ``concept`` (plurals folded); ``None``
    without a concept."""
    wanted = _words(concept)
    if not wanted:
        return None
    have = set().union(*_words(path))
    return all(forms & have for forms in wanted)


def _drawable(hit: Hit) -> Any:
    """The hit's file if it still resolves inside its root (as served), else a blank tile."""
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
    """One query's rankings as a figure, a row per method; ``hint_from_path`` borders a tile
    red when its path names the negated concept (:func:`path_mentions`), else green."""
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
