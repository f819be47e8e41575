"""Marker placement: from the moment a marker is made to its place in a file."""

from __future__ import annotations

import bisect
import threading

from ..containers.markers import Marker, save_sidecar
from .pieces import Pieces


class MarkerPlacement:
    """The markers of one recording on their way into its files.

    A marker is made on the caller's thread with the recorded frame it points at
    (``pending``) or, with a voice gate, with a position in the ring that the gate has yet
    to map to the file (``unmapped``: the gate may hold or drop audio). The writer thread
    places each pending marker into the file being written when the audio reaches it: into
    the encoder (a cue chunk, chapters) and the file's ``<audio>.markers.json``.
    ``file_markers`` holds, per file, the markers placed in it, in seconds of that file.
    """

    def __init__(self, samplerate: int):
        self.rate = samplerate
        self._lock = threading.Lock()
        self._pending: list[Marker] = []  # made, not yet in a file (.frame: recorded)
        self._unmapped: list[Marker] = []  # with a voice gate: .frame is a ring position
        self.file_markers: dict[str, list[Marker]] = {}

    def add(self, marker: Marker, mapped: bool = True) -> None:
        """Queue a marker just made (``mapped``: its frame is a recorded one)."""
        queue = self._pending if mapped else self._unmapped
        with self._lock:
            # (a device's position is an estimate: keep the queue in frame order)
            bisect.insort(queue, marker, key=lambda m: m.frame)

    def next_unmapped(self, before: int) -> Marker | None:
        """Take the first marker whose ring position is below ``before``, if any."""
        with self._lock:
            if self._unmapped and self._unmapped[0].frame < before:
                return self._unmapped.pop(0)
        return None

    def map(self, marker: Marker, frame: int, time: float) -> None:
        """Give an unmapped marker its recorded ``frame`` (and ``time``) and queue it."""
        marker.frame = frame
        marker.time = time
        with self._lock:
            self._pending.append(marker)

    def take_unmapped(self) -> list[Marker]:
        with self._lock:
            unmapped, self._unmapped = self._unmapped, []
        return unmapped

    def around(self, frame: int) -> tuple[bool, int | None]:
        """(whether a pending marker is at or before ``frame``, the first one after it)."""
        with self._lock:
            due = bool(self._pending) and self._pending[0].frame <= frame
            later = next((m.frame for m in self._pending if m.frame > frame), None)
        return due, later

    def pull_back(self, frame: int) -> None:
        """No pending marker points past ``frame``: the device went away, and the audio a
        marker counted as on its way from it (up to a quarter second) never came, so the
        marker is where the audio resumes, not as far into the audio after the gap."""
        with self._lock:
            for m in self._pending:
                m.frame = min(m.frame, frame)
                m.time = m.frame / self.rate

    def place(self, pieces: Pieces, before: int | None) -> None:
        """Put the pending markers whose frame is below ``before`` (None: all that are
        left, at the end) into the current file, at their offset in it."""
        while True:
            with self._lock:
                if not self._pending or (before is not None and self._pending[0].frame >= before):
                    return
                marker = self._pending.pop(0)
            self._place(marker, pieces, at_end=before is None)

    def _place(self, marker: Marker, pieces: Pieces, at_end: bool) -> None:
        enc = pieces.encoder
        if enc is not None:
            offset = max(0, marker.frame - pieces.start)
            if at_end:  # made after the last frame that reached the file
                offset = min(offset, enc.frames)
            enc.add_marker(offset, marker.number, marker.label)
            path = enc.sink.path
        else:  # the recording ended on a piece boundary: the last piece, at its end
            path = pieces.paths[-1] if pieces.paths else None
            offset = pieces.frames_in.get(path, 0) if path else 0
        if not path:
            return
        held = self.file_markers.setdefault(path, [])
        held.append(Marker(marker.number, offset / self.rate, marker.label, frame=offset))
        try:
            save_sidecar(path, held)
        except OSError:
            pass  # the file and its cue chunk still have it; a full disk says so elsewhere
