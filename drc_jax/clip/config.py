"""CLIP backbone configurations; field names follow Hugging Face's ``CLIPVisionConfig`` /
``CLIPTextConfig``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

EOT_TOKEN_ID = 49407
BOS_TOKEN_ID = 49406


def _check_sizes(cfg, prefix: str, sizes: tuple[str, ...]) -> None:
    """Positive sizes and ``layer_norm_eps``, heads dividing the width, else ``ValueError``."""
    for name in sizes:
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{prefix}{name}={v!r}: must be a positive integer")
    eps = getattr(cfg, "layer_norm_eps", 1.0)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
        raise ValueError(f"{prefix}layer_norm_eps={eps!r}: must be a positive number")
    heads = getattr(cfg, "num_attention_heads", 1)
    if getattr(cfg, "hidden_size", 0) % heads:
        raise ValueError(
            f"{prefix}hidden_size={cfg.hidden_size} is not divisible by num_attention_heads={heads}"
        )


_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    image_size: int = 224
    patch_size: int = 32
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        _check_sizes(self, "vision_config.", _SIZES + ("image_size", "patch_size"))

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclasses.dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    # Pool at the first ``eos_token_id``; ``None`` pools at ``argmax(ids)`` (transformers, legacy
    # ``eos_token_id == 2`` configs).
    eos_token_id: int | None = EOT_TOKEN_ID

    def __post_init__(self):
        _check_sizes(self, "text_config.", _SIZES + ("vocab_size", "max_position_embeddings"))


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
    vision: VisionConfig = VisionConfig()
    text: TextConfig = TextConfig()
    projection_dim: int = 512

    def __post_init__(self):
        _check_sizes(self, "", ("projection_dim",))

    @property
    def context_length(self) -> int:
        return self.text.max_position_embeddings


BACKBONES: dict[str, CLIPConfig] = {
    "ViT-B/32": CLIPConfig(),
    "ViT-B/16": CLIPConfig(vision=VisionConfig(patch_size=16)),
    "ViT-L/14": CLIPConfig(
        vision=VisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            patch_size=14,
        ),
        text=TextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12),
        projection_dim=768,
    ),
    # For tests: real input size and vocabulary, heads 64 wide as OpenAI infers them.
    "test-tiny": CLIPConfig(
        vision=VisionConfig(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=2,
            patch_size=32,
        ),
        text=TextConfig(
            hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2
        ),
        projection_dim=32,
    ),
}


def get_config(name: str) -> CLIPConfig:
    """Backbone config ``name`` (a key of :data:`BACKBONES`; ``ViT-B-32``, ``vit-b/32`` too)."""
    canon = {k.lower().replace("/", "-"): k for k in BACKBONES}
    key = canon.get(name.strip().lower().replace("/", "-"))
    if key is None:
        raise ValueError(f"unknown CLIP backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[key]


def _fields(cls, d: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def config_from_hf(hf: Mapping[str, Any]) -> CLIPConfig:
    """Build a :class:`CLIPConfig` from a Hugging Face ``CLIPModel`` ``config.json`` dict."""
    if hf.get("model_type", "clip") != "clip":
        raise ValueError(f"config.json has model_type={hf.get('model_type')!r}, expected 'clip'")
    vis = dict(hf.get("vision_config") or {})
    txt = dict(hf.get("text_config") or {})
    for d in (vis, txt):
        for k in ("image_size", "patch_size"):
            if isinstance(d.get(k), list | tuple):
                if len(set(d[k])) != 1:
                    raise ValueError(f"non-square {k}={d[k]} is not supported")
                d[k] = d[k][0]
    text = TextConfig(**_fields(TextConfig, txt))
    eos = txt.get("eos_token_id", EOT_TOKEN_ID)
    if isinstance(eos, list) and eos:
        eos = eos[0]
    if eos is not None and (isinstance(eos, bool) or not isinstance(eos, int) or eos < 0):
        raise ValueError(f"text_config.eos_token_id={eos!r}: must be a token id (an integer >= 0)")
    text = dataclasses.replace(text, eos_token_id=None if eos == 2 else eos)
    return CLIPConfig(
        vision=VisionConfig(**_fields(VisionConfig, vis)),
        text=text,
        projection_dim=int(hf.get("projection_dim", 512)),
    )


def hf_config_dict(cfg: CLIPConfig) -> dict[str, Any]:
    """Keyword arguments of transformers' ``CLIPConfig`` for ``cfg``'s sizes (reference models)."""
    v, t = cfg.vision, cfg.text
    return dict(
        vision_config=dict(
            hidden_size=v.hidden_size,
            intermediate_size=v.intermediate_size,
            num_hidden_layers=v.num_hidden_layers,
            num_attention_heads=v.num_attention_heads,
            patch_size=v.patch_size,
            image_size=v.image_size,
        ),
        text_config=dict(
            hidden_size=t.hidden_size,
            intermediate_size=t.intermediate_size,
            num_hidden_layers=t.num_hidden_layers,
            num_attention_heads=t.num_attention_heads,
        ),
        projection_dim=cfg.projection_dim,
    )


def config_from_openai_state_dict(
    sd: Mapping[str, Any], hidden_act: str = "quick_gelu", head_width: int = 64
) -> CLIPConfig:
    """Infer the config from an OpenAI/open_clip ViT state dict's shapes (cf. ``build_model``).

    Attention heads are not stored in the weights; OpenAI and open_clip use ``width // 64``.
    """
    if "visual.conv1.weight" not in sd:
        if any(k.startswith("visual.layer1") or k.startswith("visual.trunk") for k in sd):
            raise ValueError(
                "this checkpoint has a ResNet/timm image tower; only ViT CLIP models are supported"
            )
        raise ValueError(
            "not an OpenAI/open_clip ViT CLIP state dict: key 'visual.conv1.weight' is missing "
            f"(first keys: {sorted(sd)[:8]})"
        )
    conv = tuple(sd["visual.conv1.weight"].shape)
    if len(conv) != 4 or 0 in conv:
        raise ValueError(
            f"'visual.conv1.weight' has shape {conv}; expected (width, 3, patch, patch), no size 0"
        )
    v_width, _, patch, _ = conv
    v_layers = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    t_width = sd["ln_final.weight"].shape[0]
    t_layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    v_mlp = sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    t_mlp = sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    return CLIPConfig(
        vision=VisionConfig(
            hidden_size=v_width,
            intermediate_size=v_mlp,
            num_hidden_layers=v_layers,
            num_attention_heads=max(1, v_width // head_width),
            image_size=patch * grid,
            patch_size=patch,
            hidden_act=hidden_act,
        ),
        text=TextConfig(
            vocab_size=sd["token_embedding.weight"].shape[0],
            hidden_size=t_width,
            intermediate_size=t_mlp,
            num_hidden_layers=t_layers,
            num_attention_heads=max(1, t_width // head_width),
            max_position_embeddings=sd["positional_embedding"].shape[0],
            hidden_act=hidden_act,
            # OpenAI pools at argmax(ids): EOT=49407 is the largest id.
            eos_token_id=EOT_TOKEN_ID,
        ),
        projection_dim=sd["text_projection"].shape[1],
    )
