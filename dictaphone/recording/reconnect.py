"""Device loss and reconnection: a source that stops, or stops sending, and comes back."""

from __future__ import annotations

import time
from typing import Callable

from ..capture.sources import FileSource
from ..errors import DeviceError, DeviceLostError
from ..events import DeviceEvent
from .intake import Intake
from .pieces import Pieces
from .placement import MarkerPlacement


class Reconnection:
    """Watches the source for the writer: one that never sends (``start_timeout``) or stops
    sending (``stall_timeout``) is an error, and a device that goes away is waited for up
    to ``window`` seconds (0: not at all) while the output stays open.

    It runs on the writer thread. ``lost`` is what the recorder's ``device_lost`` shows
    while a device is waited for; ``gaps`` are the losses the recording survived, and
    ``gap_places`` where each one is: (piece number, seconds into it).
    """

    #: how often a lost device is looked for (seconds)
    RETRY = 0.5
    #: how long a reopened device may take to send its first audio before it is closed
    #: and tried again (seconds; PulseAudio takes up to 2)
    FIRST_AUDIO = 5.0

    def __init__(self, source, intake: Intake, pieces: Pieces, marks: MarkerPlacement, *,
                 post: Callable, window: float, stall_timeout: float | None,
                 start_timeout: float | None, started_at: float,
                 retry: float = RETRY, first_audio: float = FIRST_AUDIO):
        self.source = source
        self.intake = intake
        self.pieces = pieces
        self.marks = marks
        self.post = post
        self.window = window
        self.stall_timeout = stall_timeout
        self.start_timeout = start_timeout
        self.started_at = started_at
        self.retry = retry
        self.first_audio = first_audio
        #: {"time": recorded seconds where the audio is missing, "duration": seconds
        #: missing, "reason": what happened}
        self.gaps: list[dict] = []
        self.gap_places: list[tuple[int, float]] = []
        self.lost: dict | None = None  # {"reason", "since": last audio, "deadline"}

    def is_device(self) -> bool:
        return not isinstance(self.source, FileSource)

    def check_stall(self, now: float) -> None:
        """DeviceError when no audio came within ``start_timeout`` of the start, or none
        for ``stall_timeout`` seconds since the last (in the source's words)."""
        last = self.intake.last_frame_time
        if last is None:
            if self.start_timeout and now - self.started_at > self.start_timeout:
                self._stalled()
                raise DeviceError(f"{self.source.name}: no audio arrived within {self.start_timeout:g} s")
        elif self.stall_timeout and now - last > self.stall_timeout:
            self._stalled()
            lost = getattr(self.source, "lost_error", None)
            if lost is not None:
                raise lost(silent_for=self.stall_timeout)
            raise DeviceError(f"{self.source.name}: no audio for {self.stall_timeout:g} s (device lost?)")

    def _stalled(self) -> None:
        mark = getattr(self.source, "mark_stalled", None)
        if mark is not None:
            mark()

    def lost_error(self) -> DeviceError:
        """The error of a device stream that ended by itself, in the source's words."""
        lost = getattr(self.source, "lost_error", None)
        if lost is not None:
            return lost()
        return DeviceError(f"{self.source.name}: the audio stream ended")

    def reconnect(self, frames: int, stopping: Callable[[], bool]) -> bool:
        """The device went away (``intake.error``) after ``frames`` recorded frames: keep
        the output open, fire ``devicelost``, and reopen the device as soon as it is back:
        ``devicerestored``, True, and the writer goes on. False when the window ran out
        (``intake.error`` then says so) or a stop was asked for meanwhile (``stopping()``;
        no error: a normal stop)."""
        capture, source = self.intake, self.source
        error = capture.error
        if not self.window or not isinstance(error, DeviceError) or stopping():
            return False
        reason = getattr(error, "reason", None) or str(error)
        device = getattr(source, "label", source.name)
        rate = source.samplerate
        lost_at = time.monotonic()
        last_audio = capture.last_frame_time or lost_at
        deadline = lost_at + self.window
        timecode = frames / rate
        self.lost = {"reason": reason, "since": last_audio, "deadline": deadline}
        self.marks.pull_back(capture.accepted)
        self.post(DeviceEvent("devicelost", device=device, reason=reason, wait=self.window))
        if self.pieces.encoder is not None:  # what came before the loss is safe on disk meanwhile
            self.pieces.encoder.sync(durable=True)
        try:
            source.lost()
        except Exception:
            pass  # it is gone either way; reopen() starts afresh
        wake_at, capture.wake_at = capture.wake_at, 1  # the first frames back wake the writer
        try:
            while True:
                capture.ended, capture.error = False, None
                received = capture.received
                if source.reopen(capture):
                    # the first audio of a reopened stream takes a moment (PulseAudio:
                    # up to 2 s); one that sends nothing is dropped and tried again
                    quiet_until = min(deadline, time.monotonic() + self.first_audio)
                    while (capture.received == received and not capture.ended
                           and not stopping() and time.monotonic() < quiet_until):
                        capture.wake.wait(0.1)
                        capture.wake.clear()
                    if capture.received > received and not capture.ended:
                        # the audio missing: from the last frames before the loss to the
                        # first ones after it (the time they were read, less their length)
                        back = capture.last_frame_time - (capture.received - received) / rate
                        gap = max(0.0, back - last_audio)
                        self.gaps.append({"time": round(timecode, 6), "duration": round(gap, 3),
                                          "reason": reason})
                        self.gap_places.append(self.pieces.place_of(frames))
                        self.post(DeviceEvent("devicerestored", device=device, reason=reason,
                                              gap=gap))
                        return True
                    try:
                        source.lost()
                    except Exception:
                        pass
                if stopping():
                    capture.ended, capture.error = True, None
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    gone = f"did not come back within {self.window:g} s"
                    capture.error = (DeviceLostError(device, f"{reason} and {gone}")
                                     if isinstance(error, DeviceLostError)
                                     else DeviceError(f"{error}; it {gone}"))
                    return False
                capture.wake.wait(min(self.retry, left))
                capture.wake.clear()
        finally:
            capture.wake_at = wake_at
            self.lost = None

    def gaps_in(self, number: int) -> list[dict]:
        """The gaps in piece ``number`` (0: a recording not cut), ``time`` in its seconds."""
        return [dict(g, time=round(t, 6)) for g, (piece, t) in zip(self.gaps, self.gap_places)
                if piece == number]
