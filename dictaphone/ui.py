"""What people see on stderr: the live level meter and the summary line (rich).

The meter pulls the recorder's state at its own refresh rate (rich's Live runs a daemon
thread); nothing here is called from the audio or writer threads.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from .levels import to_dbfs

FLOOR_DBFS = -60.0  #: the left end of the bar


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


class Meter:
    """A two-line live meter: state, time, level bar, peak/RMS dBFS, clipping, size."""

    HOLD_SECONDS = 1.5
    CLIP_SECONDS = 2.0

    def __init__(self, recorder, console: Console, label: str, keys: bool):
        self.rec = recorder
        self.console = console
        self.label = label
        self.keys = keys
        self._hold = (FLOOR_DBFS, 0.0)
        self._clipped = (0, 0.0)
        self._live = Live(console=console, get_renderable=self.render, refresh_per_second=8,
                          transient=True, redirect_stdout=False, redirect_stderr=False)

    def __enter__(self):
        self._live.start()
        return self

    def __exit__(self, *exc):
        self._live.stop()

    def render(self) -> Group:
        rec, now = self.rec, time.monotonic()
        level = rec.level
        peak, rms = to_dbfs(level.peak), to_dbfs(level.rms)
        hold, since = self._hold
        if peak >= hold or now - since > self.HOLD_SECONDS:
            self._hold = hold, since = peak, now
        clipped, clip_at = self._clipped
        if level.clipped != clipped:
            self._clipped = (level.clipped, now)
            clip_at = now
        state = rec.state
        line = Text()
        if state == "paused":
            line.append("❚❚ PAUSED ", style="bold yellow")
        elif not rec.started:
            line.append("… WAITING ", style="bold cyan")
        else:
            line.append("● REC     ", style="bold red")
        line.append(clock(rec.duration), style="bold")
        line.append("  ")
        width = max(10, min(40, self.console.width - 60))
        line.append_text(self._bar(peak, rms, hold, width))
        line.append(f" peak {peak:6.1f}  rms {rms:6.1f} dBFS ")
        if now - clip_at < self.CLIP_SECONDS and clipped:
            line.append("CLIP", style="bold white on red")
        info = Text(style="dim")
        info.append(f"{self.label}  {human_size(rec.bytes_written)}")
        if rec.dropped_frames:
            info.append(f"  {rec.dropped_frames} dropped frames", style="bold red")
        if self.keys:
            info.append("   q stop · space pause/resume")
        return Group(line, info)

    @staticmethod
    def _bar(peak: float, rms: float, hold: float, width: int) -> Text:
        def cells(db):
            return int(round(max(0.0, min(1.0, (db - FLOOR_DBFS) / -FLOOR_DBFS)) * width))

        p, r, h = cells(peak), cells(rms), min(cells(hold), width - 1)
        bar = Text("▕")
        for i in range(width):
            db = FLOOR_DBFS + (i + 0.5) * -FLOOR_DBFS / width
            colour = "green" if db < -18 else "yellow" if db < -6 else "red"
            if i < r:
                bar.append("█", style=colour)
            elif i < p:
                bar.append("▒", style=colour)
            elif i == h and hold > FLOOR_DBFS:
                bar.append("│", style=colour)
            else:
                bar.append(" ")
        bar.append("▏")
        return bar
