"""Events, blobs and the dispatcher thread that runs listeners.

Listeners never run on the audio thread nor on the writer thread: the recorder queues
events, and one dispatcher thread per recording calls the listeners in order. A listener
that raises is reported through the ``dictaphone`` logger and does not stop the others
(as in the browser, where an exception in a handler is reported, not propagated).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import Any, Callable

log = logging.getLogger("dictaphone")

EVENT_TYPES = ("start", "dataavailable", "pause", "resume", "stop", "error", "transcript",
               "partial", "devicelost", "devicerestored", "mark")


class Blob:
    """Recorded bytes, like the browser's Blob: ``size``, ``type`` and ``bytes()``.

    A blob of an in-memory recording holds its bytes. A blob of a recording to a file is
    a region of that file (``path``, ``offset``, ``size``) read when ``bytes()`` is
    called, so that nothing is held twice in memory and the blobs of one recording,
    concatenated, are exactly the finished file (its header included). A blob of a
    recording to a stream (stdout) has a size but its bytes went to the stream.
    """

    __slots__ = ("size", "type", "path", "offset", "_data")

    def __init__(self, type: str, data: bytes | None = None, *, size: int | None = None,
                 path: str | None = None, offset: int = 0):
        self.type = type
        self._data = data
        self.path = path
        self.offset = offset
        self.size = len(data) if data is not None else int(size or 0)

    def bytes(self) -> bytes:
        if self._data is not None:
            return self._data
        if self.path is not None:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                return f.read(self.size)
        if self.size == 0:
            return b""
        from .errors import InvalidStateError

        raise InvalidStateError("this blob's bytes went to the output stream and are not kept")

    def __repr__(self) -> str:
        where = f" path={self.path!r} offset={self.offset}" if self.path else ""
        return f"<Blob type={self.type!r} size={self.size}{where}>"


@dataclasses.dataclass
class Event:
    """An event of a recording. ``timecode`` is the recorded duration (seconds) when it fired."""

    type: str
    target: Any = None
    timecode: float = 0.0
    time: float = dataclasses.field(default_factory=time.time)  #: wall clock (epoch seconds)
    #: why a pause/resume happened: None when asked for, "silence" when the voice gate
    #: left a silence out
    reason: str | None = None


@dataclasses.dataclass
class BlobEvent(Event):
    """A ``dataavailable`` event; ``data`` is the :class:`Blob` gathered since the last one."""

    data: Blob | None = None


@dataclasses.dataclass
class ErrorEvent(Event):
    """An ``error`` event; ``error`` is the exception (a DictaphoneError)."""

    error: BaseException | None = None


@dataclasses.dataclass
class DeviceEvent(Event):
    """``devicelost`` (the device went away; the recorder waits for it, the file stays
    open) and ``devicerestored`` (it is back and the recording goes on in the same file).
    ``reason`` says what happened in words; ``gap`` (devicerestored) is the seconds of
    audio missing between the two; ``device`` names the device."""

    device: str | None = None
    gap: float | None = None
    #: devicelost: the most seconds the recorder waits for the device
    wait: float | None = None


@dataclasses.dataclass
class MarkEvent(Event):
    """A ``mark`` event (MediaRecorder.mark): ``timecode`` is the marker's place in the
    recording (seconds, paused time left out), ``number`` counts from 1."""

    label: str = ""
    number: int = 0


@dataclasses.dataclass
class StopEvent(Event):
    """The ``stop`` event, with what the recording came to."""

    dropped_frames: int = 0
    frames: int = 0
    path: str | None = None  #: the output file (the last piece when splitting)
    paths: list = dataclasses.field(default_factory=list)  #: every file written


@dataclasses.dataclass
class TranscriptEvent(Event):
    """A ``transcript`` event (live transcription, see live.py): the ``text`` of one
    utterance, which began at ``start`` and ended at ``end`` seconds of recorded media.
    ``segments``: its :class:`dictaphone.library.transcript.Segment` objects, with word times."""

    text: str = ""
    start: float = 0.0
    end: float = 0.0
    segments: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PartialEvent(Event):
    """A ``partial`` event (live transcription, see speech/live.py): the utterance still
    being spoken, as recognised so far. ``text`` is its whole current hypothesis,
    ``committed`` the settled prefix of it (it only grows within an utterance; the
    rest may still change), ``start`` where the utterance began and ``end`` how far the
    recording was heard for this hypothesis, in seconds of recorded media. The
    utterance's ``transcript`` event (its final text, which may differ) follows; a
    partial event with empty text says the utterance held no words after all."""

    text: str = ""
    committed: str = ""
    start: float = 0.0
    end: float = 0.0


Listener = Callable[[Event], Any]


class EventTarget:
    """add_event_listener / remove_event_listener and ``on<type>`` attributes."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {t: [] for t in EVENT_TYPES}
        self._listeners_lock = threading.Lock()
        for t in EVENT_TYPES:
            setattr(self, "on" + t, None)

    def add_event_listener(self, type: str, listener: Listener) -> None:
        with self._listeners_lock:
            lst = self._listeners_for(type)
            if listener not in lst:  # the DOM ignores a second add of the same listener
                lst.append(listener)

    def remove_event_listener(self, type: str, listener: Listener) -> None:
        with self._listeners_lock:
            lst = self._listeners_for(type)
            if listener in lst:
                lst.remove(listener)

    def _listeners_for(self, type: str) -> list[Listener]:
        if type not in self._listeners:
            raise ValueError(f"unknown event type {type!r}; one of {', '.join(EVENT_TYPES)}")
        return self._listeners[type]

    def dispatch_event(self, event: Event) -> None:
        """Run the listeners of ``event`` now, on the calling thread."""
        with self._listeners_lock:
            listeners = list(self._listeners[event.type])
        handler = getattr(self, "on" + event.type, None)
        if handler is not None:
            listeners.insert(0, handler)
        for fn in listeners:
            try:
                fn(event)
            except Exception:
                log.exception("a %s listener raised", event.type)


class Dispatcher:
    """One thread that dispatches queued events in order; ``close()`` ends it."""

    _STOP = object()

    def __init__(self, target: EventTarget, name: str = "dictaphone-events"):
        self._target = target
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def post(self, event: Event) -> None:
        """Queue ``event``. Once closed, the thread dispatches what it has, then the event
        is dispatched on the calling thread (so it still comes after everything queued)."""
        with self._lock:
            if not self._closed:
                self._queue.put(event)
                return
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._target.dispatch_event(event)

    def close(self, wait: bool = True) -> None:
        """Dispatch what is queued, then end the thread (wait for it unless called from it)."""
        with self._lock:
            self._closed = True
            self._queue.put(self._STOP)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is self._STOP:
                return
            self._target.dispatch_event(event)
