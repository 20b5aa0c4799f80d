"""A weight file opened lazily: keys in file order, header shapes, single tensors on demand."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_HEADER_BYTES = 100 << 20


@dataclass(frozen=True)
class LazyCheckpoint:
    path: Path
    keys: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    get: Callable[[str], np.ndarray]  # float32


def open_lazy(path: str | Path) -> LazyCheckpoint:
    """``path`` opened lazily (``ValueError`` naming it when it cannot be)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return _safetensors(path)
    from drc_jax.clip.torchscript import is_torchscript

    if is_torchscript(path):
        from drc_jax.clip.load import read_state_dict

        sd = read_state_dict(path)
        return LazyCheckpoint(path, tuple(sd), {k: v.shape for k, v in sd.items()}, sd.__getitem__)
    return _torch(path)


def _safetensors(path: Path) -> LazyCheckpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np"):  # validates the header
            pass
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > MAX_HEADER_BYTES:
                raise ValueError(f"header of {n} bytes")
            header = json.loads(f.read(n))
    except (SafetensorError, OSError, ValueError, struct.error, RecursionError) as e:
        raise ValueError(
            f"{path}: not a readable safetensors file ({e}); re-download or re-convert it"
        ) from e
    header.pop("__metadata__", None)
    keys = tuple(sorted(header, key=lambda k: header[k]["data_offsets"][0]))

    def get(key: str) -> np.ndarray:
        with safe_open(str(path), framework="np") as f:
            try:
                return np.asarray(f.get_tensor(key), np.float32)
            except (TypeError, ValueError):  # bfloat16 has no numpy dtype: read via jax
                with safe_open(str(path), framework="flax") as fj:
                    return np.asarray(fj.get_tensor(key).astype("float32"))

    return LazyCheckpoint(path, keys, {k: tuple(header[k]["shape"]) for k in keys}, get)


def _torch(path: Path) -> LazyCheckpoint:
    import torch

    from drc_jax.clip.convert import unwrap_state_dict

    try:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy non-zip format cannot be mapped
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any refusal is reported with the file name
        raise ValueError(f"{path}: cannot read as a tensor-only torch checkpoint ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    sd = {k: v for k, v in unwrap_state_dict(obj).items() if isinstance(v, torch.Tensor)}
    return LazyCheckpoint(
        path,
        tuple(sd),
        {k: tuple(v.shape) for k, v in sd.items()},
        lambda k: sd[k].detach().to(torch.float32).numpy(),
    )
