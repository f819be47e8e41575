"""Checks for the Python API's arguments, so a bad one is an InvalidArgumentError that
says what was expected, never a TypeError or OverflowError from deep inside.

The rule everywhere: None means "not given"; any other value is checked, so 0, "" and
NaN are refused instead of being taken for "not given".
"""

from __future__ import annotations

import math
import numbers

from .errors import InvalidArgumentError


def seconds(name: str, value, *, minimum: float = 0.0, maximum: float = math.inf,
            unit_hint: str = "") -> float | None:
    """``value`` as a finite number of seconds above zero and within [minimum, maximum];
    None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(f"{name} must be a number of seconds, not {value!r}{unit_hint}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond a float's range
        v = math.inf
    if math.isnan(v) or v <= 0:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, not {value!r}")
    if math.isinf(v) or v > maximum:
        limit = "finite" if maximum == math.inf else f"at most {maximum:g} s"
        raise InvalidArgumentError(f"{name} must be {limit}, not {value!r}")
    if v < minimum:
        raise InvalidArgumentError(f"{name} must be at least {minimum:g} s, not {value!r}")
    return v


def frames_of(name: str, secs: float | None, samplerate: int) -> int | None:
    """Seconds as whole frames at ``samplerate``; refused when that is less than one
    frame (it would silently mean nothing, or an empty file)."""
    if secs is None:
        return None
    n = int(round(secs * samplerate))
    if n < 1:
        raise InvalidArgumentError(
            f"{name} of {secs:g} s is less than one frame at {samplerate} Hz "
            f"(one frame is {1 / samplerate:.6g} s)")
    return n
