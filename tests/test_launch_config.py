"""Run configs as code: one ConfigDict per run, the shipped tables, overrides, the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from drc_jax import defaults
from drc_jax.launch.__main__ import expand_argv
from drc_jax.launch.config import (
    ConfigError,
    Variant,
    base_config,
    find_config,
    load_config,
    row,
    table,
)
from drc_jax.scoring import DRCParams
from drc_jax.texts import DRC_PROMPTS, PHOTO_PROMPTS, RAW_PROMPTS, SPACEVLM_PROMPTS
from tests.conftest import REPO

SHIPPED = REPO / "configs"  # the venv maps drc_jax.configs elsewhere: load the tree's files


def shipped(name: str, **overrides):
    return load_config(str(SHIPPED / f"{name}.py"), **overrides)


def test_paper_config_has_the_papers_four_rows_each_with_its_own_settings():
    config = shipped("paper")
    rows = table(config).variants
    assert [(v.name, v.method, v.label) for v in rows] == [
        ("clip", "clip", "CLIP Baseline"),
        ("neat", "neat", "CLIP + NEAT"),
        ("spacevlm", "spacevlm", "SpaceVLM"),
        ("drc", "drc", "SpaceVLM-DRC (Ours)"),
    ]
    clip, neat, spacevlm, drc = rows
    assert drc.params == DRCParams()
    assert (drc.params.w1, drc.params.w2, drc.params.wctx) == (0.35, 0.35, 0.30)
    assert drc.params.rho == 1.5
    # CLIP encodes the raw caption, SpaceVLM its script's texts; DRC prefixes once decomposed,
    # and its fallback for captions without negation is the raw caption (eq. 2), as CLIP's.
    assert clip.prompts == RAW_PROMPTS and spacevlm.prompts == SPACEVLM_PROMPTS
    assert drc.prompts == DRC_PROMPTS and drc.prompts.fallback == ""
    assert spacevlm.params.spacevlm_t == 0.92
    assert neat.neat_config().lr == 2e-4 and neat.neat_config().steps == 3
    # The paper's protocol when an LLM decomposes: two prompts, concurrent, one concept each.
    assert config.decomposer_mode == "two_prompt"
    assert base_config().decomposer_mode == "merged"
    assert drc.concepts == "one" and base_config().concepts_per_caption == "all"
    assert spacevlm.video_mean == "unnormalized"
    assert clip.video_mean == drc.video_mean == neat.video_mean == "renormalized"


def test_the_prefixed_clip_row_is_a_named_option_with_every_field_prefixed():
    config = shipped("paper", rows=("clip", "clip_prefixed"))
    prefixed = table(config).variants[1]
    assert prefixed.method == "clip" and prefixed.prompts == PHOTO_PROMPTS
    assert prefixed.prompts.full == prefixed.prompts.fallback == "A photo of"


def test_a_row_prompt_field_is_overridable_and_unknown_prompts_are_refused():
    config = shipped("paper", **{"variants.clip.prompts.full": "A picture of"})
    clip = table(config).variants[0]
    assert clip.prompts.full == "A picture of" and clip.prompts.fallback == ""
    assert clip.to_json()["prompts"]["full"] == "A picture of"
    with pytest.raises(ConfigError, match="unknown prompts 'fancy'"):
        row("clip", prompts="fancy")
    with pytest.raises(ConfigError, match=r"unknown prompt fields \['title'\]"):
        row("clip", prompts={"title": "x"})
    with pytest.raises(ConfigError, match="unknown NEAT settings"):
        row("neat", neat={"learning_rate": 1.0})
    with pytest.raises(ConfigError, match="NEATConfig.steps"):
        table(shipped("paper", **{"variants.neat.neat.steps": 0}))


def test_decomposer_mode_takes_the_sglang_clients_modes_only():
    assert shipped("paper", decomposer_mode="merged").decomposer_mode == "merged"
    with pytest.raises(ConfigError, match="decomposer_mode"):
        shipped("paper", decomposer_mode="three_prompt")


def test_table3_adds_one_component_per_row():
    rows = table(shipped("table3")).variants
    switches = [(v.params.use_d1, v.params.use_d2, v.params.use_dctx, v.params.use_repulsion)
                for v in rows[1:]]  # fmt: skip
    assert rows[0].method == "clip"
    assert switches == [
        (True, False, False, False),
        (True, True, False, False),
        (True, True, True, False),
        (True, True, True, True),
    ]
    assert [v.label for v in rows] == ["CLIP", "+ d1", "+ d2", "+ dctx", "+ repulsion (DRC)"]


def test_table4_sweeps_rho_against_a_clip_baseline():
    t = table(shipped("table4"))
    assert [v.params.rho for v in t.variants if v.method == "drc"] == [0, 0.5, 1, 1.5, 2]
    for v in t.variants:
        assert t.baseline_of(v).name == "clip"


def test_backbones_config_compares_each_backbone_to_its_own_clip_row():
    t = table(shipped("backbones"))
    assert len(t.backbones("unused")) == 3
    for v in t.variants:
        base = t.baseline_of(v)
        assert base.method == "clip" and base.weights == v.weights


def test_run_level_params_reach_every_row_that_does_not_set_its_own():
    t = table(shipped("table4", rho=0.25, w1=0.5, **{"variants.rho_0_5.params.rho": 0.7}))
    by_name = {v.name: v.params for v in t.variants}
    assert by_name["rho_0_5"].rho == 0.7  # the row's own override
    assert by_name["rho_2"].rho == 2.0  # a row that sets rho keeps it
    assert by_name["clip"].rho == 0.25  # the run-level value where the row sets nothing
    assert all(p.w1 == 0.5 for p in by_name.values())
    paper = table(shipped("paper", rho=1.0, use_repulsion=False)).variants[2].params
    assert paper == DRCParams(rho=1.0, use_repulsion=False)


def test_methods_keeps_rows_by_method_or_name():
    assert [v.name for v in table(shipped("table3", methods="clip,d2")).variants] == ["clip", "d2"]
    assert [v.name for v in table(shipped("paper", methods="drc")).variants] == ["drc"]
    with pytest.raises(ConfigError, match="matches no row"):
        table(shipped("paper", methods="nope"))


def test_a_config_file_by_path_builds_on_base_config(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "from drc_jax.launch.config import base_config, row\n"
        "def get_config():\n"
        "    c = base_config()\n"
        "    c.name = 'mine'\n"
        "    c.variants.clip = row('clip')\n"
        "    c.variants.d = row('drc', 'DRC', rho=0.5, use_dctx=False)\n"
        "    c.rows = ('clip', 'd')\n"
        "    return c\n"
    )
    config = load_config(str(path), benchmark="coco")
    assert config.name == "mine" and config.benchmark == "coco"
    assert table(config).variants[1] == Variant(
        "d", "drc", DRCParams(rho=0.5, use_dctx=False), label="DRC"
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"benchmark": "cocoa"}, "expected one of"),
        ({"on_missing_media": "ignore"}, "expected one of"),
        ({"batch_size": 0}, "at least 1"),
        ({"operator": "eq9"}, "operator must be one of"),
        ({"use_d1": False, "use_d2": False, "use_dctx": False}, "at least one of"),
        ({"alpha": 1.0}, "cannot override"),
        ({"rho": "big"}, "cannot override"),
        ({"rows": ("clip", "nope")}, "no entry in config.variants"),
        ({"rows": ("clip", "clip")}, "duplicate rows"),
        ({"rows": ()}, "no rows"),
        ({"concepts_per_caption": "two"}, "expected one of"),
        ({"medr": "mean"}, "expected one of"),
        ({"query_kind": "mixed"}, "expected one of"),
        ({"variants.spacevlm.video_mean": "max"}, "video_mean"),
    ],
)
def test_bad_settings_say_what_is_expected(overrides, match):
    with pytest.raises(ConfigError, match=match):
        shipped("paper", **overrides)


@pytest.mark.parametrize("name", ["paper", "table3", "table4", "zeroshot"])
def test_the_paper_configs_score_one_concept_and_name_the_papers_decomposer(name):
    config = shipped(name)
    assert config.concepts_per_caption == "one" and config.decomposer_mode == "two_prompt"
    assert config.paper_decomposer == defaults.SGLANG_MODEL
    assert all(v.concepts == "one" for v in table(config).variants)


def test_elsewhere_drc_scores_every_concept_and_names_no_paper_decomposer():
    config = shipped("backbones")
    assert config.concepts_per_caption == "all" and config.paper_decomposer is None
    drc = [v for v in table(config).variants if v.method == "drc"]
    assert drc and all(v.concepts == "all" for v in drc)


def test_zeroshot_config_scores_clip_spacevlm_and_drc_on_plain_captions():
    config = shipped("zeroshot")
    assert config.query_kind == "plain"
    assert [v.method for v in table(config).variants] == ["clip", "spacevlm", "drc"]


def test_bad_rows_are_refused():
    with pytest.raises(ConfigError, match="unknown method"):
        Variant("x", "bm25")
    with pytest.raises(ConfigError, match="unknown parameters"):
        row("drc", rhoo=1.0)


def test_unknown_config_lists_available_ones():
    with pytest.raises(ConfigError, match="table3"):
        find_config("tabel3")
    with pytest.raises(ConfigError, match="no such file"):
        find_config("missing/table3.py")


def test_defaults_are_defined_once(monkeypatch, tmp_path):
    from drc_jax.clip.load import default_cache_dir
    from drc_jax.decompose import serve, sglang

    c = base_config()
    assert c.sglang_url == sglang.DEFAULT_URL == defaults.SGLANG_URL
    assert c.sglang_model == sglang.DEFAULT_MODEL == serve.ServeConfig().model
    assert serve.ServeConfig().url == defaults.SGLANG_URL
    monkeypatch.setenv("DRC_JAX_CACHE", str(tmp_path / "c"))
    assert base_config().cache_dir == str(tmp_path / "c") == str(default_cache_dir())
    assert defaults.cache_path(defaults.DECOMPOSITIONS) == tmp_path / "c" / "decompositions"
    assert defaults.cache_path(defaults.DECOMPOSITIONS, "") is None


def test_command_line_names_resolve_to_shipped_files_and_shorthands_to_overrides(tmp_path):
    argv = expand_argv(
        ["prog", "--benchmark", "msrvtt", "--config.rho=1.0", "--config", "table4",
         "--noprogress", "--cache_dir=", "--synthetic_images", "8", "--methods=clip,drc",
         "--coordinator_address", "h:1"]
    )  # fmt: skip
    assert argv[1] == f"--config={find_config('table4').resolve()}"  # before its overrides
    assert argv[2:] == [
        "--config.benchmark=msrvtt",
        "--config.rho=1.0",
        "--noconfig.progress",
        "--config.cache_dir=",
        "--config.synthetic.num_images=8",
        "--config.methods=clip,drc",
        "--coordinator_address",
        "h:1",
    ]
    mine = tmp_path / "mine.py"
    mine.write_text("")
    assert expand_argv(["p", f"--config={mine}:small"]) == ["p", f"--config={mine}:small"]
    assert expand_argv(["p"]) == ["p", f"--config={find_config('paper').resolve()}"]
    with pytest.raises(ConfigError, match="needs a value"):
        expand_argv(["p", "--benchmark"])


def _cli(tmp_path, *args):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "drc_jax.launch", "--benchmark", "synthetic", "--noprogress",
         "--weights", "random:test-tiny", "--synthetic_images", "4", "--output_dir", str(out),
         "--cache_dir", str(tmp_path.parent / "cache"), *args],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), proc.stdout


@pytest.mark.slow
def test_cli_takes_a_config_by_name_or_path_and_overrides_its_fields(tmp_path):
    by_name, stdout = _cli(
        tmp_path / "name", "--config", "table4", "--config.rho=0.25",
        "--config.variants.rho_0_5.params.rho=0.7", "--config.variants.clip.label=Plain CLIP",
    )  # fmt: skip
    assert list(by_name["methods"]) == ["clip", "rho_0", "rho_0_5", "rho_1", "rho_1_5", "rho_2"]
    assert by_name["config"]["rho"] == 0.25
    assert by_name["config"]["variants"]["rho_0_5"]["params"]["rho"] == 0.7
    assert by_name["config"]["variants"]["rho_1"]["params"]["rho"] == 1.0
    assert by_name["config"]["variants"]["clip"]["params"]["rho"] == 0.25
    assert "Plain CLIP" in stdout and by_name["num_media"] == 4

    path = tmp_path / "two_rows.py"
    path.write_text(
        "from drc_jax.launch.config import base_config, row\n"
        "def get_config():\n"
        "    c = base_config()\n"
        "    c.name = 'two_rows'\n"
        "    c.variants.clip = row('clip', 'CLIP')\n"
        "    c.variants.mine = row('drc', 'Mine', use_repulsion=False)\n"
        "    c.rows = ('clip', 'mine')\n"
        "    return c\n"
    )
    by_path, _ = _cli(tmp_path / "path", "--config", str(path), "--config.w1=0.5")
    assert by_path["config"]["name"] == "two_rows" and list(by_path["methods"]) == ["clip", "mine"]
    mine = by_path["config"]["variants"]["mine"]["params"]
    assert mine["use_repulsion"] is False and mine["w1"] == 0.5
    # Same embeddings, same CLIP scoring: the CLIP rows agree across the two tables.
    for k in ("R@1", "R@5", "R@10", "medR"):
        assert by_path["methods"]["clip"][k] == by_name["methods"]["clip"][k]


@pytest.mark.slow
def test_a_wheel_install_finds_the_run_configs(tmp_path):
    """`pip install drc-jax` (no checkout) still resolves `--config table3`: the wheel carries
    configs/ as drc_jax/configs and the loader looks there. The checkout's launch/ scripts are
    not installed."""
    import shutil
    import zipfile

    # Build from a clean copy: setuptools reuses a checkout's build/ directory, whose stale files
    # would hide a package missing from pyproject.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("drc_jax", "launch", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
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
        p.name for p in SHIPPED.glob("*.py")
    )
    # pyproject lists the packages by hand (find cannot map configs/): none may be left out.
    for init in (REPO / "drc_jax").rglob("__init__.py"):
        assert (site / init.relative_to(REPO)).is_file(), f"{init.parent.name} missing from wheel"
    assert not (site / "launch").exists()
    # The search page is package data (served by `search serve` from an installed wheel).
    for page_file in (REPO / "drc_jax" / "search" / "static").iterdir():
        assert (site / page_file.relative_to(REPO)).is_file(), f"{page_file.name} not in wheel"
    code = (
        "from drc_jax.launch.config import find_config, load_config; "
        "print(find_config('table3')); print(len(load_config('table3').rows))"
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
    assert int(out[1]) == 5
