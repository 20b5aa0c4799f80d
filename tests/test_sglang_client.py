"""The SGLang client against a real loopback HTTP server speaking OpenAI chat completions.

The fake "model" answers with the rule decomposer's split, or with scripted faults: invalid JSON,
schema-violating JSON, a plain string, an HTML page, a 10 MB body, HTTP 500, answers slower than
the client's timeout, an answer trickled one byte a second, nothing listening, and a server that
dies mid-batch. Every timeout here is at most a few seconds, and every server stops by itself.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drc_jax.decompose import Decomposition, get_decomposer, load_decompositions_jsonl
from drc_jax.decompose.prompts import DECOMPOSER_SYSTEM, MERGED_SYSTEM, STRENGTH_SYSTEM
from drc_jax.decompose.rules import RuleDecomposer
from drc_jax.decompose.sglang import (
    SGLangDecomposer,
    SGLangRequestError,
    SGLangUnavailableError,
)
from drc_jax.decompose.types import MERGED_SCHEMA

CAPTIONS = [
    "A man in a kitchen is making pizzas, but there is no chair in sight.",
    "No fork is present, but a baker is busy working in the kitchen.",
    "Two dogs play in the snow.",
    "A cartoon clip shows Pokemon dancing, with no hiking scenes present.",
    "A kitchen is equipped with a stove and sink, but lacks a chair.",
    "A bus waits at a red light, and a car is noticeably absent.",
]
_RULES = RuleDecomposer()


def rule_answer(caption: str, system: str) -> str:
    d = _RULES.decompose_one(caption)
    if system == STRENGTH_SYSTEM:
        return json.dumps({"strength": d.strength})
    obj = {"negated": d.negated, "aff": d.aff, "neg": d.neg, "cf": d.cf}
    if system == MERGED_SYSTEM:
        obj["strength"] = d.strength
    return json.dumps(obj)


class FakeServer:
    """ThreadingHTTPServer on 127.0.0.1; ``behave(caption, n_seen) -> (status, content, delay)``.

    ``content`` None answers with the rule split, a str is the model's message, bytes are the
    whole HTTP body as sent (an HTML page, a huge body). ``trickle_s`` sends the body one byte
    per that many seconds.
    """

    def __init__(
        self, behave=None, port: int = 0, die_after: int | None = None, trickle_s: float = 0.0
    ):
        self.behave = behave or (lambda cap, n: (200, None, 0.0))
        self.requests: list[dict] = []
        self.seen: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.trickle_s = trickle_s
        self.caption_in_flight: dict[str, int] = {}
        self.max_caption_in_flight = 0  # most requests for one caption at the same time
        self.die_after = die_after
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200 if self.path == "/health" else 404)
                self.end_headers()

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                caption = body["messages"][-1]["content"]
                with fake._lock:
                    fake.requests.append(body)
                    n = fake.seen[caption] = fake.seen.get(caption, 0) + 1
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    k = fake.caption_in_flight[caption] = fake.caption_in_flight.get(caption, 0) + 1
                    fake.max_caption_in_flight = max(fake.max_caption_in_flight, k)
                    dying = fake.die_after is not None and len(fake.requests) > fake.die_after
                try:
                    if dying:  # drop this connection and stop listening
                        threading.Thread(target=fake.stop, daemon=True).start()
                        self.close_connection = True
                        return
                    status, content, delay = fake.behave(caption, n)
                    time.sleep(delay)
                    if content is None:
                        content = rule_answer(caption, body["messages"][0]["content"])
                    payload = (
                        content
                        if isinstance(content, bytes)
                        else json.dumps(
                            {"choices": [{"message": {"role": "assistant", "content": content}}]}
                            if status == 200
                            else {"error": "boom"}
                        ).encode()
                    )
                    html = payload.startswith(b"<")
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html" if html else "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if fake.trickle_s:
                        for i in range(len(payload)):
                            if fake._stopped:
                                return
                            self.wfile.write(payload[i : i + 1])
                            self.wfile.flush()
                            time.sleep(fake.trickle_s)
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                        fake.caption_in_flight[caption] -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._stopped = False
        self._thread.start()

    def stop(self):
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers = []

    def make(**kwargs):
        s = FakeServer(**kwargs)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def client(url, tmp_path, **kw):
    opts = dict(
        url=url,
        cache_dir=str(tmp_path / "cache"),
        timeout_s=2.0,
        retries=2,
        backoff_s=0.01,
        backoff_max_s=0.05,
        concurrency=4,
    )
    opts.update(kw)
    return get_decomposer("sglang", **opts)


def test_valid_answers_match_the_model_in_input_order(server_factory, tmp_path):
    srv = server_factory()
    d = client(srv.url, tmp_path)
    out = d.decompose(CAPTIONS + CAPTIONS[:2])
    expected = _RULES.decompose(CAPTIONS + CAPTIONS[:2])
    assert out == expected
    assert d.stats["fallbacks"] == 0
    assert d.stats["requests"] == len(CAPTIONS)  # duplicates asked once
    assert out[2].negated is False and out[2].strength == "none"


def test_requests_share_a_byte_identical_prefix_and_end_with_the_caption(server_factory, tmp_path):
    srv = server_factory()
    client(srv.url, tmp_path).decompose(CAPTIONS)
    systems = {r["messages"][0]["content"] for r in srv.requests}
    assert systems == {MERGED_SYSTEM}
    for r in srv.requests:
        assert r["messages"][0]["role"] == "system"
        assert r["messages"][-1]["role"] == "user" and r["messages"][-1]["content"] in CAPTIONS
        assert r["temperature"] == 0
        assert r["response_format"]["type"] == "json_schema"
        assert r["response_format"]["json_schema"]["schema"] == MERGED_SCHEMA


def test_requests_run_concurrently_up_to_the_bound(server_factory, tmp_path):
    srv = server_factory(behave=lambda cap, n: (200, None, 0.15))
    caps = [f"a photo of cat {i} without a dog" for i in range(12)]
    client(srv.url, tmp_path, concurrency=4).decompose(caps)
    assert 2 <= srv.max_in_flight <= 4


def test_two_prompt_mode_sends_decomposer_and_strength_prompts_concurrently(
    server_factory, tmp_path
):
    srv = server_factory(behave=lambda cap, n: (200, None, 0.3))
    d = client(srv.url, tmp_path, mode="two_prompt", concurrency=1)
    out = d.decompose(CAPTIONS[:3])
    d.close()
    assert out == _RULES.decompose(CAPTIONS[:3])
    # The estimator's "none" for the plain caption is outside its three classes, yet unread:
    # the decomposer prompt decided "not negated", so nothing fell back.
    assert d.stats["fallbacks"] == 0
    # One caption at a time (concurrency=1), yet both of its prompts were in flight together.
    assert srv.max_caption_in_flight == 2
    systems = [r["messages"][0]["content"] for r in srv.requests]
    assert systems.count(STRENGTH_SYSTEM) == systems.count(DECOMPOSER_SYSTEM) == 3
    assert out[2].negated is False and out[2].strength == "none"  # rated, but not negated


def test_mode_is_a_constructor_argument_and_rejects_unknown_modes(tmp_path):
    assert SGLangDecomposer(mode="two_prompt", cache_dir="").config.mode == "two_prompt"
    with pytest.raises(ValueError, match="mode must be one of"):
        SGLangDecomposer(mode="three_prompt", cache_dir="")


@pytest.mark.parametrize(
    "bad_content",
    [
        "{not json",  # invalid JSON
        json.dumps({"negated": True, "aff": "a dog"}),  # schema: missing fields
        json.dumps({"negated": True, "aff": "a", "neg": "b", "cf": "c", "strength": "very"}),
        json.dumps({"negated": True, "aff": "a", "neg": "", "cf": "a", "strength": "strong"}),
        "Sure! The negated concept is a chair.",  # a plain string
    ],
    ids=["invalid-json", "missing-fields", "bad-enum", "negated-without-neg", "plain-string"],
)
def test_invalid_output_is_retried_then_falls_back_to_plain_clip(
    server_factory, tmp_path, bad_content
):
    bad = CAPTIONS[0]
    srv = server_factory(behave=lambda cap, n: (200, bad_content if cap == bad else None, 0.0))
    d = client(srv.url, tmp_path, retries=2)
    out = d.decompose(CAPTIONS)
    assert out[0].negated is False and out[0].aff == bad and out[0].strength == "none"
    assert out[1:] == _RULES.decompose(CAPTIONS[1:])
    assert srv.seen[bad] == 3  # first try + 2 retries
    assert d.stats["fallbacks"] == 1 and d.fallback_reasons["invalid"] == 1


def test_http_500_then_success_is_retried_without_fallback(server_factory, tmp_path):
    srv = server_factory(behave=lambda cap, n: (500, None, 0.0) if n == 1 else (200, None, 0.0))
    d = client(srv.url, tmp_path)
    assert d.decompose(CAPTIONS) == _RULES.decompose(CAPTIONS)
    assert d.stats["retries"] == len(CAPTIONS) and d.stats["fallbacks"] == 0


def test_persistent_http_500_falls_back_and_is_not_cached(server_factory, tmp_path):
    srv = server_factory(behave=lambda cap, n: (500, None, 0.0))
    d = client(srv.url, tmp_path, retries=1)
    out = d.decompose(CAPTIONS[:2])
    assert [o.negated for o in out] == [False, False]
    assert d.stats["fallbacks"] == 2 and d.fallback_reasons["transport"] == 2
    d.close()
    # A transport failure is not the model's answer: the next run asks again.
    srv.behave = lambda cap, n: (200, None, 0.0)
    d2 = client(srv.url, tmp_path)
    assert d2.decompose(CAPTIONS[:2]) == _RULES.decompose(CAPTIONS[:2])
    assert d2.stats["requests"] == 2


def test_a_rejected_caption_falls_back_at_once_and_is_not_cached(server_factory, tmp_path):
    long = CAPTIONS[0] * 50
    srv = server_factory(behave=lambda cap, n: (400, None, 0.0) if cap == long else (200, None, 0))
    d = client(srv.url, tmp_path)
    out = d.decompose([long] + CAPTIONS[1:])
    assert out[0] == Decomposition.plain(long) and out[1:] == _RULES.decompose(CAPTIONS[1:])
    assert srv.seen[long] == 1  # a 4xx is not retried
    assert d.fallback_reasons["rejected"] == 1
    assert d.cache.get(long) is None


def test_a_server_rejecting_every_request_raises_a_setup_error(server_factory, tmp_path):
    srv = server_factory(behave=lambda cap, n: (404, None, 0.0))
    d = client(srv.url, tmp_path, model="no-such-model")
    with pytest.raises(SGLangRequestError, match="rejected all 3 requests.*no-such-model"):
        d.decompose(CAPTIONS[:3])


def test_too_slow_answers_time_out_and_are_retried(server_factory, tmp_path):
    # A first answer far past the deadline and a retry far inside it (robust to a busy machine).
    srv = server_factory(behave=lambda cap, n: (200, None, 5.0 if n == 1 else 0.0))
    d = client(srv.url, tmp_path, timeout_s=1.0)
    assert d.decompose(CAPTIONS[:3]) == _RULES.decompose(CAPTIONS[:3])
    assert d.stats["retries"] == 3  # each first (slow) answer was cut off, each retry answered
    assert all(srv.seen[c] == 2 for c in CAPTIONS[:3])


def test_connection_refused_raises_a_clear_error(tmp_path):
    srv = FakeServer()
    url = srv.url
    srv.stop()  # nothing listens on this port any more
    d = client(url, tmp_path, retries=1)
    with pytest.raises(SGLangUnavailableError, match="unreachable.*serve_sglang"):
        d.decompose(CAPTIONS)


def test_second_run_makes_no_requests(server_factory, tmp_path):
    srv = server_factory()
    d1 = client(srv.url, tmp_path)
    first = d1.decompose(CAPTIONS)
    d1.close()
    n = len(srv.requests)
    d2 = client(srv.url, tmp_path)
    assert d2.decompose(CAPTIONS) == first
    assert len(srv.requests) == n
    assert d2.stats["requests"] == 0 and d2.stats["cache_hits"] == len(CAPTIONS)


@pytest.mark.parametrize(
    "bad_body",
    [
        b"<!doctype html><html><body>502 Bad Gateway</body></html>",
        b"{not json at all",
        b'{"choices": [{"message": {"content": "' + b"x" * (10 << 20) + b'"}}]}',
    ],
    ids=["html-page", "invalid-json", "10MB-body"],
)
def test_misbehaving_answers_fall_back_for_this_run_only_and_are_never_cached(
    server_factory, tmp_path, bad_body
):
    srv = server_factory(behave=lambda cap, n: (200, bad_body, 0.0))
    d1 = client(srv.url, tmp_path, retries=0)
    out = d1.decompose(CAPTIONS[:2])
    d1.close()
    assert [o.negated for o in out] == [False, False]
    assert d1.stats["fallbacks"] == 2 and d1.fallback_reasons["invalid"] == 2
    assert len(d1.cache) == 0
    # The server behaves again: a rerun asks again and gets the real answers.
    srv.behave = lambda cap, n: (200, None, 0.0)
    n = len(srv.requests)
    d2 = client(srv.url, tmp_path, retries=0)
    assert d2.decompose(CAPTIONS[:2]) == _RULES.decompose(CAPTIONS[:2])
    assert len(srv.requests) == n + 2 and d2.stats["fallbacks"] == 0


def test_fallbacks_cached_by_older_versions_are_asked_again(server_factory, tmp_path):
    srv = server_factory()
    d1 = client(srv.url, tmp_path)
    stale = {
        "key": d1.cache.key(CAPTIONS[0]),
        "caption": CAPTIONS[0],
        "decomposition": Decomposition.plain(CAPTIONS[0]).to_dict(),
        "fallback": "invalid",
    }
    d1.close()
    with open(d1.cache.path, "a", encoding="utf-8") as f:
        f.write(json.dumps(stale) + "\n")
    d2 = client(srv.url, tmp_path)
    assert d2.decompose(CAPTIONS[:1]) == _RULES.decompose(CAPTIONS[:1])
    assert d2.stats["requests"] == 1


def test_a_server_trickling_one_byte_a_second_cannot_hold_a_request_past_its_deadline(
    server_factory, tmp_path
):
    srv = server_factory(trickle_s=1.0)
    d = client(srv.url, tmp_path, timeout_s=1.5, retries=1)
    out = d.decompose(CAPTIONS[:1])
    # Each byte arrives within any socket timeout, so only the deadline on the whole exchange
    # can cut both tries off: the answer is the fallback, not the server's (trickled) rule answer.
    assert out == [Decomposition.plain(CAPTIONS[0])]
    assert d.fallback_reasons["transport"] == 1 and d.stats["requests"] == 2


def test_server_dying_mid_batch_loses_nothing_and_resume_completes(server_factory, tmp_path):
    caps = [f"a photo of a street with no car number {i}" for i in range(20)]
    srv = server_factory(die_after=8, behave=lambda cap, n: (200, None, 0.02))
    d1 = client(srv.url, tmp_path, concurrency=3, retries=2)
    with pytest.raises(SGLangUnavailableError) as err:
        d1.decompose(caps)
    d1.close()
    saved = len(d1.cache)
    assert saved == 8  # every answer sent before the server died
    assert f"the {saved} answers received are saved" in str(err.value)
    assert str(d1.cache.path) in str(err.value)

    srv2 = server_factory(port=srv.port)  # the server comes back on the same port
    d2 = client(srv2.url, tmp_path, concurrency=3)
    out = d2.decompose(caps)
    assert out == _RULES.decompose(caps)
    assert d2.stats["cache_hits"] == saved
    assert len(srv2.requests) == len(caps) - saved


def _run_decompose_cli(url: str, tmp_path, stdin: str, *extra: str):
    """``python -m drc_jax.decompose --decomposer sglang --sglang_url URL`` on ``stdin``."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "drc_jax.decompose", "--decomposer", "sglang", "--sglang_url", url]
        + ["--cache_dir", str(tmp_path / "c"), *extra],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_sglang_backend_writes_one_json_line_per_caption(server_factory, tmp_path):
    srv = server_factory()
    proc = _run_decompose_cli(srv.url, tmp_path, "\n".join(CAPTIONS) + "\n", "--timeout", "5")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out.jsonl"
    out.write_text(proc.stdout)
    table = load_decompositions_jsonl(out)
    assert [json.loads(x)["caption"] for x in proc.stdout.splitlines()] == CAPTIONS
    assert [table[c] for c in CAPTIONS] == _RULES.decompose(CAPTIONS)
    assert json.loads(proc.stderr.strip().splitlines()[-1])["requests"] == len(CAPTIONS)


def test_cli_reports_an_unreachable_server_with_exit_code_2(tmp_path):
    srv = FakeServer()
    url = srv.url
    srv.stop()
    proc = _run_decompose_cli(url, tmp_path, "no dogs\n", "--retries", "0")
    assert proc.returncode == 2
    assert "unreachable" in proc.stderr


def test_cli_mode_two_prompt_asks_both_prompts_per_caption(server_factory, tmp_path):
    srv = server_factory()
    stdin = "\n".join(CAPTIONS) + "\n"
    proc = _run_decompose_cli(srv.url, tmp_path, stdin, "--mode", "two_prompt")
    assert proc.returncode == 0, proc.stderr
    decs = [Decomposition.from_dict(json.loads(x)) for x in proc.stdout.splitlines()]
    assert decs == _RULES.decompose(CAPTIONS)
    systems = [r["messages"][0]["content"] for r in srv.requests]
    assert systems.count(DECOMPOSER_SYSTEM) == systems.count(STRENGTH_SYSTEM) == len(CAPTIONS)
