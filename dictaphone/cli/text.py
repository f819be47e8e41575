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


def clip_format(clip) -> str:
    """``wav 48 kHz mono``: a clip's format, rate and channels as `list` shows them."""
    fmt = clip.format or "?"
    if clip.samplerate:
        rate = clip.samplerate
        fmt += f" {rate // 1000 if rate % 1000 == 0 else rate / 1000:g} kHz"
    if clip.channels:
        fmt += f" {channels_name(clip.channels)}"
    return fmt


class ClipLines:
    """The clips as aligned text lines (the `list` table) that can be printed a few at a
    time: the column widths come from the first clips seen (names longer than the column
    are cut with '…'), so the first screenful shows before the rest is read.

    ``width`` is the terminal's; a transcript column gets what the others leave."""

    NAME_MAX = 40

    def __init__(self, sample, width: int | None = None):
        sample = list(sample)
        self.name_width = max([4] + [min(self.NAME_MAX, len(c.name)) for c in sample])
        self.format_width = max([6] + [len(clip_format(c)) for c in sample])
        used = self.name_width + 19 + 10 + 9 + self.format_width + 2 * 4
        self.room = (width or 80) - used - 2
        self.words = self.room >= 12 and any(c.transcript for c in sample)

    def header(self) -> str:
        line = (f"{'name':<{self.name_width}}  {'date':<19}  {'duration':>10}  {'size':>9}  "
                f"{'format':<{self.format_width}}")
        return (line + "  transcript") if self.words else line.rstrip()

    def line(self, c) -> str:
        name = c.name if len(c.name) <= self.name_width else c.name[:self.name_width - 1] + "…"
        date = (c.created or "")[:19].replace("T", " ")
        dur = clock(c.duration) if c.duration is not None else "?"
        size = "missing" if c.missing else human_size(c.size)
        line = f"{name:<{self.name_width}}  {date:<19}  {dur:>10}  {size:>9}  {clip_format(c):<{self.format_width}}"
        if self.words and c.transcript:
            text = c.transcript
            line += "  " + (text if len(text) <= self.room else text[:self.room - 1].rstrip() + "…")
        return line.rstrip()
