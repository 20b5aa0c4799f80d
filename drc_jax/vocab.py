"""Labels every stage shares: the negation strengths and the neutral affirmative phrase."""

from __future__ import annotations

STRENGTHS = ("none", "weak", "moderate", "strong")  # a query's ``strength`` int indexes it
NEUTRAL_AFF = "a photo"  # the aff of a query with nothing affirmative left ("-snow")
