"""``load_clip``: resolve a weights spec, convert (or restore cached) params, build the encoder.

Specs: ``random:<backbone>`` (seeded), a Hugging Face model directory or hub id, an
OpenAI/open_clip state dict file (``.pt``/``.pth``/``.bin``/``.safetensors``, NegCLIP-style
wrappers too) or OpenAI's TorchScript release. Weight files are hostile input: only tensors are
read, no code from them runs. Converted params are cached by content
(:mod:`drc_jax.clip.param_cache`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from flax.traverse_util import unflatten_dict

from drc_jax.clip import param_cache
from drc_jax.clip.checkpoint import open_lazy
from drc_jax.clip.config import (
    CLIPConfig,
    config_from_hf,
    config_from_openai_state_dict,
    get_config,
)
from drc_jax.clip.convert import (
    check_hf_config,
    check_towers,
    expected_shapes,
    hf_to_flax,
    openai_to_hf,
    select_towers,
    unwrap_state_dict,
)
from drc_jax.clip.encoder import ClipEncoder
from drc_jax.clip.model import TOWERS
from drc_jax.clip.tokenizer import ClipTokenizer, load_tokenizer
from drc_jax.clip.torchscript import is_torchscript, read_torchscript
from drc_jax.defaults import cache_root

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 1 << 20
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_PATTERNS = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
]


def is_hub_id(spec: str) -> bool:
    """Whether ``load_clip(spec)`` would fetch ``spec`` from the Hugging Face Hub."""
    return bool(_HUB_ID.match(spec)) and not Path(spec).expanduser().exists()


def default_cache_dir() -> Path:
    return cache_root()


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a ``.safetensors`` or torch file as float32 numpy (no arbitrary unpickling)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if is_torchscript(path):
        sd = unwrap_state_dict(read_torchscript(path))
        return {k: np.asarray(v, np.float32) for k, v in sd.items()}
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"{path}: reading a torch checkpoint needs PyTorch; convert it to .safetensors or "
            "install torch"
        ) from e
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any refusal with the file name
        raise ValueError(
            f"{path}: cannot read as a tensor-only torch checkpoint (weights_only=True): {e}. "
            "Only tensors (optionally in nested dicts) are read; re-save the state_dict, "
            "e.g. as .safetensors"
        ) from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    obj = unwrap_state_dict(obj)
    return {
        k: v.detach().to(torch.float32).numpy()
        for k, v in obj.items()
        if isinstance(v, torch.Tensor)
    }


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    out = {}
    try:
        with safe_open(str(path), framework="np") as f:
            for k in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                try:
                    out[k] = f.get_tensor(k)
                except (TypeError, ValueError):  # bfloat16 has no numpy dtype: read via jax
                    with safe_open(str(path), framework="flax") as fj:
                        out[k] = np.asarray(fj.get_tensor(k).astype("float32"))
    except (SafetensorError, OSError) as e:
        raise ValueError(
            f"{path}: not a readable safetensors file ({e}); re-download or re-convert it"
        ) from e
    return out


class WeightsUnavailableError(RuntimeError):
    """A hub id that cannot be downloaded (offline, unknown id, gated)."""


def _download(hub_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        d = Path(snapshot_download(hub_id, allow_patterns=_HUB_PATTERNS))
        if not (d / "model.safetensors").is_file():
            d = Path(
                snapshot_download(hub_id, allow_patterns=[*_HUB_PATTERNS, "pytorch_model.bin"])
            )
        return d
    except Exception as e:  # noqa: BLE001 - wrap offline/missing-repo errors with what to do
        raise WeightsUnavailableError(
            f"could not get {hub_id!r} from the Hugging Face Hub ({type(e).__name__}: {e}). "
            "If this machine is offline, download the model where there is a connection "
            f"(`hf download {hub_id}`) and pass its local directory to load_clip, or point "
            "HF_HOME at a cache that already holds it and set HF_HUB_OFFLINE=1."
        ) from e


def _load_hf_dir(d: Path):
    try:
        with open(d / "config.json", "rb") as f:
            raw = json.loads(f.read(MAX_CONFIG_BYTES + 1))
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        cfg = config_from_hf(raw)
    except RecursionError as e:
        raise ValueError(f"{d / 'config.json'}: nested too deeply; fix or re-download it") from e
    except (ValueError, TypeError) as e:
        raise ValueError(f"{d / 'config.json'}: {e}; fix or re-download it") from e
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (d / name).is_file():
            return cfg, d / name
    raise FileNotFoundError(f"{d}: no model.safetensors or pytorch_model.bin next to config.json")


def _random_params(cfg: CLIPConfig, seed: int, towers: tuple[str, ...] = TOWERS):
    """Seeded N(0, 0.02) params (unit norm scales, zero biases) from the model's shapes.

    Text paths sort before image paths, so a text-only load draws a prefix of a full load's stream.
    """
    drawn = ("text",) if towers == ("text",) else TOWERS
    rng = np.random.default_rng(seed)
    flat = {}
    for path, shape in sorted(expected_shapes(cfg, drawn).items()):
        if path[-1] == "scale":
            flat[path] = np.ones(shape, np.float32)
        elif path[-1] == "bias":
            flat[path] = np.zeros(shape, np.float32)
        else:
            flat[path] = rng.standard_normal(shape, dtype=np.float32)
            flat[path] *= np.float32(0.02)
    return select_towers(unflatten_dict(flat), towers)


def load_clip(
    spec: str | os.PathLike,
    dtype: str = "float32",
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    mesh=None,
    batch_size: int = 64,
    preprocess_mode: str = "spacevlm",
    hidden_act: str = "quick_gelu",
    seed: int = 0,
    towers: tuple[str, ...] = TOWERS,
) -> ClipEncoder:
    """Load CLIP weights from ``spec`` (see module doc) as a data-parallel :class:`ClipEncoder`.

    ``towers=("text",)`` loads only the text tower (``encode_images`` then raises).
    ``hidden_act`` applies to OpenAI/open_clip state dicts only, which do not record it.
    """
    spec_s = str(spec)
    towers = check_towers(towers)
    kw = dict(
        dtype=dtype,
        mesh=mesh if mesh is not None else _default_mesh(),
        batch_size=batch_size,
        preprocess_mode=preprocess_mode,
        towers=towers,
    )
    tok_kw = dict(cache_dir=cache_dir, use_cache=use_cache)
    if spec_s.startswith("random:"):
        backbone = spec_s.split(":", 1)[1]
        cfg = get_config(backbone)
        tok = ClipTokenizer(load_tokenizer(None, **tok_kw), cfg.context_length)
        weights_id = f"random:{backbone}:seed{seed}:{dtype}"
        extra = f"{param_cache.config_to_json(cfg)}:seed{seed}:{towers}"
        key = f"random-{param_cache.content_key([], extra, None)}"
        entry = Path(cache_dir or default_cache_dir()) / "clip_params" / key
        restored = (
            param_cache.restore(entry, towers, check_shapes=False)
            if use_cache and entry.is_dir()
            else None
        )
        if restored is not None:
            params = restored[1]
        else:
            params = _random_params(cfg, seed, towers)
            if use_cache:
                param_cache.save(entry, cfg, params)
        return ClipEncoder(
            cfg, params, tok, weights_id=weights_id, loaded_from_cache=restored is not None, **kw
        )

    path = Path(spec_s).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path}: a Hugging Face CLIP directory needs config.json (+ model.safetensors)"
            )
        model_dir, kind = path, "hf"
    elif path.is_file():
        if path.suffix not in STATE_DICT_SUFFIXES:
            raise ValueError(
                f"{path}: unsupported weight file type; use one of {STATE_DICT_SUFFIXES}"
            )
        model_dir, kind = None, "openai"
    elif _HUB_ID.match(spec_s):
        model_dir, kind = _download(spec_s), "hf"
    else:
        raise FileNotFoundError(
            f"{spec_s!r} is not a local directory or file, a 'random:<backbone>' spec, or a hub id "
            "like 'openai/clip-vit-base-patch32'"
        )

    root = Path(cache_dir or default_cache_dir())
    memo = root if use_cache else None
    if kind == "hf":
        cfg, weight_file = _load_hf_dir(model_dir)
        lazy = open_lazy(weight_file)  # a bad config fails before any allocation
        check_hf_config(cfg, lazy.shapes, weight_file, model_dir / "config.json")
        fp = param_cache.content_key([model_dir / "config.json", weight_file], "hf", memo)
    else:
        cfg, weight_file, lazy = None, path, None
        fp = param_cache.content_key([path], f"openai:{hidden_act}", memo)

    entry = root / "clip_params" / fp
    restored = param_cache.restore(entry, towers) if use_cache and entry.is_dir() else None
    if restored is not None and (
        (cfg is not None and restored[0] != cfg)
        or not param_cache.matches_file(
            entry, restored[1], lazy or open_lazy(weight_file), kind, towers
        )
    ):
        restored = None
    if restored is not None:
        cfg, params = restored
        log.info("restored converted CLIP params from %s", entry)
    else:
        sd = read_state_dict(weight_file)
        if kind == "openai":
            sd = unwrap_state_dict(sd)
            try:
                cfg = config_from_openai_state_dict(sd, hidden_act=hidden_act)
            except (ValueError, KeyError, IndexError, TypeError) as e:
                msg = f"missing key {e}" if isinstance(e, KeyError) else e
                raise ValueError(f"{weight_file}: {msg}") from e
            sd = openai_to_hf(sd, origins := {})
        else:
            origins = {}
        params = hf_to_flax(sd, cfg, source=str(weight_file), origins=origins)
        if use_cache:
            param_cache.save(entry, cfg, params)
    params = select_towers(params, towers)
    tok = ClipTokenizer(load_tokenizer(model_dir, **tok_kw), cfg.context_length)
    if cfg.text.vocab_size < tok.vocab_size:
        raise ValueError(
            f"{weight_file}: the token embedding has {cfg.text.vocab_size} rows but the tokenizer "
            f"has {tok.vocab_size} tokens, so ids >= {cfg.text.vocab_size} would give NaN text "
            "embeddings. Use the checkpoint's own tokenizer files or a complete checkpoint."
        )
    name = path.name if path.exists() else spec_s
    return ClipEncoder(
        cfg,
        params,
        tok,
        weights_id=f"{name}@{fp}:{dtype}",
        loaded_from_cache=restored is not None,
        **kw,
    )


def _default_mesh():
    from drc_jax.parallel import make_mesh

    return make_mesh()
