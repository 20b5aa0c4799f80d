"""LLM decomposer: an SGLang server's OpenAI-compatible /v1/chat/completions, stdlib HTTP only.

``mode="merged"`` asks one prompt for all fields; ``"two_prompt"`` sends the paper's decomposer
and strength estimator at once. Answers are schema-constrained and validated, retried with
backoff; a caption still invalid after the retries falls back to plain CLIP (counted in
``stats["fallbacks"]``, never cached). Every request rejected raises :class:`SGLangRequestError`;
an unreachable server raises :class:`SGLangUnavailableError` after saving the answers received.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from drc_jax.decompose import prompts, transport
from drc_jax.decompose.cache import DecompositionCache
from drc_jax.decompose.types import (
    MERGED_SCHEMA,
    SPLIT_SCHEMA,
    STRENGTH_SCHEMA,
    Decomposition,
    length_problems,
    schema_problems,
    sense_problems,
)
from drc_jax.defaults import DECOMPOSITIONS, SGLANG_MODEL, SGLANG_URL, cache_path
from drc_jax.untrusted import json_loads

log = logging.getLogger(__name__)

DEFAULT_URL = SGLANG_URL
DEFAULT_MODEL = SGLANG_MODEL
MODES = ("merged", "two_prompt")
#: A longer answer is not a decomposition (max_tokens is 256): a fallback, never cached.
MAX_ANSWER_BYTES = 1 << 20


class SGLangUnavailableError(ConnectionError):
    """The server cannot be reached (refused / unresolvable) even after the retries."""


class _Invalid(Exception):
    """The model answered, but not with a usable decomposition."""


class SGLangRequestError(ValueError):
    """The server rejected every request of a call (HTTP 4xx): a setup problem, e.g. --model."""


class _Rejected(Exception):
    """HTTP 4xx for this request (e.g. a caption longer than the context): no retry, no cache."""


class _Transient(Exception):
    """Timeout, HTTP 5xx/429, or a dropped connection: worth another try."""


class _Refused(Exception):
    """Nothing listens at the URL."""


@dataclass(frozen=True)
class SGLangConfig:
    """Client settings. ``cache_dir=None`` uses ~/.cache/drc_jax/decompositions; "" disables it."""

    url: str = DEFAULT_URL
    model: str = DEFAULT_MODEL
    mode: str = "merged"
    concurrency: int = 64
    timeout_s: float = 120.0
    retries: int = 3  # extra tries after the first
    backoff_s: float = 0.5  # first wait; doubles per retry, capped at backoff_max_s
    backoff_max_s: float = 8.0
    max_tokens: int = 256
    api_key: str | None = None
    cache_dir: str | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.concurrency < 1 or self.retries < 0 or self.timeout_s <= 0:
            raise ValueError(f"bad concurrency/retries/timeout in {self}")


def _response_format(name: str, schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


class SGLangDecomposer:
    """Decomposes captions with an LLM behind SGLang (or any OpenAI-compatible server)."""

    name = "sglang"

    def __init__(self, config: SGLangConfig | None = None, **overrides):
        cfg = config or SGLangConfig()
        if overrides:
            cfg = SGLangConfig(**{**cfg.__dict__, **overrides})
        self.config = cfg
        self._endpoint = cfg.url.rstrip("/") + "/v1/chat/completions"
        self._lock = threading.Lock()
        self.stats = {
            "captions": 0,
            "negated": 0,
            "fallbacks": 0,
            "requests": 0,
            "cache_hits": 0,
            "retries": 0,
        }
        self.fallback_reasons: Counter[str] = Counter()  # invalid | transport | rejected
        self._pairs = (
            ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="sglang-strength")
            if cfg.mode == "two_prompt"
            else None
        )
        self._rejections: list[str] = []
        folder = cache_path(DECOMPOSITIONS) if cfg.cache_dir is None else cfg.cache_dir
        self.cache = (
            DecompositionCache(
                Path(folder), "sglang-" + cfg.mode, cfg.model, prompts.PROMPT_VERSION
            )
            if str(folder)
            else None
        )

    def decompose(self, captions: list[str]) -> list[Decomposition]:
        """Decompositions in input order; raises SGLangUnavailableError if the server is down."""
        results: dict[str, Decomposition] = {}
        todo: list[str] = []
        for cap in dict.fromkeys(captions):
            hit = self.cache.get(cap) if self.cache is not None else None
            if hit is not None:
                results[cap] = hit
                self._count("cache_hits")
            else:
                todo.append(cap)
        fallbacks_before = self.stats["fallbacks"]
        if todo:
            self._rejections: list[str] = []
            self._run(todo, results)
            if len(self._rejections) == len(todo):
                raise SGLangRequestError(
                    f"{self.config.url} rejected all {len(todo)} requests, e.g. "
                    f"{self._rejections[0]}; check --sglang_model ({self.config.model!r}) against "
                    "the served model and that the server supports json_schema response_format."
                )
        out = [results[c] for c in captions]
        self.stats["captions"] += len(out)
        self.stats["negated"] += sum(d.negated for d in out)
        new = self.stats["fallbacks"] - fallbacks_before
        if new:
            log.warning(
                "%d of %d caption(s) fell back to plain CLIP (run total %d: %s)",
                new,
                len(set(captions)),
                self.stats["fallbacks"],
                ", ".join(f"{k}: {v}" for k, v in self.fallback_reasons.items()),
            )
        return out

    def close(self) -> None:
        if self._pairs is not None:
            self._pairs.shutdown(wait=True)
        if self.cache is not None:
            self.cache.close()

    def _count(self, key: str, n: int = 1):
        with self._lock:
            self.stats[key] += n

    def _run(self, todo: list[str], results: dict[str, Decomposition]):
        cfg = self.config
        with ThreadPoolExecutor(max_workers=min(cfg.concurrency, len(todo))) as pool:
            futures = {pool.submit(self._one, cap): cap for cap in todo}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failure = next((f.exception() for f in done if f.exception() is not None), None)
            if failure is not None:
                for f in pending:
                    f.cancel()
                done, _ = wait(futures)  # let the requests in flight land in the cache
            for f in done:
                if not f.cancelled() and f.exception() is None:
                    results[futures[f]] = f.result()
        if failure is not None and not isinstance(failure, SGLangUnavailableError):
            raise failure
        if failure is not None:
            saved = sum(c in results for c in todo)
            where = (
                f"the {saved} answers received are saved in {self.cache.path}; rerun and only "
                f"the other {len(todo) - saved} are requested"
                if self.cache is not None
                else f"{saved} answers were received but caching is off (cache_dir='') so a "
                "rerun requests everything again"
            )
            raise SGLangUnavailableError(
                f"SGLang server at {cfg.url} is unreachable ({failure}) after "
                f"{cfg.retries + 1} tries; {where}. Start it with `python -m launch.serve_sglang "
                f"--model {cfg.model}` (or pass the right --sglang_url)."
            ) from failure

    def _one(self, caption: str) -> Decomposition:
        """One caption: request, validate, retry; a valid answer or the plain-CLIP fallback."""
        cfg = self.config
        reason = "invalid"
        for attempt in range(cfg.retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(min(cfg.backoff_s * 2 ** (attempt - 1), cfg.backoff_max_s))
            try:
                dec = self._decompose_once(caption)
            except _Refused as e:
                if attempt == cfg.retries:
                    raise SGLangUnavailableError(str(e)) from e
                continue
            except _Transient as e:
                reason = f"transport: {e}"
                continue
            except _Rejected as e:
                reason = f"rejected: {e}"
                with self._lock:
                    self._rejections.append(str(e))
                break
            except _Invalid as e:
                reason = "invalid"
                log.debug("invalid answer for %r: %s", caption, e)
                continue
            if self.cache is not None:
                self.cache.put(dec)
            return dec
        # Not cached: a rerun against a healthy server asks again.
        dec = Decomposition.plain(caption)
        kind = reason.split(":")[0]
        with self._lock:
            self.stats["fallbacks"] += 1
            self.fallback_reasons[kind] += 1
        log.info("caption %r fell back to plain CLIP (%s)", caption, reason)
        return dec

    def _decompose_once(self, caption: str) -> Decomposition:
        if self._pairs is None:
            obj = self._ask(prompts.MERGED_SYSTEM, caption, "decomposition", MERGED_SCHEMA)
        else:
            strength = self._pairs.submit(
                self._ask, prompts.STRENGTH_SYSTEM, caption, "strength", STRENGTH_SCHEMA
            )
            try:
                obj = self._ask(prompts.DECOMPOSER_SYSTEM, caption, "decomposition", SPLIT_SCHEMA)
            except BaseException:
                wait([strength])
                raise
            if not obj["negated"]:  # the decomposer decides: the rating is not read
                wait([strength])
                return Decomposition.plain(caption)
            obj["strength"] = strength.result()["strength"]
        if not obj["negated"]:
            return Decomposition.plain(caption)
        problems = sense_problems(obj) + length_problems(obj, caption)
        if problems:
            raise _Invalid("; ".join(problems))
        return Decomposition(
            caption,
            True,
            obj["aff"].strip(),
            obj["neg"].strip(),
            obj["cf"].strip(),
            obj["strength"],
        )

    def _ask(self, system: str, caption: str, name: str, schema: dict) -> dict:
        """One chat completion, parsed and checked against ``schema``."""
        cfg = self.config
        body = {
            "model": cfg.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": caption},
            ],
            "temperature": 0,
            "max_tokens": cfg.max_tokens,
            "response_format": _response_format(name, schema),
        }
        headers = {"Content-Type": "application/json"}
        if cfg.api_key:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        self._count("requests")
        try:
            status, raw = transport.post(
                self._endpoint,
                json.dumps(body).encode(),
                headers,
                deadline_s=cfg.timeout_s,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except transport.DeadlineExceeded as e:
            raise _Transient(str(e)) from e
        except transport.BodyTooLarge as e:
            raise _Invalid(str(e)) from e
        except (ConnectionRefusedError, socket.gaierror, FileNotFoundError) as e:
            raise _Refused(f"{type(e).__name__}: {e}") from e
        except (http.client.HTTPException, OSError) as e:
            raise _Transient(f"{type(e).__name__}: {e}") from e
        if status >= 500 or status in (408, 429):
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            raise _Rejected(f"HTTP {status}: {raw[:300].decode(errors='replace')}")
        try:
            content = json_loads(raw)["choices"][0]["message"]["content"]
            obj = json_loads(content)
        except (ValueError, KeyError, IndexError, TypeError) as e:  # deep nesting included
            raise _Invalid(f"not a JSON completion ({e}): {raw[:200]!r}") from e
        problems = schema_problems(obj, schema)
        if problems:
            raise _Invalid("; ".join(problems))
        return obj
