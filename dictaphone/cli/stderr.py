"""Lines for people on stderr, which may have nobody to read them (a terminal that hung
up): a failing write must never turn a finished recording into a traceback."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    try:
        print(f"dictaphone: warning: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr is gone (a terminal that hung up): the warning has no reader


def say_safely(line: str) -> None:
    """A line on stderr that may have nobody to read it (a terminal that hung up): a
    failing write must not turn a finished recording into a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
