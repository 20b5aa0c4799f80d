"""One command-line vocabulary: drc-launch, drc-decompose and drc-search spell a shared setting the
same way, keep the old spellings for one release, and end every user mistake with exit status 2
and one paragraph (never a traceback), found before the weights load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest

from drc_jax import cli, defaults
from drc_jax.launch.__main__ import SHORTHANDS
from drc_jax.launch.config import CHOICES, base_config
from tests.conftest import REPO
from tests.test_sglang_client import FakeServer

OFFLINE_HUB = "nobody-here/no-such-clip"


def run(module: str, *args: str, tmp_path=None, stdin: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
    if tmp_path is not None:  # an empty hub cache: any hub id is unreachable
        env.update(HF_HOME=str(tmp_path / "hf"), DRC_JAX_CACHE=str(tmp_path / "cache"))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def assert_user_error(proc: subprocess.CompletedProcess, *expected: str) -> None:
    """Exit 2, one ``error:`` paragraph holding ``expected``, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for text in expected:
        assert text in errors[0], (text, errors[0])


# --- one name per setting -------------------------------------------------------------------
def test_shared_flags_are_run_config_fields_with_the_same_choices_and_defaults():
    config = base_config()
    for name, spec in cli.SHARED.items():
        assert name in config and SHORTHANDS[name] == name, name  # drc-launch --NAME works
        if spec.choices:
            assert tuple(spec.choices) == tuple(CHOICES[name]), name
    assert set(cli.DEPRECATED.values()) <= set(cli.SHARED)
    assert {name: config[name] for name in cli.DEFAULTS} == cli.DEFAULTS  # one set of defaults


@pytest.mark.parametrize(
    ("module", "shared"),
    [
        ("drc_jax.decompose", ["decomposer", "sglang_url", "sglang_model", "cache_dir",
                               "batch_size"]),
        ("drc_jax.search", ["weights", "dtype", "preprocess", "batch_size", "cache_dir",
                            "decomposer", "sglang_url", "sglang_model", "progress"]),
    ],
)  # fmt: skip
def test_decompose_and_search_define_the_shared_flags_with_their_shared_help(module, shared):
    proc = run(module, "--helpfull")
    assert "Traceback" not in proc.stderr
    help_text = " ".join(proc.stdout.split())
    for name in shared:
        first_words = " ".join(cli.SHARED[name].help.split()[:4])
        shown = f"--[no]{name}: " if cli.SHARED[name].kind == "bool" else f"--{name}: "
        assert shown in help_text and first_words in help_text, name
    for old, new in cli.DEPRECATED.items():
        if new in shared:
            assert f"--{old}: " in help_text and f"Deprecated spelling of --{new}" in help_text


def test_old_decompose_spellings_still_work_with_one_warning_each():
    new = run("drc_jax.decompose", "--decomposer", "rules", "--batch_size", "2", "no dogs", "a cat")
    old = run("drc_jax.decompose", "--backend", "rules", "--batch", "2", "no dogs", "a cat")
    assert new.returncode == old.returncode == 0, old.stderr
    assert old.stdout == new.stdout and len(new.stdout.splitlines()) == 2
    warnings = [line for line in old.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: --backend is deprecated and will be removed in the next release; "
        "use --decomposer.",
        "warning: --batch is deprecated and will be removed in the next release; use --batch_size.",
    ]
    assert "deprecated" not in new.stderr
    assert json.loads(old.stderr.splitlines()[-1])["decomposer"] == "rules"


def test_old_url_and_model_spellings_reach_the_server(tmp_path):
    srv = FakeServer()
    try:
        proc = run(
            "drc_jax.decompose", "--backend", "sglang", "--url", srv.url, "--model", "my-model",
            "--cache_dir", str(tmp_path), "no dogs",
        )  # fmt: skip
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr
    assert [r["model"] for r in srv.requests] == ["my-model"]
    for old, new in (("backend", "decomposer"), ("url", "sglang_url"), ("model", "sglang_model")):
        assert f"warning: --{old} is deprecated" in proc.stderr and f"use --{new}." in proc.stderr
    # --cache_dir is the cache root in every command: decompositions go under decompositions/.
    assert any((tmp_path / "decompositions").iterdir())


def test_new_spellings_with_the_default_model_reach_the_server(tmp_path):
    srv = FakeServer()
    try:
        proc = run(
            "drc_jax.decompose", "--decomposer", "sglang", "--sglang_url", srv.url,
            "--cache_dir", "", "no dogs",
        )  # fmt: skip
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr
    assert [r["model"] for r in srv.requests] == [defaults.SGLANG_MODEL]


def test_old_decomposition_cache_flag_still_parses_with_a_warning(tmp_path):
    proc = run(
        "drc_jax.search", "query", "--index", str(tmp_path / "absent"), "a dog",
        "--decomposition_cache", str(tmp_path / "decs"), tmp_path=tmp_path,
    )  # fmt: skip
    assert "warning: --decomposition_cache is deprecated; use --cache_dir" in proc.stderr
    assert_user_error(proc, f"no search index at {tmp_path / 'absent'}")


def test_old_and_new_spelling_disagreeing_is_a_user_error():
    proc = run("drc_jax.decompose", "--backend", "rules", "--decomposer", "sglang", "x")
    assert_user_error(proc, "--backend=rules", "--decomposer=sglang", "pass --decomposer only")


# --- user errors: exit 2, one paragraph, before anything slow -------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # --images is checked before the (unreachable) weights load
        (["index", "--images", "{tmp}/absent", "--index", "{tmp}/idx", "--weights", OFFLINE_HUB],
         ["--images {tmp}/absent: no such folder"]),
        (["index", "--images", "{tmp}/a_file", "--index", "{tmp}/idx"],
         ["--images {tmp}/a_file: is a file, not a folder"]),
        (["index", "--images", "{tmp}/photos", "--index", "{tmp}/a_file", "--weights",
          OFFLINE_HUB], ["--index {tmp}/a_file: is a file, not a folder"]),
        (["index", "--images", "{tmp}/photos"], ["index needs --index DIR"]),
        (["index", "--images", "{tmp}/photos", "--index", "{tmp}/idx", "--weights", OFFLINE_HUB],
         [f"--weights {OFFLINE_HUB}: could not get", "Hugging Face Hub", "hf download",
          "random:ViT-B/32"]),
        (["index", "--images", "{tmp}/photos", "--index", "{tmp}/idx", "--weights",
          "{tmp}/absent.safetensors"], ["--weights {tmp}/absent.safetensors: cannot load"]),
        (["index", "--images", "{tmp}/photos", "--index", "{tmp}/idx", "--dtype", "float16"],
         ["--dtype=float16", "float32|bfloat16", "--helpshort"]),
        (["index", "--images", "{tmp}/photos", "--index", "{tmp}/idx", "--batch_size", "0"],
         ["--batch_size=0: must be at least 1"]),
        (["query", "--index", "{tmp}/absent", "a dog"],
         ["no search index at {tmp}/absent", "drc_jax.search index --images DIR"]),
        (["query", "--index", "{tmp}/absent"], ["query needs at least one query"]),
        (["query", "--index", "{tmp}/absent", "--queries_file", "{tmp}/q.txt"],
         ["--queries_file {tmp}/q.txt: cannot read it"]),
        (["export", "--index", "{tmp}/absent", "--output", "{tmp}/o.parquet"],
         ["no search index at {tmp}/absent"]),
        (["lookup"], ["unknown command 'lookup'", "index|query|serve|export"]),
        ([], ["no command given", "index|query|serve|export"]),
        (["index", "--images", "{tmp}/photos", "--index", "{tmp}/idx", "extra"],
         ["index takes no positional arguments"]),
        (["--no_such_flag", "index"], ["no_such_flag"]),
        (["serve"], ["serve needs --index DIR"]),
        (["serve", "--index", "{tmp}/absent", "--port", "0"], ["--port 0: not a TCP port"]),
        (["serve", "--index", "{tmp}/absent"], ["no search index at {tmp}/absent"]),
        (["serve", "--index", "{tmp}/absent", "--host", "0.0.0.0"], ["--allow_remote"]),
    ],
    ids=["missing_images_before_weights", "images_is_a_file", "index_is_a_file", "no_index",
         "hub_offline_or_unknown_id", "missing_weight_file", "bad_dtype", "bad_batch_size",
         "missing_index", "no_query", "missing_queries_file", "export_missing_index",
         "unknown_command", "no_command", "stray_argument", "unknown_flag", "serve_no_index",
         "serve_bad_port", "serve_missing_index", "serve_remote_host_not_allowed"],
)  # fmt: skip
def test_search_user_errors_exit_2_with_one_paragraph(args, expected, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    tmp = str(tmp_path)
    proc = run("drc_jax.search", *[a.format(tmp=tmp) for a in args], tmp_path=tmp_path)
    assert_user_error(proc, *[e.format(tmp=tmp) for e in expected])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--decomposer", "sglang", "--sglang_url", "http://127.0.0.1:9", "--retries", "0"],
         ["SGLang server at http://127.0.0.1:9 is unreachable",
          f"--model {defaults.SGLANG_MODEL}", "--sglang_url"]),
        (["--decomposer", "sglang", "--sglang_url", "localhost:30000"],
         ["--sglang_url localhost:30000: not an http(s) URL"]),
        (["--batch_size", "0"], ["--batch_size=0: must be at least 1"]),
        (["--decomposer", "llm"], ["--decomposer=llm", "rules|sglang"]),
        (["--decomposer", "sglang", "--cache_dir", "{tmp}/a_file"],
         ["--cache_dir {tmp}/a_file: cannot keep the decomposition cache in {tmp}/a_file/"]),
    ],
    ids=["server_unreachable", "url_without_scheme", "bad_batch_size", "unknown_decomposer",
         "cache_dir_is_a_file"],
)  # fmt: skip
def test_decompose_user_errors_exit_2_with_one_paragraph(args, expected, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    tmp = str(tmp_path)
    args = [a.format(tmp=tmp) for a in args]
    proc = run("drc_jax.decompose", *args, "no dogs", tmp_path=tmp_path)
    assert_user_error(proc, *[e.format(tmp=tmp) for e in expected])
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--config.batch_size=abc"], ["--config.batch_size=abc", "invalid literal"]),
        (["--dtype", "float16"], ["--config.dtype='float16': expected one of"]),
        (["--weights", OFFLINE_HUB, "--synthetic_images", "4", "--cache_dir", ""],
         [f"--weights {OFFLINE_HUB}: could not get", "Hugging Face Hub", "random:ViT-B/32"]),
        # the server is checked before the (also unreachable) weights load
        (["--decomposer", "sglang", "--sglang_url", "http://127.0.0.1:9", "--weights",
          OFFLINE_HUB], ["cannot reach the SGLang server at http://127.0.0.1:9",
                         f"--model {defaults.SGLANG_MODEL}", "--decomposer rules"]),
    ],
    ids=["bad_value_type", "bad_dtype", "hub_offline_or_unknown_id", "sglang_unreachable"],
)  # fmt: skip
def test_launch_user_errors_exit_2_with_one_paragraph(args, expected, tmp_path):
    proc = run(
        "drc_jax.launch", "--noprogress", "--output_dir", str(tmp_path / "out"), *args,
        tmp_path=tmp_path,
    )  # fmt: skip
    assert_user_error(proc, *expected)


# --- console scripts ------------------------------------------------------------------------
def test_console_scripts_resolve_to_callables_that_run_help():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"drc-launch", "drc-decompose", "drc-search"}
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        # In a child process: each CLI defines its absl flags on import.
        code = (
            f"import sys; from {module} import {attr} as main; assert callable(main); "
            f"sys.argv = [{name!r}, '--help']; main()"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "--" in proc.stdout and ("--decomposer" in proc.stdout or "--config" in proc.stdout)


def test_launch_with_every_decomposition_cached_runs_while_the_sglang_server_is_down(tmp_path):
    srv = FakeServer()
    args = [
        "--noprogress", "--decomposer", "sglang", "--sglang_url", srv.url, "--weights",
        "random:test-tiny", "--synthetic_images", "4", "--cache_dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    try:
        first = run("drc_jax.launch", *args, "--output_dir", str(tmp_path / "a"))
    finally:
        srv.stop()
    assert first.returncode == 0, first.stderr
    asked = len(srv.requests)
    assert asked > 0
    # The server is gone; the cache holds every answer, so the up-front check steps aside.
    again = run("drc_jax.launch", *args, "--output_dir", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    assert len(srv.requests) == asked
