"""Bound the size and JSON depth of one input message, before it is parsed.

A producer can send anything: a message too large to echo into a decision, or JSON nested
deeper than orjson can write back (it reads 1,024 levels, writes 254). Such input goes to
the DLQ with the reason instead of failing an encode further down the flow.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["check_input", "json_depth"]

# A JSON string, escapes included: brackets inside strings are not nesting.
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST: Final = re.compile(rb"\{\}|\[\]")


def json_depth(raw: bytes, stop_above: int) -> int:
    """Return the nesting depth of JSON text, counting no further than `stop_above` + 1."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    # Each pass removes the innermost pairs: one C-speed pass per level, and flat data
    # with many small objects costs two or three passes, not a byte loop in Python.
    while brackets and depth <= stop_above:
        shorter = _INNERMOST.sub(b"", brackets)
        if len(shorter) == len(brackets):
            break  # unbalanced: the JSON parser names that problem
        brackets = shorter
        depth += 1
    return depth


def check_input(raw: bytes, max_bytes: int, max_depth: int, envelope: int = 0) -> str | None:
    """Return why a raw input message is refused (size, depth), or None when it passes.

    `envelope` is the number of levels that wrap the value (a replay line's object).
    """
    size = len(raw)
    if size > max_bytes:
        return f"value: {size:,} bytes, more than input.max_message_bytes ({max_bytes:,})"
    limit = max_depth + envelope
    # Cheap pre-check: fewer opening brackets than the limit cannot nest deeper than it.
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return None
    depth = json_depth(raw, limit)
    if depth > limit:
        return f"value: JSON nested more than input.max_json_depth ({max_depth}) levels deep"
    return None
