"""Text from outside (an LLM's answer, a file name, a query) parsed with bounds and made safe to
print: a terminal never receives an escape sequence or control character from data."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

MAX_JSON_DEPTH = 32
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_ANSI = re.compile(  # CSI, OSC (to BEL or ST) and two-byte escapes; C1 CSI too
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]"
)
_BIDI = frozenset("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e") | frozenset(
    "\u2066\u2067\u2068\u2069"
)


def json_loads(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads``; ``ValueError``, not ``RecursionError``, for nesting past ``max_depth``."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", errors="replace")
    depth = deepest = 0
    for ch in _STRINGS.sub("", text):
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > max_depth:
                    raise ValueError(f"JSON nested deeper than {max_depth} levels")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except RecursionError as e:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from e


def _unsafe(ch: str) -> bool:
    return ch in _BIDI or unicodedata.category(ch) == "Cc"


def printable(text: object, *, newlines: bool = False) -> str:
    """``text`` without ANSI escapes, control or bidi characters (``newlines`` keeps ``\\n``)."""
    s = _ANSI.sub("", str(text)).replace("\t", " ")
    keep = "\n" if newlines else ""
    return "".join(ch for ch in s if ch in keep or not _unsafe(ch))


def terminal_safe_json(s: str) -> str:
    """JSON text with the control / bidi characters ``ensure_ascii=False`` leaves raw escaped."""
    return "".join(f"\\u{ord(ch):04x}" if _unsafe(ch) and ch not in "\n\r\t" else ch for ch in s)
