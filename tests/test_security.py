"""Weights from strangers run no code: hostile TorchScript archives are refused, nothing runs.

Every hostile fixture is built here, in the test, and never committed.
"""

from __future__ import annotations

import io
import os
import pickle
import sqlite3
import warnings
import zipfile

import numpy as np
import pytest
import torch

from drc_jax.clip import load_clip
from drc_jax.clip.torchscript import TorchScriptRefused, read_torchscript


def _script(module: torch.nn.Module, path) -> None:
    with warnings.catch_warnings():  # torch.jit.script is deprecated, but it is how these exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))


def _rewrite(src, dst, replace: dict[str, bytes | None]) -> None:
    """Copy zip ``src`` to ``dst`` with entries replaced (or dropped, for None) by name suffix."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            new = next((v for k, v in replace.items() if item.filename.endswith(k)), b"")
            if new is None:
                continue
            zout.writestr(item, new or zin.read(item))


class Layers(torch.nn.Module):
    """Parameters, a strided buffer view, a non-persistent buffer, a plain tensor attribute and
    a submodule: what state_dict() keeps and drops."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("every_other", torch.arange(8.0).reshape(2, 4)[:, ::2])
        self.register_buffer("scratch", torch.ones(2), persistent=False)
        self.fp16 = torch.nn.Parameter(torch.randn(4, 3).half(), requires_grad=False)
        self.plain = torch.zeros(3)  # an attribute, not in state_dict()
        self.depth = 5

    def forward(self, x):
        return self.lin(x)


def test_torchscript_tensors_are_read_exactly_as_torch_jit_load_reads_them(tmp_path):
    _script(Layers(), tmp_path / "layers.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        want = torch.jit.load(str(tmp_path / "layers.pt")).state_dict()
    got = read_torchscript(tmp_path / "layers.pt")
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        assert got[k].dtype == v.numpy().dtype and got[k].shape == tuple(v.shape), k
        np.testing.assert_array_equal(got[k], v.numpy())


class _System:
    """Pickles as a call to os.system: what a hostile data.pkl looks like."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_archive_whose_pickle_calls_os_system_is_refused_and_nothing_runs(tmp_path):
    _script(torch.nn.Linear(2, 2), tmp_path / "clean.pt")
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _System(f"touch {marker}")}, protocol=2)
    _rewrite(tmp_path / "clean.pt", tmp_path / "ViT-B-32.pt", {"/data.pkl": payload})
    with pytest.raises(
        ValueError, match=r"ViT-B-32\.pt: refused .* the Python global (os|posix)\.system"
    ) as e:
        load_clip(tmp_path / "ViT-B-32.pt", use_cache=False)
    assert "Nothing in it was run" in str(e.value) and "safetensors" in str(e.value)
    assert not marker.exists()


class WritesOnLoad(torch.nn.Module):
    """A scripted module whose __setstate__ creates a file (torch.from_file with shared=True)."""

    def __init__(self, target: str):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.target = target

    def forward(self, x):
        return x * self.w

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.w, self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.target = state[1]
        self.training = state[2]
        self.w = state[0] + torch.from_file(self.target, True, 2)[0] * 0


def test_archive_whose_setstate_writes_a_file_is_refused_and_writes_nothing(tmp_path):
    proof = tmp_path / "written_by_torch_jit_load"
    _script(WritesOnLoad(str(proof)), tmp_path / "proof.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(tmp_path / "proof.pt"))
    assert proof.exists()  # the fixture is hostile: PyTorch's own loader runs it

    marker = tmp_path / "written_by_drc_jax"
    _script(WritesOnLoad(str(marker)), tmp_path / "ViT-B-32.pt")
    with pytest.raises(
        ValueError, match=r"ViT-B-32\.pt: refused .*WritesOnLoad defines __setstate__"
    ):
        load_clip(tmp_path / "ViT-B-32.pt", use_cache=False)
    assert not marker.exists()


def test_tensor_views_beyond_their_storage_are_refused(tmp_path):
    """A view reaching past its storage would read other memory: refused, not copied."""
    _script(torch.nn.Linear(4, 4), tmp_path / "clean.pt")
    with zipfile.ZipFile(tmp_path / "clean.pt") as z:
        weight = next(n for n in z.namelist() if n.endswith("/data/0"))
        short = z.read(weight)[:8]
    _rewrite(tmp_path / "clean.pt", tmp_path / "short.pt", {"/data/0": short})
    with pytest.raises(TorchScriptRefused, match=r"short\.pt: .*shorter than declared"):
        read_torchscript(tmp_path / "short.pt")

    buf = io.BytesIO()  # a tensor of 100 elements over a storage of 16
    with zipfile.ZipFile(tmp_path / "clean.pt") as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    assert data.count(b"K\x04K\x04") == 1  # size (4, 4) of the weight, as BININT1 pairs
    buf.write(data.replace(b"K\x04K\x04", b"K\x0aK\x0a"))
    _rewrite(tmp_path / "clean.pt", tmp_path / "wide.pt", {"/data.pkl": buf.getvalue()})
    with pytest.raises(TorchScriptRefused, match=r"wide\.pt: .*reaches element \d+ of a storage"):
        read_torchscript(tmp_path / "wide.pt")


# --- an index never chooses which local file is loaded as weights ------------------------------
@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip("random:test-tiny")


def _index_naming(tmp_path, tiny_clip, weights: str):
    """A real index (two photos) whose settings name ``weights`` as what a query loads."""
    from PIL import Image

    from drc_jax.search import build_index

    index = tmp_path / "index"
    if not index.exists():
        (tmp_path / "photos").mkdir()
        for i in range(2):
            Image.new("RGB", (32, 32), (60 * i, 90, 30)).save(tmp_path / "photos" / f"{i}.png")
        build_index(tmp_path / "photos", index, clip=tiny_clip, progress=False)
    _name_weights(index, weights)
    return index


def _name_weights(index, weights: str) -> None:
    from drc_jax.store import Store

    with Store.open(index, None) as store:
        store.set_setting("weights", weights)


@pytest.fixture
def loads(monkeypatch, tiny_clip):
    """``load_clip`` replaced by a recorder returning the tiny CLIP: which specs a query loads."""
    import drc_jax.clip

    specs = []
    monkeypatch.setattr(
        drc_jax.clip, "load_clip", lambda spec, **kw: specs.append(spec) or tiny_clip
    )
    return specs


@pytest.mark.parametrize(
    "named",
    [
        "{outside}/ViT-B-32.pt",
        "{outside}",
        "{index}/../outside/ViT-B-32.pt",
        "~/ViT-B-32.pt",
        "outside/ViT-B-32.pt",
        "{index}/link.pt",
    ],
)
def test_an_index_naming_local_weights_outside_itself_loads_nothing(
    tmp_path, tiny_clip, loads, named, monkeypatch
):
    from drc_jax.search import Searcher

    outside = tmp_path / "outside"
    outside.mkdir()
    _script(WritesOnLoad(str(tmp_path / "pwned")), outside / "ViT-B-32.pt")  # a hostile archive
    index = _index_naming(tmp_path, tiny_clip, "")
    os.symlink(outside / "ViT-B-32.pt", index / "link.pt")  # inside by name, outside in fact
    named = named.format(outside=outside, index=index)
    index = _index_naming(tmp_path, tiny_clip, named)
    monkeypatch.chdir(tmp_path)  # "outside/ViT-B-32.pt" is an existing relative path here
    with pytest.raises(ValueError) as e:
        Searcher.open(index)
    assert f"names the local weights {named!r}, outside the index" in str(e.value)
    assert f"--weights {named}" in str(e.value)
    assert loads == [] and not (tmp_path / "pwned").exists()


def test_weights_the_user_passes_a_hub_id_or_random_spec_are_loaded_as_named(
    tmp_path, tiny_clip, loads
):
    from drc_jax.search import Searcher

    index = _index_naming(tmp_path, tiny_clip, str(tmp_path / "ViT-B-32.pt"))
    Searcher.open(index, weights=str(tmp_path / "ViT-B-32.pt"))  # the user's own choice
    for named in ("openai/clip-vit-base-patch32", "random:test-tiny"):
        _index_naming(tmp_path, tiny_clip, named)
        Searcher.open(index)
    assert loads == [
        str(tmp_path / "ViT-B-32.pt"),
        "openai/clip-vit-base-patch32",
        "random:test-tiny",
    ]


def test_weights_inside_the_index_directory_load_without_being_passed(tmp_path):
    from drc_jax.search import Searcher, build_index
    from drc_jax.store import Store
    from tests.clip_fixtures import make_hf_clip

    make_hf_clip(tmp_path / "model", tiny=True)
    (tmp_path / "photos").mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32), (10, 200, 30)).save(tmp_path / "photos" / "a.png")
    index = tmp_path / "index"
    build_index(tmp_path / "photos", index, weights=str(tmp_path / "model"), progress=False)
    with pytest.raises(ValueError, match="outside the index"):
        Searcher.open(index)
    (tmp_path / "model").rename(index / "model")  # shipped with the index
    with Store.open(index, None) as store:
        store.set_setting("weights", str(index / "model"))
    hits = Searcher.open(index).search("a photo", k=1)["drc"][0].hits
    assert [h.id for h in hits] == ["a.png"]


def test_search_query_cli_refuses_an_index_naming_outside_weights_with_a_message(
    tmp_path, tiny_clip
):
    import subprocess
    import sys

    from tests.conftest import REPO

    index = _index_naming(tmp_path, tiny_clip, str(tmp_path / "ViT-B-32.pt"))
    _script(WritesOnLoad(str(tmp_path / "pwned")), tmp_path / "ViT-B-32.pt")

    def query(*flags):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "drc_jax.search",
                "query",
                "--index",
                str(index),
                *flags,
                "a dog",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=600,
            env=dict(os.environ, JAX_PLATFORMS="cpu"),
        )

    proc = query()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"names the local weights '{tmp_path / 'ViT-B-32.pt'}', outside the index" in proc.stderr
    assert not (tmp_path / "pwned").exists()
    proc = query("--weights", "random:test-tiny", "--json")  # passed by the user: used
    assert proc.returncode == 0, proc.stderr


# --- names read from a store or an index are never paths outside it ----------------------------
# (The launcher's media index: tests/test_media_files.py::test_recorded_paths_cannot_reach_outside_
# the_data_dir; symlink loops and FIFOs under a photo folder: tests/test_media_files.py.)
@pytest.mark.parametrize("name", ["../outside.bin", "/tmp/drc-outside.bin", "..", "sub/v.bin"])
def test_an_array_file_name_that_is_not_a_plain_name_in_the_store_is_refused(tmp_path, name):
    from drc_jax.store import Store, StoreError, fill
    from tests.test_store_sync import META, Embedder, items_of

    items = items_of(2)
    fill(Store.open(tmp_path / "s", META), items, Embedder(items), progress=False)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * 4096)
    with sqlite3.connect(tmp_path / "s" / "catalogue.sqlite") as db:
        db.execute("UPDATE settings SET value=? WHERE name='vectors'", (f'"{name}"',))
    for use in (lambda s: s.vectors(), lambda s: fill(s, items_of(3), Embedder(items_of(3)))):
        with pytest.raises(StoreError, match="not a plain file name inside it"):
            use(Store.open(tmp_path / "s", None))
    assert outside.read_bytes() == b"\0" * 4096


@pytest.mark.parametrize("own", ["vectors-0.bin", "catalogue.sqlite-wal", "catalogue.sqlite"])
def test_a_store_file_that_is_a_symbolic_link_out_of_the_store_is_never_opened(tmp_path, own):
    """A shared store whose array file (or SQLite's files) links to a file of this machine: no
    read and no write goes through the link."""
    from drc_jax.store import Store, StoreError, fill
    from tests.test_store_sync import META, Embedder, items_of

    items = items_of(2)
    fill(Store.open(tmp_path / "s", META), items, Embedder(items), progress=False)
    outside = tmp_path / "outside"
    if own == "catalogue.sqlite":
        (tmp_path / "s" / own).rename(outside)  # a real catalogue, but not the store's own file
    else:
        outside.write_bytes(b"\0" * 4096)
        (tmp_path / "s" / own).unlink(missing_ok=True)
    before = outside.read_bytes()
    os.symlink(outside, tmp_path / "s" / own)
    for use in (
        lambda: Store.open(tmp_path / "s", None).vectors(),
        lambda: fill(Store.open(tmp_path / "s", META), items_of(3), Embedder(items_of(3))),
    ):
        with pytest.raises(StoreError, match=f"{own} is a symbolic link .*crafted: delete"):
            use()
    assert outside.read_bytes() == before


def _crafted_index(tmp_path, tiny_clip, name: str | None = None, roots=None):
    """A real index, then a file name (or roots) written into its catalogue by hand."""
    from drc_jax.store import Store

    index = _index_naming(tmp_path, tiny_clip, "random:test-tiny")
    with Store.open(index, None) as store:
        names = store.names()
        key = next(iter(names.values()))
        if name is not None:
            store.set_names({**names, name: key})
        if roots is not None:
            store.set_setting("roots", roots)
    return index


@pytest.mark.parametrize(
    "name", ["{root}/../outside.png", "/etc/passwd", "relative/x.png", "{root}/./0.png"]
)
def test_a_file_outside_the_index_roots_is_never_returned_by_search(tmp_path, tiny_clip, name):
    """Names are checked as names here; a link put inside a root later (the name is fine, the
    file is not) is never served or drawn: tests/test_search_server.py::
    test_only_indexed_files_inside_the_roots_are_served."""
    from drc_jax.search import Searcher
    from drc_jax.store import StoreError

    root = tmp_path / "photos"
    index = _crafted_index(tmp_path, tiny_clip, name.format(root=root))
    searcher = Searcher.open(index, clip=tiny_clip)
    with pytest.raises(StoreError, match="not inside its roots.*damaged or was crafted"):
        searcher.search("a dog", k=3)


def test_search_index_on_a_store_linking_out_appends_nothing_outside(tmp_path, tiny_clip):
    from drc_jax.search import build_index
    from drc_jax.store import StoreError

    index = _crafted_index(tmp_path, tiny_clip)
    from PIL import Image

    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "photos" / "new.png")
    outside = tmp_path / "bashrc"
    outside.write_text("# mine\n")
    array = next(index.glob("vectors-*.bin"))
    array.unlink()
    os.symlink(outside, array)
    with pytest.raises(StoreError, match="is a symbolic link"):
        build_index(tmp_path / "photos", index, clip=tiny_clip, progress=False)
    assert outside.read_text() == "# mine\n"


def test_an_index_whose_roots_take_in_private_files_still_returns_only_media(tmp_path, tiny_clip):
    """Roots are the index's own choice; the files it may return are still only media files."""
    from drc_jax.search import Searcher
    from drc_jax.store import StoreError

    (tmp_path / "id_rsa").write_text("private")
    index = _crafted_index(tmp_path, tiny_clip, str(tmp_path / "id_rsa"), roots=[str(tmp_path)])
    with pytest.raises(StoreError, match=r"'.*id_rsa'.* not named like a media file"):
        Searcher.open(index, clip=tiny_clip).search("a dog", k=3)


def test_a_figure_never_draws_a_file_that_a_link_in_the_folder_points_outside(tmp_path, tiny_clip):
    from PIL import Image

    from drc_jax.search import Searcher, render_search_figure

    index = _crafted_index(tmp_path, tiny_clip)
    Image.new("RGB", (32, 32), (255, 0, 255)).save(tmp_path / "private.png")
    (tmp_path / "photos" / "1.png").unlink()  # an indexed photo, now a link out of the folder
    os.symlink(tmp_path / "private.png", tmp_path / "photos" / "1.png")
    results = Searcher.open(index, clip=tiny_clip).search("a photo", k=2, methods=("clip",))
    assert sorted(h.id for h in results["clip"][0].hits) == ["0.png", "1.png"]
    out = render_search_figure(tmp_path / "f.png", {"clip": results["clip"][0]})
    pixels = np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3)
    assert not ((pixels == (255, 0, 255)).all(axis=1)).any()
    assert ((pixels == (0, 90, 30)).all(axis=1)).any()  # the photo inside is drawn
