"""A user's corrections to a query's decomposition (aff / neg / strength), as one Decomposition.

The page and ``/api/search`` let a user fix a wrong split: name the concept to exclude, rewrite the
affirmative part or change the negation strength. :func:`override_decomposition` folds those into
the decomposer's answer; the counterfactual is rebuilt as the rule decomposer builds it ("aff
with neg"). Swappable for the decompose package's own overrides helper: same inputs, same record.
"""

from __future__ import annotations

from drc_jax.decompose import STRENGTHS, Decomposition

# An exclusion the user typed is explicit ("without"), the rule decomposer's "strong".
EXCLUDE_STRENGTH = "strong"


class OverrideError(ValueError):
    """Overrides that do not make a decomposition (e.g. a strength with nothing negated)."""


def override_decomposition(
    dec: Decomposition,
    *,
    aff: str | None = None,
    neg: str | None = None,
    strength: str | None = None,
) -> Decomposition:
    """``dec`` with the given fields replaced (``None`` keeps the decomposer's value).

    - ``neg`` non-empty: the query negates ``neg`` (strength ``strength``, else the decomposer's,
      else :data:`EXCLUDE_STRENGTH`); ``aff`` defaults to the decomposer's aff, or the whole
      caption when the decomposer found no negation.
    - ``neg=""``: nothing is negated; plain CLIP scores ``aff`` (or the caption), eq. 2.
    - ``strength`` alone re-weights an existing negation (one of weak / moderate / strong).
    """
    if aff is None and neg is None and strength is None:
        return dec
    if strength is not None and strength not in STRENGTHS[1:]:
        raise OverrideError(f"strength must be one of {list(STRENGTHS[1:])}, got {strength!r}")
    neg = dec.neg if neg is None else " ".join(neg.split())
    aff = (dec.aff if dec.negated else dec.caption) if aff is None else " ".join(aff.split())
    if not neg:
        if strength is not None:
            raise OverrideError("a strength needs a negated concept: give neg (what to exclude)")
        return Decomposition.plain(aff or dec.caption)
    if not aff:
        raise OverrideError(
            f"nothing affirmative left to search for (neg {neg!r}); give aff, e.g. 'a photo'"
        )
    strength = strength or (dec.strength if dec.negated else EXCLUDE_STRENGTH)
    return Decomposition(dec.caption, True, aff, neg, f"{aff} with {neg}", strength)
