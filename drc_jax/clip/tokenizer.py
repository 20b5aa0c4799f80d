"""CLIP BPE tokenizer: transformers' fast ``CLIPTokenizer`` with OpenAI's 77-token convention.

Checkpoints without tokenizer files get one built from CLIP's ``bpe_simple_vocab_16e6.txt.gz``
(the data file of ``open_clip_torch``, never imported) as OpenAI's ``SimpleTokenizer`` builds it,
cached as ``tokenizers`` JSON.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from drc_jax.clip.config import BOS_TOKEN_ID, EOT_TOKEN_ID

CONTEXT_LENGTH = 77
LENGTH_BUCKETS = (16, 32, 48, 64, 77)
BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
BOS_TOKEN, EOT_TOKEN = "<|startoftext|>", "<|endoftext|>"

log = logging.getLogger(__name__)


def find_bpe_vocab() -> Path:
    """CLIP's BPE merges file: ``$DRC_JAX_CLIP_BPE``, else the ``open_clip`` package's copy."""
    env = os.environ.get("DRC_JAX_CLIP_BPE")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"DRC_JAX_CLIP_BPE={env} does not exist")
        return Path(env)
    spec = importlib.util.find_spec("open_clip")  # without importing it
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / BPE_FILENAME
            if p.is_file():
                return p
    raise FileNotFoundError(
        f"CLIP's BPE vocabulary ({BPE_FILENAME}) was not found. Install the packaged copy with "
        "`pip install --no-deps open_clip_torch`, or set DRC_JAX_CLIP_BPE to the file's path."
    )


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode map (as in OpenAI's simple_tokenizer)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


@functools.lru_cache(maxsize=2)
def tokenizer_from_bpe(bpe_path: str | None = None):
    """transformers ``CLIPTokenizer`` built from CLIP's BPE merges file (vocab of 49408)."""
    from transformers import CLIPTokenizer

    path = Path(bpe_path) if bpe_path else find_bpe_vocab()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tok = CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=merges)
    assert tok.bos_token_id == BOS_TOKEN_ID and tok.eos_token_id == EOT_TOKEN_ID
    return tok


class BackendTokenizer:
    """A ``tokenizers.Tokenizer`` with the transformers API that :class:`ClipTokenizer` uses."""

    def __init__(self, backend):
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        self.bos_token_id = backend.token_to_id(BOS_TOKEN)
        self.eos_token_id = backend.token_to_id(EOT_TOKEN)

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict:
        enc = self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in enc]}


def cached_tokenizer_from_bpe(cache_dir: str | os.PathLike | None = None) -> BackendTokenizer:
    """:func:`tokenizer_from_bpe`'s tokenizer, built once, then read from ``cache_dir``."""
    from tokenizers import Tokenizer

    from drc_jax.defaults import cache_path

    bpe = find_bpe_vocab()
    versions = ",".join(importlib.metadata.version(p) for p in ("tokenizers", "transformers"))
    key = hashlib.sha256(bpe.read_bytes() + versions.encode()).hexdigest()[:20]
    path = Path(cache_dir or cache_path("tokenizers")) / f"clip-bpe-{key}.json"
    if path.is_file():
        try:
            return BackendTokenizer(Tokenizer.from_file(str(path)))
        except Exception as e:  # noqa: BLE001 - a damaged cache file is rebuilt, never fatal
            log.warning("ignoring unreadable tokenizer cache %s (%s)", path, e)
    backend = tokenizer_from_bpe(str(bpe)).backend_tokenizer
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            f.write(backend.to_str())
        os.replace(f.name, path)
    except OSError as e:
        log.warning("could not cache the CLIP tokenizer at %s (%s)", path, e)
    return BackendTokenizer(Tokenizer.from_str(backend.to_str()))


def load_tokenizer(
    model_dir: str | Path | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
):
    """The tokenizer of a HF model directory if it has one, else CLIP's BPE tokenizer."""
    if model_dir is not None:
        d = Path(model_dir)
        if (d / "tokenizer.json").is_file() or (d / "vocab.json").is_file():
            from transformers import CLIPTokenizer

            return CLIPTokenizer.from_pretrained(str(d))
    if not use_cache:
        return tokenizer_from_bpe()
    return cached_tokenizer_from_bpe(Path(cache_dir) / "tokenizers" if cache_dir else None)


class ClipTokenizer:
    """Texts -> int32 ids ``[BOS, ..., EOT, 0, ...]``; long texts are cut to 77 keeping EOT."""

    def __init__(self, hf_tokenizer, context_length: int = CONTEXT_LENGTH):
        self.hf = hf_tokenizer
        self.context_length = context_length
        self.bos = hf_tokenizer.bos_token_id
        self.eot = hf_tokenizer.eos_token_id

    @property
    def vocab_size(self) -> int:
        """Token ids this tokenizer can produce (the embedding table needs as many rows)."""
        return len(self.hf)

    def _content(self, texts: list[str]) -> list[list[int]]:
        if isinstance(texts, str):
            raise TypeError("expected a list of strings, got a single string")
        return self.hf(list(texts), add_special_tokens=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` needs including BOS and EOT (> 77 means it will be truncated)."""
        return len(self._content([text])[0]) + 2

    def __call__(self, texts: list[str], length: int | None = None) -> np.ndarray:
        """(B, L) int32; ``L`` = ``length`` or the shortest of :data:`LENGTH_BUCKETS` that fits."""
        content = self._content(texts)
        keep = self.context_length - 2
        seqs = [[self.bos, *c[:keep], self.eot] for c in content]
        need = max((len(s) for s in seqs), default=2)
        if length is None:
            length = next(b for b in (*LENGTH_BUCKETS, self.context_length) if b >= need)
            length = min(length, self.context_length)
        if need > length:
            raise ValueError(f"texts need {need} tokens but length={length}")
        ids = np.zeros((len(seqs), length), np.int32)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
        return ids
