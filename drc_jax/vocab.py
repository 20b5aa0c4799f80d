"""Labels every stage shares: the negation strengths and the neutral affirmative phrase."""

from __future__ import annotations

STRENGTHS = ("none", "weak", "moderate", "strong")
"""Negation strengths; a query's ``strength`` int is the index in this tuple."""

NEUTRAL_AFF = "a photo"
"""The aff of a query with nothing affirmative left ("not at night", "-snow")."""
