"""Converted CLIP params cached with orbax, keyed by the sha256 of the weight files.

Digests are memoised by stat, so a restored entry is checked against the file once per process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from drc_jax import atomic
from drc_jax.clip.config import CLIPConfig, TextConfig, VisionConfig
from drc_jax.clip.convert import (
    HF_IGNORED,
    OPENAI_IGNORED,
    _hf_to_flax_key,
    expected_shapes,
    openai_to_hf,
    select_towers,
)
from drc_jax.clip.model import TOWER_PARAMS, TOWERS

log = logging.getLogger(__name__)

DIGESTS = "clip_digests.json"
MAX_DIGESTS = 512
SAMPLED_TENSORS = 5
_CHUNK = 1 << 22
_verified: set[tuple] = set()  # (entry, weight file stat) checked in this process


def _identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def _read_memo(memo: Path) -> dict:
    try:
        with open(memo, "rb") as f:
            table = json.loads(f.read(1 << 20))
        return table if isinstance(table, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: Path, cache_root: Path | None) -> str:
    """sha256 of ``path``'s bytes; remembered under ``cache_root`` (``None``: not remembered)."""
    name, ident = str(path.resolve()), _identity(path)
    memo = cache_root / DIGESTS if cache_root is not None else None
    table = _read_memo(memo) if memo is not None else {}
    known = table.get(name)
    if isinstance(known, list) and len(known) == 5 and known[:4] == ident:
        return str(known[4])
    digest = sha256_file(path)
    if memo is not None:
        table.pop(name, None)
        table[name] = [*ident, digest]
        table = dict(list(table.items())[-MAX_DIGESTS:])
        try:
            atomic.write(memo, json.dumps(table))
        except OSError as e:
            log.warning("could not remember weight digests in %s (%s)", memo, e)
    return digest


def content_key(files: list[Path], extra: str, cache_root: Path | None) -> str:
    """A key over ``extra`` and the full content of ``files`` (20 hex digits)."""
    h = hashlib.sha256(extra.encode())
    for f in files:
        h.update(file_digest(f, cache_root).encode())
    return h.hexdigest()[:20]


def config_to_json(cfg: CLIPConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def _config_from_json(s: str) -> CLIPConfig:
    d = json.loads(s)
    return CLIPConfig(
        vision=VisionConfig(**d["vision"]),
        text=TextConfig(**d["text"]),
        projection_dim=d["projection_dim"],
    )


def restore(entry: Path, towers: tuple[str, ...] = TOWERS, *, check_shapes: bool = True):
    """``(config, params of towers)`` of an entry, else ``None`` (``check_shapes``: the model's)."""
    import orbax.checkpoint as ocp

    try:
        cfg = _config_from_json((entry / "clip_config.json").read_text())
        path = (entry / "params").resolve()
        if check_shapes:
            want = expected_shapes(cfg, towers)
            target = unflatten_dict({k: np.empty(v, np.float32) for k, v in want.items()})
            as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
            params = ocp.Checkpointer(ocp.PyTreeCheckpointHandler()).restore(
                path, args=ocp.args.PyTreeRestore(target, as_numpy, partial_restore=True)
            )
            got = {k: tuple(np.shape(v)) for k, v in flatten_dict(params).items()}
            if got != {k: tuple(v) for k, v in want.items()}:
                raise ValueError("its params do not have the model's names and shapes")
        else:
            params = ocp.StandardCheckpointer().restore(path)
        params = select_towers(jax.tree.map(np.asarray, params), towers)
        missing = {n for t in towers for n in TOWER_PARAMS[t]} - set(params)
        if missing:
            raise ValueError(f"no params for {sorted(missing)}")
        return cfg, params
    except Exception as e:  # noqa: BLE001 - a broken cache entry is rebuilt, never fatal
        log.warning("ignoring unreadable CLIP param cache %s (%s)", entry, e)
        return None


def save(entry: Path, cfg: CLIPConfig, params) -> None:
    import orbax.checkpoint as ocp

    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=entry.name + ".tmp", dir=entry.parent))
    try:
        ckpt = ocp.StandardCheckpointer()
        ckpt.save((tmp / "params").resolve(), params)
        ckpt.wait_until_finished()
        (tmp / "clip_config.json").write_text(config_to_json(cfg))
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        tmp.rename(entry)
    except Exception as e:  # noqa: BLE001 - a failed save only costs a later conversion
        log.warning("could not cache CLIP params at %s (%s)", entry, e)
        shutil.rmtree(tmp, ignore_errors=True)


def _tower(key: str, kind: str) -> str:
    if kind == "openai":
        return "image" if key.startswith("visual.") else "text"
    return "image" if key.startswith(("vision_model.", "visual_projection.")) else "text"


def _sample(keys: list[str]) -> list[str]:
    n = len(keys)
    if n <= SAMPLED_TENSORS:
        return keys
    return [keys[round(i * (n - 1) / (SAMPLED_TENSORS - 1))] for i in range(SAMPLED_TENSORS)]


def matches_file(entry: Path, params, checkpoint, kind: str, towers: tuple[str, ...]) -> bool:
    """Whether ``params`` hold ``checkpoint``'s tensors at a few sampled keys (once per process)."""
    memo = (str(entry), *_identity(checkpoint.path))
    if memo in _verified:
        return True
    ignored = OPENAI_IGNORED if kind == "openai" else HF_IGNORED
    keys = [
        k
        for k in checkpoint.keys
        if k.split(".")[-1] not in ignored and k not in ignored and _tower(k, kind) in towers
    ]
    flat = flatten_dict(params)
    for key in _sample(keys):
        hf = {key: checkpoint.get(key)}
        if kind == "openai":
            hf = openai_to_hf(hf)
        for name, value in hf.items():
            path, want = _hf_to_flax_key(name, np.asarray(value, np.float32))
            got = flat.get(path)
            if got is None or not np.array_equal(np.asarray(got), want):
                log.warning(
                    "CLIP param cache %s does not hold %s's %s; converting again",
                    entry,
                    checkpoint.path,
                    key,
                )
                return False
    _verified.add(memo)
    return True
