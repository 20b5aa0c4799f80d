"""A hostile LLM server cannot abort a run, fill the cache with junk, write escape sequences to
the user's terminal or hang the start-up check (issue 18, item 10)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from drc_jax import cli
from drc_jax.untrusted import json_loads, printable, terminal_safe_json
from tests.conftest import REPO
from tests.test_sglang_client import CAPTIONS, FakeServer, client

NEGATED = "a dog not on a beach"
ESCAPES = "\x1b[31mred\x1b[0m\x1b]0;pwned\x07\x9b2J\u202eevil\x07"


@pytest.fixture
def server():
    servers = []

    def make(**kw):
        servers.append(FakeServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def _answer(**fields):
    base = {"negated": True, "aff": "a dog", "neg": "a beach", "cf": "a dog on a beach"}
    return json.dumps({**base, "strength": "strong", **fields})


DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize(
    "content",
    [
        DEEP,  # the model's message
        _answer(neg=None).replace("null", DEEP),  # inside an otherwise fine object
        DEEP.encode(),  # the whole HTTP body
        _answer(neg="x" * 5000),  # a 5 KB concept
        _answer(aff="y" * 5000),
    ],
    ids=["deep-message", "deep-field", "deep-body", "5KB-neg", "5KB-aff"],
)
def test_a_deep_or_overlong_answer_is_an_invalid_answer_retried_counted_and_never_cached(
    server, tmp_path, content
):
    srv = server(behave=lambda cap, n: (200, content, 0.0))
    d = client(srv.url, tmp_path, retries=1)
    out = d.decompose([NEGATED, CAPTIONS[1]])
    d.close()
    assert [o.negated for o in out] == [False, False]  # plain CLIP, the run goes on
    assert d.stats["fallbacks"] == 2 and d.fallback_reasons["invalid"] == 2
    assert d.stats["retries"] == 2 and len(d.cache) == 0


def test_an_overlong_answer_cached_by_an_older_version_is_asked_again(server, tmp_path):
    srv = server()
    d = client(srv.url, tmp_path)
    rec = {
        "key": d.cache.key(NEGATED),
        "caption": NEGATED,
        "decomposition": {
            **json.loads(_answer(neg="x" * 5000)),
            "caption": NEGATED,
            "negs": ["x" * 5000],
        },
        "fallback": None,
    }
    d.close()
    with open(d.cache.path, "a") as f:
        f.write(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    again = client(srv.url, tmp_path)
    assert again.cache.get(NEGATED) is None
    assert again.decompose([NEGATED])[0].neg != "x" * 5000
    again.close()


def test_json_nesting_is_bounded_before_parsing():
    assert json_loads('{"a": [1, {"b": "[[[[["}]}') == {"a": [1, {"b": "[[[[["}]}
    for text in (DEEP, '{"a":' * 40 + "1" + "}" * 40):
        with pytest.raises(ValueError, match="nested deeper"):
            json_loads(text)


def test_printed_text_loses_escapes_and_controls_and_json_keeps_its_value():
    assert printable(ESCAPES) == "redevil"
    assert printable("a\nb\tc", newlines=True) == "a\nb c" and printable("a\nb") == "ab"
    text = json.dumps({"aff": ESCAPES}, ensure_ascii=False)
    safe = terminal_safe_json(text)
    assert json.loads(safe) == {"aff": ESCAPES}
    assert not any(ch in safe for ch in "\x1b\x07\x9b\u202e")


def _run(module, *args, stdin=""):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin, capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip


def _escaping(srv):
    srv.behave = lambda cap, n: (200, _answer(aff=f"a dog {ESCAPES}", cf="a dog on a beach"), 0.0)


def test_drc_decompose_never_writes_an_answers_escape_sequences_raw(server, tmp_path):
    srv = server()
    _escaping(srv)
    out = _run(
        "drc_jax.decompose", "--decomposer", "sglang", "--sglang_url", srv.url,
        "--cache_dir", str(tmp_path), NEGATED,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not any(ch in out.stdout + out.stderr for ch in "\x1b\x07\x9b\u202e")
    assert json.loads(out.stdout)["aff"] == f"a dog {ESCAPES}"  # the value itself is intact


def test_drc_search_query_prints_no_escape_sequence_from_an_answer(server, tmp_path):
    from PIL import Image

    from drc_jax.clip import load_clip
    from drc_jax.search import build_index

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (32, 32), (9, 90, 30)).save(tmp_path / "photos" / "\x1b[2Jdog.png")
    index = tmp_path / "index"
    clip = load_clip("random:test-tiny")
    build_index(tmp_path / "photos", index, weights="random:test-tiny", clip=clip, progress=False)
    srv = server()
    _escaping(srv)
    out = _run(
        "drc_jax.search", "query", "--index", str(index), "--decomposer", "sglang",
        "--sglang_url", srv.url, "--cache_dir", str(tmp_path / "c"), f"{NEGATED} \x1b[5m",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "aff=" in out.stdout and "dog.png" in out.stdout
    assert not any(ch in out.stdout for ch in "\x1b\x07\x9b\u202e")


class TricklingServer:
    """A loopback socket server that sends an HTTP status line and headers one byte at a time,
    never finishing them; it stops by itself after ``lifetime_s``."""

    def __init__(self, every_s: float = 0.05, lifetime_s: float = 30.0):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.every_s, self.end = every_s, time.monotonic() + lifetime_s
        self.sent = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(1.0)
        while time.monotonic() < self.end:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn):
        head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000
        with conn:
            for i in range(len(head)):
                if time.monotonic() > self.end:
                    return
                try:
                    conn.sendall(head[i : i + 1])
                except OSError:
                    return
                self.sent += 1
                time.sleep(self.every_s)

    def close(self):
        self.end = 0.0
        self.sock.close()


def test_the_start_up_check_has_one_deadline_against_a_server_trickling_headers():
    srv = TricklingServer()
    try:
        with pytest.raises(cli.UserError, match=r"did not answer /v1/models within 1 s"):
            cli.check_sglang_server(srv.url, "m", timeout_s=1.0)
        assert srv.sent > 0  # it was talking, each byte well within a per-read timeout
    finally:
        srv.close()
