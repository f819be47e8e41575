"""The writer thread: from the ring into the files, cut at timeslices, pieces and the limit."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np

from ..errors import DeviceError, DictaphoneError, WriteError
from ..events import Blob, BlobEvent, ErrorEvent, Event, StopEvent
from .gating import GatedInput
from .intake import Intake
from .pieces import Pieces
from .placement import MarkerPlacement
from .reconnect import Reconnection

log = logging.getLogger("dictaphone")


class FramesTap:
    """The frames listeners of a recorder (``add_frames_listener``): each is called with
    every block as it is written. The list is replaced, never changed in place, so the
    writer iterates over the one it read without a lock."""

    def __init__(self) -> None:
        self.listeners: list = []

    def add(self, listener) -> None:
        if listener not in self.listeners:
            self.listeners = [*self.listeners, listener]

    def remove(self, listener) -> None:
        self.listeners = [f for f in self.listeners if f is not listener]

    def __call__(self, frames: np.ndarray, media_time: float) -> None:
        for fn in self.listeners:
            try:
                fn(frames, media_time)
            except Exception:
                log.exception("a frames listener raised; it is removed")
                self.remove(fn)


class Writer:
    """The loop of the writer thread, for one recording: drains the ring (``intake``)
    into the encoder of the current piece (``pieces``), through the voice gate if there is
    one; cuts a ``dataavailable`` blob at each timeslice and on request, closes a piece at
    each split boundary (and marker, with ``split_on_mark``), stops exactly at ``limit``
    frames, makes the file's header valid every ``sync_interval`` seconds, places markers
    as their audio is written, hands device losses to ``link``, and finalizes the output.

    ``frames`` is the number of frames written (the recording's position). ``post``
    queues an event for the recorder's listeners; ``on_end()`` tells the recorder that
    the recording is ending (by itself, or it was already stopping), ``on_done()`` that
    the last event (``stop``) was posted.
    """

    def __init__(self, source, intake: Intake, pieces: Pieces, marks: MarkerPlacement,
                 link: Reconnection, tap: FramesTap, *, post: Callable, on_end: Callable,
                 on_done: Callable = lambda: None,
                 gate=None, timeslice: int | None = None, split: int | None = None,
                 split_on_mark: bool = False, limit: int | None = None,
                 mime_type: str, chunk: int, write_ahead: int, idle_wait: float,
                 sync_interval: float):
        self.source = source
        self.intake = intake
        self.pieces = pieces
        self.marks = marks
        self.link = link
        self.tap = tap
        self.post = post
        self.on_end = on_end
        self.on_done = on_done
        self.gated = GatedInput(gate, marks) if gate is not None else None
        self.timeslice = timeslice
        self.split = split
        self.split_on_mark = split_on_mark
        self.limit = limit
        self.mime_type = mime_type
        self.write_ahead = write_ahead
        self.idle_wait = idle_wait
        self.sync_interval = sync_interval
        self.rate = source.samplerate
        self.buf = np.zeros((max(1, chunk), source.channels), dtype=intake.ring.dtype)
        self.frames = 0
        self.error: BaseException | None = None
        self.stop_requested = False
        self.data_requested = False
        self.voice_stopped = False
        self.thread = threading.Thread(target=self.run, name="dictaphone-writer", daemon=True)

    def request_data(self) -> None:
        self.data_requested = True
        self.intake.wake.set()

    def halt_source(self) -> None:
        """Stop the source and take no more frames (what is in the ring stays)."""
        capture = self.intake
        capture.ring.close()  # releases a file reader blocked on a full ring
        self.source.stop()
        capture.accepting = False
        capture.wake.set()

    def _stopping(self) -> bool:
        return self.stop_requested

    def _limit_reached(self) -> bool:
        return self.limit is not None and self.frames >= self.limit

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        capture = self.intake
        next_sync = time.monotonic() + self.sync_interval
        error: BaseException | None = None
        try:
            while True:
                n = self._pump()
                if self.data_requested:  # honoured even when a stop follows (as in the browser)
                    self.data_requested = False
                    enc = self.pieces.encoder
                    self.post(BlobEvent("dataavailable",
                                        data=enc.cut() if enc else Blob(self.mime_type, b"")))
                if self._limit_reached() or self.stop_requested or self.voice_stopped:
                    break
                if n:
                    continue
                if capture.ended:  # the source ended by itself
                    # ...unless stop() ended it after the check above: a device reports
                    # the end of a stream stop() stopped like a lost one (not an error).
                    if capture.error is None and self.link.is_device() and not self.stop_requested:
                        capture.error = self.link.lost_error()
                    if not self.stop_requested and self.link.reconnect(self.frames, self._stopping):
                        continue
                    break
                now = time.monotonic()
                try:
                    self.link.check_stall(now)
                except DeviceError as e:
                    # a device that stops sending (a frozen server) is lost too; one that
                    # never sent anything is not waited for again
                    if capture.last_frame_time is None:
                        raise
                    capture.error = e
                    if self.link.reconnect(self.frames, self._stopping):
                        continue
                    break
                if now >= next_sync and self.pieces.encoder is not None:
                    self.pieces.encoder.sync(durable=True)
                    next_sync = now + self.sync_interval
                capture.wake_at = self._frames_wanted()
                if len(capture.ring) < capture.wake_at:  # (frames may have come meanwhile)
                    capture.wake.wait(self.idle_wait)
                capture.wake.clear()
        except DictaphoneError as e:
            error = e
        except Exception as e:  # a bug or an unexpected failure: still finalize the file
            error = WriteError(f"recording failed: {type(e).__name__}: {e}")
            error.__cause__ = e
        self._finish(error or capture.error)

    def _frames_wanted(self) -> int:
        """How many frames in the ring make the next write worth a wake-up: write_ahead,
        or exactly what reaches the next timeslice, split or limit boundary (counted in
        frames written; with a voice gate that leaves silence out, this wakes early,
        never late)."""
        n = self.write_ahead
        for period in (self.timeslice, self.split):
            if period:
                n = min(n, period - self.frames % period)
        if self.limit is not None:
            n = min(n, self.limit - self.frames)
        return max(1, n)

    def _pump(self) -> int:
        """Move one chunk from the ring to the encoder (through the voice gate, if any).
        Returns the frames taken from the ring."""
        buf = self.buf
        n = self.intake.ring.read_into(buf)
        if n:
            if self.gated is None:
                self._write(buf[:n])
            else:
                self._apply(self.gated.feed(buf[:n]))
        return n

    def _apply(self, actions) -> None:
        """Carry out the voice gate's decisions."""
        for kind, arg in actions:
            if kind == "write":
                self._write(arg)
            elif kind == "mark":
                self._map(arg)
            elif kind == "cut":
                self._close_piece()
            elif kind in ("pause", "resume"):
                self.post(Event(kind, reason="silence"))
            elif kind == "stop":
                self.voice_stopped = True

    def _map(self, marker) -> None:
        """A marker made in the gated audio goes where the audio after it goes."""
        self.marks.map(marker, self.frames + self.gated.gate.pending_frames,
                       self.frames / self.rate)

    def _write(self, frames: np.ndarray) -> None:
        """Write frames, cutting exactly at the frame limit and at timeslice and split
        boundaries (where a blob is cut or a piece closed)."""
        pieces = self.pieces
        i = 0
        while i < len(frames) and not self._limit_reached():
            k = len(frames) - i
            if self.limit is not None:
                k = min(k, self.limit - self.frames)
            for period in (self.timeslice, self.split):
                if period:
                    k = min(k, period - self.frames % period)
            if self.split_on_mark:
                due, later = self.marks.around(self.frames)
                if due and pieces.encoder is not None and self.frames > pieces.start:
                    self._close_piece()  # the marker starts the next piece
                    continue
                if later is not None:
                    k = min(k, later - self.frames)
            # the next piece is opened when it has audio
            enc = pieces.encoder if pieces.encoder is not None else pieces.open(self.frames)
            self.marks.place(pieces, self.frames + k)
            before = enc.frames
            try:
                enc.write(frames[i:i + k])
            except WriteError:
                self.frames += max(0, enc.frames - before)  # what fit is in the file
                raise
            if self.tap.listeners:
                self.tap(frames[i:i + k], self.frames / self.rate)
            self.frames += k
            i += k
            if self.split and self.frames % self.split == 0:
                self._close_piece()
            elif self.timeslice and self.frames % self.timeslice == 0:
                self.post(BlobEvent("dataavailable", data=enc.cut()))

    def _close_piece(self) -> None:
        blob = self.pieces.close()
        if blob is not None:
            self.post(BlobEvent("dataavailable", data=blob))

    # ------------------------------------------------------------------ the end

    def _finish(self, error: BaseException | None) -> None:
        self.on_end()
        try:
            self.halt_source()
        except Exception:
            pass  # a source that fails to stop has stopped delivering all the same
        # What reached the ring before the source stopped is kept, unless the output
        # itself failed.
        if not isinstance(error, WriteError):
            try:
                while not self._limit_reached() and not self.voice_stopped and self._pump():
                    pass
                if self.gated is not None:
                    self._apply(self.gated.flush())
            except DictaphoneError as e:
                error = e
        if error is not None:
            self.post(ErrorEvent("error", error=error))
        self._place_leftover_marks()
        pieces = self.pieces
        enc = pieces.encoder
        try:
            last = enc.close() if enc else Blob(self.mime_type, b"")
        except DictaphoneError as e:  # e.g. the disk filled up with the encoder's last data
            if error is None:
                error = e
                self.post(ErrorEvent("error", error=e))
            last = Blob(self.mime_type, b"")
        if enc is not None and isinstance(error, WriteError):
            # after a failed write, the file (repaired if need be) says what was kept
            self.frames = pieces.start + enc.frames
        if enc is not None and enc.sink.path:
            pieces.frames_in[enc.sink.path] = enc.frames
        self.error = error
        try:
            self.source.close()
        except Exception:
            pass
        self.post(BlobEvent("dataavailable", data=last))
        self.post(StopEvent("stop", dropped_frames=self.intake.dropped, frames=self.frames,
                            path=pieces.path, paths=list(pieces.paths)))
        self.on_done()

    def _place_leftover_marks(self) -> None:
        """Markers not yet in a file when the recording ends (made after its last
        frame, beyond a frame limit, or held by a voice gate) go at the end."""
        for marker in self.marks.take_unmapped():
            self._map(marker)
        self.marks.place(self.pieces, None)
