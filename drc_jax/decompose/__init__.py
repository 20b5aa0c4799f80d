"""Caption decomposition for DRC: aff / neg / cf / strength per caption, behind one interface.

    from drc_jax.decompose import get_decomposer
    d = get_decomposer("rules")                       # embedded default: no model, no GPU
    d = get_decomposer("sglang", url="http://127.0.0.1:30000")   # Qwen2.5-14B-Instruct via SGLang
    decs = d.decompose(["a dog not on a beach", "two cats"])
    d.stats   # {"captions", "negated", "fallbacks", "requests", "cache_hits", ...}
    d.close()
    apply_overrides(decs[0], exclude=["a leash"])     # user corrections: aff/neg/strength/exclude
    decompose_queries(d, ["cat -sofa"], exclude=["a blanket"])   # -term syntax, any backend

Both backends implement :class:`Decomposer` and return one :class:`Decomposition` per caption,
in order, and never raise for one bad caption (an unusable LLM answer falls back to
``negated=False``: plain CLIP scoring).
"""

from __future__ import annotations

from drc_jax import defaults
from drc_jax.decompose.jsonl import load_decompositions_jsonl, write_decompositions_jsonl
from drc_jax.decompose.protocol import Decomposer
from drc_jax.decompose.rules import RuleDecomposer
from drc_jax.decompose.sglang import (
    SGLangConfig,
    SGLangDecomposer,
    SGLangRequestError,
    SGLangUnavailableError,
)
from drc_jax.decompose.syntax import (
    NEUTRAL_AFF,
    apply_overrides,
    decompose_queries,
    split_exclusions,
)
from drc_jax.decompose.types import (
    DECOMPOSITION_SCHEMA,
    MERGED_SCHEMA,
    STRENGTHS,
    Decomposition,
    DecompositionError,
)

BACKENDS = defaults.DECOMPOSERS


def get_decomposer(backend: str = "rules", **kwargs) -> Decomposer:
    """A decomposer by name.

    ``"rules"`` takes no options. ``"sglang"`` takes the fields of
    :class:`drc_jax.decompose.sglang.SGLangConfig` (url, model, mode, concurrency, timeout_s,
    retries, backoff_s, max_tokens, api_key, cache_dir).
    """
    if backend == "rules":
        if kwargs:
            raise ValueError(f"the rules decomposer takes no options, got {sorted(kwargs)}")
        return RuleDecomposer()
    if backend == "sglang":
        unknown = set(kwargs) - set(SGLangConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown sglang option(s) {sorted(unknown)}; "
                f"known: {sorted(SGLangConfig.__dataclass_fields__)}"
            )
        return SGLangDecomposer(SGLangConfig(**kwargs))
    raise ValueError(f"unknown decomposer backend {backend!r}; choose one of {BACKENDS}")


__all__ = [
    "BACKENDS",
    "DECOMPOSITION_SCHEMA",
    "MERGED_SCHEMA",
    "STRENGTHS",
    "NEUTRAL_AFF",
    "Decomposer",
    "Decomposition",
    "DecompositionError",
    "RuleDecomposer",
    "SGLangConfig",
    "SGLangDecomposer",
    "SGLangRequestError",
    "SGLangUnavailableError",
    "apply_overrides",
    "decompose_queries",
    "get_decomposer",
    "load_decompositions_jsonl",
    "split_exclusions",
    "write_decompositions_jsonl",
]
