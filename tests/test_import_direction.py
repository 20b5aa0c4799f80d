"""Imports point down the data flow: no module imports one of a later stage (read with ``ast``,
function-level imports included), and the shared leaves import only leaves."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "drc_jax"

# Stage order of the data flow; a path (a folder or a file under drc_jax/) takes the stage of its
# longest listed prefix. A module may import its own stage, earlier stages and LEAVES.
STAGES = {
    "data": ["data", "media"],
    "decompose": ["decompose"],
    "texts": ["texts.py"],
    "encode": ["clip", "neat", "queries.py", "store.py", "media/embed.py", "media/__init__.py"],
    "score": ["scoring.py"],
    "retrieve": ["retrieval.py", "ann.py"],
    "report": ["metrics.py", "figures.py"],
    "apps": ["launch", "search", "cli.py", "__init__.py", "decompose/__main__.py"],
}
LEAVES = [
    "atomic.py",
    "defaults.py",
    "errors.py",
    "parallel.py",
    "progress.py",
    "untrusted.py",
    "vocab.py",
]
# Inside the launcher (all "apps") its own stage modules keep the same order.
LAUNCH = {
    "options": ["config.py", "stages.py"],
    "decompose": ["decomposition.py"],
    "texts": ["texts.py"],
    "encode": ["encode.py"],
    "retrieve": ["evaluate.py"],
    "report": ["record.py", "report.py", "samples.py"],
    "apps": ["pipeline.py", "__main__.py", "__init__.py"],
}


def _modules() -> dict[str, str]:
    """Dotted module name -> path relative to drc_jax/, for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        parts = ["drc_jax", *path.relative_to(PACKAGE).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = rel
    return out


MODULES = _modules()


def _rank(rel: str, stages: dict[str, list[str]]) -> int | None:
    """The index of ``rel``'s stage (longest matching prefix), None when no prefix matches."""
    best, rank = -1, None
    for i, prefixes in enumerate(stages.values()):
        for p in prefixes:
            if (rel == p or rel.startswith(p.rstrip("/") + "/")) and len(p) > best:
                best, rank = len(p), i
    return rank


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The drc_jax modules ``module`` imports anywhere in its file (a ``from pkg import name``
    of a submodule counts as that submodule)."""
    rel = MODULES[module]
    package = module if rel.endswith("__init__.py") else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse((PACKAGE / rel).read_text(), rel)):
        if isinstance(node, ast.Import):
            out |= {_resolve(a.name) for a in node.names if a.name.startswith("drc_jax")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] != "drc_jax":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in MODULES else _resolve(base))
    return out - {None, module}


def backward_edges(modules=None) -> list[str]:
    """Each import of ``modules`` (default: all) against the stage order, as a message."""
    bad = []
    for module in sorted(modules or MODULES):
        rel = MODULES[module]
        leaf = rel in LEAVES
        rank = _rank(rel, STAGES)
        for target in sorted(imports_of(module)):
            trel = MODULES[target]
            if trel in LEAVES:
                continue
            if leaf:
                bad.append(f"{module} (a shared leaf) imports {target}")
            elif rank is None or _rank(trel, STAGES) is None:
                continue  # reported by test_every_module_has_a_stage_or_is_a_leaf
            elif _rank(trel, STAGES) > rank:
                bad.append(f"{module} ({list(STAGES)[rank]}) imports {target} (later stage)")
            elif rel.startswith("launch/") and trel.startswith("launch/"):
                mine, theirs = _rank(rel[7:], LAUNCH), _rank(trel[7:], LAUNCH)
                if theirs > mine:
                    bad.append(f"{module} imports {target}, a later stage of the launcher")
    return bad


def test_every_module_has_a_stage_or_is_a_leaf():
    lost = [rel for rel in MODULES.values() if rel not in LEAVES and _rank(rel, STAGES) is None]
    lost += [
        rel
        for rel in MODULES.values()
        if rel.startswith("launch/") and _rank(rel[7:], LAUNCH) is None
    ]
    assert not lost, f"add these to STAGES/LEAVES/LAUNCH in {__file__}: {lost}"


def test_no_module_imports_a_later_stage():
    bad = backward_edges()
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from drc_jax import scoring\n", {"drc_jax.scoring"}),
        ("def f():\n    from drc_jax.retrieval import top_k\n", {"drc_jax.retrieval"}),
        ("from ..scoring import STRENGTHS\n", {"drc_jax.scoring"}),
        ("import drc_jax.clip.model\n", {"drc_jax.clip.model"}),
    ],
    ids=["package_attribute", "function_level", "relative", "dotted"],
)
def test_the_reader_sees_every_import_form(source, expected, monkeypatch, tmp_path):
    (tmp_path / "decompose").mkdir()
    (tmp_path / "decompose" / "probe.py").write_text(source)
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    monkeypatch.setitem(MODULES, "drc_jax.decompose.probe", "decompose/probe.py")
    assert imports_of("drc_jax.decompose.probe") == expected
    # each target is of a later stage than decompose
    (edge,) = backward_edges(["drc_jax.decompose.probe"])
    assert edge.startswith("drc_jax.decompose.probe (decompose) imports")
