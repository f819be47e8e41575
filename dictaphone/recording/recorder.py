"""MediaRecorder: the state machine and the public surface of a recording.

The recorder keeps the state (inactive, recording, paused), checks every argument before
the first frame, and fires the events; the work is done by the parts it owns, one per job:

- :class:`~.intake.Intake`: the audio thread's side (frames into the ring, counts, the
  device's clock);
- :class:`~.writer.Writer`: the writer thread (ring to encoder, timeslices, pieces, the
  frame limit, header syncs, the end);
- :class:`~.pieces.Pieces`: the files made (one, or numbered pieces);
- :class:`~.placement.MarkerPlacement`: markers from the moment made to a file;
- :class:`~.reconnect.Reconnection`: stalls, device loss and reconnection;
- :class:`~.gating.GatedInput`: audio through the voice gate (recording/vad.py).

Threads (and which may block):
- the caller's thread: start/stop/pause/resume/request_data. stop() blocks until the
  output is complete and the last events are dispatched.
- the audio thread (a PortAudio callback, or a file reader): ``Intake.push`` copies
  into the ring, counts drops, updates the level. Never blocks (file readers may wait
  for room through ``push_all``: a file must not drop).
- the writer thread: ``Writer.run``. May block on I/O.
- the dispatcher thread: runs listeners (events.py). Listeners may block it; they never
  delay capture or writing.

Semantics follow MDN's MediaRecorder, including ``stop()`` on an inactive recorder
raising InvalidStateError (Chromium does; the current W3C draft made it a no-op).
"""

from __future__ import annotations

import functools
import os
import threading
import time

from .. import args
from ..capture.levels import LevelMeter
from ..capture.ring import RingBuffer
from ..capture.sources import Source, check_reconnect
from ..containers.formats import SUBTYPE_DTYPES, Format, format_for_mime, is_type_supported
from ..containers.markers import Marker, clean_label
from ..errors import InvalidArgumentError, InvalidStateError, NotSupportedError
from ..events import Dispatcher, Event, EventTarget, MarkEvent
from .intake import Intake
from .pieces import Pieces, check_not_the_input, same_file, split_path  # noqa: F401 (their old home)
from .placement import MarkerPlacement
from .reconnect import Reconnection
from .writer import FramesTap, Writer

INACTIVE, RECORDING, PAUSED = "inactive", "recording", "paused"

#: the shortest timeslice and split piece (seconds): below them a recording would make
#: thousands of blobs or files a minute, or pieces shorter than a frame
MIN_TIMESLICE = 0.01
MIN_SPLIT = 0.1


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
    RECONNECT_RETRY = Reconnection.RETRY
    #: how long a reopened device may take to send its first audio before it is closed
    #: and tried again (seconds; PulseAudio takes up to 2)
    RECONNECT_FIRST_AUDIO = Reconnection.FIRST_AUDIO
    #: the most a device's position is carried forward past its last delivery (seconds)
    MAX_MARK_EXTRAPOLATION = 0.3
    #: a device clock that jumps by more than this (seconds) lost audio: start afresh
    CLOCK_JUMP = 0.5

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
        if ((split is not None or split_on_mark or (voice is not None and voice.split_on_silence))
                and isinstance(output, (str, os.PathLike))):
            from ..atomic import is_write_through

            if is_write_through(output):  # pieces next to /dev/null would be files in /dev
                raise InvalidArgumentError(f"{os.fspath(output)} is a FIFO or a device, written "
                                           f"as a stream: pieces need a file name")
        can_reopen = callable(getattr(source, "reopen", None)) and callable(getattr(source, "lost", None))
        if reconnect is None:
            self.reconnect = check_reconnect(getattr(source, "reconnect", 0) or 0) if can_reopen else 0.0
        else:
            self.reconnect = check_reconnect(reconnect)
            if self.reconnect and not can_reopen:
                raise InvalidArgumentError(f"{source.name} cannot be reopened: reconnect is for devices")
        self.level = LevelMeter(channels=source.channels)
        self._state = INACTIVE
        self._lock = threading.RLock()
        self._started_at = self._resumed_at = 0.0
        self._dispatcher: Dispatcher | None = None
        self._tap = FramesTap()
        #: every marker made, its ``time`` in seconds of the whole recording
        self.markers: list[Marker] = []
        # The parts of the recording under way (or of the last one): made by start()
        self._capture: Intake | None = None
        self._pieces: Pieces | None = None
        self._marks: MarkerPlacement | None = None
        self._link: Reconnection | None = None
        self._writer: Writer | None = None

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
    def frames(self) -> int:
        """Frames recorded so far (written to the output)."""
        return self._writer.frames if self._writer is not None else 0

    @property
    def duration(self) -> float:
        """Seconds of audio recorded so far (paused time left out)."""
        return self.frames / self.source.samplerate

    @property
    def error(self) -> BaseException | None:
        """What ended the last recording, once it has ended (None: a normal stop)."""
        return self._writer.error if self._writer is not None else None

    @property
    def dropped_frames(self) -> int:
        c = self._capture
        return c.dropped if c is not None else 0

    @property
    def bytes_written(self) -> int:
        """Bytes of output so far (all split pieces together)."""
        return self._pieces.bytes_written if self._pieces is not None else 0

    @property
    def started(self) -> bool:
        """True once the source delivered its first frames."""
        c = self._capture
        return c is not None and c.first_frame_time is not None

    @property
    def paths(self) -> list[str]:
        """The files made (split pieces in order)."""
        return self._pieces.paths if self._pieces is not None else []

    @property
    def piece_frames(self) -> dict[str, int]:
        """Frames in each finished file of ``paths`` (filled as pieces are closed)."""
        return self._pieces.frames_in if self._pieces is not None else {}

    @property
    def file_markers(self) -> dict[str, list[Marker]]:
        """Per file: the markers it holds, their ``time`` in seconds of that file."""
        return self._marks.file_markers if self._marks is not None else {}

    @property
    def gaps(self) -> list[dict]:
        """The device losses the recording survived: {"time": recorded seconds where the
        audio is missing, "duration": seconds missing, "reason": what happened}."""
        return self._link.gaps if self._link is not None else []

    @property
    def device_lost(self) -> dict | None:
        """While the device is lost and waited for: ``reason``, ``lost`` (seconds since
        its last audio) and ``left`` (seconds the recorder still waits); else None."""
        lost = self._link.lost if self._link is not None else None
        if lost is None:
            return None
        now = time.monotonic()
        return {"reason": lost["reason"], "lost": now - lost["since"],
                "left": max(0.0, lost["deadline"] - now)}

    @property
    def path(self) -> str | None:
        """The output file (the current piece when splitting); None for memory and streams."""
        if self._pieces is not None:
            return self._pieces.path
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
            source, rate = self.source, self.source.samplerate
            dtype = SUBTYPE_DTYPES.get(self.subtype, "float32")
            ring = RingBuffer(max(int(rate * self.BUFFER_SECONDS), 4096), source.channels, dtype)
            intake = Intake(ring, self.level, threading.Event())
            cut = bool(self.split or self.split_on_mark
                       or (self.voice is not None and self.voice.split_on_silence))
            pieces = Pieces(self.output, self._format, source, self.subtype, force=self.force,
                            cut=cut, expected_frames=None if cut else self._known_length())
            marks = MarkerPlacement(rate)
            self._capture, self._pieces, self._marks = intake, pieces, marks
            self._link = self._writer = None
            self.markers = []
            # Open the source before creating the output: a bad device leaves no file.
            source.open(intake, dtype)
            try:
                pieces.open(0)
            except BaseException:
                source.close()
                raise
            try:
                source.start()
            except BaseException:
                pieces.abort()
                source.close()
                raise
            self._dispatcher = Dispatcher(self)
            self._state = RECORDING
            self._started_at = self._resumed_at = time.monotonic()
            self._link = Reconnection(
                source, intake, pieces, marks, post=self._post, window=self.reconnect,
                stall_timeout=self.stall_timeout, start_timeout=self.start_timeout,
                started_at=self._started_at, retry=self.RECONNECT_RETRY,
                first_audio=self.RECONNECT_FIRST_AUDIO)
            self._writer = Writer(
                source, intake, pieces, marks, self._link, self._tap, post=self._post,
                on_end=self._auto_stop, on_done=functools.partial(self._dispatcher.close, wait=False),
                gate=self.voice, split_on_mark=self.split_on_mark, limit=self._limit_frames,
                timeslice=int(round(timeslice * rate)) if timeslice is not None else None,
                split=int(round(self.split * rate)) if self.split is not None else None,
                mime_type=self.mime_type, chunk=int(rate * self.CHUNK_SECONDS),
                write_ahead=max(1, int(rate * self.WRITE_AHEAD)), idle_wait=self.IDLE_WAIT,
                sync_interval=self.SYNC_INTERVAL)
            self._post(Event("start"))
            self._writer.thread.start()

    def stop(self) -> None:
        """Stop; when it returns, the output is complete and ``stop`` was dispatched
        (unless called from a listener, which cannot wait for its own thread)."""
        with self._lock:
            if self._state == INACTIVE:
                raise InvalidStateError("stop() while inactive")
            self._state = INACTIVE
            self._writer.stop_requested = True
        drain = getattr(self.source, "drain", None)  # sources written before drain() lack it
        if drain is not None:
            drain()
        self._writer.halt_source()
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
            else:
                # Where it lands in the file is known once the gate has decided about the
                # audio before it (the writer maps it); until then, an estimate.
                marker = Marker(number, (self.frames + len(capture.ring)) / rate, label,
                                frame=capture.accepted)
            self._marks.add(marker, mapped=self.voice is None)
            self.markers.append(marker)
            event = MarkEvent("mark", timecode=marker.time, label=label, number=number)
            event.target = self  # not _post: a marker at 0.0 keeps its timecode
            self._dispatcher.post(event)
            return marker

    def gaps_in(self, path: str) -> list[dict]:
        """The gaps a file of this recording holds, ``time`` in seconds of that file
        (split pieces, pieces cut on silence or at markers alike)."""
        number = self._pieces.number_of(os.fspath(path)) if self._pieces is not None else None
        if number is None or self._link is None:
            return []
        return self._link.gaps_in(number)

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
            self._writer.request_data()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the recording has ended and its ``stop`` event was dispatched.
        Returns False on time-out. A recording never started counts as ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        writer = self._writer.thread if self._writer is not None else None
        for t in (writer, self._dispatcher.thread if self._dispatcher else None):
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
            self._tap.add(listener)

    def remove_frames_listener(self, listener) -> None:
        with self._lock:
            self._tap.remove(listener)

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

    # ------------------------------------------------------------------ internals

    def _timecode(self) -> float:
        return self.frames / self.source.samplerate

    def _post(self, event: Event) -> None:
        event.target = self
        if not event.timecode:
            event.timecode = self._timecode()
        self._dispatcher.post(event)

    def _auto_stop(self) -> bool:
        """Called by the writer when the recording ends by itself. False if already stopping."""
        with self._lock:
            if self._state == INACTIVE:
                return False
            self._state = INACTIVE
            self._writer.stop_requested = True
        return True

    #: inputs whose frame count libsndfile knows exactly (from the header, or by reading
    #: the whole file): a recording of all of one has that length
    EXACT_LENGTH_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "FLAC", "AIFF", "CAF", "RAW"})

    def _known_length(self) -> int | None:
        """The frames this recording will have unless it is stopped early: the duration
        limit, or all of a file whose length is exact (a stream's WAV header declares it).
        None when only the end will tell (a device without a limit, a stream as the input,
        a voice gate that leaves audio out)."""
        if self.voice is not None:
            return None
        known = [self._limit_frames] if self._limit_frames is not None else []
        frames = getattr(self.source, "frames", None)
        if (not getattr(self.source, "live", False) and isinstance(frames, int) and frames >= 0
                and getattr(self.source, "file_format", None) in self.EXACT_LENGTH_FORMATS):
            known.append(frames)
        return min(known) if known else None

    def _now_frame(self) -> int:
        """The recorded position of this moment: the frames that went into the ring, plus,
        for a device while recording, the frames it has captured but not yet handed over
        (without them a marker would land up to a block early; see Intake.on_its_way)."""
        capture = self._capture
        frame = capture.accepted
        if self._state == PAUSED:
            return max(frame, capture.keep_until)  # where the pause cut, once it arrives
        if self._state != RECORDING or not getattr(self.source, "live", False):
            return frame
        if self._link.lost is not None:
            return frame  # the device is gone: nothing is on its way; the audio resumes here
        return frame + capture.on_its_way(self.source.samplerate, since=self._resumed_at,
                                          most=self.MAX_MARK_EXTRAPOLATION,
                                          clock_jump=self.CLOCK_JUMP)

    def _cut_timecode(self) -> float:
        """Where a pause cuts (or a resume joins) in the recording: the pause keeps what
        the device captured before it, so the cut is there, not at the frames written so
        far; the pause and its resume then carry the same time, as the paused time is left
        out. (With a voice gate, frames written is the only clock that maps to the file.)"""
        if self.voice is not None:
            return self._timecode()
        capture = self._capture
        return max(capture.accepted, capture.keep_until) / self.source.samplerate
