"""Negation-aware search over your own images: ``build_index`` a folder, then ``search`` it.

    from drc_jax.search import build_index, search
    build_index("~/Pictures", "~/.cache/pictures.idx")            # embeds new/changed files only
    for hit in search("~/.cache/pictures.idx", "a dog not on a beach", k=5)[0].hits:
        print(hit.rank, hit.score, hit.path)
    search_with = Searcher.open("~/.cache/pictures.idx")           # warm, reusable
    search_with.search("no people", like="/photos/a.jpg", where=Filter(type="image"), offset=10)

Command line: ``python -m drc_jax.search index|query ...`` (see ``drc_jax/search/__main__.py``).
"""

from drc_jax.search.catalogue import Filter
from drc_jax.search.index import DEFAULT_WEIGHTS, IndexInfo, build_index, read_info, scan_media
from drc_jax.search.query import (
    Hit,
    Searcher,
    SearchResult,
    path_mentions,
    render_search_figure,
    search,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "Filter",
    "Hit",
    "IndexInfo",
    "SearchResult",
    "Searcher",
    "build_index",
    "path_mentions",
    "read_info",
    "render_search_figure",
    "scan_media",
    "search",
]
