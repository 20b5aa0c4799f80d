"""``drc-search serve``: a warm :class:`~drc_jax.search.query.Searcher` behind a web page.

Routes: ``/`` (the page, ``static/``), ``/api/search``, ``/api/health``, ``/api/recent``,
``/api/upload``, ``/api/thumb/{path}`` and ``/api/file/{path}`` (``path``: a hit's absolute path;
only indexed files inside the roots, :mod:`.files`). Every request first passes :mod:`.guard`.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime
# and they refer to ``max_k``, a local of create_app.
import hashlib
import io
import ipaddress
import mimetypes
import os
import threading
import time
import weakref
from collections import OrderedDict
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor

from drc_jax.decompose import DecompositionError, apply_overrides, decompose_queries
from drc_jax.decompose.syntax import NEUTRAL_AFF
from drc_jax.scoring import METHODS
from drc_jax.search.catalogue import Filter
from drc_jax.search.files import NotServable, open_servable, servable_path
from drc_jax.search.guard import Access, AccessGuard
from drc_jax.search.index import SEGMENT_MARK
from drc_jax.search.query import EmptyIndex, TooManyConcepts
from drc_jax.search.thumbs import THUMB_SIZES, TooLarge, disk_path, thumbnail

DEFAULT_K = 24
MAX_K = 200
MAX_CONCEPTS = 32  # `neg` values one search may exclude
MAX_OFFSET = 10_000
FAILED_TTL_S = 10  # how stale /api/health's count of failed files may be
LOOPBACK_NAMES = frozenset({"localhost"})


def static_dir() -> Path:
    """The page's files, shipped as package data."""
    return Path(str(resources.files("drc_jax.search") / "static"))


def last_indexed(store) -> str | None:
    """When the last index run finished (ISO 8601, UTC); ``None`` if unrecorded."""
    stamp = store.setting("indexed_at")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _item_urls(path: str) -> dict[str, str]:
    """A hit's thumbnail and file URLs, keyed by its path (unique across the index's roots)."""
    q = quote(path, safe="")
    return {"thumb": f"/api/thumb/{q}", "file": f"/api/file/{q}"}


def edited_decomposition(decomposed, aff=None, negs=None, strength=None):
    """``decomposed`` with the page's edits; ``negs`` replaces every concept (``[]``: none)."""
    if negs is None:
        return apply_overrides(decomposed, aff=aff, strength=strength)
    kept = list(dict.fromkeys(n.strip() for n in negs if n.strip()))
    return apply_overrides(
        decomposed, aff=aff, neg=kept[0] if kept else "", exclude=kept[1:], strength=strength
    )


def request_filter(type_, folder, name, taken_after, taken_before) -> Filter | None:
    """The search's :class:`Filter` from its query parameters; 422 when they contradict."""
    try:
        where = Filter(type_ or None, folder or None, name or None, taken_after, taken_before)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    return None if where.empty else where


def hit_json(h, available: bool) -> dict[str, Any]:
    """A hit as the page reads it; ``available``: the file can still be served."""
    return {
        "rank": h.rank,
        "score": h.score,
        "id": h.id,
        "path": h.path,
        "available": available,
        "duplicates": list(h.duplicates),
        "time": h.time,
        **h.facts,
        **_item_urls(h.path),
    }


UPLOAD_PREFIX = "upload:"
MAX_UPLOAD_BYTES = 32 << 20


class UploadedExamples:
    """Embeddings of uploaded photos by ``upload:<sha1>``, the last :data:`KEEP` kept."""

    KEEP = 64

    def __init__(self):
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, data: bytes, vector: np.ndarray) -> str:
        key = UPLOAD_PREFIX + hashlib.sha1(data).hexdigest()
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.KEEP:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            return self._items.get(key)


def embed_upload(clip, data: bytes, preprocess: str) -> np.ndarray:
    """CLIP's embedding of an uploaded image (decoded as an indexed photo is: upright, RGB)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > Image.MAX_IMAGE_PIXELS:
                raise ValueError("the image is too large")
            img = ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable image ({type(e).__name__})") from None
    return np.asarray(clip.encode_images(clip.preprocess([img], mode=preprocess))[0], np.float32)


class AnyPath(PathConvertor):
    """Starlette's ``path``, newlines included (a file name may hold one)."""

    regex = "(?s:.*)"


register_url_convertor("anypath", AnyPath())
FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class OpenedFileResponse(FileResponse):
    """A FileResponse of an opened descriptor (closed when sent), so what was checked is sent."""

    def __init__(self, fd: int, st: os.stat_result, name: str):
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        super().__init__(f"{FD_DIR}/{fd}", stat_result=st, media_type=media_type)
        self._close = weakref.finalize(self, os.close, fd)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()


def create_app(
    searcher,
    *,
    decomposer: str = "rules",
    max_k: int = MAX_K,
    watcher=None,
    access: Access | None = None,
) -> FastAPI:
    """The FastAPI app serving ``searcher``; ``access`` defaults to :meth:`Access.loopback`."""
    app = FastAPI(title="drc-jax search", docs_url="/api/docs", openapi_url="/api/openapi.json")
    lock = threading.Lock()  # one search at a time: on a CPU one already uses every core
    info = searcher.info
    page = (static_dir() / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page() -> str:
        return page

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/api/health", response_model=None)
    def health() -> dict[str, Any] | JSONResponse:
        try:
            return _health()
        except OSError as e:
            return JSONResponse(
                {
                    "status": "error",
                    "index": str(info.index),
                    "detail": f"cannot read the index folder {info.index} ({e.strerror or e}): "
                    "it was moved or deleted; rebuild it with `drc-search index` and restart serve",
                },
                status_code=503,
            )

    # (generation, FAILED_TTL_S tick) -> files that failed; the page asks every 3 s, and an
    # index run (this server's or another process's) records failures before its generation moves
    failed: list[tuple[tuple[int, int], int]] = [((-1, -1), 0)]

    def _health() -> dict[str, Any]:
        if not info.index.is_dir():
            raise FileNotFoundError(2, "no such folder")
        snap = searcher.snapshot()
        key = (snap.generation, int(time.monotonic() // FAILED_TTL_S))
        seen, n_failed = failed[0]
        if seen != key:
            n_failed = sum(SEGMENT_MARK not in k for k in searcher.store.errors())
            failed[0] = (key, n_failed)  # one assignment: concurrent requests read a pair
        return {
            "status": "ok",
            "images": snap.catalogue.files,
            "failed": n_failed,
            "index": str(info.index),
            "roots": [str(r) for r in searcher.roots],
            "last_indexed": last_indexed(searcher.store),
            "generation": snap.generation,
            "indexing": watcher.progress() if watcher is not None else {"state": "off"},
            "weights": info.weights,
            "model": info.weights_id,
            "random_weights": info.random_weights,
            "decomposer": decomposer,
            "image_dtype": searcher.image_dtype,
            "methods": list(METHODS),
            "ann": searcher.ann_status(),
            "default_k": DEFAULT_K,
            "max_k": max_k,
        }

    @app.get("/api/search")
    def search(
        q: Annotated[
            str | None, Query(min_length=1, max_length=1000, description="the query")
        ] = None,
        k: Annotated[int, Query(ge=1, le=max_k)] = DEFAULT_K,
        method: Annotated[str, Query(pattern="^(" + "|".join(METHODS) + ")$")] = "drc",
        aff: Annotated[str | None, Query(max_length=1000)] = None,
        neg: Annotated[list[str] | None, Query(max_length=MAX_CONCEPTS)] = None,
        strength: Annotated[str | None, Query()] = None,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        type: Annotated[str | None, Query(pattern="^(image|video|)$")] = None,  # noqa: A002
        folder: Annotated[str | None, Query(max_length=4096)] = None,
        name: Annotated[str | None, Query(max_length=1000)] = None,
        taken_after: Annotated[date | None, Query()] = None,
        taken_before: Annotated[date | None, Query()] = None,
        like: Annotated[str | None, Query(max_length=4096, description="an indexed file")] = None,
        exact: Annotated[bool, Query(description="scan every vector (no ANN)")] = False,
    ) -> dict[str, Any]:
        if q is None and like is None:
            raise HTTPException(422, "give a query q, an example like=<indexed file>, or both")
        if q is not None and not q.strip():
            raise HTTPException(422, "the query is empty")
        example = like
        if like is not None and like.startswith(UPLOAD_PREFIX):
            example = uploads.get(like)
            if example is None:
                raise HTTPException(
                    422,
                    f"like={like!r}: no such upload (uploads are kept while "
                    "the server runs); upload the photo again",
                )
        elif like is not None:
            like = example = like if like.startswith("/") else "/" + like
            if searcher.path_of(like) is None:
                raise HTTPException(422, f"like={like!r} is not a file of this index")
        q = q if q is not None else NEUTRAL_AFF
        if any(len(n) > 1000 for n in neg or ()):
            raise HTTPException(422, "a neg concept is longer than 1000 characters")
        where = request_filter(type, folder, name, taken_after, taken_before)
        start = time.perf_counter()
        with lock:
            decomposed = decompose_queries(searcher.decomposer, [q])[0]
            try:
                used = edited_decomposition(decomposed, aff, neg, strength)
            except DecompositionError as e:
                raise HTTPException(422, str(e)) from None
            try:
                result = searcher.search(
                    [q],
                    k=k,
                    methods=(method,),
                    decompositions=[used],
                    offset=offset,
                    where=where,
                    like=example,
                    exact=exact,
                )[method][0]
            except TooManyConcepts as e:
                raise HTTPException(422, str(e)) from None
            except EmptyIndex as e:
                raise HTTPException(409, str(e)) from None
        return {
            "query": q,
            "like": like,
            "method": method,
            "k": k,
            "offset": offset,
            "total": result.total,
            "more": offset + len(result.hits) < result.total,
            "generation": searcher.snapshot().generation,
            "decomposition": used.to_dict(),
            "cfs": list(used.cfs),
            "decomposed": decomposed.to_dict(),
            "overridden": used != decomposed,
            "hits": [hit_json(h, _available(h.path)) for h in result.hits],
            "exact": result.exact,
            "candidates": result.candidates,
            "took_ms": round(1000 * (time.perf_counter() - start), 2),
            "random_weights": info.random_weights,
        }

    @app.get("/api/recent")
    def recent(k: Annotated[int, Query(ge=1, le=max_k)] = 12) -> dict[str, Any]:
        """The newest photos and videos (date taken, else file date)."""
        cat = searcher.catalogue
        hits = [
            {"id": cat.ids[f], "path": cat.paths[f], **cat.facts(f), **_item_urls(cat.paths[f])}
            for f in cat.recent(k)
        ]
        return {"hits": [h | {"available": _available(h["path"])} for h in hits]}

    uploads = UploadedExamples()

    @app.post("/api/upload")
    async def upload(request: Request) -> dict[str, Any]:
        """An image (the request body) to search by: answers ``like`` for /api/search."""
        body = await request.body()
        if not body or len(body) > MAX_UPLOAD_BYTES:
            raise HTTPException(413 if body else 422, "send one image of up to 32 MB as the body")

        def embed() -> np.ndarray:
            clip = searcher.image_clip()  # the first upload of a --nowatch server loads it
            with lock:
                return embed_upload(clip, body, searcher.info.preprocess)

        try:
            vector = await run_in_threadpool(embed)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        return {"like": uploads.put(body, vector)}

    def _opened(path: str) -> tuple[int, os.stat_result]:
        path = path if path.startswith("/") else "/" + path
        try:
            return open_servable(searcher.path_of(path), searcher.roots)
        except NotServable:
            raise HTTPException(404, "not found") from None

    def _available(path: str) -> bool:
        try:
            servable_path(searcher.path_of(path), searcher.roots)
        except NotServable:
            return False
        return True

    @app.get("/api/thumb/{path:anypath}")
    def thumb(
        path: str,
        size: Annotated[int, Query()] = 256,
        t: Annotated[float | None, Query(ge=0, le=1e7, description="a video's second")] = None,
    ) -> Response:
        if size not in THUMB_SIZES:
            raise HTTPException(422, f"size must be one of {list(THUMB_SIZES)}")
        listed = path if path.startswith("/") else "/" + path
        fd, _ = _opened(path)
        cat = searcher.catalogue
        row = cat.row_of_path(listed)
        cached = disk_path(info.index, cat.keys[row]) if row is not None else None
        try:
            data = thumbnail(Path(listed), size, cached, t, fd=fd)
        except TooLarge as e:
            raise HTTPException(413, f"no thumbnail: {e}") from None
        except (OSError, Image.DecompressionBombError) as e:
            raise HTTPException(404, f"cannot make a thumbnail: {type(e).__name__}") from None
        finally:
            os.close(fd)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})

    @app.get("/api/file/{path:anypath}")
    def file(path: str) -> FileResponse:
        return OpenedFileResponse(*_opened(path), path)

    # Added last: the outermost middleware, so a refused request reaches nothing else.
    app.add_middleware(AccessGuard, access=access or Access.loopback())
    return app


def exposure_note(host: str, port: int, searcher) -> str:
    """What binding to a non-loopback ``host`` exposes, printed before serving."""
    roots = ", ".join(str(r) for r in searcher.roots)
    return (
        f"WARNING: serving on {host}:{port}, reachable from other machines. Anyone who has the "
        f"address with its token can run searches and view every indexed file under: {roots} "
        f"({len(searcher.store)} files). The traffic is plain HTTP (not encrypted)."
    )
