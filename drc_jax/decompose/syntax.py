"""Search-box ``-term`` syntax and user overrides (aff / neg / strength / exclude) of a
:class:`Decomposition`; the CLI and the search server both go through :func:`apply_overrides`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from drc_jax.decompose.morphology import concept_phrase
from drc_jax.decompose.types import STRENGTHS, Decomposition, DecompositionError
from drc_jax.vocab import NEUTRAL_AFF

# "-sofa", '-"red car"' at the start or after white space; not "t-shirt", "-5", "- ".
_MINUS_TERM = re.compile(r"""(?:(?<=\s)|^)-(?:"([^"]+)"|(?=[^\W\d_])([\w'’-]+))""")


def split_exclusions(query: str) -> tuple[str, tuple[str, ...]]:
    """``"cat -sofa -snow"`` -> ``("cat", ("a sofa", "snow"))``; a quoted ``-"red car"`` stays as
    written."""
    terms: list[str] = []

    def take(m: re.Match) -> str:
        terms.append(m.group(1).strip() if m.group(1) else concept_phrase(m.group(2)))
        return " "

    text = " ".join(_MINUS_TERM.sub(take, query).split())
    return text, tuple(dict.fromkeys(t for t in terms if t))


def counterfactual(aff: str, negs: Iterable[str]) -> str:
    """aff with the negated concepts present ("a dog with a sofa")."""
    negs = [n for n in negs if n]
    base = aff.rstrip(" .!?,;:") or NEUTRAL_AFF
    return f"{base} with {' and '.join(negs)}" if negs else aff


def apply_overrides(
    dec: Decomposition,
    *,
    aff: str | None = None,
    neg: str | None = None,
    strength: str | None = None,
    exclude: Iterable[str] = (),
) -> Decomposition:
    """``dec`` with a user's corrections; DecompositionError naming a bad value.

    ``neg`` replaces every concept ("" removes negation), ``exclude`` appends concepts, ``aff``
    replaces the affirmative part (empty: NEUTRAL_AFF). ``strength="none"`` gives plain CLIP on
    the caption, or on ``aff`` if given; a newly negated record defaults to "strong".
    """
    if strength is not None and strength not in STRENGTHS:
        raise DecompositionError(f"strength must be one of {STRENGTHS}, got {strength!r}")
    negs = list(dec.negs)
    if neg is not None:
        negs = [neg.strip()] if neg.strip() else []
    negs += [x.strip() for x in exclude if x.strip() and x.strip() not in negs]
    if strength == "none" or not negs:
        return Decomposition.plain(aff.strip() if aff is not None and aff.strip() else dec.caption)
    new_aff = dec.aff if dec.negated else split_exclusions(dec.caption)[0]
    if aff is not None:
        new_aff = aff
    new_aff = new_aff.strip() or NEUTRAL_AFF
    if dec.negated and new_aff == dec.aff and negs[0] == dec.neg:
        cf = dec.cf
    else:
        cf = counterfactual(new_aff, negs[:1])
    st = strength or (dec.strength if dec.negated else "strong")
    return Decomposition(dec.caption, True, new_aff, negs[0], cf, st, tuple(negs))


def decompose_queries(
    decomposer, queries: Sequence[str], exclude: Iterable[str] = ()
) -> list[Decomposition]:
    """Decompose search-box queries with any Decomposer; ``-term``s and ``exclude`` are split
    off first (an LLM need not know the syntax), and each record keeps the query as typed."""
    exclude = [concept_phrase(x) if len(x.split()) == 1 else x.strip() for x in exclude]
    split = [split_exclusions(q) for q in queries]
    decs = decomposer.decompose([text for text, _ in split])
    out = []
    for query, (_, terms), dec in zip(queries, split, decs, strict=True):
        dec = Decomposition(query, dec.negated, dec.aff, dec.neg, dec.cf, dec.strength, dec.negs)
        extra = [*terms, *exclude]
        out.append(apply_overrides(dec, exclude=extra) if extra else dec)
    return out
