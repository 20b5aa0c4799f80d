"""load_clip on small checkpoints: spec resolution, safe loading, clear errors, the param cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from drc_jax.clip import load_clip
from drc_jax.clip.config import config_from_hf
from tests.clip_fixtures import hf_to_openai_state_dict, make_hf_clip, torch_reference
from tests.conftest import REPO

TEXTS = ["a photo of a cat", "a dog not on a beach", "", "x " * 100]


class NotATensor:  # pickled into a checkpoint to check that loading refuses it
    pass


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random transformers CLIP (real 49408 vocab, 224px) and its OpenAI state dict."""
    root = tmp_path_factory.mktemp("tiny_clip")
    model = make_hf_clip(root / "hf", tiny=True)
    oa = hf_to_openai_state_dict(model.state_dict())
    return dict(root=root, model=model, oa=oa)


def _pixels(n=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 224, 224, 3)).astype(np.float32)


def test_random_spec_is_seeded_and_says_random():
    a = load_clip("random:test-tiny", use_cache=False)
    b = load_clip("random:test-tiny", use_cache=False)
    c = load_clip("random:test-tiny", use_cache=False, seed=1)
    assert "random" in a.weights_id and a.weights_id != c.weights_id
    np.testing.assert_array_equal(a.encode_texts(TEXTS), b.encode_texts(TEXTS))
    assert not np.allclose(a.encode_texts(TEXTS), c.encode_texts(TEXTS))
    assert (a.embed_dim, a.image_size) == (32, 224)


def test_unknown_backbone_and_unresolvable_spec_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown CLIP backbone 'ViT-Q/7'.*ViT-B/32"):
        load_clip("random:ViT-Q/7")
    with pytest.raises(FileNotFoundError, match="not a local directory or file"):
        load_clip(str(tmp_path / "nope" / "weights"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_clip(tmp_path / "empty_dir")


def test_tiny_hf_checkpoint_matches_transformers(tiny, tmp_path):
    from transformers import CLIPTokenizer

    clip = load_clip(tiny["root"] / "hf", cache_dir=tmp_path)
    px = _pixels()
    ref_img, ref_txt, _ = torch_reference(
        tiny["model"], CLIPTokenizer.from_pretrained(tiny["root"] / "hf"), px, TEXTS
    )
    np.testing.assert_allclose(clip.encode_images(px), ref_img, atol=1e-5)
    np.testing.assert_allclose(clip.encode_texts(TEXTS), ref_txt, atol=1e-5)


def test_legacy_eos_token_id_2_config_pools_at_argmax_like_transformers(tmp_path):
    from transformers import CLIPTokenizer

    model = make_hf_clip(tmp_path / "legacy", tiny=True, eos_token_id=2, seed=3)
    cfg = config_from_hf(json.loads((tmp_path / "legacy" / "config.json").read_text()))
    assert cfg.text.eos_token_id is None
    clip = load_clip(tmp_path / "legacy", use_cache=False)
    tok = CLIPTokenizer.from_pretrained(tmp_path / "legacy")
    _, ref_txt, _ = torch_reference(model, tok, _pixels(1), TEXTS)
    np.testing.assert_allclose(clip.encode_texts(TEXTS), ref_txt, atol=1e-5)


def test_openai_state_dict_shape_mismatch_names_the_key_and_both_shapes(tiny, tmp_path):
    sd = dict(tiny["oa"])
    sd["transformer.resblocks.1.mlp.c_fc.bias"] = torch.zeros(127)
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError) as e:
        load_clip(tmp_path / "bad.safetensors", use_cache=False)
    msg = str(e.value)
    assert "transformer.resblocks.1.mlp.c_fc.bias" in msg and "(127,)" in msg and "(256,)" in msg
    assert "bad.safetensors" in msg


def test_openai_state_dict_unexpected_and_missing_keys_are_named(tiny, tmp_path):
    sd = dict(tiny["oa"])
    sd["visual.extra_head.weight"] = torch.zeros(3)
    save_file(sd, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ValueError, match="visual.extra_head.weight"):
        load_clip(tmp_path / "extra.safetensors", use_cache=False)
    sd = dict(tiny["oa"])
    del sd["ln_final.bias"]
    save_file(sd, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="missing 1 weights.*final_layer_norm/bias"):
        load_clip(tmp_path / "missing.safetensors", use_cache=False)


def test_hf_checkpoint_shape_mismatch_names_the_key(tiny, tmp_path):
    import shutil

    from safetensors.torch import load_file

    d = tmp_path / "hf_bad"
    shutil.copytree(tiny["root"] / "hf", d)
    sd = load_file(d / "model.safetensors")
    sd["vision_model.embeddings.position_embedding.weight"] = torch.zeros(49, 128)
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match=r"position_embedding.weight.*\(49, 128\).*\(50, 128\)"):
        load_clip(d, use_cache=False)


def test_pickled_python_objects_are_refused_not_executed(tiny, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": tiny["oa"], "extra": NotATensor()}, path)
    with pytest.raises(ValueError, match=r"evil\.pt.*weights_only"):
        load_clip(path, use_cache=False)


def test_wrapped_openai_checkpoint_loads_like_the_hf_directory(tiny, tmp_path):
    wrapped = {"state_dict": {f"module.{k}": v for k, v in tiny["oa"].items()}, "epoch": 1}
    torch.save(wrapped, tmp_path / "negclip.pth")
    ours = load_clip(tmp_path / "negclip.pth", cache_dir=tmp_path)
    ref = load_clip(tiny["root"] / "hf", cache_dir=tmp_path)
    px = _pixels(2)
    np.testing.assert_allclose(ours.encode_images(px), ref.encode_images(px), atol=1e-6)
    np.testing.assert_allclose(ours.encode_texts(TEXTS), ref.encode_texts(TEXTS), atol=1e-6)


def test_unreadable_cache_entry_is_rebuilt(tiny, tmp_path):
    first = load_clip(tiny["root"] / "hf", cache_dir=tmp_path)
    entries = list((tmp_path / "clip_params").iterdir())
    assert len(entries) == 1 and not first.loaded_from_cache
    for f in (entries[0] / "params").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    again = load_clip(tiny["root"] / "hf", cache_dir=tmp_path)
    assert not again.loaded_from_cache
    third = load_clip(tiny["root"] / "hf", cache_dir=tmp_path)
    assert third.loaded_from_cache
    np.testing.assert_array_equal(third.encode_texts(TEXTS), first.encode_texts(TEXTS))


def _run_offline(code: str, hf_home) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(hf_home), JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def test_hub_id_offline_without_cache_says_what_to_do(tmp_path):
    proc = _run_offline(
        """
        from drc_jax.clip import load_clip
        try:
            load_clip("openai/clip-vit-base-patch32")
        except RuntimeError as e:
            print("ERR", e)
        """,
        tmp_path,
    )
    assert "ERR could not get 'openai/clip-vit-base-patch32'" in proc.stdout, proc.stderr
    assert "offline" in proc.stdout and "local directory" in proc.stdout


def test_hub_id_resolves_from_the_local_hub_cache(tiny, tmp_path):
    import shutil

    snap = tmp_path / "hub" / "models--someone--tiny-clip" / "snapshots" / "0123abc"
    shutil.copytree(tiny["root"] / "hf", snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0123abc")
    proc = _run_offline(
        f"""
        import numpy as np
        from drc_jax.clip import load_clip
        a = load_clip("someone/tiny-clip", cache_dir={str(tmp_path / "c")!r})
        b = load_clip({str(tiny["root"] / "hf")!r}, use_cache=False)
        print("DIFF", np.abs(a.encode_texts(["a cat"]) - b.encode_texts(["a cat"])).max())
        """,
        tmp_path,
    )
    assert "DIFF 0.0" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_torchscript_archive_that_is_not_clip_names_the_file_and_the_missing_key(tmp_path):
    """TorchScript archives are read (OpenAI's original release is one; the parity test loads a
    CLIP one); anything else in that format is refused by name, with the key it lacks."""
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "ViT-B-32.pt"))
    with pytest.raises(ValueError, match=r"ViT-B-32\.pt: not an OpenAI.*visual\.conv1\.weight"):
        load_clip(tmp_path / "ViT-B-32.pt", use_cache=False)


def test_token_embedding_smaller_than_the_tokenizer_vocabulary_is_refused(tiny, tmp_path):
    """Ids past the table would embed as NaN; refused at load, naming the file and both sizes."""
    sd = dict(tiny["oa"])
    sd["token_embedding.weight"] = sd["token_embedding.weight"][:49000].clone()
    save_file(sd, str(tmp_path / "short_vocab.safetensors"))
    with pytest.raises(ValueError, match=r"short_vocab\.safetensors: .*49000 rows .*49408 tokens"):
        load_clip(tmp_path / "short_vocab.safetensors", use_cache=False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hidden_size", -128, r"text_config\.hidden_size=-128: must be a positive integer"),
        ("num_hidden_layers", "2", r"text_config\.num_hidden_layers='2': must be a positive"),
        ("layer_norm_eps", 0, r"text_config\.layer_norm_eps=0: must be a positive number"),
    ],
)
def test_config_with_a_bad_size_or_type_names_the_file_and_field(
    tiny, tmp_path, field, value, message
):
    import shutil

    d = tmp_path / "hf_bad"
    shutil.copytree(tiny["root"] / "hf", d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["text_config"][field] = value
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"hf_bad/config\.json: " + message):
        load_clip(d, use_cache=False)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"hf_bad/config\.json: Expecting property name"):
        load_clip(d, use_cache=False)


def test_empty_conv_weight_and_damaged_safetensors_name_the_file(tiny, tmp_path):
    sd = dict(tiny["oa"])
    sd["visual.conv1.weight"] = torch.zeros(0, 3, 32, 32)
    save_file(sd, str(tmp_path / "empty_conv.safetensors"))
    with pytest.raises(ValueError, match=r"empty_conv\.safetensors: 'visual\.conv1\.weight' has"):
        load_clip(tmp_path / "empty_conv.safetensors", use_cache=False)
    (tmp_path / "damaged.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{broken}")
    with pytest.raises(ValueError, match=r"damaged\.safetensors: not a readable safetensors"):
        load_clip(tmp_path / "damaged.safetensors", use_cache=False)


def test_weights_giving_non_finite_text_embeddings_fail_naming_a_text():
    import jax

    from drc_jax.clip import ClipEncoder

    clip = load_clip("random:test-tiny", use_cache=False)
    params = jax.tree.map(np.array, clip.params)
    params["text_projection"]["kernel"][:, 0] = np.inf
    broken = ClipEncoder(clip.config, params, clip.tokenizer, "float32", weights_id="inf-weights")
    with pytest.raises(
        ValueError, match=r"inf-weights gave non-finite .* 2 of 2 texts, e.g. 'a cat'"
    ):
        broken.encode_texts(["a cat", "a dog"])


def _param_paths(clip):
    from flax.traverse_util import flatten_dict

    return {"/".join(p) for p in flatten_dict(clip.params)}


def test_text_only_load_equals_the_full_models_text_tower_and_refuses_images(tiny, tmp_path):
    # A search query loads towers=("text",): same weights_id (the index check), same text
    # embeddings as a full load, no image params, and a clear error if images are encoded.
    for spec in ("random:test-tiny", tiny["root"] / "hf"):
        full = load_clip(spec, use_cache=False)
        cache = tmp_path / str(spec).replace("/", "_").replace(":", "_")
        for use_cache in (False, True, True):  # drawn/converted, then written, then restored
            text = load_clip(spec, towers=("text",), use_cache=use_cache, cache_dir=cache)
            assert text.weights_id == full.weights_id and text.towers == ("text",)
            assert _param_paths(text) == {p for p in _param_paths(full) if p.startswith("text_")}
            np.testing.assert_array_equal(text.encode_texts(TEXTS), full.encode_texts(TEXTS))
        assert text.loaded_from_cache
        with pytest.raises(
            ValueError, match=r"without the image tower.*towers=\('image', 'text'\)"
        ):
            text.encode_images(_pixels(1))
    with pytest.raises(ValueError, match="towers must be a non-empty subset"):
        load_clip("random:test-tiny", towers=("audio",))


def test_random_params_are_cached_per_config_seed_and_towers(tmp_path):
    first = load_clip("random:test-tiny", cache_dir=tmp_path)
    again = load_clip("random:test-tiny", cache_dir=tmp_path)
    other_seed = load_clip("random:test-tiny", cache_dir=tmp_path, seed=1)
    assert (first.loaded_from_cache, again.loaded_from_cache) == (False, True)
    assert not other_seed.loaded_from_cache
    assert len(list((tmp_path / "clip_params").iterdir())) == 2
    np.testing.assert_array_equal(again.encode_texts(TEXTS), first.encode_texts(TEXTS))
    np.testing.assert_array_equal(again.encode_images(_pixels()), first.encode_images(_pixels()))
    for f in (tmp_path / "clip_params").rglob("*"):  # a damaged entry is drawn again
        if f.is_file() and f.parent.name != "tokenizers":
            f.write_bytes(b"garbage")
    rebuilt = load_clip("random:test-tiny", cache_dir=tmp_path)
    assert not rebuilt.loaded_from_cache
    np.testing.assert_array_equal(rebuilt.encode_texts(TEXTS), first.encode_texts(TEXTS))
    load_clip("random:test-tiny", cache_dir=tmp_path / "off", use_cache=False)
    assert not (tmp_path / "off").exists()


def test_cache_entry_whose_shapes_disagree_with_its_config_is_rebuilt(tiny, tmp_path):
    first = load_clip(tiny["root"] / "hf", cache_dir=tmp_path)
    (entry,) = (tmp_path / "clip_params").iterdir()
    cfg_file = entry / "clip_config.json"
    for towers in (("text",), ("image", "text")):
        cfg = json.loads(cfg_file.read_text())
        cfg["text"]["intermediate_size"] *= 2  # the saved MLP kernels no longer fit this config
        cfg_file.write_text(json.dumps(cfg))
        again = load_clip(tiny["root"] / "hf", cache_dir=tmp_path, towers=towers)
        assert not again.loaded_from_cache  # re-converted and the entry rewritten
        np.testing.assert_array_equal(again.encode_texts(TEXTS), first.encode_texts(TEXTS))
        assert load_clip(tiny["root"] / "hf", cache_dir=tmp_path, towers=towers).loaded_from_cache
