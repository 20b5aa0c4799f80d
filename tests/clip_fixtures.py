"""Shared builders for the CLIP tests: random transformers CLIP checkpoints and their
OpenAI-format counterparts (built by the inverse of OpenAI's clip/model.py layout)."""

from __future__ import annotations

import ast
import csv
import warnings
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def photos() -> list[Image.Image]:
    """Real photographs shipped with scikit-image (varied sizes and aspect ratios)."""
    return [Image.fromarray(getattr(skimage.data, n)()).convert("RGB") for n in PHOTOS]


def negbench_captions(negbench_dir: Path, n: int) -> list[str]:
    out = []
    with open(negbench_dir / "coco_neg_dev.csv", newline="") as f:
        for row in csv.DictReader(f):
            out.extend(ast.literal_eval(row["captions"]))
            if len(out) >= n:
                break
    return out[:n]


def make_hf_clip(
    out_dir: Path, patch_size: int = 32, tiny: bool = False, eos_token_id=49407, seed=0
):
    """Save a random transformers CLIPModel (every tensor perturbed, so no bias is zero) plus a
    CLIP tokenizer to ``out_dir``; return the torch model in eval mode."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from drc_jax.clip.tokenizer import tokenizer_from_bpe

    torch.manual_seed(seed)
    if tiny:
        text = dict(
            hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2
        )
        vision = dict(
            hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2
        )
        proj = 32
    else:
        text, vision, proj = {}, {}, 512
    text["eos_token_id"] = eos_token_id
    vision["patch_size"] = patch_size
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=proj)
    config._attn_implementation = "eager"
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model.save_pretrained(out_dir)
    tokenizer_from_bpe().save_pretrained(out_dir)
    return model


def hf_to_openai_state_dict(hf: dict) -> dict:
    """Inverse mapping, written independently of drc_jax.clip.convert: HF CLIPModel tensors ->
    OpenAI clip/model.py names and layouts (fused in_proj, ``x @ proj`` projections)."""
    import torch

    sd = {}
    sd["visual.conv1.weight"] = hf["vision_model.embeddings.patch_embedding.weight"]
    sd["visual.class_embedding"] = hf["vision_model.embeddings.class_embedding"]
    sd["visual.positional_embedding"] = hf["vision_model.embeddings.position_embedding.weight"]
    for ours, theirs in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for w in ("weight", "bias"):
            sd[f"visual.{ours}.{w}"] = hf[f"vision_model.{theirs}.{w}"]
    sd["visual.proj"] = hf["visual_projection.weight"].T.contiguous()
    sd["token_embedding.weight"] = hf["text_model.embeddings.token_embedding.weight"]
    sd["positional_embedding"] = hf["text_model.embeddings.position_embedding.weight"]
    for w in ("weight", "bias"):
        sd[f"ln_final.{w}"] = hf[f"text_model.final_layer_norm.{w}"]
    sd["text_projection"] = hf["text_projection.weight"].T.contiguous()
    sd["logit_scale"] = hf["logit_scale"]
    for tower, prefix in (("vision_model", "visual.transformer"), ("text_model", "transformer")):
        i = 0
        while f"{tower}.encoder.layers.{i}.layer_norm1.weight" in hf:
            src, dst = f"{tower}.encoder.layers.{i}", f"{prefix}.resblocks.{i}"
            for w in ("weight", "bias"):
                sd[f"{dst}.attn.in_proj_{w}"] = torch.cat(
                    [hf[f"{src}.self_attn.{p}_proj.{w}"] for p in "qkv"], dim=0
                )
                sd[f"{dst}.attn.out_proj.{w}"] = hf[f"{src}.self_attn.out_proj.{w}"]
                sd[f"{dst}.ln_1.{w}"] = hf[f"{src}.layer_norm1.{w}"]
                sd[f"{dst}.ln_2.{w}"] = hf[f"{src}.layer_norm2.{w}"]
                sd[f"{dst}.mlp.c_fc.{w}"] = hf[f"{src}.mlp.fc1.{w}"]
                sd[f"{dst}.mlp.c_proj.{w}"] = hf[f"{src}.mlp.fc2.{w}"]
            i += 1
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def torch_reference(model, tokenizer, pixels_nhwc: np.ndarray, texts: list[str]):
    """Unit-norm image and text embeddings from transformers' PyTorch CLIPModel (float32)."""
    import torch

    with torch.no_grad():
        pv = torch.from_numpy(np.ascontiguousarray(pixels_nhwc.transpose(0, 3, 1, 2)))
        img = model.get_image_features(pixel_values=pv).pooler_output
        batch = tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
        txt = model.get_text_features(**batch).pooler_output
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return img.numpy(), txt.numpy(), batch["input_ids"].numpy()


def save_openai_torchscript(state_dict: dict, path) -> None:
    """Save ``state_dict`` the way OpenAI's original ``ViT-B-32.pt`` holds it: a TorchScript archive
    whose modules carry the tensors under the same dotted names, plus the ``input_resolution``,
    ``context_length`` and ``vocab_size`` buffers OpenAI's ``clip.load`` drops."""
    import torch

    root = torch.nn.Module()
    for key, value in state_dict.items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if not hasattr(module, name):
                module.add_module(name, torch.nn.Module())
            module = getattr(module, name)
        module.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=False))
    for name, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
        root.register_buffer(name, torch.tensor(value))
    with warnings.catch_warnings():  # torch.jit.script is deprecated, but it is how these exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(root).save(str(path))
