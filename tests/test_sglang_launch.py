"""drc_jax.decompose.serve (launch/serve_sglang.py runs it): its command line and /health wait.

sglang is never installed: a small fake server script stands in for ``sglang.launch_server``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drc_jax.decompose.serve import (
    ServeConfig,
    ServerStartError,
    build_command,
    serve,
    wait_for_health,
)
from tests.conftest import REPO


def _flag(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_command_serves_qwen_on_loopback_with_compact_json_by_default():
    cmd = build_command(ServeConfig())
    assert cmd[:3] == [sys.executable, "-m", "sglang.launch_server"]
    assert _flag(cmd, "--model-path") == "Qwen/Qwen2.5-14B-Instruct"
    assert _flag(cmd, "--host") == "127.0.0.1"
    assert _flag(cmd, "--port") == "30000"
    assert _flag(cmd, "--grammar-backend") == "xgrammar"
    assert "--constrained-json-disable-any-whitespace" in cmd
    assert "--constrained-json-whitespace-pattern" not in cmd  # outlines-only flag


def test_command_carries_parallelism_model_and_extra_flags():
    cfg = ServeConfig(
        model="/models/q",
        port=30123,
        tp_size=2,
        dp_size=4,
        mem_fraction_static=0.8,
        context_length=4096,
        served_model_name="qwen",
        extra_args=("--chunked-prefill-size", "4096"),
    )
    cmd = build_command(cfg)
    assert _flag(cmd, "--model-path") == "/models/q"
    assert _flag(cmd, "--tp-size") == "2" and _flag(cmd, "--dp-size") == "4"
    assert _flag(cmd, "--port") == "30123"
    assert _flag(cmd, "--mem-fraction-static") == "0.8"
    assert _flag(cmd, "--context-length") == "4096"
    assert _flag(cmd, "--served-model-name") == "qwen"
    assert cmd[-2:] == ["--chunked-prefill-size", "4096"]


def test_outlines_backend_gets_a_tight_whitespace_pattern_instead():
    cmd = build_command(ServeConfig(grammar_backend="outlines"))
    assert _flag(cmd, "--constrained-json-whitespace-pattern") == "[ ]?"
    assert "--constrained-json-disable-any-whitespace" not in cmd


@pytest.mark.parametrize(
    "bad", [dict(tp_size=0), dict(dp_size=0), dict(port=0), dict(grammar_backend="regex")]
)
def test_bad_server_settings_are_rejected(bad):
    with pytest.raises(ValueError):
        ServeConfig(**bad)


class _HealthServer:
    """Answers /health with 503 until ``ready_after`` polls have been made, then 200."""

    def __init__(self, ready_after: int):
        self.polls = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.polls += 1
                self.send_response(200 if outer.polls > ready_after else 503)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_health_wait_polls_until_the_server_answers_200():
    srv = _HealthServer(ready_after=3)
    try:
        waited = wait_for_health(srv.url, timeout_s=10, interval_s=0.05)
        assert srv.polls == 4 and waited < 5
    finally:
        srv.close()


def test_health_wait_times_out_with_a_clear_error():
    srv = _HealthServer(ready_after=10**9)
    try:
        with pytest.raises(ServerStartError, match="did not answer 200 within"):
            wait_for_health(srv.url, timeout_s=0.3, interval_s=0.05)
    finally:
        srv.close()


def test_health_wait_fails_fast_when_the_process_exits(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("loading...\nCUDA out of memory\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(ServerStartError, match=r"exited with code 3(.|\n)*CUDA out of memory"):
        wait_for_health(
            "http://127.0.0.1:9", timeout_s=30, proc=proc, interval_s=0.05, log_path=log
        )


FAKE_SGLANG = textwrap.dedent(
    """
    # Stands in for `python -m sglang.launch_server`: records its argv, is healthy after a delay.
    import json, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    argv = sys.argv[1:]
    json.dump(argv, open(sys.argv[0] + ".argv.json", "w"))
    host, port = argv[argv.index("--host") + 1], int(argv[argv.index("--port") + 1])
    start = time.time()
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            ok = self.path == "/health" and time.time() - start > 0.3
            self.send_response(200 if ok else 503); self.end_headers()
    print("fake sglang listening", flush=True)
    HTTPServer((host, port), H).serve_forever()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_the_server_and_returns_once_healthy(tmp_path):
    script = tmp_path / "fake_sglang.py"
    script.write_text(FAKE_SGLANG)
    port = _free_port()
    cfg = ServeConfig(port=port, tp_size=2, launcher=(sys.executable, str(script)))
    proc = serve(cfg, log_path=tmp_path / "s.log", timeout_s=30, interval_s=0.05)
    try:
        assert proc.poll() is None
        argv = json.loads((tmp_path / "fake_sglang.py.argv.json").read_text())
        assert argv == build_command(cfg)[2:]
        assert "fake sglang listening" in (tmp_path / "s.log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_reports_a_crashing_server_and_cleans_up(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("import sys; print('ImportError: no module named sglang'); sys.exit(1)\n")
    cfg = ServeConfig(port=_free_port(), launcher=(sys.executable, str(script)))
    # Seen as an exit (not as the 30 s health timeout), with the log's last lines.
    with pytest.raises(ServerStartError, match=r"exited with code 1(?s:.*)no module named sglang"):
        serve(cfg, log_path=tmp_path / "c.log", timeout_s=30, interval_s=0.05)


def test_serve_refuses_a_port_that_is_already_serving():
    srv = _HealthServer(ready_after=0)
    try:
        port = int(srv.url.rsplit(":", 1)[1])
        with pytest.raises(ServerStartError, match="already answers"):
            serve(ServeConfig(port=port, launcher=(sys.executable, "-c", "pass")))
    finally:
        srv.close()


def test_cli_prints_the_url_and_leaves_the_server_running(tmp_path):
    script = tmp_path / "fake_sglang.py"
    script.write_text(FAKE_SGLANG)
    port = _free_port()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.serve_sglang",
            "--port",
            str(port),
            "--dp",
            "2",
            "--launcher",
            f"{sys.executable} {script}",
            "--log",
            str(tmp_path / "l.log"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,  # the checkout's thin script
    )
    pid = None
    try:
        assert out.returncode == 0, out.stderr
        assert f"http://127.0.0.1:{port}" in out.stdout
        pid = int(out.stdout.split("(pid ")[1].split(",")[0])
        assert wait_for_health(f"http://127.0.0.1:{port}", timeout_s=5, interval_s=0.05) < 5
    finally:
        if pid is not None:
            import os
            import signal

            os.kill(pid, signal.SIGTERM)
