"""System prompts for the LLM decomposer: constant, so SGLang's prefix cache reuses their KV.

``PROMPT_VERSION`` hashes the prompts and schemas: editing either invalidates cached answers.
"""

from __future__ import annotations

import hashlib
import json

from drc_jax.decompose.types import MERGED_SCHEMA, SPLIT_SCHEMA, STRENGTH_SCHEMA

_RULES = """\
Definitions:
- negated: true if the caption says that something is NOT in the image or video.
- aff: the caption with the negated part removed; it must not mention the negated thing.
- neg: the negated concept only, as a short noun phrase ("a chair", "dancing", "a person").
- cf: the counterfactual: aff with neg present ("a man in a kitchen with a chair").
If negated is false: aff = the caption, neg = "", cf = the caption."""

# The paper's strength estimator (eq. 4): exactly three classes; whether a caption is negated is
# the decomposer prompt's call, so the two-prompt mode has no "none" to disagree with it.
_PAPER_STRENGTHS = """\
strength:
- "strong": explicit negation markers ("no", "without", "not a", "none", "nowhere", "devoid of").
- "moderate": hedged constructions ("doesn't have", "lacks", "isn't visible", "missing").
- "weak": implicit absence ("appears absent", "empty", "unoccupied")."""
_STRENGTH_RULES = (
    _PAPER_STRENGTHS
    + """
- "none": the caption negates nothing."""
)

_EXAMPLES = """\
Examples:
"A man in a kitchen is making pizzas, but there is no chair in sight." ->
{"negated": true, "aff": "A man in a kitchen is making pizzas.", "neg": "a chair", \
"cf": "A man in a kitchen is making pizzas with a chair", "strength": "strong"}
"No dancing takes place in this video; instead, a person is connecting something." ->
{"negated": true, "aff": "A person is connecting something.", "neg": "dancing", \
"cf": "A person is connecting something while dancing", "strength": "strong"}
"A kitchen is equipped with a stove and sink, but lacks a chair." ->
{"negated": true, "aff": "A kitchen is equipped with a stove and sink.", "neg": "a chair", \
"cf": "A kitchen is equipped with a stove and sink with a chair", "strength": "moderate"}
"Two dogs play in the snow." ->
{"negated": false, "aff": "Two dogs play in the snow.", "neg": "", \
"cf": "Two dogs play in the snow.", "strength": "none"}"""

MERGED_SYSTEM = (
    "You split image and video search queries for negation-aware retrieval. For the caption "
    "given by the user, answer with one JSON object with the fields negated, aff, neg, cf and "
    f"strength.\n\n{_RULES}\n\n{_STRENGTH_RULES}\n\n{_EXAMPLES}"
)

DECOMPOSER_SYSTEM = (
    "You split image and video search queries for negation-aware retrieval. For the caption "
    "given by the user, answer with one JSON object with the fields negated, aff, neg and cf."
    f"\n\n{_RULES}"
)

STRENGTH_SYSTEM = (
    "You rate how strongly an image or video search query negates something. For the caption "
    'given by the user, answer with one JSON object {"strength": ...}.'
    f"\n\n{_PAPER_STRENGTHS}"
)

PROMPT_VERSION = hashlib.sha256(
    json.dumps(
        [
            MERGED_SYSTEM,
            DECOMPOSER_SYSTEM,
            STRENGTH_SYSTEM,
            MERGED_SCHEMA,
            SPLIT_SCHEMA,
            STRENGTH_SCHEMA,
        ],
        sort_keys=True,
    ).encode()
).hexdigest()[:12]
