"""The converted-parameter cache never serves another model's weights, and a config.json cannot
make loading allocate or trace more than its checkpoint holds (issue 18, items 2 and 8)."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest
import torch

from drc_jax.clip import load_clip, param_cache
from tests.clip_fixtures import make_hf_clip, torch_reference

TEXTS = ["a photo of a cat", "a dog not on a beach", "two people on a red sofa"]
MIDDLE = "text_model.encoder.layers.0.mlp.fc1.weight"
MIB = 1 << 20


def _offsets(path, key):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        start, end = json.loads(f.read(n))[key]["data_offsets"]
    return 8 + n + start, 8 + n + end


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """Two save_pretrained folders that differ only in one text-tower tensor in the middle of
    model.safetensors: equal sizes, equal first and last MiB (the old fingerprint)."""
    root = tmp_path_factory.mktemp("twins")
    a = make_hf_clip(root / "a", tiny=True)
    b = make_hf_clip(root / "b", tiny=True)  # same seed: the same model ...
    with torch.no_grad():  # ... but for one tensor, as a text-only fine-tune changes it
        b.state_dict()[MIDDLE].add_(0.05 * torch.randn_like(b.state_dict()[MIDDLE]))
    b.save_pretrained(root / "b")
    fa, fb = (root / n / "model.safetensors" for n in "ab")
    data_a, data_b = fa.read_bytes(), fb.read_bytes()
    start, end = _offsets(fb, MIDDLE)
    assert len(data_a) == len(data_b) and start > MIB and end < len(data_b) - MIB
    assert data_a[:MIB] == data_b[:MIB] and data_a[-MIB:] == data_b[-MIB:] and data_a != data_b
    return root, a, b


def test_folders_differing_in_a_middle_tensor_get_their_own_cache_entries_and_embeddings(
    twins, tmp_path
):
    from transformers import CLIPTokenizer

    root, model_a, model_b = twins
    first_a = load_clip(root / "a", cache_dir=tmp_path)
    first_b = load_clip(root / "b", cache_dir=tmp_path)
    assert not first_b.loaded_from_cache  # not served from a's entry
    assert first_a.weights_id != first_b.weights_id
    assert len(list((tmp_path / "clip_params").iterdir())) == 2
    again_a, again_b = (load_clip(root / n, cache_dir=tmp_path) for n in "ab")
    assert again_a.loaded_from_cache and again_b.loaded_from_cache
    px = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    for clip, model, name in ((again_a, model_a, "a"), (again_b, model_b, "b")):
        tok = CLIPTokenizer.from_pretrained(root / name)
        _, ref, _ = torch_reference(model, tok, px, TEXTS)
        np.testing.assert_allclose(clip.encode_texts(TEXTS), ref, atol=1e-5)
    assert not np.allclose(again_a.encode_texts(TEXTS), again_b.encode_texts(TEXTS), atol=1e-3)


def test_an_unchanged_weight_file_is_hashed_once_and_a_changed_one_again(twins, tmp_path,
                                                                         monkeypatch):  # fmt: skip
    root, _, _ = twins
    d = tmp_path / "m"
    shutil.copytree(root / "a", d)
    hashed = []
    real = param_cache.sha256_file
    monkeypatch.setattr(param_cache, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    first = load_clip(d, cache_dir=tmp_path / "c")
    assert sorted(hashed) == ["config.json", "model.safetensors"]
    hashed.clear()
    assert load_clip(d, cache_dir=tmp_path / "c").weights_id == first.weights_id
    assert hashed == []  # remembered by (path, size, mtime_ns, inode)
    shutil.copyfile(root / "b" / "model.safetensors", d / "model.safetensors")
    changed = load_clip(d, cache_dir=tmp_path / "c")
    assert hashed == ["model.safetensors"] and changed.weights_id != first.weights_id


def test_an_entry_restored_for_a_file_changed_behind_its_stat_is_caught_and_rebuilt(
    twins, tmp_path
):
    """The digest memo trusts (size, mtime_ns, inode); a file rewritten in place with its mtime
    put back (a text-only fine-tune of the same size) must not get the old entry's params."""
    root, model_a, _ = twins
    d = tmp_path / "m"
    shutil.copytree(root / "a", d)
    load_clip(d, cache_dir=tmp_path / "c")
    tuned = make_hf_clip(tmp_path / "tuned", tiny=True)
    with torch.no_grad():
        for k, v in tuned.state_dict().items():
            if k.startswith("text_model.") and v.is_floating_point():
                v.add_(0.05 * torch.randn_like(v))
    tuned.save_pretrained(tmp_path / "tuned")
    weights = d / "model.safetensors"
    st = os.stat(weights)
    with open(weights, "r+b") as f:  # same inode, same size
        f.write((tmp_path / "tuned" / "model.safetensors").read_bytes())
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(weights)
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    param_cache._verified.clear()  # a new process
    again = load_clip(d, cache_dir=tmp_path / "c", towers=("text",))
    assert not again.loaded_from_cache
    fresh = load_clip(tmp_path / "tuned", use_cache=False, towers=("text",))
    np.testing.assert_allclose(again.encode_texts(TEXTS), fresh.encode_texts(TEXTS), atol=1e-6)


def _with_config(src, dst, **changes):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        tower, field = key.split("__")
        (cfg if tower == "top" else cfg[f"{tower}_config"])[field] = value
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize(
    "change, field",
    [
        ({"text__max_position_embeddings": 10**9}, "max_position_embeddings"),
        ({"text__num_hidden_layers": 10**8}, "num_hidden_layers"),
        ({"vision__num_hidden_layers": 3}, "num_hidden_layers"),
        ({"text__vocab_size": 10**9}, "vocab_size"),
        ({"vision__image_size": 10**6}, "image_size"),
        ({"vision__intermediate_size": 10**9}, "intermediate_size"),
        ({"top__projection_dim": 10**9}, "projection_dim"),
        ({"text__hidden_size": 2**20, "text__num_attention_heads": 2}, "hidden_size"),
    ],
)
def test_config_sizes_past_the_checkpoint_are_refused_before_anything_is_allocated(
    twins, tmp_path, monkeypatch, change, field
):
    import drc_jax.clip.convert as convert

    def traced(*a, **k):
        raise AssertionError("the model was traced with the config's sizes")

    monkeypatch.setattr(convert, "CLIP", traced)
    d = _with_config(twins[0] / "a", tmp_path / "bomb", **change)
    with pytest.raises(ValueError, match=rf"config\.json.*{field}"):
        load_clip(d, cache_dir=tmp_path)


@pytest.mark.parametrize(
    "text, why",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({"text_config": {"eos_token_id": []}}), "eos_token_id"),
        (json.dumps({"text_config": {"eos_token_id": "x"}}), "eos_token_id"),
    ],
)
def test_a_hostile_config_json_is_a_value_error_naming_it(twins, tmp_path, text, why):
    d = tmp_path / "m"
    shutil.copytree(twins[0] / "a", d)
    (d / "config.json").write_text(text)
    with pytest.raises(ValueError, match=rf"config\.json.*{why}"):
        load_clip(d, cache_dir=tmp_path)


def test_an_unexpected_checkpoint_key_is_a_value_error_naming_the_file(twins, tmp_path):
    from safetensors.torch import load_file, save_file

    d = tmp_path / "m"
    shutil.copytree(twins[0] / "a", d)
    sd = load_file(d / "model.safetensors")
    sd["text_model.extra_head.weight"] = torch.zeros(3)
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors.*unexpected key"):
        load_clip(d, cache_dir=tmp_path)
