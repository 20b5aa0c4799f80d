"""Writes never follow symbolic links, a run's outputs land as one step, and a full or
read-only disk is said so instead of "damaged" (issue 18, items 4 and 9)."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
from PIL import Image

from drc_jax import atomic
from drc_jax.errors import UserError
from drc_jax.launch import pipeline
from drc_jax.launch.config import base_config

OUTPUTS = ("results.json", "results.md", "decompositions.jsonl", "rankings.npz")


def _outputs(tag: str) -> dict:
    return {
        "results.json": json.dumps({"run": tag}),
        "results.md": f"# {tag}\n",
        "decompositions.jsonl": lambda f: f.write(f'{{"run": "{tag}"}}\n'.encode()),
        "rankings.npz": lambda f: np.savez_compressed(f, gt=np.arange(3)),
    }


def _leftovers(d):
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("name", OUTPUTS)
def test_a_link_planted_at_an_output_name_is_replaced_and_its_target_left_untouched(tmp_path, name):
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    outside.write_text("precious")
    (out / name).symlink_to(outside)
    pipeline.write_outputs(out, _outputs("new"))
    assert outside.read_text() == "precious"
    assert not (out / name).is_symlink() and (out / name).is_file()
    assert json.loads((out / "results.json").read_text()) == {"run": "new"}
    assert _leftovers(out) == []


def test_a_planted_fixed_temp_name_is_never_written_through(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    outside.write_text("precious")
    for name in ("decompositions.jsonl.tmp", "results.json.tmp"):  # the names writes once used
        (out / name).symlink_to(outside)
    pipeline.write_outputs(out, _outputs("new"))
    assert outside.read_text() == "precious"


def test_a_figure_written_onto_a_planted_link_replaces_the_link(tmp_path):
    from drc_jax.figures import FigureTile, render_comparison

    outside = tmp_path / "outside.png"
    outside.write_bytes(b"precious")
    (tmp_path / "fig.png").symlink_to(outside)
    tile = FigureTile(image=Image.new("RGB", (8, 8)), label="x", rank=1)
    render_comparison(tmp_path / "fig.png", "a query", {"CLIP": [tile]})
    assert outside.read_bytes() == b"precious"
    assert Image.open(tmp_path / "fig.png").format == "PNG"


def test_the_decomposition_cache_refuses_a_link_and_touches_nothing_behind_it(tmp_path):
    from drc_jax.decompose.cache import DecompositionCache

    outside = tmp_path / "outside.jsonl"
    outside.write_text("precious\n")
    path = DecompositionCache.path_for(tmp_path / "c", "sglang-merged", "m", "v1")
    path.parent.mkdir()
    path.symlink_to(outside)
    with pytest.raises(OSError, match="symbolic link"):
        DecompositionCache(tmp_path / "c", "sglang-merged", "m", "v1")
    assert outside.read_text() == "precious\n"


def _raise(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    "patch, code, said",
    [
        ("fsync", errno.ENOSPC, "no space left on device.*choose another --output_dir"),
        ("replace", errno.ENOSPC, "no space left on device"),
        ("replace", errno.EROFS, "read-only.*nothing is damaged"),
    ],
)
def test_a_full_or_read_only_disk_leaves_the_old_results_whole_and_no_temp_file(
    tmp_path, monkeypatch, patch, code, said
):
    out = tmp_path / "out"
    pipeline.write_outputs(out, _outputs("old"))
    before = {n: (out / n).read_bytes() for n in OUTPUTS}
    monkeypatch.setattr(atomic.os, patch, _raise(code))
    with pytest.raises(UserError, match=said) as e:
        pipeline.write_outputs(out, _outputs("new"))
    assert "delete" not in str(e.value) and "re-run" not in str(e.value)
    monkeypatch.undo()
    assert {n: (out / n).read_bytes() for n in OUTPUTS} == before
    assert _leftovers(out) == []


def _opts(out, name, benchmark="synthetic", **kw):
    c = base_config()
    c.update(name=name, benchmark=benchmark, output_dir=str(out), **kw)
    return c


def test_a_run_into_another_configs_output_dir_says_so_and_the_same_config_may_overwrite(
    tmp_path,
):
    out = tmp_path / "out"
    out.mkdir()
    results = {"benchmark": "synthetic", "config": {"name": "table3"}}
    (out / "results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match=r"'table3'.*--overwrite.*") as e:
        pipeline.check_output_dir(_opts(out, "table4"))
    assert "another --output_dir" in str(e.value)
    with pytest.raises(UserError, match="'table3' on benchmark 'synthetic'"):
        pipeline.check_output_dir(_opts(out, "table3", benchmark="coco"))
    pipeline.check_output_dir(_opts(out, "table3"))  # a re-run of the same config
    pipeline.check_output_dir(_opts(out, "table4", overwrite=True))
    (out / "results.json").write_text("{not json")
    with pytest.raises(UserError, match="'<unreadable>'"):
        pipeline.check_output_dir(_opts(out, "table3"))


def test_an_output_dir_that_is_read_only_is_said_so_before_any_work(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", _raise(errno.EROFS))
    with pytest.raises(UserError, match="read-only.*choose another --output_dir"):
        pipeline.check_output_dir(_opts(tmp_path / "out", "paper"))
