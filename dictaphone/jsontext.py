"""One JSON reader for what other hands may have written: sidecars (clip metadata,
transcripts, markers), the registry's files and replies, and the page's request bodies.

``json.loads`` recurses once per level of nesting: a file of 100,000 ``[`` raises
RecursionError, which is not a ValueError, so every "damaged file" handler let it
through (``list``, ``search`` and the page failed on one bad sidecar). Here any nesting
too deep to parse is a ValueError like any other malformed JSON. The decoder's own
recursion check is the bound for files (it costs nothing; measuring the depth of a
1.4 MB transcript first took 0.13 s, more than the parse); small inputs from outside
(request bodies) can be held to a tighter ``max_depth`` measured before parsing.
Nothing this project writes is more than five levels deep.
"""

from __future__ import annotations

import json
import re

#: a request body deeper than this is not one of ours
MAX_DEPTH = 32

# A JSON string (its escapes included): brackets inside it are text, not nesting.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in the JSON ``text`` (strings skipped), without
    recursion."""
    level = deepest = 0
    for c in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if c in "[{":
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


def loads(data: str | bytes | bytearray, max_depth: int | None = None):
    """``json.loads``, but a ValueError (never RecursionError) for nesting too deep to parse
    or deeper than ``max_depth``, and for bytes that are not UTF-8."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"not UTF-8: {e}") from None
    if max_depth is not None and depth(data) > max_depth:
        raise ValueError(f"JSON nested more than {max_depth} levels deep")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def load_file(path, max_depth: int | None = None):
    """The JSON in the file ``path``: OSError if it cannot be read, ValueError if it is not
    JSON (or is nested too deeply, or is not UTF-8)."""
    with open(path, "rb") as f:
        return loads(f.read(), max_depth)
