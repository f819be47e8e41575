"""One way to write a moment of a recording, for every place that shows one.

``clock(seconds, places)``: ``0:06.5``, ``12:03.0``, ``1:02:03.4``: minutes without a
leading zero, seconds always two digits, hours only from the first hour, and ``places``
decimals, cut (not rounded) as a stopwatch does, so a moment never reads later than it
is and 59.96 s is ``0:59.9``, not ``0:60.0``. The precision is the place's: the meter, the
summary, a clip's length and the page take tenths; ``marks`` milliseconds (a marker is
exact to the frame, and a label track is made from it); search hits and transcript lines
whole seconds. The page's JavaScript ``clock`` writes the same text (tests/test_web.py
compares the two). Container conventions keep their own forms: chapter comments
``00:01:23.456``, SRT ``00:01:23,456``.
"""

from __future__ import annotations

import math


def clock(seconds: float, places: int = 1) -> str:
    """``seconds`` as ``M:SS`` (``H:MM:SS`` from an hour) with ``places`` decimals (0 to 3)."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    scale = 10 ** places
    # (+1e-6: 6.573 * 1000 is 6572.999…, which must read 6.573)
    units = int(math.floor(max(0.0, seconds) * scale + 1e-6))
    whole, fraction = divmod(units, scale)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    text = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    return f"{text}.{fraction:0{places}d}" if places else text
