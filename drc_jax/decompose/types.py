"""The Decomposition record, its JSON schemas and a small validator for them.

The schemas are flat, every field required, with no pattern/length keywords: XGrammar (SGLang's
default grammar backend) rejects or ignores those.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from drc_jax.vocab import STRENGTHS

FIELDS: tuple[str, ...] = ("caption", "negated", "aff", "neg", "cf", "strength", "negs")


class DecompositionError(ValueError):
    """A decomposition (from a model, a file or a caller) is malformed or makes no sense."""


@dataclass(frozen=True)
class Decomposition:
    """One caption split for DRC; ``negated=False`` means plain CLIP scoring.

    ``aff`` must not name a negated concept; ``cf`` is ``aff`` with ``neg`` present; ``strength``
    is "none" exactly when not negated. ``negs`` lists every concept and starts with ``neg``
    (empty ``negs`` becomes ``(neg,)``; ``negs`` alone sets ``neg``).
    """

    caption: str
    negated: bool
    aff: str
    neg: str
    cf: str
    strength: str
    negs: tuple[str, ...] = field(default=())

    def __post_init__(self):
        negs = tuple(self.negs)
        if self.negated and not negs and self.neg.strip():
            negs = (self.neg,)
        elif negs and not self.neg.strip():
            object.__setattr__(self, "neg", negs[0])
        object.__setattr__(self, "negs", negs)
        ok_negs = (
            bool(negs)
            and negs[0] == self.neg
            and all(isinstance(x, str) and x.strip() for x in negs)
            if self.negated
            else not negs
        )
        if (
            self.strength in _OK_STRENGTH[self.negated]
            and (not self.negated or self.neg.strip())
            and ok_negs
        ):
            return
        problems = sense_problems(asdict(self))
        if problems:
            raise DecompositionError(f"invalid Decomposition for {self.caption!r}: {problems}")

    @classmethod
    def plain(cls, caption: str) -> Decomposition:
        """The decomposition of a caption without negation (scored with plain CLIP)."""
        return cls(caption, False, caption, "", caption, "none")

    @property
    def cfs(self) -> tuple[str, ...]:
        """One counterfactual per negated concept: ``cf``, then "aff with <concept>"."""
        if not self.negated:
            return (self.cf,)
        base = self.aff.rstrip(" .!?,;:")
        return (self.cf,) + tuple(f"{base} with {n}" for n in self.negs[1:])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["negs"] = list(self.negs)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, obj: Any) -> Decomposition:
        """Build from a dict with FIELDS (``negs`` optional); DecompositionError if malformed."""
        legacy = isinstance(obj, dict) and "negs" not in obj
        problems = schema_problems(obj, _LEGACY_SCHEMA if legacy else DECOMPOSITION_SCHEMA)
        if problems:
            raise DecompositionError("; ".join(problems))
        return cls(**{k: tuple(obj[k]) if k == "negs" else obj[k] for k in FIELDS if k in obj})


def _object_schema(properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_STR = {"type": "string"}
_STRENGTH = {"type": "string", "enum": list(STRENGTHS)}
_RECORD = {
    "caption": _STR,
    "negated": {"type": "boolean"},
    "aff": _STR,
    "neg": _STR,
    "cf": _STR,
    "strength": _STRENGTH,
}

#: The full record (CLI output, JSONL files); ``negs`` lists every negated concept.
DECOMPOSITION_SCHEMA = _object_schema({**_RECORD, "negs": {"type": "array", "items": _STR}})
_LEGACY_SCHEMA = _object_schema(_RECORD)
#: What the merged prompt asks the model for (the caption is ours, not the model's).
MERGED_SCHEMA = _object_schema(
    {"negated": {"type": "boolean"}, "aff": _STR, "neg": _STR, "cf": _STR, "strength": _STRENGTH}
)
#: The paper's two-prompt mode: decomposer, then strength estimator.
SPLIT_SCHEMA = _object_schema(
    {"negated": {"type": "boolean"}, "aff": _STR, "neg": _STR, "cf": _STR}
)
#: The paper's strength estimator (eq. 4): strong / moderate / weak, never "none".
STRENGTH_SCHEMA = _object_schema({"strength": {"type": "string", "enum": list(STRENGTHS[1:])}})

_OK_STRENGTH = {False: ("none",), True: STRENGTHS[1:]}
_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


def schema_problems(obj: Any, schema: dict[str, Any]) -> list[str]:
    """Violations of one of the flat schemas above (empty when ``obj`` conforms)."""
    if not isinstance(obj, dict):
        return [f"expected a JSON object, got {type(obj).__name__}"]
    props = schema["properties"]
    problems = [f"missing field {k!r}" for k in schema["required"] if k not in obj]
    if schema.get("additionalProperties") is False:
        problems += [f"unexpected field {k!r}" for k in obj if k not in props]
    for key, spec in props.items():
        if key not in obj:
            continue
        value = obj[key]
        if not isinstance(value, _TYPES[spec["type"]]):
            problems.append(f"{key!r} must be a {spec['type']}, got {type(value).__name__}")
        elif "enum" in spec and value not in spec["enum"]:
            problems.append(f"{key!r} must be one of {spec['enum']}, got {value!r}")
        elif "items" in spec and not all(
            isinstance(v, _TYPES[spec["items"]["type"]]) for v in value
        ):
            problems.append(f"{key!r} must be a list of {spec['items']['type']}s")
    return problems


def max_field_chars(caption: str) -> int:
    """The longest ``aff`` / ``neg`` / ``cf`` an answer may give for ``caption``."""
    return 2 * len(caption) + 64


def length_problems(obj: dict[str, Any], caption: str) -> list[str]:
    """Text fields of an answer longer than :func:`max_field_chars` (never cached)."""
    cap = max_field_chars(caption)
    return [
        f"{k!r} is {len(obj[k])} characters, more than {cap} for a {len(caption)}-character caption"
        for k in ("aff", "neg", "cf")
        if isinstance(obj.get(k), str) and len(obj[k]) > cap
    ]


def sense_problems(obj: dict[str, Any]) -> list[str]:
    """Checks beyond the schema: negated needs neg and a strength; not negated, neither."""
    problems = []
    negs = list(obj.get("negs") or [])
    if (
        obj.get("negated")
        and negs
        and (negs[0] != obj.get("neg") or not all(isinstance(x, str) and x.strip() for x in negs))
    ):
        problems.append("negs must list non-empty concepts and start with neg")
    if not obj.get("negated") and negs:
        problems.append("not negated but negs is not empty")
    if obj.get("strength") not in STRENGTHS:
        problems.append(f"strength must be one of {STRENGTHS}, got {obj.get('strength')!r}")
    if obj.get("negated"):
        if not str(obj.get("neg", "")).strip():
            problems.append("negated but neg is empty")
        if obj.get("strength") == "none":
            problems.append("negated but strength is 'none'")
    elif obj.get("strength") not in (None, "none"):
        problems.append(f"not negated but strength is {obj.get('strength')!r}")
    return problems
