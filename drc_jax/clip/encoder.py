"""Data-parallel CLIP encoding: the object :func:`drc_jax.clip.load_clip` returns.

Batches are sharded along the mesh's ``"data"`` axis, params and outputs replicated. The last
chunk is zero-padded to ``devices * 2**k`` rows so few shapes compile. With ``split=True`` each
process of a multi-host run passes its own rows and gets every process's, in process order.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from drc_jax.clip.config import EOT_TOKEN_ID, CLIPConfig
from drc_jax.clip.model import CLIP, TOWERS
from drc_jax.clip.preprocess import preprocess as _preprocess
from drc_jax.clip.tokenizer import LENGTH_BUCKETS, ClipTokenizer
from drc_jax.parallel import batch_sharding, make_mesh, pad_batch, replicated

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@functools.lru_cache(maxsize=32)
def _encode_fn(config: CLIPConfig, dtype: str, mesh: Mesh, kind: str):
    model = CLIP(config, DTYPES[dtype])
    method = CLIP.encode_image if kind == "image" else CLIP.encode_text

    def encode(params, x):
        return model.apply({"params": params}, x, method=method)

    return jax.jit(
        encode,
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=replicated(mesh),
    )


def cast_params(params, dtype: str):
    """bfloat16 mode keeps matrices (kernels, embedding tables) in bf16, vectors in float32."""
    if dtype == "float32":
        return jax.tree.map(lambda x: np.asarray(x, np.float32), params)
    return jax.tree.map(
        lambda x: jnp.asarray(x, jnp.bfloat16) if np.ndim(x) >= 2 else np.asarray(x, np.float32),
        params,
    )


def _chunk_sizes(n: int, batch_size: int, multiple: int) -> list[int]:
    """Full ``batch_size`` chunks, then the smallest ``multiple * 2**k`` holding the rest."""
    sizes = [batch_size] * (n // batch_size)
    rest = n % batch_size
    if rest:
        s = multiple
        while s < rest:
            s *= 2
        sizes.append(min(s, batch_size))
    return sizes


@dataclasses.dataclass
class ClipEncoder:
    """A loaded CLIP: params on the mesh, tokenizer, encode functions (numpy out).

    ``towers`` names the loaded towers; encoding with a missing one raises.
    """

    config: CLIPConfig
    params: object
    tokenizer: ClipTokenizer
    dtype: str
    weights_id: str
    mesh: Mesh = dataclasses.field(default_factory=make_mesh)
    batch_size: int = 64
    preprocess_mode: str = "spacevlm"
    loaded_from_cache: bool = False
    towers: tuple[str, ...] = TOWERS

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        n = self.mesh.size
        self.batch_size = max(n, -(-self.batch_size // n) * n)
        self.params = jax.device_put(cast_params(self.params, self.dtype), replicated(self.mesh))

    @property
    def image_size(self) -> int:
        return self.config.vision.image_size

    @property
    def embed_dim(self) -> int:
        return self.config.projection_dim

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with BOS/EOT; more than 77 means it is truncated when encoded."""
        return self.tokenizer.count_tokens(text)

    def _run(
        self, kind: str, x: np.ndarray, batch_size: int | None = None, split: bool = False
    ) -> np.ndarray:
        if kind not in self.towers:
            raise ValueError(
                f"this CLIP encoder ({self.weights_id}) was loaded with towers={self.towers}, "
                f"without the {kind} tower; load it with load_clip(..., towers={TOWERS}) to "
                f"encode {kind}s"
            )
        fn = _encode_fn(self.config, self.dtype, self.mesh, kind)
        bs = batch_size or self.batch_size
        if split and jax.process_count() > 1:
            return self._run_split(fn, x, bs)
        outs, start = [], 0
        for size in _chunk_sizes(len(x), bs, self.mesh.size):
            chunk, n_valid = pad_batch(x[start : start + size], size)
            outs.append((fn(self.params, self._to_global(chunk)), n_valid))
            start += n_valid
        if not outs:
            return np.zeros((0, self.embed_dim), np.float32)
        return np.concatenate([np.asarray(o)[:n] for o, n in outs], axis=0)

    def _run_split(self, fn, x: np.ndarray, batch_size: int) -> np.ndarray:
        """This process's rows ``x`` in, every process's outputs out (process 0's rows first)."""
        nproc = jax.process_count()
        owners = [d.process_index for d in self.mesh.devices.flat]
        if owners != sorted(owners):
            raise ValueError(
                f"split encoding needs the mesh's devices grouped by process: {owners}"
            )
        local = self.mesh.size // nproc
        local_bs = max(local, batch_size // nproc // local * local)
        sharding = batch_sharding(self.mesh)
        outs, start = [], 0
        for size in _chunk_sizes(len(x), local_bs, local):
            chunk, n_valid = pad_batch(x[start : start + size], size)
            shape = (size * nproc, *chunk.shape[1:])
            g = jax.make_array_from_process_local_data(sharding, chunk, shape)
            outs.append((fn(self.params, g), size, n_valid))
            start += n_valid
        blocks = [[] for _ in range(nproc)]
        for out, size, n in outs:
            out = np.asarray(out)
            for q in range(nproc):
                blocks[q].append(out[q * size : q * size + n])
        rows = [b for q in blocks for b in q]
        return np.concatenate(rows) if rows else np.zeros((0, self.embed_dim), np.float32)

    def _to_global(self, chunk: np.ndarray):
        sharding = batch_sharding(self.mesh)
        if jax.process_count() == 1:
            return jax.device_put(chunk, sharding)
        return jax.make_array_from_callback(chunk.shape, sharding, lambda idx: chunk[idx])

    def encode_images(
        self, pixels: np.ndarray, batch_size: int | None = None, *, split: bool = False
    ) -> np.ndarray:
        """(B, H, W, 3) CLIP-normalised float32 NHWC -> (B, D) unit-norm float32."""
        pixels = np.asarray(pixels, np.float32)
        s = self.image_size
        if pixels.ndim != 4 or pixels.shape[1:] != (s, s, 3):
            raise ValueError(f"expected pixels of shape (B, {s}, {s}, 3), got {pixels.shape}")
        return self._run("image", pixels, batch_size, split)

    def encode_token_ids(self, ids: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """(B, L) int32 CLIP ids, each row ``BOS ... EOT`` then 0-padding -> (B, D) unit-norm.

        Each row runs at the shortest length bucket holding it (same result under the causal mask).
        """
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"expected an integer (B, L) array of token ids, got {ids.dtype} {ids.shape}"
            )
        ctx = self.config.context_length
        eos = self.config.text.eos_token_id
        eot_id = EOT_TOKEN_ID if eos is None else eos
        has_eot = (ids == eot_id).any(axis=1)
        if not has_eot.all():
            bad = np.flatnonzero(~has_eot)[:5].tolist()
            raise ValueError(f"token id rows {bad} contain no EOT token ({eot_id})")
        pool = np.argmax(ids, axis=1) if eos is None else np.argmax(ids == eos, axis=1)
        if ids.shape[1] > ctx and (pool >= ctx).any():
            raise ValueError(f"token ids longer than the model's context of {ctx}")
        need = pool + 1
        buckets = np.array([b for b in LENGTH_BUCKETS if b < ctx] + [ctx])
        row_bucket = buckets[np.searchsorted(buckets, need)]
        out = np.empty((len(ids), self.embed_dim), np.float32)
        for length in np.unique(row_bucket):
            rows = np.flatnonzero(row_bucket == length)
            sub = np.zeros((len(rows), length), np.int32)
            w = min(length, ids.shape[1])
            sub[:, :w] = ids[rows, :w]
            out[rows] = self._run("text", sub, batch_size)
        return out

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Strings -> (B, D) unit-norm, truncated to 77 tokens keeping EOT; non-finite raises."""
        if isinstance(texts, str):
            raise TypeError("encode_texts expects a list of strings, got a single string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        out = self.encode_token_ids(
            self.tokenizer(texts, length=self.config.context_length), batch_size
        )
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
            raise ValueError(
                f"CLIP weights {self.weights_id} gave non-finite (NaN/inf) embeddings for "
                f"{bad.size} of {len(texts)} texts, e.g. {texts[bad[0]]!r}: the weights are "
                "damaged or incompatible; re-download or re-convert them"
            )
        return out

    def preprocess(self, images, mode: str | None = None) -> np.ndarray:
        """PIL images -> (B, S, S, 3) float32 (``mode`` "spacevlm" squash | "openai" crop)."""
        return _preprocess(images, mode or self.preprocess_mode, self.image_size)

    def encode_videos(
        self,
        frames: np.ndarray,
        renormalize: bool = True,
        batch_size: int | None = None,
        *,
        split: bool = False,
    ) -> np.ndarray:
        """(B, F, S, S, 3) frames -> (B, D): mean of unit-norm frame embeddings.

        ``renormalize=True`` (NegBench) L2-normalises the mean; ``False`` is SpaceVLM's raw mean.
        """
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 5:
            raise ValueError(f"expected frames of shape (B, F, S, S, 3), got {frames.shape}")
        b, f = frames.shape[:2]
        emb = self.encode_images(frames.reshape(b * f, *frames.shape[2:]), batch_size, split=split)
        mean = emb.reshape(-1, f, emb.shape[-1]).mean(axis=1)
        if renormalize:
            mean = mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)
        return mean.astype(np.float32)
