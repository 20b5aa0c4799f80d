"""Flax CLIP encoders (ViT-B/32, ViT-B/16, ViT-L/14) that load HF and OpenAI/open_clip weights."""

from drc_jax.clip.config import BACKBONES, CLIPConfig, TextConfig, VisionConfig, get_config
from drc_jax.clip.encoder import ClipEncoder
from drc_jax.clip.load import load_clip

__all__ = [
    "BACKBONES",
    "CLIPConfig",
    "ClipEncoder",
    "TextConfig",
    "VisionConfig",
    "get_config",
    "load_clip",
]
