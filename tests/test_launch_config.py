"""Run configs as code: the paper default and the ablation tables, overrides and selection."""

from __future__ import annotations

import pytest

from drc_jax.launch.config import ConfigError, RunConfig, Variant, load_config, parse_overrides
from drc_jax.scoring import DRCParams


def test_paper_config_scores_clip_spacevlm_and_drc_with_paper_constants():
    config = load_config("paper")
    assert [(v.name, v.method) for v in config.variants] == [
        ("clip", "clip"),
        ("spacevlm", "spacevlm"),
        ("drc", "drc"),
    ]
    drc = config.variants[2].params
    assert (drc.w1, drc.w2, drc.wctx, drc.rho) == (0.35, 0.35, 0.30, 1.5)


def test_table3_adds_one_component_per_row():
    rows = load_config("table3").variants
    switches = [
        (p.use_d1, p.use_d2, p.use_dctx, p.use_repulsion) for p in (v.params for v in rows[1:])
    ]
    assert rows[0].method == "clip"
    assert switches == [
        (True, False, False, False),
        (True, True, False, False),
        (True, True, True, False),
        (True, True, True, True),
    ]


def test_table4_sweeps_rho_against_a_clip_baseline():
    config = load_config("table4")
    assert [v.params.rho for v in config.variants if v.method == "drc"] == [0, 0.5, 1, 1.5, 2]
    for v in config.variants:
        assert config.baseline_of(v).name == "clip"


def test_backbones_config_compares_each_backbone_to_its_own_clip_row():
    config = load_config("backbones")
    assert len(config.backbones("unused")) == 3
    for v in config.variants:
        base = config.baseline_of(v)
        assert base.method == "clip" and base.weights == v.weights


def test_config_file_path_and_overrides(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "from drc_jax.launch.config import RunConfig, Variant\n"
        "def get_config():\n"
        "    return RunConfig('mine', (Variant('clip', 'clip'), Variant('d', 'drc')))\n"
    )
    config = load_config(str(path)).override(parse_overrides("rho=0.5,use_dctx=false"))
    assert config.name == "mine"
    assert config.variants[1].params == DRCParams(rho=0.5, use_dctx=False)
    assert [v.name for v in config.select(["drc"]).variants] == ["d"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("rho", "FIELD=VALUE"),
        ("alpha=1", "FIELD=VALUE"),
        ("rho=big", "number"),
        ("use_d1=maybe", "true or false"),
        ("t=0.9", "config file"),
    ],
)
def test_bad_overrides_say_what_is_expected(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_overrides(text)


def test_unknown_config_lists_available_ones():
    with pytest.raises(ConfigError, match="table3"):
        load_config("tabel3")


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="unknown method"):
        Variant("x", "bm25")
    with pytest.raises(ConfigError, match="duplicate"):
        RunConfig("dup", (Variant("a", "clip"), Variant("a", "drc")))
    with pytest.raises(ConfigError, match="matches no variant"):
        load_config("paper").select(["nope"])


@pytest.mark.slow
def test_a_wheel_install_finds_the_run_configs(tmp_path):
    """`pip install drc-jax` (no checkout) still resolves `--config table3`: the wheel carries
    configs/ as drc_jax/configs and the loader looks there."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    # Build from a clean copy: setuptools reuses a checkout's build/ directory, whose stale files
    # would hide a package missing from pyproject.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    for name in ("drc_jax", "launch", "configs"):
        shutil.copytree(repo / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + [str(src), "-w", str(tmp_path / "wheel")],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheel").glob("drc_jax-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert sorted(p.name for p in (site / "drc_jax" / "configs").glob("*.py")) == sorted(
        p.name for p in (repo / "configs").glob("*.py")
    )
    # pyproject lists the packages by hand (find cannot map configs/): none may be left out.
    for init in [*(repo / "drc_jax").rglob("__init__.py"), repo / "launch" / "__init__.py"]:
        assert (site / init.relative_to(repo)).is_file(), f"{init.parent.name} missing from wheel"
    # The search page is package data (served by `search serve` from an installed wheel).
    for page_file in (repo / "drc_jax" / "search" / "static").iterdir():
        assert (site / page_file.relative_to(repo)).is_file(), f"{page_file.name} not in wheel"
    code = (
        "from drc_jax.launch.config import find_config, load_config; "
        "print(find_config('table3')); print(len(load_config('table3').variants))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # no ./configs here
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[0] == str(site / "drc_jax" / "configs" / "table3.py")
    assert int(out[1]) >= 4
