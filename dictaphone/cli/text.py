"""Durations, sizes and channel counts as people read them (no rich: the summary line of
a quiet recording must not pay for importing it)."""

from __future__ import annotations


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def clock(seconds: float) -> str:
    """1:02:03.4 or 02:03.4: a recorded duration as people read it."""
    tenths = int(seconds * 10)
    h, rest = divmod(tenths, 36000)
    m, rest = divmod(rest, 600)
    s, t = divmod(rest, 10)
    return f"{h}:{m:02d}:{s:02d}.{t}" if h else f"{m:02d}:{s:02d}.{t}"


def channels_name(n: int) -> str:
    return {1: "mono", 2: "stereo"}.get(n, f"{n} ch")
