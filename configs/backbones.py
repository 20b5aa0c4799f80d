"""CLIP / SpaceVLM / DRC on several OpenAI CLIP backbones; media are encoded once per backbone.

Gains are against the CLIP row of the same backbone. Weights are Hugging Face hub ids or local
directories (pass a path in a copy of this file to use local checkpoints).
"""

from drc_jax.launch.config import RunConfig, Variant

BACKBONES = {
    "ViT-B/32": "openai/clip-vit-base-patch32",
    "ViT-B/16": "openai/clip-vit-base-patch16",
    "ViT-L/14": "openai/clip-vit-large-patch14",
}
METHODS = (("clip", "CLIP"), ("spacevlm", "SpaceVLM"), ("drc", "SpaceVLM-DRC"))


def get_config() -> RunConfig:
    return RunConfig(
        name="backbones",
        description="CLIP vs SpaceVLM vs DRC on ViT-B/32, ViT-B/16, ViT-L/14",
        variants=tuple(
            Variant(f"{arch} {method}", method, label=f"{arch} {label}", weights=weights)
            for arch, weights in BACKBONES.items()
            for method, label in METHODS
        ),
    )
