"""CLIP / SpaceVLM / DRC on several OpenAI CLIP backbones; media are encoded once per backbone.

Gains are against the CLIP row of the same backbone. Weights are Hugging Face hub ids or local
directories (override one with ``--config.variants.b16_drc.weights=/path``, or copy this file).
"""

from drc_jax.launch.config import base_config, row

BACKBONES = {
    "b32": ("ViT-B/32", "openai/clip-vit-base-patch32"),
    "b16": ("ViT-B/16", "openai/clip-vit-base-patch16"),
    "l14": ("ViT-L/14", "openai/clip-vit-large-patch14"),
}
METHODS = (("clip", "CLIP"), ("spacevlm", "SpaceVLM"), ("drc", "SpaceVLM-DRC"))


def get_config():
    config = base_config()
    config.name = "backbones"
    config.description = "CLIP vs SpaceVLM vs DRC on ViT-B/32, ViT-B/16, ViT-L/14"
    names = []
    for key, (arch, weights) in BACKBONES.items():
        for method, label in METHODS:
            names.append(f"{key}_{method}")
            config.variants[names[-1]] = row(method, f"{arch} {label}", weights=weights)
    config.rows = tuple(names)
    return config
