"""Shared test helpers: paths to the shared NegBench files and a multi-device subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NEGBENCH_DIR = REPO.parent / "shared" / "negbench"


@pytest.fixture(scope="session")
def negbench_dir() -> Path:
    if not (NEGBENCH_DIR / "coco_neg_dev.csv").exists():
        pytest.fail(f"shared NegBench dev files not found under {NEGBENCH_DIR}")
    return NEGBENCH_DIR


def run_with_devices(code: str, n_devices: int = 8, timeout: float = 900) -> str:
    """Run ``code`` in a fresh Python with ``n_devices`` host CPU devices; return its stdout.

    JAX fixes its device count at import, so multi-device checks must run in a subprocess.
    Fails the calling test with the subprocess's stderr when it exits non-zero.
    """
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n_devices}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(f"subprocess failed (rc={proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc.stdout
