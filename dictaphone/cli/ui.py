"""What people see on stderr: the live level meter and the summary line (rich).

The meter pulls the recorder's state at its own refresh rate (rich's Live runs a daemon
thread); nothing here is called from the audio or writer threads.
"""

from __future__ import annotations

import math
import os
import time

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from ..capture.levels import to_dbfs
from .text import channels_name, clock, human_size

FLOOR_DBFS = -60.0  #: the left end of the bar


class Meter:
    """A two-line live meter: state, time, level bar, peak/RMS dBFS, clipping, size."""

    HOLD_SECONDS = 1.5
    CLIP_SECONDS = 2.0

    def __init__(self, recorder, console: Console, label: str, keys: bool, live=None):
        self.rec = recorder
        self.live = live  # a LiveTranscriber: its latest text goes under the meter
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
        try:
            self._live.stop()
        except (OSError, ValueError):
            pass  # the terminal hung up: the meter has nowhere to be cleared from

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
        voice = rec.voice
        line = Text()
        if state == "paused":
            line.append("❚❚ PAUSED ", style="bold yellow")
        elif not rec.started:
            line.append("… WAITING ", style="bold cyan")
        elif voice is not None and voice.state == "waiting":
            line.append("… LISTEN  ", style="bold cyan")
        elif voice is not None and voice.state == "skipping":
            line.append("○ SKIP    ", style="bold blue")
        else:
            line.append("● REC     ", style="bold red")
        line.append(clock(rec.duration), style="bold")
        line.append("  ")
        width = max(10, min(40, self.console.width - 60))
        line.append_text(self._bar(peak, rms, hold, width))
        line.append(f" peak {peak:6.1f}  rms {rms:6.1f} dBFS ")
        if now - clip_at < self.CLIP_SECONDS and clipped:
            line.append("CLIP", style="bold white on red")
        cols = self.console.width
        lost = getattr(rec, "device_lost", None)
        if lost is not None:  # no level to show: the file stays open while it is waited for
            line = Text()
            line.append(f"⚠ DEVICE LOST — waiting {math.ceil(lost['left']):d} s ", style="bold white on red")
            line.append(clock(rec.duration), style="bold")
            tail = f"  {lost['reason']}; recording goes on in this file when it is back"
            if line.cell_len + len(tail) > cols:
                tail = f"  {lost['reason']}"  # (an 80-column terminal: the words that matter)
            line.append(tail, style="bold red")
        info = Text(style="dim")
        if voice is not None and rec.started and state != "paused":
            info.append_text(self._voice_text(voice))
        info.append_text(self._info_line(cols - info.cell_len))
        # Never wrapped: a meter that wraps takes twice the lines and hides what is under it.
        for t in (line, info):
            t.no_wrap, t.overflow = True, "ellipsis"
        if self.live is not None:
            return Group(line, info, *self._transcript_lines())
        return Group(line, info)

    KEYS_HINT = "   q stop · space pause/resume · m marker"

    def _info_line(self, cols: int) -> Text:
        """The file, its size, dropped frames, the markers and the keys, in ``cols`` cells:
        the file's path is cut from the left (its name stays), then the keys' hint goes,
        then the last marker's label is shortened; what still does not fit is cut at the
        end (the line never wraps)."""
        rec = self.rec
        markers = getattr(rec, "markers", None) or []
        size = f"  {human_size(rec.bytes_written)}"
        dropped = f"  {rec.dropped_frames} dropped frames" if rec.dropped_frames else ""

        def marks(n: int) -> str:
            if not markers:
                return ""
            last = markers[-1]
            return (f"  ⚑ {len(markers)} marker{'s' if len(markers) > 1 else ''}, last: "
                    f"{_short(last.label, n)} at {clock(last.time)}")

        name = os.path.basename(self.label) or self.label
        choices = [(marks(40), self.KEYS_HINT if self.keys else ""), (marks(40), ""), (marks(16), "")]
        for marked, hint in choices:
            room = cols - len(size) - len(dropped) - len(marked) - len(hint)
            if room >= min(len(self.label), len(name) + 1):
                break
        room = max(room, min(len(name) + 1, 24))
        label = self.label if len(self.label) <= room else "…" + self.label[-(room - 1):]
        t = Text()
        t.append(f"{label}{size}")
        if dropped:
            t.append(dropped, style="bold red")
        if marked:
            t.append(marked, style="bold magenta")
        t.append(hint)
        return t

    def transcript_rows(self) -> int:
        """Lines for the running transcript: a third of the terminal, at least 3 (10 on
        a 30-line terminal), and never more than what is left under the meter."""
        height = self.console.height
        return max(1, min(height - 3, max(3, height // 3)))

    def _transcript_lines(self) -> list[Text]:
        """The running transcript: the latest utterances as timed paragraphs, then the
        one being spoken (committed words normal, tentative ones dim, or in brackets
        under NO_COLOR), wrapped to the terminal; its last lines, the newest at the
        bottom."""
        live = self.live
        cols = max(20, self.console.width)
        if live.error is not None:
            return [Text(f"transcription failed: {live.error}", style="bold red", no_wrap=True,
                         overflow="ellipsis")]
        rows = self.transcript_rows()
        paragraphs = []
        for start, text in live.utterances[-rows:]:
            p = Text()
            p.append(f"{clock(start, 0)}  ", style="dim")
            p.append(text)
            paragraphs.append(p)
        partial = live.latest_partial
        if partial is not None and partial.text:
            p = Text()
            p.append(f"{clock(partial.start, 0)}  ", style="dim")
            committed, rest = partial.committed, partial.text[len(partial.committed):].strip()
            if committed:
                p.append(committed)
            if rest:
                if committed:
                    p.append(" ")
                p.append(f"[{rest}]" if _no_color() else rest, style="dim")
            paragraphs.append(p)
        pending = live.pending_seconds
        if not paragraphs:
            paragraphs.append(Text("(transcript: nothing said yet)", style="dim"))
        if pending >= 1.0:
            paragraphs[-1].append(f"  [{pending:.0f} s to transcribe]", style="dim")
        lines: list[Text] = []
        for p in paragraphs:
            lines.extend(p.wrap(self.console, cols - 1))
        for t in lines:
            t.no_wrap, t.overflow = True, "ellipsis"
        return lines[-rows:]

    @staticmethod
    def _voice_text(voice) -> Text:
        t = Text()
        if voice.state == "waiting":
            t.append("waiting for speech  ", style="cyan")
        elif voice.state == "speech":
            t.append("speech  ", style="bold green")
        elif voice.state == "silence":
            left = voice.stop_in
            if left is not None:
                t.append(f"silence: stopping in {left:.1f} s  ", style="bold yellow")
            else:
                t.append(f"silence {voice.silent_seconds:.1f} s  ", style="yellow")
        elif voice.state == "skipping":
            t.append(f"skipping silence ({voice.silent_seconds:.1f} s)  ", style="blue")
        return t

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


# ------------------------------------------------------------------ clip library views


def transcript_view(transcript):
    """A transcript as timed lines: ``00:04  The meeting is on Friday.``"""
    from rich.text import Text

    out = Text()
    out.append("transcript", style="bold")
    out.append(f"  {transcript.model or '?'}, {transcript.language or '?'}\n")
    if transcript.empty:
        out.append("(no speech)\n", style="dim")
    current = None
    for seg in transcript.segments:
        if seg.text:
            out.append(f"{clock(seg.start, 0)}  ", style="dim")
            if seg.speaker is not None and seg.speaker != current:
                out.append(f"{seg.speaker}: ", style="bold")
                current = seg.speaker
            out.append(seg.text + "\n")
    out.rstrip()
    return out


_EIGHTHS = " ▁▂▃▄▅▆▇█"


def _level(amplitude: float, floor_db: float = -60.0) -> float:
    """0..1 on a dB scale: quiet speech stays visible."""
    if amplitude <= 0:
        return 0.0
    db = 20 * math.log10(amplitude)
    return max(0.0, min(1.0, (db - floor_db) / -floor_db))


def _wave_row(peaks, rms, depth: float, partial) -> Text:
    """One row of the waveform, ``depth`` cells from the centre: a full block where the
    peak passes the row, ``partial(fill)`` where it ends inside it; brighter within the RMS."""
    t = Text()
    for peak, level in zip(peaks, rms):
        fill = peak - depth
        style = "bright_green" if level > depth else "green"
        t.append("█" if fill >= 1 else partial(fill), style=style)
    return t


def waveform_view(wf, width: int, height: int = 12, markers=()) -> Group:
    """The waveform (a dB scale from -60 dBFS to 0 at the edges), a silence row, a time
    axis, a row of markers (their numbers under the moment they flag), and the levels,
    silent stretches and markers in words."""
    half = max(1, height // 2)
    cols = len(wf.peaks)
    lines = []
    title = Text()
    title.append(os.path.basename(wf.path), style="bold")
    title.append(f"  {clock(wf.duration)}  {wf.samplerate} Hz {channels_name(wf.channels)}  "
                 f"peak {wf.peak_dbfs:.1f} dBFS  rms {wf.rms_dbfs:.1f} dBFS")
    lines.append(title)
    peaks = [_level(p) * half for p in wf.peaks]
    rms = [_level(r) * half for r in wf.rms]
    for row in range(half):  # top half, from the top down to the centre
        lines.append(_wave_row(peaks, rms, half - row - 1,
                               lambda fill: _EIGHTHS[max(1, int(fill * 8))] if fill > 0 else " "))
    for row in range(half):  # bottom half, mirrored, from the centre down
        lines.append(_wave_row(peaks, rms, row, lambda fill: "▀" if fill >= 0.5 else " "))
    if cols and wf.duration > 0:
        silent = Text()
        per_col = wf.duration / cols
        for c in range(cols):
            mid = (c + 0.5) * per_col
            quiet = any(a <= mid < b for a, b in wf.silences)
            silent.append("─" if quiet else " ", style="dim")
        lines.append(silent)
        axis = [" "] * cols
        step = max(1, cols // max(1, cols // 12))
        for c in range(0, cols, step):
            t = c * per_col
            label = f"{t:.1f}s" if wf.duration < 60 else clock(t, 0)
            if c + len(label) <= cols:
                axis[c:c + len(label)] = list(label)
        lines.append(Text("".join(axis), style="dim"))
        if markers:
            lines.append(_marker_row(markers, cols, per_col))
    if wf.silences:
        spans = ", ".join(f"{clock(a)}–{clock(b)}" for a, b in wf.silences[:12])
        more = f" and {len(wf.silences) - 12} more" if len(wf.silences) > 12 else ""
        lines.append(Text(f"silent (─): {spans}{more}", style="dim"))
    else:
        lines.append(Text("no silent stretches", style="dim"))
    if markers:
        listed = ", ".join(f"{m.number} {clock(m.time)} {_short(m.label)}" for m in markers[:12])
        more = f" and {len(markers) - 12} more" if len(markers) > 12 else ""
        lines.append(Text(f"markers (▲): {listed}{more}", style="magenta"))
    return Group(*lines)


def _no_color() -> bool:
    """NO_COLOR (https://no-color.org): set and not empty."""
    return bool(os.environ.get("NO_COLOR"))


def _short(label: str, n: int = 40) -> str:
    return label if len(label) <= n else label[:n - 1] + "…"


def _marker_row(markers, cols: int, per_col: float) -> Text:
    """▲ under each marker's column, its number after it where there is room."""
    row = [" "] * cols
    for m in markers:
        c = min(cols - 1, max(0, int(m.time / per_col)))
        row[c] = "▲"
        label = str(m.number)
        if c + 1 + len(label) <= cols and all(x == " " for x in row[c + 1:c + 1 + len(label)]):
            row[c + 1:c + 1 + len(label)] = list(label)
    return Text("".join(row), style="bold magenta")
