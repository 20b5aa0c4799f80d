"""Start an SGLang server for the LLM decomposer and wait until it is healthy.

    python -m drc_jax.decompose.serve                   # Qwen2.5-14B-Instruct on 127.0.0.1:30000
    python -m drc_jax.decompose.serve --model /models/qwen --tp 2 --dp 2 --port 30001

JSON whitespace is disabled (outlines: a tight whitespace pattern): unconstrained whitespace lets
a constrained model loop on newlines until max_tokens. Returns once /health answers 200, leaving
the server running; needs the ``drc-jax[serve]`` extra.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drc_jax.defaults import SGLANG_HOST, SGLANG_MODEL, SGLANG_PORT

DEFAULT_MODEL = SGLANG_MODEL
GRAMMAR_BACKENDS = ("xgrammar", "llguidance", "outlines")
# outlines only: one optional space between JSON tokens, never runs of newlines.
OUTLINES_WHITESPACE = "[ ]?"


class ServerStartError(RuntimeError):
    """The server exited, or did not answer /health in time."""


@dataclass(frozen=True)
class ServeConfig:
    model: str = DEFAULT_MODEL
    host: str = SGLANG_HOST
    port: int = SGLANG_PORT
    tp_size: int = 1
    dp_size: int = 1
    grammar_backend: str = "xgrammar"
    mem_fraction_static: float | None = None
    context_length: int | None = None
    served_model_name: str | None = None
    extra_args: tuple[str, ...] = ()
    # The program that starts the server; tests swap in a fake one.
    launcher: tuple[str, ...] = field(default=(sys.executable, "-m", "sglang.launch_server"))

    def __post_init__(self):
        if self.grammar_backend not in GRAMMAR_BACKENDS:
            raise ValueError(f"grammar_backend must be one of {GRAMMAR_BACKENDS}")
        if self.tp_size < 1 or self.dp_size < 1:
            raise ValueError(
                f"tp_size and dp_size must be >= 1, got {self.tp_size}, {self.dp_size}"
            )
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def build_command(cfg: ServeConfig) -> list[str]:
    """The server's argv (flags as in ``python -m sglang.launch_server --help``)."""
    cmd = [
        *cfg.launcher,
        "--model-path", cfg.model,
        "--host", cfg.host,
        "--port", str(cfg.port),
        "--tp-size", str(cfg.tp_size),
        "--dp-size", str(cfg.dp_size),
        "--grammar-backend", cfg.grammar_backend,
    ]  # fmt: skip
    if cfg.grammar_backend == "outlines":
        cmd += ["--constrained-json-whitespace-pattern", OUTLINES_WHITESPACE]
    else:
        cmd += ["--constrained-json-disable-any-whitespace"]
    if cfg.mem_fraction_static is not None:
        cmd += ["--mem-fraction-static", str(cfg.mem_fraction_static)]
    if cfg.context_length is not None:
        cmd += ["--context-length", str(cfg.context_length)]
    if cfg.served_model_name:
        cmd += ["--served-model-name", cfg.served_model_name]
    return cmd + list(cfg.extra_args)


def _healthy(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path | None, n: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    lines = path.read_text(errors="replace").splitlines()[-n:]
    return "\n".join(lines)


def wait_for_health(
    url: str,
    timeout_s: float = 1800.0,
    *,
    proc: subprocess.Popen | None = None,
    interval_s: float = 2.0,
    log_path: Path | None = None,
) -> float:
    """Poll ``url``/health until it answers 200; return the seconds waited.

    Raises ServerStartError if ``proc`` exits first or ``timeout_s`` passes (with the log tail).
    """
    t0 = time.monotonic()
    while True:
        if _healthy(url, timeout=min(interval_s, 5.0) + 1.0):
            return time.monotonic() - t0
        if proc is not None and proc.poll() is not None:
            raise ServerStartError(
                f"the server exited with code {proc.returncode} before {url}/health answered."
                + (f"\nlast lines of {log_path}:\n{_tail(log_path)}" if log_path else "")
            )
        if time.monotonic() - t0 > timeout_s:
            raise ServerStartError(
                f"{url}/health did not answer 200 within {timeout_s:.0f}s."
                + (f"\nlast lines of {log_path}:\n{_tail(log_path)}" if log_path else "")
            )
        time.sleep(interval_s)


def serve(
    cfg: ServeConfig,
    *,
    log_path: str | os.PathLike | None = None,
    timeout_s: float = 1800.0,
    interval_s: float = 2.0,
) -> subprocess.Popen:
    """Start the server in its own session, wait for /health, and return its process."""
    if _healthy(cfg.url, timeout=2.0):
        raise ServerStartError(f"something already answers at {cfg.url}; pick another --port")
    log = Path(log_path) if log_path else Path(f"sglang-{cfg.port}.log")
    cmd = build_command(cfg)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_health(cfg.url, timeout_s, proc=proc, interval_s=interval_s, log_path=log)
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    return proc


def main(argv: Sequence[str]) -> int:
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments {argv[1:]}; pass sglang flags with --extra")
    cfg = ServeConfig(
        model=FLAGS.model,
        port=FLAGS.port,
        tp_size=FLAGS.tp,
        dp_size=FLAGS.dp,
        grammar_backend=FLAGS.grammar_backend,
        mem_fraction_static=FLAGS.mem_fraction_static,
        context_length=FLAGS.context_length,
        served_model_name=FLAGS.served_model_name,
        extra_args=tuple(shlex.split(FLAGS.extra or "")),
        launcher=tuple(shlex.split(FLAGS.launcher)) if FLAGS.launcher else ServeConfig.launcher,
    )
    print("starting:", shlex.join(build_command(cfg)), flush=True)
    try:
        proc = serve(cfg, log_path=FLAGS.log, timeout_s=FLAGS.timeout)
    except ServerStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"SGLang is up at {cfg.url} (pid {proc.pid}, log {FLAGS.log or f'sglang-{cfg.port}.log'})."
        f"\nUse: python -m drc_jax.decompose --decomposer sglang --sglang_url {cfg.url}"
        f"\nStop: kill {proc.pid}",
        flush=True,
    )
    return 0


def _define_flags():
    from absl import flags

    flags.DEFINE_string("model", DEFAULT_MODEL, "HF hub id or local path of the model.")
    flags.DEFINE_integer("port", SGLANG_PORT, f"Port on {SGLANG_HOST}.")
    flags.DEFINE_integer("tp", 1, "Tensor-parallel size (GPUs per model replica).")
    flags.DEFINE_integer("dp", 1, "Data-parallel size (model replicas).")
    flags.DEFINE_enum(
        "grammar_backend", "xgrammar", list(GRAMMAR_BACKENDS), "JSON grammar backend."
    )
    flags.DEFINE_float("mem_fraction_static", None, "SGLang --mem-fraction-static.")
    flags.DEFINE_integer("context_length", None, "SGLang --context-length.")
    flags.DEFINE_string("served_model_name", None, "Name the API reports (default: the path).")
    flags.DEFINE_string("extra", None, "More sglang flags, one shell-quoted string.")
    flags.DEFINE_string("log", None, "Server log file (default sglang-<port>.log).")
    flags.DEFINE_float("timeout", 1800.0, "Seconds to wait for /health (model download + load).")
    flags.DEFINE_string(
        "launcher",
        None,
        "Override the server program (default: '<python> -m sglang.launch_server').",
    )


def run() -> None:
    """The command line: ``python -m drc_jax.decompose.serve`` (or ``launch/serve_sglang.py``)."""
    from absl import app

    _define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
