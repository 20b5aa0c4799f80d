"""``python -m drc_jax.search serve``: a local search server with a web page, warm between queries.

One process keeps a :class:`~drc_jax.search.query.Searcher` (CLIP, the decomposer and the image
embeddings) loaded and warmed, and serves

- ``GET /``: the search page (``static/``: plain HTML/JS/CSS, no build step);
- ``GET /api/search?q=...&k=...&method=drc|clip|spacevlm[&aff=...&neg=...&strength=...]``:
  ranked hits with the decomposition used (``q`` may say ``cat -sofa``; ``aff``/``neg``/``strength``
  override the decomposer's, :func:`drc_jax.decompose.apply_overrides`);
- ``GET /api/health``: index size and freshness, model, decomposer;
- ``GET /api/thumb/{path}?size=256``: a JPEG thumbnail (memory LRU, :mod:`.thumbs`);
- ``GET /api/file/{path}``: the original file, only for files the index lists that resolve inside
  its roots (:mod:`.files`); everything else is the same 404. ``path`` is a hit's absolute path
  (percent-encoded), which, unlike its id, is unique across several roots.

Requests are answered one search at a time (a lock): on a CPU a search already uses every core.
Every request first passes :mod:`.guard` (its Host, its origin, the token with --allow_remote).
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime
# and they refer to ``max_k``, a local of create_app.
import ipaddress
import mimetypes
import os
import threading
import time
import weakref
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.convertors import PathConvertor, register_url_convertor

from drc_jax.decompose import DecompositionError, apply_overrides, decompose_queries
from drc_jax.scoring import METHODS
from drc_jax.search.files import NotServable, open_servable, servable_path
from drc_jax.search.guard import Access, AccessGuard
from drc_jax.search.query import EmptyIndex, TooManyConcepts
from drc_jax.search.thumbs import THUMB_SIZES, TooLarge, thumbnail

DEFAULT_K = 24
MAX_K = 200
LOOPBACK_NAMES = frozenset({"localhost"})


def static_dir() -> Path:
    """The page's files, shipped as package data."""
    return Path(str(resources.files("drc_jax.search") / "static"))


def last_indexed(index: Path) -> float | None:
    """When the index last changed: the newest modification time among its files."""
    times = [p.stat().st_mtime for p in Path(index).iterdir() if p.is_file() and p.name != "lock"]
    return max(times, default=None)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def _item_urls(path: str) -> dict[str, str]:
    """A hit's thumbnail and file URLs, keyed by its path (unique across the index's roots)."""
    q = quote(path, safe="")
    return {"thumb": f"/api/thumb/{q}", "file": f"/api/file/{q}"}


class AnyPath(PathConvertor):
    """Starlette's ``path``, newlines included (a file name may hold one)."""

    regex = "(?s:.*)"


register_url_convertor("anypath", AnyPath())
FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class OpenedFileResponse(FileResponse):
    """A FileResponse of an already opened descriptor (closed when sent): the file is read
    through it (:data:`FD_DIR`), never again by name, so what was checked is what is sent."""

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
    searcher, *, decomposer: str = "rules", max_k: int = MAX_K, access: Access | None = None
) -> FastAPI:
    """The FastAPI app serving ``searcher`` (an opened, ideally warmed, Searcher) to the clients
    ``access`` admits (default: loopback Host names on any port, no token; :mod:`.guard`)."""
    app = FastAPI(title="drc-jax search", docs_url="/api/docs", openapi_url="/api/openapi.json")
    lock = threading.Lock()
    info = searcher.info
    page = (static_dir() / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page() -> str:
        return page

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/api/health", response_model=None)
    def health() -> dict[str, Any] | JSONResponse:
        try:
            stamp = last_indexed(info.index)
        except OSError as e:  # the folder was moved or deleted while serving
            return JSONResponse(
                {
                    "status": "error",
                    "index": str(info.index),
                    "detail": f"cannot read the index folder {info.index} ({e.strerror or e}): "
                    "it was moved or deleted; rebuild it with `drc-search index` and restart serve",
                },
                status_code=503,
            )
        return {
            "status": "ok",
            "images": len(searcher.store),
            "failed": len(searcher.store.errors()),  # contents that could not be embedded
            "index": str(info.index),
            "roots": [str(r) for r in searcher.roots],
            "last_indexed": (
                datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds") if stamp else None
            ),
            "weights": info.weights,
            "model": info.weights_id,
            "random_weights": info.random_weights,
            "decomposer": decomposer,
            "image_dtype": searcher.image_dtype,
            "methods": list(METHODS),
            "default_k": DEFAULT_K,
            "max_k": max_k,
        }

    @app.get("/api/search")
    def search(
        q: Annotated[str, Query(min_length=1, max_length=1000, description="the query")],
        k: Annotated[int, Query(ge=1, le=max_k)] = DEFAULT_K,
        method: Annotated[str, Query(pattern="^(" + "|".join(METHODS) + ")$")] = "drc",
        aff: Annotated[str | None, Query(max_length=1000)] = None,
        neg: Annotated[str | None, Query(max_length=1000)] = None,
        strength: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        if not q.strip():
            raise HTTPException(422, "the query is empty")
        start = time.perf_counter()
        with lock:
            decomposed = decompose_queries(searcher.decomposer, [q])[0]  # "cat -sofa" syntax
            try:
                used = apply_overrides(decomposed, aff=aff, neg=neg, strength=strength)
            except DecompositionError as e:
                raise HTTPException(422, str(e)) from None
            try:
                found = searcher.search([q], k=k, methods=(method,), decompositions=[used])
            except TooManyConcepts as e:
                raise HTTPException(422, str(e)) from None
            except EmptyIndex as e:
                raise HTTPException(409, str(e)) from None
            result = found[method][0]
        return {
            "query": q,
            "method": method,
            "k": k,
            "decomposition": used.to_dict(),
            "decomposed": decomposed.to_dict(),
            "overridden": used != decomposed,
            "hits": [
                {
                    "rank": h.rank,
                    "score": h.score,
                    "id": h.id,
                    "path": h.path,
                    "available": _available(h.path),  # False: moved, deleted or outside the roots
                    **_item_urls(h.path),
                }
                for h in result.hits
            ],
            "took_ms": round(1000 * (time.perf_counter() - start), 2),
            "random_weights": info.random_weights,
        }

    def _opened(path: str) -> tuple[int, os.stat_result]:
        # "/api/file//abs/x.jpg" and "/api/file/abs/x.jpg" both name "/abs/x.jpg"
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
    def thumb(path: str, size: Annotated[int, Query()] = 256) -> Response:
        if size not in THUMB_SIZES:
            raise HTTPException(422, f"size must be one of {list(THUMB_SIZES)}")
        fd, _ = _opened(path)
        try:
            data = thumbnail(Path("/" + path.lstrip("/")), size, fd=fd)
        except TooLarge as e:
            raise HTTPException(413, f"no thumbnail: {e}") from None
        except (OSError, Image.DecompressionBombError) as e:  # unreadable, not an image any more
            raise HTTPException(404, f"cannot make a thumbnail: {type(e).__name__}") from None
        finally:
            os.close(fd)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})

    @app.get("/api/file/{path:anypath}")
    def file(path: str) -> FileResponse:
        return OpenedFileResponse(*_opened(path), path)

    # Added last, so it is the outermost middleware: a refused request reaches nothing else.
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
