"""The recorder's side of the audio thread: frames from a source into the ring."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from ..capture.levels import LevelMeter
from ..capture.ring import RingBuffer


class Intake:
    """The recorder's side of the audio thread (the ``Capture`` a source pushes into):
    copies frames into the ring, counts what was received, kept, dropped and left out
    while paused, notes when deliveries came (the device's clock), and wakes the writer
    when it has work. Everything here is called from the audio thread and never blocks
    (``push_all``, for file readers, may wait for room: a file must not drop)."""

    def __init__(self, ring: RingBuffer, level: LevelMeter, wake: threading.Event):
        self.ring = ring
        self.level = level
        self.wake = wake
        self.paused = False
        #: while paused, frames up to this recorded position are still taken: the device
        #: captured them before the pause and delivers them after it (see MediaRecorder.pause)
        self.keep_until = 0
        self.accepting = True
        self.dropped = 0  # frames lost: ring full, or dropped by the audio system
        self.paused_frames = 0  # frames left out while paused
        self.received = 0  # frames delivered by the source
        #: frames that went into the ring: the recorded position of the next frame to come
        #: (what a marker made now points at, counting frames not yet written)
        self.accepted = 0
        #: (time.monotonic(), frames received by then) of recent deliveries: when a live
        #: device captured what (see on_its_way)
        self.deliveries: collections.deque = collections.deque(maxlen=64)
        self.first_frame_time: float | None = None  # time.monotonic() of the first frames
        self.last_frame_time: float | None = None
        self.ended = False
        self.error: BaseException | None = None
        #: frames in the ring at which push() wakes the writer (set by the writer: enough
        #: for its next write, or the next timeslice, split or limit boundary)
        self.wake_at = 1

    def _arrived(self, frames: np.ndarray, owned: bool = False) -> None:
        """Note a delivery (when, how much: the stall check and the device clock of
        on_its_way) and measure its level."""
        now = time.monotonic()
        if self.first_frame_time is None:
            self.first_frame_time = now
        self.last_frame_time = now
        self.received += len(frames)
        self.deliveries.append((now, self.received))
        self.level.update(frames, owned)

    def on_its_way(self, rate: int, since: float, most: float, clock_jump: float) -> int:
        """Frames a live device has captured but not yet handed over (a device delivers in
        blocks, up to a quarter second apart), counted no further back than ``since`` (the
        last start or resume) and at most ``most`` seconds.

        When a frame was captured is learnt from the deliveries: each one says that its
        last frame existed by the time it arrived, so the delivery that came soonest
        after its frames (the least ``arrival - frames / rate`` of the last few seconds)
        gives the device's clock; "now" on that clock, less what was delivered, is what
        is still on its way. A block that arrived late therefore does not move a marker
        early, as counting from the last delivery would. A clock that jumps by more than
        ``clock_jump`` seconds lost audio: it starts afresh there."""
        origin = None  # the monotonic time of the device's frame 0
        for t, received in list(self.deliveries):
            lag = t - received / rate
            if origin is None or lag > origin + clock_jump:
                origin = lag  # (the first, or frames were lost: the clock moved on)
            else:
                origin = min(origin, lag)
        if origin is None:
            return 0
        now = time.monotonic()
        ahead = (now - origin) - self.received / rate
        ahead = min(ahead, now - since, most)
        return int(max(0.0, ahead) * rate)

    def push(self, frames: np.ndarray, owned: bool = False) -> None:
        """``owned``: ``frames`` is a fresh array the source will not reuse."""
        self._arrived(frames, owned)
        n = len(frames)
        if not self.accepting:
            return
        if self.paused:
            keep = min(n, self.keep_until - self.accepted)
            if keep <= 0:
                self.paused_frames += n
                return
            self.paused_frames += n - keep  # the rest of the block came after the pause
            frames, n = frames[:keep], keep
        written = self.ring.write(frames)
        self.accepted += written
        if written < n:
            self.dropped += n - written
        # Wake the writer when it has work rather than let it poll, and not for every
        # block: every wake-up of a thread costs far more CPU than the copy it makes
        # (bench/RESULTS.md). Event.set() takes a lock that is only ever held for an
        # instant, so the audio thread does not wait on it.
        if len(self.ring) >= self.wake_at:
            self.wake.set()

    def push_all(self, frames: np.ndarray) -> bool:
        self._arrived(frames)
        if not self.accepting:
            return False
        if self.paused:
            self.paused_frames += len(frames)
            return True
        ok = self.ring.write_all(frames)
        if ok:
            self.accepted += len(frames)
        self.wake.set()
        return ok

    def overflow(self, frames: int) -> None:
        self.dropped += frames

    def end(self, error: BaseException | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.ended = True
        self.wake.set()
