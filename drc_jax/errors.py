"""The one error type for mistakes a user can fix; the CLIs print it as one ``error:`` paragraph."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message names the flag/file/row and what to do."""
