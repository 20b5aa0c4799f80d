"""Keeping a served index current: watch the roots, index changes in the background, reload.

One thread marks the index dirty on file changes; the other re-indexes when dirty and, after that
or every ``poll_s`` seconds, calls :meth:`Searcher.reload` (which also sees other index runs).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

POLL_S = 2.0
DEBOUNCE_MS = 800


class IndexWatcher:
    """Re-index ``searcher``'s roots on change (``watch``) and reload finished index runs."""

    def __init__(self, searcher, clip=None, *, watch: bool = True, poll_s: float = POLL_S):
        if watch and clip is None:
            raise ValueError("watching needs a CLIP with its image tower to embed new files")
        self.searcher, self.clip, self.watch, self.poll_s = searcher, clip, watch, poll_s
        self._stop, self._dirty = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "idle", "done": 0, "total": 0, "error": None}
        self._threads: list[threading.Thread] = []

    def progress(self) -> dict[str, Any]:
        """``{"state": "idle"|"indexing", "done", "total", "error"}`` for the page."""
        with self._lock:
            return {**self._state, "watching": self.watch}

    def _set(self, **kw) -> None:
        with self._lock:
            self._state.update(kw)

    def start(self) -> IndexWatcher:
        targets = [self._work] + ([self._listen] if self.watch else [])
        self._threads = [threading.Thread(target=t, daemon=True) for t in targets]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        for t in self._threads:
            t.join(timeout=10)

    def _listen(self) -> None:
        import watchfiles

        index = str(Path(self.searcher.info.index).resolve())
        roots = [str(r) for r in self.searcher.roots if Path(r).is_dir()]
        if not roots:
            return

        def wanted(_change, path: str) -> bool:
            return not (path == index or path.startswith(index + "/"))

        for _ in watchfiles.watch(
            *roots,
            watch_filter=wanted,
            debounce=DEBOUNCE_MS,
            stop_event=self._stop,
            yield_on_timeout=False,
        ):
            self._dirty.set()

    def _work(self) -> None:
        while not self._stop.is_set():
            if self._dirty.wait(self.poll_s) and not self._stop.is_set():
                self._dirty.clear()
                self._index()
            try:
                self.searcher.reload()
            except Exception as e:  # noqa: BLE001 - keep serving the last good snapshot
                log.warning("could not reload the index: %s", e)
                self._set(error=f"reload failed: {e}")

    def _index(self) -> None:
        from drc_jax.search.index import build_index

        info, store = self.searcher.info, self.searcher.store
        missing = [str(r) for r in info.roots if not Path(r).is_dir()]
        if missing:  # an unmounted drive: indexing now would drop every file on it
            self._set(error=f"not re-indexing: the folder(s) {missing} are missing")
            return
        self._set(state="indexing", done=0, total=0, error=None)
        try:
            build_index(
                list(info.roots),
                info.index,
                weights=info.weights,
                clip=self.clip,
                preprocess=info.preprocess,
                store_dtype=str(store.dtype),
                progress=False,
                on_progress=lambda done, total: self._set(done=done, total=total),
            )
        except Exception as e:  # noqa: BLE001 - a failed run loses nothing; say so, keep serving
            log.warning("background indexing failed: %s", e)
            self._set(error=f"indexing failed: {type(e).__name__}: {e}")
        finally:
            self._set(state="idle")
