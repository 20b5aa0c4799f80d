"""``drc-search index`` over two processes: each decodes half the images, one index is written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from drc_jax.search import build_index
from tests.conftest import REPO
from tests.scenes import make_scene_folder
from tests.test_launch_multihost import _free_port
from tests.test_search_index import stored

WEIGHTS = "random:test-tiny"
COUNTING_INDEX = """
    import sys
    from drc_jax.media import embed
    real, out = embed.read_image, open(sys.argv[1], "a", buffering=1)
    def counting(path, *a, **kw):
        out.write(f"{path}\\n")
        return real(path, *a, **kw)
    embed.read_image = counting
    sys.argv = ["drc-search", *sys.argv[2:]]
    from drc_jax.search.__main__ import run
    run()
"""


@pytest.mark.slow
def test_a_two_process_index_run_decodes_each_image_once_and_writes_the_same_index(tmp_path):
    from drc_jax.clip import load_clip

    root = tmp_path / "photos"
    make_scene_folder(root, per_combination=1)
    images = {str(p) for p in root.rglob("*.png")}
    build_index(root, tmp_path / "single", clip=load_clip(WEIGHTS), progress=False)
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(COUNTING_INDEX),
                str(tmp_path / f"dec{i}"),
                "index",
                "--images",
                str(root),
                "--index",
                str(tmp_path / "multi"),
                "--weights",
                WEIGHTS,
                "--noprogress",
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
    shares = [(tmp_path / f"dec{i}").read_text().split() for i in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(images)  # each image decoded once in all
    assert abs(len(shares[0]) - len(shares[1])) <= 1
    single, multi = stored(tmp_path / "single"), stored(tmp_path / "multi")
    assert sorted(single) == sorted(multi) and len(single) == len(images)
    for rel, emb in single.items():
        np.testing.assert_allclose(multi[rel], emb, atol=2**-7)
