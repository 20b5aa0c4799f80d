"""Caption decomposition for DRC: aff / neg / cf / strength per caption, behind one interface.

    d = get_decomposer("rules")  # or get_decomposer("sglang", url=...)
    decs = decompose_queries(d, ["a dog not on a beach", "cat -sofa"], exclude=["a blanket"])
    d.close()

Backends implement :class:`Decomposer`; a caption they cannot split comes back ``negated=False``.
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
    """A decomposer by name: "rules" (no options) or "sglang" (the fields of SGLangConfig)."""
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
