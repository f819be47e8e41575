"""Durations, sizes and channel counts as people read them (no rich: the summary line of
a quiet recording must not pay for importing it)."""

from __future__ import annotations


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def clock(seconds: float, places: int = 1) -> str:
    """0:02:03.4-style time (see dictaphone/timecode.py): the one format of every place."""
    from ..timecode import clock as timecode

    return timecode(seconds, places)


def channels_name(n: int) -> str:
    return {1: "mono", 2: "stereo"}.get(n, f"{n} ch")
