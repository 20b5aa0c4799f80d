"""Weight conversion: OpenAI/open_clip names -> Hugging Face names -> Flax param paths.

Every tensor is checked against the model's expected shape; a mismatch names the key and shapes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from drc_jax.clip.config import CLIPConfig
from drc_jax.clip.model import CLIP, TOWER_PARAMS, TOWERS

# OpenAI clip/model.py (and open_clip ViT) name -> Hugging Face CLIPModel name, by regex.
OPENAI_TO_HF: tuple[tuple[str, str], ...] = (
    (r"^visual\.conv1\.weight$", "vision_model.embeddings.patch_embedding.weight"),
    (r"^visual\.class_embedding$", "vision_model.embeddings.class_embedding"),
    (r"^visual\.positional_embedding$", "vision_model.embeddings.position_embedding.weight"),
    (r"^visual\.ln_pre\.", "vision_model.pre_layrnorm."),
    (r"^visual\.ln_post\.", "vision_model.post_layernorm."),
    (r"^visual\.transformer\.resblocks\.(\d+)\.", r"vision_model.encoder.layers.\1."),
    (r"^token_embedding\.weight$", "text_model.embeddings.token_embedding.weight"),
    (r"^positional_embedding$", "text_model.embeddings.position_embedding.weight"),
    (r"^transformer\.resblocks\.(\d+)\.", r"text_model.encoder.layers.\1."),
    (r"^ln_final\.", "text_model.final_layer_norm."),
    # inside a block
    (r"\.ln_1\.", ".layer_norm1."),
    (r"\.ln_2\.", ".layer_norm2."),
    (r"\.attn\.out_proj\.", ".self_attn.out_proj."),
    (r"\.mlp\.c_fc\.", ".mlp.fc1."),
    (r"\.mlp\.c_proj\.", ".mlp.fc2."),
)
OPENAI_IGNORED = ("input_resolution", "context_length", "vocab_size", "logit_scale", "attn_mask")
HF_IGNORED = ("logit_scale", "position_ids")

_LN = ("layer_norm1", "layer_norm2", "pre_layrnorm", "post_layernorm", "final_layer_norm")
_EMBED = ("token_embedding", "position_embedding")


def unwrap_state_dict(sd: Mapping[str, object]) -> dict[str, object]:
    """Strip training wrappers: ``{'state_dict': ...}`` / ``{'model': ...}`` and ``module.``."""
    for wrapper in ("state_dict", "model", "module"):
        inner = sd.get(wrapper) if isinstance(sd, Mapping) else None
        if isinstance(inner, Mapping) and not hasattr(inner, "shape"):
            sd = inner
            break
    out = {}
    for k, v in sd.items():
        while k.startswith("module."):
            k = k[len("module.") :]
        out[k] = v
    return out


def openai_to_hf(
    sd: Mapping[str, np.ndarray], origins: dict[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Rename an OpenAI/open_clip ViT CLIP state dict to Hugging Face ``CLIPModel`` names.

    ``origins`` (if given) is filled with HF name -> original key, for error messages.
    """
    out: dict[str, np.ndarray] = {}
    origins = {} if origins is None else origins
    for key, value in sd.items():
        if key.split(".")[-1] in OPENAI_IGNORED or key in OPENAI_IGNORED:
            continue
        if key == "visual.proj":  # (width, embed), applied as x @ proj
            out["visual_projection.weight"] = np.asarray(value).T
            origins["visual_projection.weight"] = key
            continue
        if key == "text_projection":
            out["text_projection.weight"] = np.asarray(value).T
            origins["text_projection.weight"] = key
            continue
        name = key
        for pattern, repl in OPENAI_TO_HF:
            name = re.sub(pattern, repl, name)
        if name.endswith(".attn.in_proj_weight") or name.endswith(".attn.in_proj_bias"):
            prefix, kind = name.rsplit(".attn.in_proj_", 1)
            q, k, v = np.split(np.asarray(value), 3, axis=0)
            for proj, part in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                out[f"{prefix}.self_attn.{proj}.{kind}"] = part
                origins[f"{prefix}.self_attn.{proj}.{kind}"] = f"{key} ({proj[0]} third)"
            continue
        if name == key:
            raise ValueError(
                f"unexpected key {key!r} in OpenAI/open_clip state dict (no mapping to CLIP ViT)"
            )
        out[name] = np.asarray(value)
        origins[name] = key
    return out


def _hf_to_flax_key(key: str, value: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    parts = re.sub(r"\.layers\.(\d+)\.", r".layers_\1.", key).split(".")
    leaf, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
    if leaf == "weight":
        if parent in _LN:
            leaf = "scale"
        elif parent in _EMBED:
            leaf = "embedding"
        elif parent == "patch_embedding":
            leaf, value = "kernel", value.transpose(2, 3, 1, 0)
        else:
            leaf, value = "kernel", value.T
    return (*parts[:-1], leaf), value


@functools.lru_cache(maxsize=16)
def expected_shapes(
    config: CLIPConfig, towers: tuple[str, ...] = TOWERS
) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flat Flax param path -> shape of ``towers``' params, traced with nothing allocated."""
    c = config
    towers = check_towers(towers)
    pixels = jnp.zeros((1, c.vision.image_size, c.vision.image_size, 3))
    ids = jnp.zeros((1, c.context_length), jnp.int32)
    if towers == TOWERS:
        init = functools.partial(CLIP(c).init, pixels=pixels, ids=ids)
    elif towers == ("text",):
        init = functools.partial(CLIP(c).init, ids=ids, method=CLIP.encode_text)
    else:
        init = functools.partial(CLIP(c).init, pixels=pixels, method=CLIP.encode_image)
    shapes = jax.eval_shape(init, jax.random.key(0))
    return {k: v.shape for k, v in flatten_dict(shapes["params"]).items()}


def check_towers(towers) -> tuple[str, ...]:
    """``towers`` as a sorted tuple of known tower names (``ValueError`` otherwise)."""
    if isinstance(towers, str):
        towers = (towers,)
    out = tuple(sorted(set(towers)))
    if not out or any(t not in TOWERS for t in out):
        raise ValueError(f"towers must be a non-empty subset of {TOWERS}, got {tuple(towers)!r}")
    return out


def select_towers(params, towers: tuple[str, ...]):
    """The subtrees of nested ``params`` that ``towers`` own (a shallow copy of those entries)."""
    keep = {name for t in check_towers(towers) for name in TOWER_PARAMS[t]}
    return {k: v for k, v in params.items() if k in keep}


def hf_to_flax(
    sd: Mapping[str, np.ndarray],
    config: CLIPConfig,
    source: str = "checkpoint",
    origins: Mapping[str, str] | None = None,
):
    """Hugging Face ``CLIPModel`` state dict -> nested Flax params (float32 numpy).

    ``origins`` maps HF names back to the checkpoint's keys, for errors.
    """
    origins = origins or {}
    want = expected_shapes(config)
    flat: dict[tuple[str, ...], np.ndarray] = {}
    for key, value in sd.items():
        if key.split(".")[-1] in HF_IGNORED:
            continue
        path, arr = _hf_to_flax_key(key, np.asarray(value, dtype=np.float32))
        shown = origins.get(key, key)
        if path not in want:
            raise ValueError(
                f"{source}: unexpected key {shown!r} (Flax path {'/'.join(path)}) "
                "for this CLIP config"
            )
        if tuple(arr.shape) != tuple(want[path]):
            raise ValueError(
                f"{source}: shape mismatch for {shown!r}: checkpoint has {tuple(np.shape(value))} "
                f"(-> {tuple(arr.shape)} in Flax layout), model expects {tuple(want[path])} "
                f"at {'/'.join(path)}"
            )
        flat[path] = np.ascontiguousarray(arr)
    missing = sorted("/".join(p) for p in set(want) - set(flat))
    if missing:
        raise ValueError(f"{source}: missing {len(missing)} weights, e.g. {missing[:5]}")
    return unflatten_dict(flat)


def _layers(shapes: Mapping[str, tuple], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in shapes if k.startswith(prefix)})


def check_hf_config(config: CLIPConfig, shapes: Mapping[str, tuple], weights, config_file) -> None:
    """``ValueError`` unless ``config.json``'s sizes match the weight file's header shapes.

    Checked before anything is allocated: a hostile config may ask for 1e9 positions.
    """
    v, t = config.vision, config.text
    want = {
        "text_model.embeddings.token_embedding.weight": (
            (t.vocab_size, t.hidden_size), "text_config.vocab_size / hidden_size"),
        "text_model.embeddings.position_embedding.weight": (
            (t.max_position_embeddings, t.hidden_size), "text_config.max_position_embeddings"),
        "text_model.encoder.layers.0.mlp.fc1.weight": (
            (t.intermediate_size, t.hidden_size), "text_config.intermediate_size"),
        "vision_model.embeddings.patch_embedding.weight": (
            (v.hidden_size, 3, v.patch_size, v.patch_size),
            "vision_config.hidden_size / patch_size"),
        "vision_model.embeddings.position_embedding.weight": (
            (v.num_patches + 1, v.hidden_size), "vision_config.image_size / patch_size"),
        "vision_model.encoder.layers.0.mlp.fc1.weight": (
            (v.intermediate_size, v.hidden_size), "vision_config.intermediate_size"),
        "text_projection.weight": ((config.projection_dim, t.hidden_size), "projection_dim"),
        "visual_projection.weight": ((config.projection_dim, v.hidden_size), "projection_dim"),
    }  # fmt: skip
    for key, (shape, fields) in want.items():
        if key not in shapes:
            raise ValueError(f"{weights}: no tensor {key!r}; not a complete CLIP checkpoint")
        if tuple(shapes[key]) != shape:
            raise ValueError(
                f"{weights}: {key} has the shape {tuple(shapes[key])}, but {config_file} "
                f"({fields}) asks for {shape}; fix config.json or use the checkpoint's own"
            )
    for tower, cfg in (("text", t), ("vision", v)):
        have = _layers(shapes, f"{tower}_model.encoder.layers.")
        if cfg.num_hidden_layers != have:
            raise ValueError(
                f"{config_file}: {tower}_config.num_hidden_layers={cfg.num_hidden_layers}, but "
                f"{weights} holds {have} {tower} layers; fix config.json or use the "
                "checkpoint's own"
            )
