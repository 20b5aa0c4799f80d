"""Multi-host: two processes joined through jax.distributed give the single-process numbers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from drc_jax.data.synthetic import SyntheticSpec
from drc_jax.launch.pipeline import run
from tests.conftest import REPO
from tests.test_launch_end_to_end import METRICS, TINY, options


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_run_matches_the_single_process_numbers(tmp_path):
    # The CLI's synthetic set (--synthetic_images 8, other sizes default), rendered once.
    single = run(options(tmp_path / "single", synthetic=SyntheticSpec(num_images=8)))
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drc_jax.launch",
                "--benchmark",
                "synthetic",
                "--weights",
                TINY,
                "--synthetic_images",
                "8",
                "--noprogress",
                "--data_dir",
                str(tmp_path / "single" / "cache" / "synthetic_data"),
                "--cache_dir",
                str(tmp_path / "multi" / "cache"),
                "--output_dir",
                str(tmp_path / "multi" / "out"),
                "--coordinator_address",
                f"127.0.0.1:{port}",
                "--num_processes",
                "2",
                "--process_id",
                str(i),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    multi = json.loads((tmp_path / "multi" / "out" / "results.json").read_text())
    assert multi["config"]["processes"] == 2
    for name, m in single["methods"].items():
        for k in METRICS:
            assert multi["methods"][name][k] == pytest.approx(m[k], abs=1e-9), (name, k)


COUNTING_LAUNCH = """
    import sys
    from drc_jax.media import embed
    real, out = embed.read_image, open(sys.argv[1], "a", buffering=1)
    def counting(path, *a, **kw):
        out.write(f"{path}\\n")
        return real(path, *a, **kw)
    embed.read_image = counting
    sys.argv = ["drc-launch", *sys.argv[2:]]
    from drc_jax.launch.__main__ import run
    run()
"""


@pytest.mark.slow
def test_each_process_of_a_two_process_run_decodes_only_its_half(tmp_path):
    data = tmp_path / "data"
    run(options(tmp_path / "single", synthetic=SyntheticSpec(num_images=8)))  # renders the set
    single = json.loads((tmp_path / "single" / "out" / "results.json").read_text())
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    data = tmp_path / "single" / "cache" / "synthetic_data"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(COUNTING_LAUNCH),
                str(tmp_path / f"dec{i}"),
                "--benchmark",
                "synthetic",
                "--weights",
                TINY,
                "--synthetic_images",
                "8",
                "--noprogress",
                "--data_dir",
                str(data),
                "--cache_dir",
                str(tmp_path / "multi" / "cache"),
                "--output_dir",
                str(tmp_path / "multi" / "out"),
                "--coordinator_address",
                f"127.0.0.1:{port}",
                "--num_processes",
                "2",
                "--process_id",
                str(i),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    shares = [set((tmp_path / f"dec{i}").read_text().split()) for i in range(2)]
    images = {str(p) for p in data.rglob("*") if p.suffix in (".png", ".jpg")}
    assert len(images) == 8 and shares[0] | shares[1] == images
    assert len(shares[0]) == len(shares[1]) == 4 and not shares[0] & shares[1]
    multi = json.loads((tmp_path / "multi" / "out" / "results.json").read_text())
    for name, m in single["methods"].items():
        for k in METRICS:
            assert multi["methods"][name][k] == pytest.approx(m[k], abs=1e-9), (name, k)
