"""Backbone configs: every named backbone has exactly transformers' CLIPModel parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drc_jax.clip.config import BACKBONES, config_from_hf, get_config
from drc_jax.clip.convert import _hf_to_flax_key, expected_shapes


def _hf_config(cfg):
    from transformers import CLIPConfig

    v, t = dataclasses.asdict(cfg.vision), dataclasses.asdict(cfg.text)
    return CLIPConfig(vision_config=v, text_config=t, projection_dim=cfg.projection_dim)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_config_has_transformers_parameter_names_and_shapes(name):
    import torch
    from transformers import CLIPModel

    cfg = get_config(name)
    hf = _hf_config(cfg)
    assert config_from_hf(hf.to_dict()) == cfg
    with torch.device("meta"):  # shapes only, no memory
        model = CLIPModel(hf)
    mapped = {}
    for key, p in model.state_dict().items():
        if key == "logit_scale":
            continue
        path, arr = _hf_to_flax_key(key, np.broadcast_to(np.float32(0), tuple(p.shape)))
        mapped[path] = arr.shape
    assert mapped == expected_shapes(cfg)


def test_backbone_names_accept_open_clip_spellings():
    assert get_config("ViT-L-14") is get_config("vit-l/14") is BACKBONES["ViT-L/14"]
    assert get_config("ViT-B/16").vision.num_patches == 196


def test_hf_config_dict_builds_a_transformers_model_that_reads_back_as_the_same_config():
    """Reference models in benchmarks are built from our configs: the mapping must round-trip."""
    from transformers import CLIPConfig as HFConfig

    from drc_jax.clip.config import config_from_hf, get_config, hf_config_dict

    for name in ("ViT-B/32", "ViT-L/14", "test-tiny"):
        cfg = get_config(name)
        back = config_from_hf(HFConfig(**hf_config_dict(cfg)).to_dict())
        assert (back.vision, back.text.hidden_size, back.text.num_hidden_layers) == (
            cfg.vision,
            cfg.text.hidden_size,
            cfg.text.num_hidden_layers,
        )
        assert back.projection_dim == cfg.projection_dim
