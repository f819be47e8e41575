"""MediaRecorder: the state machine, the writer thread, timeslices and events.

Threads (and which may block):
- the caller's thread: start/stop/pause/resume/request_data. stop() blocks until the
  output is complete and the last events are dispatched.
- the audio thread (a PortAudio callback, or a file reader): ``_Capture.push`` copies
  into the ring, counts drops, updates the level. Never blocks (file readers may wait
  for room through ``push_all``: a file must not drop).
- the writer thread: drains the ring into the encoder, cuts timeslices, keeps the file's
  header valid once a second, stops at the frame limit, and finalizes. May block on I/O.
- the dispatcher thread: runs listeners (events.py). Listeners may block it; they never
  delay capture or writing.

Semantics follow MDN's MediaRecorder, including ``stop()`` on an inactive recorder
raising InvalidStateError (Chromium does; the current W3C draft made it a no-op).
"""

from __future__ import annotations

import bisect
import collections
import logging
import os
import threading
import time

import numpy as np

from .. import args
from ..containers.encoders import Encoder, make_encoder
from ..errors import (DeviceError, DeviceLostError, DictaphoneError, InvalidArgumentError,
                     InvalidStateError, NotSupportedError, OutputError, WriteError)
from ..events import (Blob, BlobEvent, DeviceEvent, Dispatcher, ErrorEvent, Event, EventTarget,
                     MarkEvent,
                     StopEvent)
from ..containers.formats import SUBTYPE_DTYPES, Format, format_for_mime, is_type_supported
from ..capture.levels import LevelMeter
from ..containers.markers import Marker, clean_label
from ..capture.ring import RingBuffer
from ..capture.sources import Source

INACTIVE, RECORDING, PAUSED = "inactive", "recording", "paused"

#: the shortest timeslice and split piece (seconds): below them a recording would make
#: thousands of blobs or files a minute, or pieces shorter than a frame
MIN_TIMESLICE = 0.01
MIN_SPLIT = 0.1

log = logging.getLogger("dictaphone")


class _Capture:
    """The recorder's side of the audio thread (see sources.Capture)."""

    def __init__(self, ring: RingBuffer, level: LevelMeter, wake: threading.Event):
        self.ring = ring
        self.level = level
        self.wake = wake
        self.paused = False
        #: while paused, frames up to this recorded position are still taken: the device
        #: captured them before the pause and delivers them after it (see pause())
        self.keep_until = 0
        self.accepting = True
        self.dropped = 0  # frames lost: ring full, or dropped by the audio system
        self.paused_frames = 0  # frames left out while paused
        self.received = 0  # frames delivered by the source
        #: frames that went into the ring: the recorded position of the next frame to come
        #: (what a marker made now points at, counting frames not yet written)
        self.accepted = 0
        #: (time.monotonic(), frames received by then) of recent deliveries: when a live
        #: device captured what (see MediaRecorder._now_frame)
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
        MediaRecorder._now_frame) and measure its level."""
        now = time.monotonic()
        if self.first_frame_time is None:
            self.first_frame_time = now
        self.last_frame_time = now
        self.received += len(frames)
        self.deliveries.append((now, self.received))
        self.level.update(frames, owned)

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


class MediaRecorder(EventTarget):
    """Records a source into a container, like the browser's MediaRecorder.

    ``output`` is where the recording goes: None keeps it in memory (the blobs of the
    ``dataavailable`` events hold the bytes, as in the browser), a path writes a file
    (created exclusively unless ``force``), a binary stream (stdout) streams it.
    ``subtype`` chooses the sample encoding where a format has several (WAV: PCM_16,
    PCM_24, PCM_32, FLOAT). ``max_duration`` (seconds) stops the recording after exactly
    that many frames. ``stall_timeout`` (seconds) turns a source that stops delivering
    into an ``error`` instead of a hang. ``split`` (seconds, with a path output) writes a
    new self-contained file every that many seconds of audio, named by
    :func:`split_path` (``memo-001.wav``, ``memo-002.wav``…); the pieces together are
    exactly the continuous recording, and each piece's ``dataavailable`` blob is that
    whole file. ``voice`` (a :class:`dictaphone.recording.vad.VoiceGate`) makes the recording
    wait for speech, stop after silence, or leave long silences out (marked by
    ``pause``/``resume`` events whose ``reason`` is ``"silence"``), and with
    ``split_on_silence`` put each utterance in its own file, named like split pieces.
    ``mark()`` flags the current moment (see :mod:`dictaphone.containers.markers` for where markers
    are kept); with ``split_on_mark`` each marker also starts a new piece there.

    ``reconnect`` (seconds; None: the source's own ``reconnect``, 30 s for a
    :class:`Microphone`; 0: off) is how long a device that goes away is waited for: the
    output stays open, ``devicelost`` fires, and when the device is back (reopened by
    the source) ``devicerestored`` fires with the ``gap`` and the recording goes on in
    the same file. Each such gap is listed in ``gaps``. A device that stops sending
    audio for ``stall_timeout`` seconds (a frozen audio server) is lost too. When the
    window runs out, the recording ends with a :class:`DeviceLostError`, as it would
    without reconnecting.
    """

    #: seconds of audio the ring holds between the audio thread and the writer
    BUFFER_SECONDS = 10.0
    #: the most frames the writer hands an encoder at once (seconds)
    CHUNK_SECONDS = 1.0  # (libvorbis crashes on single writes of ~2M frames: stay far below)
    #: how often a file's header is made valid and its data flushed (seconds)
    SYNC_INTERVAL = 1.0
    #: the writer is woken when the ring holds this much audio (seconds), or less when a
    #: timeslice, split or limit boundary comes first. This bounds what a SIGKILL can take
    #: from the file (besides what the source itself still holds) and how late the voice
    #: gate acts; each wake-up costs CPU (see bench/RESULTS.md).
    WRITE_AHEAD = 0.25
    #: how long the writer sleeps when nothing wakes it (enough frames, a stop or a
    #: request do): the stall check, the once-a-second sync and the writing of a trickle
    #: of frames below WRITE_AHEAD (a paused or slow source) run on this clock
    IDLE_WAIT = 1.0
    #: how often a lost device is looked for (seconds)
    RECONNECT_RETRY = 0.5
    #: how long a reopened device may take to send its first audio before it is closed
    #: and tried again (seconds; PulseAudio takes up to 2)
    RECONNECT_FIRST_AUDIO = 5.0

    def __init__(self, source: Source, mime_type: str = "audio/wav", *, output=None,
                 subtype: str | None = None, force: bool = False,
                 max_duration: float | None = None, split: float | None = None,
                 voice=None, stall_timeout: float | None = 5.0,
                 start_timeout: float | None = 15.0, reconnect: float | None = None,
                 split_on_mark: bool = False):
        super().__init__()
        if not isinstance(source, Source) and not all(
                hasattr(source, a) for a in ("samplerate", "channels")):
            raise InvalidArgumentError(
                f"source must be a Microphone, a FileSource or another Source, not {source!r}")
        self.source = source
        self._format: Format = format_for_mime(mime_type)
        if not is_type_supported(self._format.mime_type):
            raise NotSupportedError(f"{mime_type}: this libsndfile cannot write it")
        self.subtype = self._format.check(source.samplerate, source.channels, subtype)
        if output is not None and not isinstance(output, (str, os.PathLike)) and not hasattr(output, "write"):
            raise InvalidArgumentError(
                f"output must be None (memory), a path or a binary stream, not {output!r}")
        if isinstance(output, (str, os.PathLike)) and not os.fspath(output):
            raise InvalidArgumentError("output is an empty path; give a file name (or None for memory)")
        self.output = output
        self.force = force
        rate = source.samplerate
        self.max_duration = args.seconds("max_duration", max_duration)
        self._limit_frames = args.frames_of("max_duration", self.max_duration, rate)
        self.split = args.seconds("split", split, minimum=MIN_SPLIT)
        args.frames_of("split", self.split, rate)
        if split is not None and not isinstance(output, (str, os.PathLike)):
            raise InvalidArgumentError("split needs a file path as output")
        self.stall_timeout = args.seconds("stall_timeout", stall_timeout)
        self.start_timeout = args.seconds("start_timeout", start_timeout)
        check_not_the_input(source, output)
        if split_on_mark and not isinstance(output, (str, os.PathLike)):
            raise InvalidArgumentError("split on mark needs a file path as output")
        self.split_on_mark = bool(split_on_mark)
        self.voice = voice
        if voice is not None and voice.split_on_silence and not isinstance(output, (str, os.PathLike)):
            raise InvalidArgumentError("split on silence needs a file path as output")
        from ..capture.sources import check_reconnect

        can_reopen = callable(getattr(source, "reopen", None)) and callable(getattr(source, "lost", None))
        if reconnect is None:
            self.reconnect = check_reconnect(getattr(source, "reconnect", 0) or 0) if can_reopen else 0.0
        else:
            self.reconnect = check_reconnect(reconnect)
            if self.reconnect and not can_reopen:
                raise InvalidArgumentError(f"{source.name} cannot be reopened: reconnect is for devices")
        #: the device losses the recording survived: {"time": recorded seconds where the
        #: audio is missing, "duration": seconds missing, "reason": what happened}
        self.gaps: list[dict] = []
        self._gap_places: list[tuple[int, float]] = []  # (piece number, seconds into it)
        self._lost: dict | None = None
        self._state = INACTIVE
        self._lock = threading.RLock()
        self._writer: threading.Thread | None = None
        self._dispatcher: Dispatcher | None = None
        self._encoder: Encoder | None = None
        self._capture: _Capture | None = None
        self._wake = threading.Event()
        self._stop_requested = False
        self._data_requested = False
        self._voice_stopped = False
        self._piece = 0  # the number of the current split piece
        self._piece_start = 0  # self.frames when the current piece was opened
        self._bytes_closed = 0  # bytes in split pieces already closed
        self._timeslice_frames: int | None = None
        self._limit: int | None = None
        self._split_frames: int | None = None
        self.level = LevelMeter(channels=source.channels)
        self.error: BaseException | None = None
        self.frames = 0
        self.paths: list[str] = []
        #: frames in each finished file of ``paths`` (filled as pieces are closed)
        self.piece_frames: dict[str, int] = {}
        #: every marker made, its ``time`` in seconds of the whole recording
        self.markers: list[Marker] = []
        #: per file: the markers it holds, their ``time`` in seconds of that file
        self.file_markers: dict[str, list[Marker]] = {}
        self._marks_lock = threading.Lock()
        self._pending_marks: list[Marker] = []  # made, not yet in a file (.frame: recorded)
        self._unmapped_marks: list[Marker] = []  # with a voice gate: .frame is a ring position
        self._ring_read = 0  # frames read from the ring (a voice gate's input position)
        self._frames_listeners: list = []

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> str:
        return self._state

    @property
    def mime_type(self) -> str:
        return self._format.mime_type

    @property
    def format(self) -> Format:
        return self._format

    @property
    def samplerate(self) -> int:
        return self.source.samplerate

    @property
    def channels(self) -> int:
        return self.source.channels

    @property
    def duration(self) -> float:
        """Seconds of audio recorded so far (paused time left out)."""
        return self.frames / self.source.samplerate

    @property
    def dropped_frames(self) -> int:
        c = self._capture
        return c.dropped if c is not None else 0

    @property
    def bytes_written(self) -> int:
        """Bytes of output so far (all split pieces together)."""
        e = self._encoder
        return self._bytes_closed + (e.bytes_written if e is not None else 0)

    @property
    def started(self) -> bool:
        """True once the source delivered its first frames."""
        c = self._capture
        return c is not None and c.first_frame_time is not None

    @property
    def device_lost(self) -> dict | None:
        """While the device is lost and waited for: ``reason``, ``lost`` (seconds since
        its last audio) and ``left`` (seconds the recorder still waits); else None."""
        lost = self._lost
        if lost is None:
            return None
        now = time.monotonic()
        return {"reason": lost["reason"], "lost": now - lost["since"],
                "left": max(0.0, lost["deadline"] - now)}

    @property
    def path(self) -> str | None:
        """The output file (the current piece when splitting); None for memory and streams."""
        if self.paths:
            return self.paths[-1]
        return os.fspath(self.output) if isinstance(self.output, (str, os.PathLike)) else None

    # ------------------------------------------------------------------ the API

    def start(self, timeslice: float | None = None) -> None:
        """Start recording. ``timeslice``: fire ``dataavailable`` every that many seconds
        of recorded audio (None: only on stop and request_data)."""
        timeslice = args.seconds("timeslice", timeslice, minimum=MIN_TIMESLICE,
                                 unit_hint=" (seconds, unlike the browser's milliseconds)")
        args.frames_of("timeslice", timeslice, self.source.samplerate)
        if timeslice is not None and (self.split is not None or self.split_on_mark):
            # Each split piece is one blob; slicing the pieces too would make blobs that
            # no longer join into files.
            raise InvalidArgumentError("use either a timeslice or split, not both")
        with self._lock:
            if self._state != INACTIVE:
                raise InvalidStateError(f"start() while {self._state}")
            rate = self.source.samplerate
            dtype = SUBTYPE_DTYPES.get(self.subtype, "float32")
            ring = RingBuffer(max(int(rate * self.BUFFER_SECONDS), 4096), self.source.channels, dtype)
            self._capture = capture = _Capture(ring, self.level, self._wake)
            self.frames = 0
            self.error = None
            self.paths = []
            self.piece_frames = {}
            self.markers = []
            self.file_markers = {}
            self._pending_marks, self._unmapped_marks, self._ring_read = [], [], 0
            self.gaps = []
            self._gap_places = []
            self._stop_requested = self._data_requested = self._voice_stopped = False
            self._wake.clear()
            # Open the source before creating the output: a bad device leaves no file.
            self.source.open(capture, dtype)
            self._piece = 0
            self._bytes_closed = 0
            try:
                self._encoder = self._open_output()
            except BaseException:
                self.source.close()
                raise
            try:
                self.source.start()
            except BaseException:
                self._encoder.abort()
                self.paths = []  # the file was removed: nothing names it
                self.source.close()
                raise
            self._timeslice_frames = int(round(timeslice * rate)) if timeslice is not None else None
            self._limit = self._limit_frames
            self._split_frames = int(round(self.split * rate)) if self.split is not None else None
            self._dispatcher = Dispatcher(self)
            self._state = RECORDING
            self._started_at = self._resumed_at = time.monotonic()
            self._post(Event("start"))
            self._writer = threading.Thread(target=self._run_writer, name="dictaphone-writer",
                                            daemon=True)
            self._writer.start()

    def stop(self) -> None:
        """Stop; when it returns, the output is complete and ``stop`` was dispatched
        (unless called from a listener, which cannot wait for its own thread)."""
        with self._lock:
            if self._state == INACTIVE:
                raise InvalidStateError("stop() while inactive")
            self._state = INACTIVE
            self._stop_requested = True
        drain = getattr(self.source, "drain", None)  # sources written before drain() lack it
        if drain is not None:
            drain()
        self._halt_source()
        self.wait()

    def pause(self) -> None:
        with self._lock:
            if self._state == INACTIVE:
                raise InvalidStateError("pause() while inactive")
            if self._state == PAUSED:
                return
            # The pause is where the device is now, as a marker made now would be: audio
            # it captured before this moment but delivers later is kept. (Cut at what had
            # been delivered, a marker made just before the pause pointed past the audio
            # kept, into what came after resume, and before a marker made while paused.)
            self._capture.keep_until = self._now_frame()
            self._state = PAUSED
            self._capture.paused = True
            self._post(Event("pause", timecode=self._cut_timecode()))

    def resume(self) -> None:
        with self._lock:
            if self._state == INACTIVE:
                raise InvalidStateError("resume() while inactive")
            if self._state == RECORDING:
                return
            self._state = RECORDING
            self._capture.paused = False
            self._resumed_at = time.monotonic()
            self._post(Event("resume", timecode=self._cut_timecode()))

    def _cut_timecode(self) -> float:
        """Where a pause cuts (or a resume joins) in the recording: the pause keeps what
        the device captured before it, so the cut is there, not at the frames written so
        far; the pause and its resume then carry the same time, as the paused time is left
        out. (With a voice gate, frames written is the only clock that maps to the file.)"""
        if self.voice is not None:
            return self._timecode()
        capture = self._capture
        return max(capture.accepted, capture.keep_until) / self.source.samplerate

    def mark(self, label: str | None = None) -> Marker:
        """Flag this moment: the frame the source delivers next, so audio captured but
        not yet written counts, and paused time does not. Fires a ``mark`` event
        (``timecode``, ``label``, ``number``) and returns the Marker (``time`` in seconds
        of the recording). Markers are numbered from 1; one without a label is called
        "Marker N". A label is one line (line breaks become spaces) of at most
        markers.MAX_LABEL characters (longer: InvalidArgumentError)."""
        with self._lock:
            if self._state == INACTIVE:
                raise InvalidStateError("mark() while inactive")
            number = len(self.markers) + 1
            label = clean_label(label, number)
            rate = self.source.samplerate
            capture = self._capture
            if self.voice is None:
                frame = self._now_frame()
                marker = Marker(number, frame / rate, label, frame=frame)
                queue = self._pending_marks
            else:
                # Where it lands in the file is known once the gate has decided about the
                # audio before it (the writer maps it); until then, an estimate.
                marker = Marker(number, (self.frames + len(capture.ring)) / rate, label,
                                frame=capture.accepted)
                queue = self._unmapped_marks
            with self._marks_lock:
                # (a device's position is an estimate: keep the queue in frame order)
                bisect.insort(queue, marker, key=lambda m: m.frame)
            self.markers.append(marker)
            event = MarkEvent("mark", timecode=marker.time, label=label, number=number)
            event.target = self  # not _post: a marker at 0.0 keeps its timecode
            self._dispatcher.post(event)
            return marker

    #: the most a device's position is carried forward past its last delivery (seconds)
    MAX_MARK_EXTRAPOLATION = 0.3

    #: a device clock that jumps by more than this (seconds) lost audio: start afresh
    CLOCK_JUMP = 0.5

    def _now_frame(self) -> int:
        """The recorded position of this moment: the frames that went into the ring, plus,
        for a device while recording, the frames it has captured but not yet handed over
        (a device delivers in blocks, up to a quarter second apart: without them a marker
        would land up to a block early).

        When a frame was captured is learnt from the deliveries: each one says that its
        last frame existed by the time it arrived, so the delivery that came soonest
        after its frames (the least ``arrival - frames / rate`` of the last few seconds)
        gives the device's clock; "now" on that clock, less what was delivered, is what
        is still on its way. A block that arrived late therefore does not move a marker
        early, as counting from the last delivery would."""
        capture = self._capture
        frame = capture.accepted
        if self._state == PAUSED:
            return max(frame, capture.keep_until)  # where the pause cut, once it arrives
        if self._state != RECORDING or not getattr(self.source, "live", False):
            return frame
        if self._lost is not None:
            return frame  # the device is gone: nothing is on its way; the audio resumes here
        rate = self.source.samplerate
        origin = None  # the monotonic time of the device's frame 0
        for t, received in list(capture.deliveries):
            lag = t - received / rate
            if origin is None or lag > origin + self.CLOCK_JUMP:
                origin = lag  # (the first, or frames were lost: the clock moved on)
            else:
                origin = min(origin, lag)
        if origin is None:
            return frame
        now = time.monotonic()
        ahead = (now - origin) - capture.received / rate
        ahead = min(ahead, now - self._resumed_at, self.MAX_MARK_EXTRAPOLATION)
        return frame + int(max(0.0, ahead) * rate)

    def gaps_in(self, path: str) -> list[dict]:
        """The gaps a file of this recording holds, ``time`` in seconds of that file
        (split pieces, pieces cut on silence or at markers alike)."""
        path = os.fspath(path)
        if path not in self.paths:
            return []
        # pieces are numbered from 1 as they are opened; a recording not cut in pieces is 0
        number = self.paths.index(path) + 1 if self._piece else 0
        return [dict(g, time=round(t, 6)) for g, (piece, t) in zip(self.gaps, self._gap_places)
                if piece == number]

    def markers_in(self, path: str) -> list[Marker]:
        """The markers a file of this recording holds, in seconds of that file."""
        return list(self.file_markers.get(os.fspath(path), []))

    def file_of(self, marker: Marker, timeout: float = 0.0) -> str | None:
        """The file that holds ``marker``, once the writer has put it there (within about
        half a second of the mark while recording; with ``split_on_mark``, the new piece
        it starts). Waits up to ``timeout`` seconds; None if it is not placed by then."""
        deadline = time.monotonic() + timeout
        while True:
            for path, held in list(self.file_markers.items()):
                if any(m.number == marker.number for m in held):
                    return path
            if time.monotonic() >= deadline or self._state != RECORDING:
                return None  # (paused: nothing is written until it resumes)
            time.sleep(0.02)

    def request_data(self) -> None:
        """Ask for a ``dataavailable`` with what was recorded since the last one."""
        with self._lock:
            if self._state == INACTIVE:
                raise InvalidStateError("request_data() while inactive")
            self._data_requested = True
            self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the recording has ended and its ``stop`` event was dispatched.
        Returns False on time-out. A recording never started counts as ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in (self._writer, self._dispatcher.thread if self._dispatcher else None):
            if t is None or t is threading.current_thread():
                continue
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                return False
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._state != INACTIVE:
            self.stop()
        else:
            self.wait()

    @staticmethod
    def is_type_supported(mime_type: str) -> bool:
        return is_type_supported(mime_type)

    # ------------------------------------------------------------------ frames tap

    def add_frames_listener(self, listener) -> None:
        """Call ``listener(frames, media_time)`` with every block of frames as it is
        written, ``media_time`` being the recorded seconds at its first frame (paused and
        skipped audio is left out, so the blocks follow each other without gaps).

        It runs on the writer thread: it must copy what it wants (the array is reused
        after the call) into a bounded queue of its own and return at once. A listener
        that raises is logged and removed; the recording goes on. Without listeners,
        writing costs what it did before (one empty-list check per write).
        """
        with self._lock:
            if listener not in self._frames_listeners:
                # copy on write: the writer iterates over the list it read, unlocked
                self._frames_listeners = [*self._frames_listeners, listener]

    def remove_frames_listener(self, listener) -> None:
        with self._lock:
            self._frames_listeners = [f for f in self._frames_listeners if f is not listener]

    def post_event(self, event: Event) -> None:
        """Queue ``event`` for this recorder's listeners, in order with its own events
        (for helpers that fire events on a recorder, such as the live transcriber). After
        the recording has ended it is dispatched on the calling thread, after every event
        the recorder queued."""
        event.target = self
        if not event.timecode:
            event.timecode = self._timecode()
        d = self._dispatcher
        if d is None:
            self.dispatch_event(event)
        else:
            d.post(event)

    def _tap(self, frames: np.ndarray, media_frames: int) -> None:
        media_time = media_frames / self.source.samplerate
        for fn in self._frames_listeners:
            try:
                fn(frames, media_time)
            except Exception:
                log.exception("a frames listener raised; it is removed")
                self.remove_frames_listener(fn)

    # ------------------------------------------------------------------ internals

    def _timecode(self) -> float:
        return self.frames / self.source.samplerate

    def _post(self, event: Event) -> None:
        event.target = self
        if not event.timecode:
            event.timecode = self._timecode()
        self._dispatcher.post(event)

    def _halt_source(self) -> None:
        capture = self._capture
        capture.ring.close()  # releases a file reader blocked on a full ring
        self.source.stop()
        capture.accepting = False
        self._wake.set()

    def _auto_stop(self) -> bool:
        """Called by the writer when the recording ends by itself. False if already stopping."""
        with self._lock:
            if self._state == INACTIVE:
                return False
            self._state = INACTIVE
            self._stop_requested = True
        return True

    def _open_output(self) -> Encoder:
        output = self.output
        if self.split or self.split_on_mark or (self.voice is not None and self.voice.split_on_silence):
            self._piece += 1
            output = split_path(os.fspath(output), self._piece)
            check_not_the_input(self.source, output)
        enc = make_encoder(output, self._format, self.source.samplerate, self.source.channels,
                           self.subtype, force=self.force)
        self._piece_start = self.frames
        if enc.sink.path:
            self.paths.append(enc.sink.path)
            # A file made here is new audio: the markers and transcript left beside an
            # overwritten file (or one deleted by hand) describe audio that is gone, and a
            # transcript would otherwise be printed and searched as this recording's.
            from ..containers.markers import remove_sidecar
            from ..library.transcript import remove as remove_transcript

            for remove in (remove_sidecar, remove_transcript):
                try:
                    remove(enc.sink.path)
                except OSError:
                    pass  # one that cannot be removed must not cost the recording
        return enc

    def _pump(self, buf: np.ndarray) -> int:
        """Move one chunk from the ring to the encoder (through the voice gate, if any).
        Returns the frames taken from the ring."""
        n = self._capture.ring.read_into(buf)
        if n:
            if self.voice is None:
                self._write(buf[:n])
            else:
                self._gate(buf[:n])
        return n

    def _gate(self, frames: np.ndarray) -> None:
        """Frames through the voice gate; a marker made inside them is given the place
        in the file where the audio after it goes (the gate may hold or drop audio, so
        ring positions are not file positions)."""
        start = self._ring_read
        self._ring_read += len(frames)
        i = 0
        while True:
            with self._marks_lock:
                due = self._unmapped_marks[0] if self._unmapped_marks else None
                if due is not None and due.frame < start + len(frames):
                    self._unmapped_marks.pop(0)
                else:
                    due = None
            if due is None:
                break
            j = max(i, due.frame - start)
            if j > i:
                self._apply(self.voice.process(frames[i:j]))
            i = j
            self._map_mark(due)
        if i < len(frames):
            self._apply(self.voice.process(frames[i:]))

    def _map_mark(self, marker: Marker) -> None:
        marker.frame = self.frames + self.voice.pending_frames
        marker.time = self.frames / self.source.samplerate
        with self._marks_lock:
            self._pending_marks.append(marker)

    def _marks_around(self, frame: int) -> tuple[bool, int | None]:
        """(whether a pending marker is at or before ``frame``, the first one after it)."""
        with self._marks_lock:
            due = bool(self._pending_marks) and self._pending_marks[0].frame <= frame
            later = next((m.frame for m in self._pending_marks if m.frame > frame), None)
        return due, later

    def _place_marks(self, before: int | None) -> None:
        """Put the pending markers whose frame is below ``before`` (None: all that are
        left, at the end) into the current file, at their offset in it."""
        while True:
            with self._marks_lock:
                if not self._pending_marks or (before is not None and self._pending_marks[0].frame >= before):
                    return
                marker = self._pending_marks.pop(0)
            self._place(marker, at_end=before is None)

    def _place(self, marker: Marker, at_end: bool = False) -> None:
        enc = self._encoder
        rate = self.source.samplerate
        if enc is not None:
            offset = max(0, marker.frame - self._piece_start)
            if at_end:  # made after the last frame that reached the file
                offset = min(offset, enc.frames)
            enc.add_marker(offset, marker.number, marker.label)
            path = enc.sink.path
        else:  # the recording ended on a piece boundary: the last piece, at its end
            path = self.paths[-1] if self.paths else None
            offset = self.piece_frames.get(path, 0) if path else 0
        if not path:
            return
        held = self.file_markers.setdefault(path, [])
        held.append(Marker(marker.number, offset / rate, marker.label, frame=offset))
        try:
            from ..containers.markers import save_sidecar

            save_sidecar(path, held)
        except OSError:
            pass  # the file and its cue chunk still have it; a full disk says so elsewhere

    def _apply(self, actions: list) -> None:
        """Carry out the voice gate's decisions."""
        for kind, frames in actions:
            if kind == "write":
                self._write(frames)
            elif kind == "cut":
                self._close_piece()
            elif kind in ("pause", "resume"):
                self._post(Event(kind, reason="silence"))
            elif kind == "stop":
                self._voice_stopped = True

    def _write(self, frames: np.ndarray) -> None:
        """Write frames, cutting exactly at the frame limit and at timeslice and split
        boundaries (where a blob is cut or a piece closed)."""
        i = 0
        while i < len(frames) and not self._limit_reached():
            k = len(frames) - i
            if self._limit is not None:
                k = min(k, self._limit - self.frames)
            for period in (self._timeslice_frames, self._split_frames):
                if period:
                    k = min(k, period - self.frames % period)
            if self.split_on_mark:
                due, later = self._marks_around(self.frames)
                if due and self._encoder is not None and self.frames > self._piece_start:
                    self._close_piece()  # the marker starts the next piece
                    continue
                if later is not None:
                    k = min(k, later - self.frames)
            if self._encoder is None:  # the next split piece, opened when it has audio
                self._encoder = self._open_output()
            enc = self._encoder
            self._place_marks(self.frames + k)
            before = enc.frames
            try:
                enc.write(frames[i:i + k])
            except WriteError:
                self.frames += max(0, enc.frames - before)  # what fit is in the file
                raise
            if self._frames_listeners:
                self._tap(frames[i:i + k], self.frames)
            self.frames += k
            i += k
            if self._split_frames and self.frames % self._split_frames == 0:
                self._close_piece()
            elif self._timeslice_frames and self.frames % self._timeslice_frames == 0:
                self._post(BlobEvent("dataavailable", data=enc.cut()))

    def _close_piece(self) -> None:
        enc, self._encoder = self._encoder, None
        if enc is None:
            return
        blob = enc.close()
        if enc.sink.path:
            self.piece_frames[enc.sink.path] = enc.frames
        self._bytes_closed += enc.bytes_written
        self._post(BlobEvent("dataavailable", data=blob))

    def _place_leftover_marks(self) -> None:
        """Markers not yet in a file when the recording ends (made after its last
        frame, beyond a frame limit, or held by a voice gate) go at the end."""
        with self._marks_lock:
            unmapped, self._unmapped_marks = self._unmapped_marks, []
        for marker in unmapped:
            self._map_mark(marker)
        self._place_marks(None)

    def _limit_reached(self) -> bool:
        return self._limit is not None and self.frames >= self._limit

    def _run_writer(self) -> None:
        capture = self._capture
        buf = np.zeros((max(1, int(self.source.samplerate * self.CHUNK_SECONDS)),
                        self.source.channels), dtype=capture.ring.dtype)
        next_sync = time.monotonic() + self.SYNC_INTERVAL
        write_ahead = max(1, int(self.source.samplerate * self.WRITE_AHEAD))
        error: BaseException | None = None
        try:
            while True:
                n = self._pump(buf)
                if self._data_requested:  # honoured even when a stop follows (as in the browser)
                    self._data_requested = False
                    enc = self._encoder
                    self._post(BlobEvent("dataavailable",
                                         data=enc.cut() if enc else Blob(self.mime_type, b"")))
                if self._limit_reached() or self._stop_requested or self._voice_stopped:
                    break
                if n:
                    continue
                if capture.ended:  # the source ended by itself
                    # ...unless stop() ended it after the check above: a device reports
                    # the end of a stream stop() stopped like a lost one (not an error).
                    if capture.error is None and self._is_device() and not self._stop_requested:
                        capture.error = self._lost_error()
                    if not self._stop_requested and self._reconnect(capture):
                        continue
                    break
                now = time.monotonic()
                try:
                    self._check_stall(capture, now)
                except DeviceError as e:
                    # a device that stops sending (a frozen server) is lost too; one that
                    # never sent anything is not waited for again
                    if capture.last_frame_time is None:
                        raise
                    capture.error = e
                    if self._reconnect(capture):
                        continue
                    break
                if now >= next_sync and self._encoder is not None:
                    self._encoder.sync(durable=True)
                    next_sync = now + self.SYNC_INTERVAL
                capture.wake_at = self._frames_wanted(write_ahead)
                if len(capture.ring) < capture.wake_at:  # (frames may have come meanwhile)
                    self._wake.wait(self.IDLE_WAIT)
                self._wake.clear()
        except DictaphoneError as e:
            error = e
        except Exception as e:  # a bug or an unexpected failure: still finalize the file
            error = WriteError(f"recording failed: {type(e).__name__}: {e}")
            error.__cause__ = e
        self._finish(error or capture.error, buf)

    def _frames_wanted(self, write_ahead: int) -> int:
        """How many frames in the ring make the next write worth a wake-up: WRITE_AHEAD,
        or exactly what reaches the next timeslice, split or limit boundary (counted in
        frames written; with a voice gate that leaves silence out, this wakes early,
        never late)."""
        n = write_ahead
        for period in (self._timeslice_frames, self._split_frames):
            if period:
                n = min(n, period - self.frames % period)
        if self._limit is not None:
            n = min(n, self._limit - self.frames)
        return max(1, n)

    def _is_device(self) -> bool:
        from ..capture.sources import FileSource

        return not isinstance(self.source, FileSource)

    def _check_stall(self, capture: _Capture, now: float) -> None:
        last = capture.last_frame_time
        if last is None:
            if self.start_timeout and now - self._started_at > self.start_timeout:
                self._source_stalled()
                raise DeviceError(f"{self.source.name}: no audio arrived within {self.start_timeout:g} s")
        elif self.stall_timeout and now - last > self.stall_timeout:
            self._source_stalled()
            lost = getattr(self.source, "lost_error", None)
            if lost is not None:
                raise lost(silent_for=self.stall_timeout)
            raise DeviceError(f"{self.source.name}: no audio for {self.stall_timeout:g} s (device lost?)")

    def _lost_error(self) -> DeviceError:
        """The error of a device stream that ended by itself, in the source's words."""
        lost = getattr(self.source, "lost_error", None)
        if lost is not None:
            return lost()
        return DeviceError(f"{self.source.name}: the audio stream ended")

    def _reconnect(self, capture: _Capture) -> bool:
        """The device went away (``capture.error``): keep the output open, fire
        ``devicelost``, and reopen the device as soon as it is back: ``devicerestored``,
        True, and the writer goes on. False when the window ran out (``capture.error``
        then says so) or a stop was asked for meanwhile (no error: a normal stop)."""
        error, source = capture.error, self.source
        if not self.reconnect or not isinstance(error, DeviceError) or self._stop_requested:
            return False
        reason = getattr(error, "reason", None) or str(error)
        device = getattr(source, "label", source.name)
        lost_at = time.monotonic()
        last_audio = capture.last_frame_time or lost_at
        deadline = lost_at + self.reconnect
        timecode = self._timecode()
        self._lost = {"reason": reason, "since": last_audio, "deadline": deadline}
        with self._marks_lock:
            # A marker counted audio still on its way from the device (up to a quarter
            # second): it never came, so the marker is where the audio resumes, not as
            # far into the audio after the gap.
            for m in self._pending_marks:
                m.frame = min(m.frame, capture.accepted)
                m.time = m.frame / self.samplerate
        self._post(DeviceEvent("devicelost", device=device, reason=reason, wait=self.reconnect))
        if self._encoder is not None:  # what came before the loss is safe on disk meanwhile
            self._encoder.sync(durable=True)
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
                    quiet_until = min(deadline, time.monotonic() + self.RECONNECT_FIRST_AUDIO)
                    while (capture.received == received and not capture.ended
                           and not self._stop_requested and time.monotonic() < quiet_until):
                        self._wake.wait(0.1)
                        self._wake.clear()
                    if capture.received > received and not capture.ended:
                        # the audio missing: from the last frames before the loss to the
                        # first ones after it (the time they were read, less their length)
                        back = capture.last_frame_time - (capture.received - received) / self.samplerate
                        gap = max(0.0, back - last_audio)
                        self.gaps.append({"time": round(timecode, 6), "duration": round(gap, 3),
                                          "reason": reason})
                        if self._encoder is None:  # between split pieces: the next one's start
                            self._gap_places.append((self._piece + 1, 0.0))
                        else:
                            self._gap_places.append(
                                (self._piece, (self.frames - self._piece_start) / self.samplerate))
                        self._post(DeviceEvent("devicerestored", device=device, reason=reason,
                                               gap=gap))
                        return True
                    try:
                        source.lost()
                    except Exception:
                        pass
                if self._stop_requested:
                    capture.ended, capture.error = True, None
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    gone = f"did not come back within {self.reconnect:g} s"
                    capture.error = (DeviceLostError(device, f"{reason} and {gone}")
                                     if isinstance(error, DeviceLostError)
                                     else DeviceError(f"{error}; it {gone}"))
                    return False
                self._wake.wait(min(self.RECONNECT_RETRY, left))
                self._wake.clear()
        finally:
            capture.wake_at = wake_at
            self._lost = None

    def _source_stalled(self) -> None:
        mark = getattr(self.source, "mark_stalled", None)
        if mark is not None:
            mark()

    def _finish(self, error: BaseException | None, buf: np.ndarray) -> None:
        self._auto_stop()
        try:
            self._halt_source()
        except Exception:
            pass  # a source that fails to stop has stopped delivering all the same
        # What reached the ring before the source stopped is kept, unless the output
        # itself failed.
        if not isinstance(error, WriteError):
            try:
                while not self._limit_reached() and not self._voice_stopped and self._pump(buf):
                    pass
                if self.voice is not None:
                    self._apply(self.voice.flush())
            except DictaphoneError as e:
                error = e
        if error is not None:
            self._post(ErrorEvent("error", error=error))
        self._place_leftover_marks()
        enc = self._encoder
        try:
            last = enc.close() if enc else Blob(self.mime_type, b"")
        except DictaphoneError as e:  # e.g. the disk filled up with the encoder's last data
            if error is None:
                error = e
                self._post(ErrorEvent("error", error=e))
            last = Blob(self.mime_type, b"")
        if enc is not None and isinstance(error, WriteError):
            # after a failed write, the file (repaired if need be) says what was kept
            self.frames = self._piece_start + enc.frames
        if enc is not None and enc.sink.path:
            self.piece_frames[enc.sink.path] = enc.frames
        self.error = error
        try:
            self.source.close()
        except Exception:
            pass
        self._post(BlobEvent("dataavailable", data=last))
        self._post(StopEvent("stop", dropped_frames=self.dropped_frames, frames=self.frames,
                             path=self.path, paths=list(self.paths)))
        self._dispatcher.close(wait=False)


def split_path(path: str, n: int) -> str:
    """The name of piece ``n`` of a split recording: ``memo.wav`` -> ``memo-001.wav``.
    A path containing ``{n}`` (a str.format field, e.g. ``take-{n:02d}.flac``) is
    formatted instead."""
    if "{n" in path:
        return path.format(n=n)
    stem, ext = os.path.splitext(path)
    return f"{stem}-{n:03d}{ext}"


def same_file(a, b) -> bool:
    """Whether two paths (or open files) are one file: the same device and inode, so
    symlinks, hard links and other spellings of a path are all caught."""
    try:
        sa = os.fstat(a) if isinstance(a, int) else os.stat(a)
        sb = os.fstat(b) if isinstance(b, int) else os.stat(b)
    except (OSError, ValueError, TypeError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_not_the_input(source, output) -> None:
    """Refuse to write the recording over the file it is read from (with ``force`` too):
    opening the output would truncate the input before a frame of it was read."""
    path = getattr(source, "path", None)
    if not isinstance(path, (str, os.PathLike)) or output is None:
        return
    if isinstance(output, (str, os.PathLike)):
        target = os.fspath(output)
    else:
        try:
            target = output.fileno()
        except (AttributeError, OSError, ValueError):
            return
    if same_file(path, target):
        shown = target if isinstance(target, str) else "the output stream"
        raise OutputError(f"{shown} is the input file {os.fspath(path)}; recording into it "
                          f"would destroy it: choose another output")
