"""MediaRecorder: the state machine, events, timeslices, pause, errors and bounded memory,
on FileSource and on a fake device source (no audio device needed).

The fake source delivers a *counter* signal (frame i holds i + 1, channel 1 its
negative), so a test can tell exactly which frames reached the output.
"""

from __future__ import annotations

import errno
import io
import logging
import queue
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

import dictaphone.recording.recorder as recorder_mod
from dictaphone import (BlobEvent, DeviceError, DictaphoneError, ErrorEvent, FileSource,
                        InvalidArgumentError, InvalidStateError, MediaRecorder,
                        NotSupportedError, OutputError, SourceError, StopEvent, WriteError)
from dictaphone.errors import BrokenPipeOutputError
from dictaphone.events import EVENT_TYPES
from dictaphone.capture.levels import full_scale
from dictaphone.capture.sources import Source

RATE = 8000
JOIN = 10.0  # seconds: "does not hang" bounds, never speed requirements


# --------------------------------------------------------------------------- helpers


def counter(start: int, n: int, channels: int = 1, dtype="int32") -> np.ndarray:
    """Frames start..start+n-1 of the counter signal: frame i holds i + 1 (channel 1: -(i + 1))."""
    dtype = np.dtype(dtype)
    v = np.arange(start + 1, start + n + 1, dtype=np.int64)
    if dtype.kind == "f":
        v = (v % 1000) / 1000.0
    cols = [v if c % 2 == 0 else -v for c in range(channels)]
    return np.stack(cols, axis=1).astype(dtype)


class FakeSource(Source):
    """A device-like source driven by the test.

    Its own thread delivers what the test asks for: ``feed(n)`` pushes the next ``n``
    counter frames (``push`` like an audio callback, or ``push_all`` like a file reader
    when ``blocking``), ``end(error)`` ends the stream as a failing device would, and
    ``run()`` keeps delivering in real time until stopped. Not feeding is a stall.
    """

    name = "fake"

    def __init__(self, samplerate=RATE, channels=1, *, blocking=False, block=100, noise=False):
        self.samplerate = samplerate
        self.channels = channels
        self.blocking = blocking
        self.noise = noise  # random frames instead of the counter (which FLAC packs to nothing)
        self.block = block
        self.sent = 0  # frames handed to the capture
        self.capture = None
        self.thread: threading.Thread | None = None
        self._cmds: queue.SimpleQueue = queue.SimpleQueue()
        self._halt = threading.Event()
        self.opened = self.started = self.stopped = self.closed = False
        self.stop_calls = 0
        self.end_on_stop = False  # like PortAudio: a stopped stream reports that it ended

    # the Source interface
    def open(self, capture, dtype):
        self.capture = capture
        self.dtype = np.dtype(dtype)
        self.opened = True

    def start(self):
        self._halt.clear()
        self._cmds = queue.SimpleQueue()  # a fresh queue: no "halt" left from a last run
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="fake-audio", daemon=True)
        self.thread.start()
        self.started = True

    def stop(self):
        self.stop_calls += 1
        self._halt.set()
        self._cmds.put(("halt", None, None))
        t = self.thread
        if t is not None and t is not threading.current_thread():
            t.join(JOIN)
            assert not t.is_alive(), "the fake source's thread did not stop"
        if self.end_on_stop and not self.stopped:
            self.capture.end(None)
        self.stopped = True

    def close(self):
        self.stop()
        self.closed = True

    # what the test drives
    def feed(self, n: int, wait: bool = True, timeout: float = JOIN) -> None:
        self._do("frames", n, wait, timeout)

    def end(self, error=None) -> None:
        self._do("end", error, True, JOIN)

    def run(self) -> None:
        """Deliver in real time (paced) until stopped."""
        self._do("run", None, False, 0)

    def _do(self, cmd, arg, wait, timeout):
        done = threading.Event()
        self._cmds.put((cmd, arg, done))
        if wait:
            assert done.wait(timeout), f"the fake source did not finish {cmd!r}"

    def _run(self):
        while True:
            cmd, arg, done = self._cmds.get()
            if cmd == "halt" or self._halt.is_set():
                return
            if cmd == "frames":
                self._deliver(arg)
            elif cmd == "run":
                t0 = time.monotonic()
                start = self.sent
                while not self._halt.is_set():
                    self._deliver(self.block)
                    delay = t0 + (self.sent - start) / self.samplerate - time.monotonic()
                    if delay > 0:
                        self._halt.wait(delay)
            elif cmd == "end":
                self.capture.end(arg)
                done.set()
                return
            done.set()

    def _deliver(self, n):
        end = self.sent + n
        while self.sent < end and not self._halt.is_set():
            k = min(self.block, end - self.sent)
            frames = counter(self.sent, k, self.channels, self.dtype)
            if self.noise:
                rng = np.random.default_rng(self.sent)
                frames = (rng.uniform(-0.5, 0.5, frames.shape) * full_scale(self.dtype)).astype(self.dtype)
            if self.blocking:
                if not self.capture.push_all(frames):
                    return
            else:
                self.capture.push(frames)
            self.sent += k


class EventLog:
    """Listens to every event type; keeps the events and the threads they ran on."""

    def __init__(self, rec: MediaRecorder):
        self.events = []
        self.threads = []
        for t in EVENT_TYPES:
            rec.add_event_listener(t, self)

    def __call__(self, event):
        self.events.append(event)
        self.threads.append(threading.current_thread())

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, type: str) -> list:
        return [e for e in self.events if e.type == type]


def wait_until(cond, timeout=JOIN, what="condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def make_input(tmp_path, seconds=1.3, rate=RATE, channels=2, subtype="PCM_16", seed=7,
               name="input.wav"):
    """A WAV of random samples of ``subtype``; returns (path, frames in the capture dtype)."""
    n = int(round(seconds * rate))
    rng = np.random.default_rng(seed)
    if subtype == "PCM_16":
        data = rng.integers(-32768, 32768, (n, channels), dtype=np.int16)
    elif subtype == "PCM_24":
        data = (rng.integers(-(2 ** 23), 2 ** 23, (n, channels), dtype=np.int32) << 8).astype(np.int32)
    elif subtype == "PCM_32":
        data = rng.integers(-(2 ** 31), 2 ** 31, (n, channels), dtype=np.int64).astype(np.int32)
    else:
        data = rng.uniform(-1, 1, (n, channels)).astype(np.float32)
    path = tmp_path / name
    sf.write(path, data, rate, subtype=subtype)
    return path, data


def read_output(path_or_bytes, dtype="int16", raw_subtype=None, channels=2, rate=RATE):
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    kw = {}
    if raw_subtype:
        kw = dict(format="RAW", subtype=raw_subtype, samplerate=rate, channels=channels,
                  endian="LITTLE")
    return sf.read(src, dtype=dtype, always_2d=True, **kw)[0]


class FailingStream:
    """A pipe-like output: takes ``ok_bytes`` bytes, then raises ``exc`` (after waiting
    for ``gate`` when one is given)."""

    name = "<failing>"

    def __init__(self, exc, ok_bytes=0, gate: threading.Event | None = None):
        self.exc = exc
        self.ok_bytes = ok_bytes
        self.gate = gate
        self.data = bytearray()
        self.blocked = threading.Event()

    def write(self, data):
        data = bytes(data)
        if len(self.data) + len(data) > self.ok_bytes:
            if self.gate is not None:
                self.blocked.set()
                self.gate.wait(JOIN)
            if self.exc is not None:
                raise self.exc
        self.data += data
        return len(data)

    def flush(self):
        pass


class GatedStream(FailingStream):
    """Takes ``ok_bytes`` at once, then blocks each write until ``gate`` opens."""

    def __init__(self, ok_bytes, gate):
        super().__init__(None, ok_bytes, gate)


@pytest.fixture
def fake():
    sources = []

    def make(**kw):
        s = FakeSource(**kw)
        sources.append(s)
        return s

    yield make
    for s in sources:  # a failed test must not leave threads delivering
        s._halt.set()
        s._cmds.put(("halt", None, None))


@pytest.fixture
def recorders():
    """Recorders made by a test are stopped at its end, whatever happened. (In-process
    MediaRecorders: in this module it stands for conftest's CLI ``recorders``.)"""
    made = []
    yield made
    for rec in made:
        if rec.state != "inactive":
            try:
                rec.stop()
            except InvalidStateError:
                pass
        rec.wait(JOIN)


def recorder(recorders, source, mime="audio/wav", **kw) -> MediaRecorder:
    rec = MediaRecorder(source, mime, **kw)
    recorders.append(rec)
    return rec


def start_logged(recorders, source, mime="audio/wav", timeslice=None, **kw):
    """A recorder of ``source`` with an ``EventLog``, started (with ``timeslice``):
    (recorder, log)."""
    rec = recorder(recorders, source, mime, **kw)
    log = EventLog(rec)
    rec.start(timeslice=timeslice)
    return rec, log


def record_to_end(recorders, source, mime="audio/wav", timeslice=None, **kw):
    """``start_logged``, then wait (bounded) until the recording ended by itself."""
    rec, log = start_logged(recorders, source, mime, timeslice, **kw)
    assert rec.wait(JOIN)
    return rec, log


# --------------------------------------------------------------------------- the state machine


def test_a_new_recorder_is_inactive_and_wait_returns_at_once(fake, recorders):
    rec = recorder(recorders, fake())
    assert rec.state == "inactive"
    assert rec.wait(0) is True
    assert rec.mime_type == "audio/wav"


def test_start_twice_raises_invalid_state_error(fake, recorders):
    rec = recorder(recorders, fake())
    rec.start()
    with pytest.raises(InvalidStateError):
        rec.start()
    assert rec.state == "recording"
    rec.stop()


def test_start_while_paused_raises_invalid_state_error(fake, recorders):
    rec = recorder(recorders, fake())
    rec.start()
    rec.pause()
    with pytest.raises(InvalidStateError):
        rec.start()
    rec.stop()


def test_stop_while_inactive_raises_invalid_state_error(fake, recorders):
    rec = recorder(recorders, fake())
    with pytest.raises(InvalidStateError):
        rec.stop()
    rec.start()
    rec.stop()
    with pytest.raises(InvalidStateError):  # MDN: stop() on an inactive recorder throws
        rec.stop()


@pytest.mark.parametrize("method", ["pause", "resume", "request_data"])
def test_pause_resume_and_request_data_while_inactive_raise_invalid_state_error(method, fake, recorders):
    rec = recorder(recorders, fake())
    with pytest.raises(InvalidStateError):
        getattr(rec, method)()
    rec.start()
    rec.stop()
    with pytest.raises(InvalidStateError):
        getattr(rec, method)()


def test_invalid_state_error_is_a_dictaphone_error():
    assert issubclass(InvalidStateError, DictaphoneError)


def test_pause_while_paused_and_resume_while_recording_fire_no_second_event(fake, recorders):
    rec, log = start_logged(recorders, fake())
    rec.resume()  # already recording: a no-op
    rec.pause()
    rec.pause()  # already paused: a no-op
    assert rec.state == "paused"
    rec.resume()
    rec.resume()
    assert rec.state == "recording"
    rec.stop()
    assert log.types == ["start", "pause", "resume", "dataavailable", "stop"]


def test_events_come_in_order_start_pause_resume_dataavailable_stop(fake, recorders):
    src = fake()
    rec = recorder(recorders, src, subtype="PCM_32")
    log = EventLog(rec)
    states = {}
    for t in EVENT_TYPES:
        rec.add_event_listener(t, lambda e: states.setdefault(e.type, e.target.state))
    rec.start(timeslice=0.1)  # slices of 800 frames
    src.feed(300)  # less than a slice: no dataavailable can come before the pause
    rec.pause()
    src.feed(500)
    rec.resume()
    src.feed(1500)  # slices at 800 and 1600 recorded frames, then the last 200 at stop
    rec.stop()
    assert log.types == ["start", "pause", "resume"] + ["dataavailable"] * 3 + ["stop"]
    assert all(e.target is rec for e in log.events)
    assert isinstance(log.events[-1], StopEvent)
    assert all(isinstance(e, BlobEvent) for e in log.of("dataavailable"))
    assert states["stop"] == "inactive"


def test_state_follows_start_pause_resume_stop(fake, recorders):
    rec = recorder(recorders, fake())
    seen = [rec.state]
    rec.start()
    seen.append(rec.state)
    rec.pause()
    seen.append(rec.state)
    rec.resume()
    seen.append(rec.state)
    rec.stop()
    seen.append(rec.state)
    assert seen == ["inactive", "recording", "paused", "recording", "inactive"]


def test_listeners_run_on_the_dispatcher_thread_not_the_audio_thread_nor_the_caller(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src, timeslice=0.05)
    src.feed(1000)
    writer = rec._writer.thread
    rec.stop()
    assert len(log.threads) >= 4
    threads = set(log.threads)
    assert len(threads) == 1
    (t,) = threads
    assert t.name == "dictaphone-events"
    assert t is not threading.main_thread() and t is not threading.current_thread()
    assert t is not src.thread and t is not writer


def test_when_stop_returns_the_stop_event_was_dispatched_and_the_file_is_complete(tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=3)
    out = tmp_path / "out.wav"
    rec = recorder(recorders, FileSource(inp, realtime=True), output=out)
    done = []

    def slow_onstop(event):
        time.sleep(0.2)  # a slow listener: stop() must still wait for it
        done.append(event)

    rec.onstop = slow_onstop
    rec.start()
    wait_until(lambda: rec.frames > 800, what="some audio")
    rec.stop()
    assert len(done) == 1
    assert done[0].frames == rec.frames > 0
    assert done[0].path == str(out)
    y = read_output(out)
    assert len(y) == rec.frames
    np.testing.assert_array_equal(y, data[:len(y)])


def test_on_attributes_and_added_listeners_are_called_and_removed_ones_are_not(fake, recorders):
    rec = recorder(recorders, fake())
    calls = []

    def a(e):
        calls.append(("a", e.type))

    def b(e):
        calls.append(("b", e.type))

    def c(e):
        calls.append(("c", e.type))

    rec.onstart = lambda e: calls.append(("onstart", e.type))
    rec.add_event_listener("start", a)
    rec.add_event_listener("start", a)  # a second add of the same listener is ignored
    rec.add_event_listener("start", b)
    rec.add_event_listener("stop", c)
    rec.remove_event_listener("start", b)
    rec.remove_event_listener("stop", b)  # not registered: ignored
    rec.start()
    rec.stop()
    assert calls == [("onstart", "start"), ("a", "start"), ("c", "stop")]


def test_an_on_attribute_set_to_none_is_not_called(fake, recorders):
    rec = recorder(recorders, fake())
    calls = []
    rec.onstop = calls.append
    rec.onstop = None
    rec.start()
    rec.stop()
    assert calls == []


def test_an_unknown_event_type_is_refused(fake, recorders):
    rec = recorder(recorders, fake())
    with pytest.raises(ValueError):
        rec.add_event_listener("data", print)


def test_a_listener_that_raises_does_not_stop_the_others(fake, recorders, caplog):
    rec = recorder(recorders, fake())
    calls = []

    def bad(e):
        raise RuntimeError("listener bug")

    rec.onstart = bad
    rec.add_event_listener("start", bad)
    rec.add_event_listener("start", lambda e: calls.append(e.type))
    rec.add_event_listener("stop", bad)
    rec.add_event_listener("stop", lambda e: calls.append(e.type))
    with caplog.at_level(logging.ERROR, logger="dictaphone"):
        rec.start()
        rec.stop()
    assert calls == ["start", "stop"]
    assert rec.error is None
    assert sum("listener raised" in r.getMessage() for r in caplog.records) == 3


@pytest.mark.parametrize("mime", ["video/webm", "audio/webm;codecs=opus", "audio/aac"])
def test_an_unsupported_mime_type_raises_not_supported_error(mime, fake):
    with pytest.raises(NotSupportedError):
        MediaRecorder(fake(), mime)


def test_a_rate_the_codec_cannot_take_raises_not_supported_error(fake):
    with pytest.raises(NotSupportedError):
        MediaRecorder(fake(samplerate=44100), "audio/ogg; codecs=opus")
    with pytest.raises(NotSupportedError):
        MediaRecorder(fake(channels=3), "audio/mpeg")


def test_is_type_supported_is_a_static_method():
    assert MediaRecorder.is_type_supported("audio/ogg; codecs=opus")
    assert not MediaRecorder.is_type_supported("video/webm")


@pytest.mark.parametrize("kw", [{"max_duration": 0}, {"max_duration": -1},
                                {"max_duration": float("inf")}])
def test_a_duration_that_is_not_a_positive_number_is_an_invalid_argument(kw, fake):
    with pytest.raises(InvalidArgumentError):
        MediaRecorder(fake(), **kw)


@pytest.mark.parametrize("timeslice", [0, -0.5])
def test_a_timeslice_that_is_not_positive_is_an_invalid_argument(timeslice, fake, recorders):
    rec = recorder(recorders, fake())
    with pytest.raises(InvalidArgumentError):
        rec.start(timeslice=timeslice)
    assert rec.state == "inactive"


def test_an_existing_output_fails_start_and_leaves_the_source_closed(tmp_path, fake, recorders):
    out = tmp_path / "x.wav"
    out.write_bytes(b"keep")
    src = fake()
    rec = recorder(recorders, src, output=out)
    with pytest.raises(OutputError):
        rec.start()
    assert rec.state == "inactive"
    assert src.closed and not src.started
    assert out.read_bytes() == b"keep"


def test_wait_times_out_while_recording_and_succeeds_after_stop(fake, recorders):
    rec, log = start_logged(recorders, fake())
    assert rec.wait(0.05) is False
    rec.stop()
    assert rec.wait(0) is True
    assert log.events[0].timecode == 0.0


class FailingSource(FakeSource):
    def __init__(self, fail_in, **kw):
        super().__init__(**kw)
        self.fail_in = fail_in

    def open(self, capture, dtype):
        if self.fail_in == "open":
            raise DeviceError("fake: cannot open")
        super().open(capture, dtype)

    def start(self):
        if self.fail_in == "start":
            raise DeviceError("fake: cannot start")
        super().start()


@pytest.mark.parametrize("fail_in", ["open", "start"])
def test_a_source_that_fails_to_open_or_start_leaves_no_file_and_stays_inactive(fail_in, tmp_path, recorders):
    out = tmp_path / "x.wav"
    src = FailingSource(fail_in)
    rec = recorder(recorders, src, output=out)
    log = EventLog(rec)
    with pytest.raises(DeviceError):
        rec.start()
    assert rec.state == "inactive"
    assert not out.exists()
    assert log.events == []
    with pytest.raises(InvalidStateError):
        rec.stop()


def test_the_context_manager_stops_the_recording(tmp_path, fake):
    src = fake()
    out = tmp_path / "x.wav"
    with MediaRecorder(src, output=out, subtype="PCM_32") as rec:
        rec.start()
        src.feed(300)
    assert rec.state == "inactive"
    np.testing.assert_array_equal(read_output(out, "int32", channels=1), counter(0, 300))


# --------------------------------------------------------------------------- what is recorded


LOSSLESS = [("audio/wav", s) for s in ("PCM_16", "PCM_24", "PCM_32", "FLOAT")] + \
           [("audio/flac", s) for s in ("PCM_16", "PCM_24")] + \
           [("audio/x-raw", s) for s in ("PCM_16", "PCM_24", "PCM_32", "FLOAT")]


@pytest.mark.parametrize("mime, subtype", LOSSLESS)
def test_a_lossless_recording_of_a_file_is_sample_exact(mime, subtype, tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=1.3, subtype=subtype)
    ext = {"audio/wav": ".wav", "audio/flac": ".flac", "audio/x-raw": ".raw"}[mime]
    out = tmp_path / f"out{ext}"
    rec, log = record_to_end(recorders, FileSource(inp), mime, output=out, subtype=subtype)
    assert log.types == ["start", "dataavailable", "stop"]
    assert rec.error is None and rec.state == "inactive"
    assert rec.frames == len(data) == log.events[-1].frames
    y = read_output(out, data.dtype.name, raw_subtype=subtype if ext == ".raw" else None)
    np.testing.assert_array_equal(y, data)


def test_an_in_memory_recording_is_in_the_blobs(tmp_path, recorders):
    inp, data = make_input(tmp_path)
    rec, log = record_to_end(recorders, FileSource(inp))
    (blob_event,) = log.of("dataavailable")
    assert blob_event.data.type == "audio/wav"
    np.testing.assert_array_equal(read_output(blob_event.data.bytes()), data)
    assert log.of("stop")[0].path is None


def test_a_recording_to_a_stream_goes_to_the_stream(tmp_path, recorders):
    inp, data = make_input(tmp_path)
    stream = io.BytesIO()
    rec, log = record_to_end(recorders, FileSource(inp), "audio/flac", output=stream, timeslice=0.3)
    got = stream.getvalue()
    assert sum(e.data.size for e in log.of("dataavailable")) == len(got) == rec.bytes_written
    assert got[:4] == b"fLaC"


@pytest.mark.parametrize("duration, frames", [(0.3337, 2670), (1.0, 8000), (0.0001, 1)])
def test_max_duration_records_exactly_round_duration_times_rate_frames(duration, frames, tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=1.5)
    out = tmp_path / "out.wav"
    rec, log = record_to_end(recorders, FileSource(inp), output=out, max_duration=duration)
    assert rec.frames == frames == round(duration * RATE)
    assert log.types == ["start", "dataavailable", "stop"]
    assert log.events[-1].frames == frames
    np.testing.assert_array_equal(read_output(out), data[:frames])


def test_max_duration_stops_a_device_by_itself(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src, subtype="PCM_32", max_duration=0.25)
    src.run()
    assert rec.wait(JOIN)
    assert rec.state == "inactive" and rec.error is None
    assert log.types == ["start", "dataavailable", "stop"]
    y = read_output(log.of("dataavailable")[0].data.bytes(), "int32", channels=1)
    np.testing.assert_array_equal(y, counter(0, 2000))


@pytest.mark.parametrize("mime", ["audio/wav", "audio/flac", "audio/ogg", "audio/ogg; codecs=opus",
                                  "audio/mpeg"])
def test_a_recording_kept_in_memory_is_one_blob_that_soundfile_reads_whole(mime, tmp_path, recorders):
    """The browser's flaw not copied: with output=None and no timeslice, the one blob is
    a whole file (FLAC with its total length, MP3 with its Info tag, ...), so
    sf.read(io.BytesIO(blob)) gives exactly the frames recorded."""
    inp, data = make_input(tmp_path, seconds=5.7)
    rec, log = record_to_end(recorders, FileSource(inp), mime)
    blobs = [e.data for e in log.of("dataavailable")]
    assert len(blobs) == 1 and rec.frames == len(data)
    y = sf.read(io.BytesIO(blobs[0].bytes()), always_2d=True)[0]
    assert len(y) == rec.frames
    if mime in ("audio/wav", "audio/flac"):
        np.testing.assert_array_equal(read_output(blobs[0].bytes()), data)


@pytest.mark.parametrize("output", ["path", "memory"])
def test_timeslice_cuts_blobs_at_exact_frame_multiples_that_join_into_the_recording(output, tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=1.3)  # 10400 frames: 5 slices of 2000 and 400
    out = tmp_path / "out.wav" if output == "path" else None
    rec, log = record_to_end(recorders, FileSource(inp), output=out, timeslice=0.25)
    blobs = log.of("dataavailable")
    assert [round(e.timecode * RATE) for e in blobs] == [2000, 4000, 6000, 8000, 10000, 10400]
    frame_bytes = 2 * 2
    header = 80 if output == "path" else 44  # a file keeps room for RF64 (a JUNK chunk)
    assert [b.data.size for b in blobs] == [header + 2000 * frame_bytes] + [2000 * frame_bytes] * 4 + [400 * frame_bytes]
    joined = b"".join(e.data.bytes() for e in blobs)
    if out is not None:
        assert joined == out.read_bytes()
    np.testing.assert_array_equal(read_output(joined), data)


def test_timeslice_blobs_of_a_flac_file_join_into_the_file(tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=1.3)
    out = tmp_path / "out.flac"
    rec, log = record_to_end(recorders, FileSource(inp), "audio/flac", output=out, timeslice=0.2)
    blobs = log.of("dataavailable")
    assert len(blobs) == 7  # 6 slices of 1600 frames and the 800 left
    joined = b"".join(e.data.bytes() for e in blobs)
    assert joined == out.read_bytes()
    np.testing.assert_array_equal(read_output(joined), data)


def test_timeslice_and_max_duration_together_stay_exact(tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=1.3)
    rec, log = record_to_end(recorders, FileSource(inp), max_duration=0.5, timeslice=0.2)
    blobs = log.of("dataavailable")
    assert [round(e.timecode * RATE) for e in blobs] == [1600, 3200, 4000]
    np.testing.assert_array_equal(read_output(b"".join(e.data.bytes() for e in blobs)), data[:4000])


def test_request_data_produces_an_extra_dataavailable_with_what_was_recorded_since(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src, subtype="PCM_32")
    src.feed(1000)
    wait_until(lambda: rec.frames == 1000, what="1000 frames written")
    rec.request_data()
    wait_until(lambda: len(log.of("dataavailable")) == 1, what="the requested blob")
    src.feed(500)
    rec.stop()
    assert log.types == ["start", "dataavailable", "dataavailable", "stop"]
    first, last = (e.data for e in log.of("dataavailable"))
    assert first.size == 44 + 1000 * 4 and last.size == 500 * 4
    assert round(log.of("dataavailable")[0].timecode * RATE) == 1000
    y = read_output(first.bytes() + last.bytes(), "int32", channels=1)
    np.testing.assert_array_equal(y, counter(0, 1500))


def test_request_data_right_before_stop_still_gives_its_own_dataavailable(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src, subtype="PCM_32")
    src.feed(1000)
    wait_until(lambda: rec.frames == 1000, what="1000 frames written")
    rec.request_data()
    rec.stop()
    assert log.types == ["start", "dataavailable", "dataavailable", "stop"]
    first, last = (e.data for e in log.of("dataavailable"))
    assert first.size == 44 + 1000 * 4 and last.size == 0


def test_request_data_while_paused_is_allowed(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src)
    rec.pause()
    rec.request_data()
    wait_until(lambda: len(log.of("dataavailable")) == 1, what="the requested blob")
    rec.stop()
    assert log.types == ["start", "pause", "dataavailable", "dataavailable", "stop"]


def test_paused_frames_are_left_out_exactly(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src, subtype="PCM_32")
    src.feed(1000)
    rec.pause()
    src.feed(500)  # frames 1000..1499 arrive while paused
    rec.resume()
    src.feed(700)
    rec.stop()
    y = read_output(log.of("dataavailable")[-1].data.bytes(), "int32", channels=1)
    np.testing.assert_array_equal(y, np.concatenate([counter(0, 1000), counter(1500, 700)]))
    assert rec.frames == log.of("stop")[0].frames == 1700
    assert rec._capture.paused_frames == 500
    assert rec.dropped_frames == 0


def test_paused_frames_are_left_out_of_a_file_source_played_in_real_time(tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=2.0, channels=1)
    out = tmp_path / "out.wav"
    rec = recorder(recorders, FileSource(inp, realtime=True), output=out)
    rec.start()
    wait_until(lambda: rec.frames >= 0.3 * RATE, what="0.3 s recorded")
    rec.pause()
    time.sleep(0.5)
    rec.resume()
    assert rec.wait(JOIN)
    y = read_output(out)[:, 0]
    missing = len(data) - len(y)
    assert missing == rec._capture.paused_frames
    assert 0.2 * RATE < missing < 1.0 * RATE  # about the 0.5 s paused
    # what is left is the input with one contiguous piece cut out
    cut = int(np.argmax(y != data[:len(y), 0]))
    assert cut >= 0.3 * RATE - 1
    np.testing.assert_array_equal(y[:cut], data[:cut, 0])
    np.testing.assert_array_equal(y[cut:], data[cut + missing:, 0])


def test_the_level_meter_follows_the_recorded_audio(tmp_path, recorders):
    inp, data = make_input(tmp_path)
    rec = recorder(recorders, FileSource(inp))
    rec.start()
    assert rec.wait(JOIN)
    assert rec.level.peak_dbfs > -1.0  # random full-range samples
    assert rec.duration == pytest.approx(len(data) / RATE)


def test_a_recorder_can_record_again_after_it_stopped(tmp_path, fake, recorders):
    src = fake()
    out = tmp_path / "x.wav"
    rec, log = start_logged(recorders, src, output=out, subtype="PCM_32", force=True)
    src.feed(200)
    rec.stop()
    rec.start()
    src.feed(300)  # the counter goes on: frames 200..499
    rec.stop()
    assert log.types == ["start", "dataavailable", "stop"] * 2
    np.testing.assert_array_equal(read_output(out, "int32", channels=1), counter(200, 300))


def test_split_writes_self_contained_pieces_that_join_into_the_recording(tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=1.3)
    rec, log = record_to_end(recorders, FileSource(inp), output=tmp_path / "memo.wav", split=0.5)
    names = [f"memo-00{i}.wav" for i in (1, 2, 3)]
    stop = log.of("stop")[0]
    assert [p.rsplit("/", 1)[-1] for p in stop.paths] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.wav"] + names
    pieces = [read_output(tmp_path / n) for n in names]
    assert [len(p) for p in pieces] == [4000, 4000, 2400]
    np.testing.assert_array_equal(np.concatenate(pieces), data)
    blobs = [e.data for e in log.of("dataavailable")]
    assert [b.bytes() for b in blobs] == [(tmp_path / n).read_bytes() for n in names]


def test_split_at_the_exact_end_makes_no_empty_last_piece(tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=1.0)
    rec, log = record_to_end(recorders, FileSource(inp), output=tmp_path / "memo.wav", split=0.5)
    assert len(log.of("stop")[0].paths) == 2
    assert not (tmp_path / "memo-003.wav").exists()
    assert log.of("dataavailable")[-1].data.size == 0
    assert rec.error is None


def test_split_needs_a_path_and_excludes_a_timeslice(tmp_path, fake, recorders):
    with pytest.raises(InvalidArgumentError):
        MediaRecorder(fake(), split=1.0)
    rec = recorder(recorders, fake(), output=tmp_path / "m.wav", split=1.0)
    with pytest.raises(InvalidArgumentError):
        rec.start(timeslice=0.5)
    assert rec.state == "inactive"


# --------------------------------------------------------------------------- endings and errors


def test_a_file_source_that_ends_gives_dataavailable_then_stop(tmp_path, recorders):
    inp, data = make_input(tmp_path)
    rec, log = record_to_end(recorders, FileSource(inp), output=tmp_path / "o.wav")
    assert log.types == ["start", "dataavailable", "stop"]
    assert rec.state == "inactive" and rec.error is None
    with pytest.raises(InvalidStateError):
        rec.stop()


def test_a_failing_source_gives_error_first_then_dataavailable_then_stop(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src, subtype="PCM_32")
    src.feed(600)
    failure = SourceError("fake: read failed")
    src.end(failure)
    assert rec.wait(JOIN)
    assert log.types == ["start", "error", "dataavailable", "stop"]
    (err,) = log.of("error")
    assert isinstance(err, ErrorEvent) and err.error is failure
    assert isinstance(err.error, DictaphoneError)
    assert rec.error is failure and rec.state == "inactive"
    # what arrived before the failure is kept
    y = read_output(log.of("dataavailable")[0].data.bytes(), "int32", channels=1)
    np.testing.assert_array_equal(y, counter(0, 600))
    assert src.closed


def test_a_file_that_fails_to_read_midway_is_an_error_event_and_keeps_what_was_read(tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=1.0)

    class BrokenFile:
        def __init__(self, f):
            self.f, self.reads = f, 0

        def read(self, *a, **kw):
            self.reads += 1
            if self.reads == 4:
                raise RuntimeError("Error reading: unexpected end of data")
            return self.f.read(*a, **kw)

        def close(self):
            self.f.close()

    class BrokenFileSource(FileSource):
        BLOCK_SECONDS = 0.1  # so that the fourth read is mid-file

        def open(self, capture, dtype):
            super().open(capture, dtype)
            self._file = BrokenFile(self._file)

    out = tmp_path / "out.wav"
    rec, log = record_to_end(recorders, BrokenFileSource(inp), output=out)
    assert log.types == ["start", "error", "dataavailable", "stop"]
    err = log.of("error")[0].error
    assert isinstance(err, SourceError) and "2400 frames" in str(err)
    np.testing.assert_array_equal(read_output(out), data[:2400])  # 3 blocks of 0.1 s


def test_a_device_stream_that_ends_by_itself_is_a_device_error(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src)
    src.feed(100)
    src.end(None)
    assert rec.wait(JOIN)
    assert log.types == ["start", "error", "dataavailable", "stop"]
    assert isinstance(log.of("error")[0].error, DeviceError)


def test_a_device_stream_that_ends_because_stop_stopped_it_is_not_an_error(fake, recorders, monkeypatch):
    """PortAudio reports the end of a stream that stop() stopped, as of one the device
    lost. The writer may see that end right after it checked for a stop request; the
    capture below holds the writer exactly there until the source has ended."""
    holding = threading.Event()
    released = threading.Event()

    class HeldCapture(recorder_mod.Intake):
        hold = False

        @property
        def ended(self):
            if self.hold:
                self.hold = False
                holding.set()
                released.wait(JOIN)
            return self._ended

        @ended.setter
        def ended(self, value):
            self._ended = value
            if value:
                released.set()

    monkeypatch.setattr(recorder_mod, "Intake", HeldCapture)
    src = fake()
    src.end_on_stop = True
    rec, log = start_logged(recorders, src)
    src.feed(100)
    rec._capture.hold = True
    assert holding.wait(JOIN)  # the writer is between its stop check and its end check
    rec.stop()
    assert rec.error is None
    assert log.types == ["start", "dataavailable", "stop"]


def test_a_stalled_device_is_an_error_event_with_device_error(fake, recorders):
    src = fake()
    rec, log = start_logged(recorders, src, subtype="PCM_32", stall_timeout=0.3)
    src.feed(400)  # then nothing: the device stalls
    assert rec.wait(JOIN), "a stalled source made the recorder hang"
    assert log.types == ["start", "error", "dataavailable", "stop"]
    err = log.of("error")[0].error
    assert isinstance(err, DeviceError) and "no audio for 0.3 s" in str(err)
    assert rec.state == "inactive"
    y = read_output(log.of("dataavailable")[0].data.bytes(), "int32", channels=1)
    np.testing.assert_array_equal(y, counter(0, 400))


def test_a_device_that_never_delivers_is_an_error_after_the_start_timeout(fake, recorders):
    rec, log = record_to_end(recorders, fake(), start_timeout=0.3)
    assert log.types == ["start", "error", "dataavailable", "stop"]
    err = log.of("error")[0].error
    assert isinstance(err, DeviceError) and "no audio arrived" in str(err)


def test_a_paused_device_that_still_delivers_is_not_stalled(fake, recorders):
    src = fake()
    rec = recorder(recorders, src, stall_timeout=0.5)
    rec.start()
    src.run()
    rec.pause()
    time.sleep(1.2)  # more than twice the stall timeout
    assert rec.state == "paused" and rec.error is None
    rec.stop()
    assert rec.error is None


@pytest.mark.parametrize("mime", ["audio/wav", "audio/flac", "audio/ogg"])
def test_a_full_output_is_an_error_event_then_stop_and_nothing_hangs(mime, fake, recorders, capfd):
    src = fake(blocking=True, noise=True)
    stream = FailingStream(OSError(errno.ENOSPC, "No space left on device"), ok_bytes=3000)
    rec, log = start_logged(recorders, src, mime, output=stream)
    src.feed(RATE * 3, wait=False)
    assert rec.wait(JOIN), "the recorder hung after a write error"
    assert log.types == ["start", "error", "dataavailable", "stop"]
    err = log.of("error")[0].error
    assert isinstance(err, WriteError) and not isinstance(err, BrokenPipeOutputError)
    assert "disk full" in str(err)
    assert rec.error is err and rec.state == "inactive"
    assert src.closed
    with pytest.raises(InvalidStateError):
        rec.stop()
    assert "Exception ignored" not in capfd.readouterr().err


@pytest.mark.parametrize("mime", ["audio/wav", "audio/flac", "audio/ogg"])
def test_a_reader_that_goes_away_is_a_broken_pipe_error_event_without_stderr_noise(mime, fake, recorders, capfd):
    src = fake(noise=True)
    stream = FailingStream(BrokenPipeError(errno.EPIPE, "Broken pipe"), ok_bytes=2000)
    rec, log = start_logged(recorders, src, mime, output=stream)
    src.run()
    assert rec.wait(JOIN)
    assert log.types == ["start", "error", "dataavailable", "stop"]
    assert isinstance(log.of("error")[0].error, BrokenPipeOutputError)
    assert capfd.readouterr().err == ""


def test_a_write_error_while_a_file_reader_waits_for_room_does_not_hang(tmp_path, recorders):
    # 12 s of audio: more than the ring's 10 s, so the reader blocks on a full ring
    # while the output is stuck; then the output fails.
    inp, _ = make_input(tmp_path, seconds=12, channels=1)
    gate = threading.Event()
    stream = FailingStream(OSError(errno.EIO, "Input/output error"), ok_bytes=44, gate=gate)
    src = FileSource(inp)
    rec = recorder(recorders, src, output=stream)
    log = EventLog(rec)
    try:
        rec.start()
        ring = rec._capture.ring
        wait_until(lambda: ring.free == 0, what="the ring to fill up")
        assert src._thread.is_alive()  # the reader is waiting for room
    finally:
        gate.set()
    assert rec.wait(JOIN), "the recorder hung"
    src._thread.join(JOIN)
    assert not src._thread.is_alive()
    assert log.types == ["start", "error", "dataavailable", "stop"]
    assert isinstance(log.of("error")[0].error, WriteError)


def test_stop_while_a_file_reader_waits_for_room_does_not_hang(tmp_path, recorders):
    inp, data = make_input(tmp_path, seconds=12, channels=1)
    gate = threading.Event()
    stream = GatedStream(44, gate)
    src = FileSource(inp)
    rec = recorder(recorders, src, output=stream)
    try:
        rec.start()
        wait_until(lambda: rec._capture.ring.free == 0, what="the ring to fill up")
        stopper = threading.Thread(target=rec.stop)
        stopper.start()
    finally:
        gate.set()
    stopper.join(JOIN)
    assert not stopper.is_alive() and rec.state == "inactive"
    y = read_output(bytes(stream.data))
    np.testing.assert_array_equal(y[:, 0], data[:len(y), 0])
    assert len(y) == rec.frames >= rec._capture.ring.capacity


def test_stop_from_inside_a_dataavailable_listener_does_not_deadlock(tmp_path, fake, recorders):
    # A reader like a file's (it waits for room in the ring) with more to give than the
    # ring holds, and no end of its own: the listener's stop() is what ends the recording.
    # (A real 5 s file could be read to its end before the first slice's listener ran on a
    # loaded machine; the stop then came after the end and tested nothing.)
    src = fake(blocking=True, channels=2)
    out = tmp_path / "out.wav"
    rec = recorder(recorders, src, output=out, subtype="PCM_32")
    log = EventLog(rec)
    returned = []

    def stop_on_first_slice(event):
        if not returned:
            rec.stop()
            returned.append(rec.state)

    rec.ondataavailable = stop_on_first_slice
    rec.start(timeslice=0.25)
    src.feed(int(RATE * (MediaRecorder.BUFFER_SECONDS + 2)), wait=False)
    assert rec.wait(JOIN), "stop() inside a listener deadlocked"
    assert returned == ["inactive"]
    assert log.types.count("stop") == 1 and log.types[-1] == "stop"
    y = read_output(out, "int32")
    assert len(y) == rec.frames >= 2000
    np.testing.assert_array_equal(y, counter(0, len(y), channels=2))


def test_stop_from_inside_a_stop_listener_raises_invalid_state_error_and_is_reported(fake, recorders, caplog):
    rec = recorder(recorders, fake())
    seen = []

    def onstop(event):
        try:
            rec.stop()
        except InvalidStateError as e:
            seen.append(e)

    rec.onstop = onstop
    rec.start()
    rec.stop()
    assert len(seen) == 1


# --------------------------------------------------------------------------- bounded memory


def test_a_ring_that_is_full_drops_device_frames_and_counts_them_without_blocking(fake, recorders):
    gate = threading.Event()
    stream = GatedStream(44, gate)  # the writer gets stuck on its first audio
    src = fake(block=1000)
    rec = recorder(recorders, src, output=stream, subtype="PCM_32")
    log = EventLog(rec)
    try:
        rec.start()
        capacity = rec._capture.ring.capacity
        assert capacity == 10 * RATE
        src.feed(1)
        assert stream.blocked.wait(JOIN)  # the writer took frame 0 and is stuck writing it
        src.feed(capacity + 30000)  # returns although nobody drains: push() never waits
        assert not gate.is_set() and len(rec._capture.ring) == capacity
    finally:
        gate.set()
    rec.stop()
    stop = log.of("stop")[0]
    assert stop.dropped_frames == rec.dropped_frames == 30000
    y = read_output(bytes(stream.data), "int32", channels=1)
    np.testing.assert_array_equal(y, counter(0, 1 + capacity))  # the oldest frames are kept


@pytest.mark.parametrize("output", ["path", "stream"])
def test_a_ten_minute_recording_does_not_grow_memory(output, tmp_path, fake, recorders):
    class NullStream:
        def __init__(self):
            self.size = 0

        def write(self, b):
            self.size += len(b)

        def flush(self):
            pass

    rate, minutes = 8000, 10
    total = rate * 60 * minutes
    src = fake(samplerate=rate, blocking=True, block=4000)
    out = tmp_path / "long.wav" if output == "path" else NullStream()
    rec = recorder(recorders, src, output=out)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        rec.start()
        ring = rec._capture.ring
        src.feed(total, timeout=120)
        rec.stop()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rec.frames == total and rec.dropped_frames == 0
    assert ring.nbytes == ring.capacity * 1 * 2 == 10 * rate * 2
    data_bytes = total * 2  # 9.6 MB went through (the ring holds 160 kB)
    assert peak < 3_000_000 < data_bytes, f"peak {peak} bytes traced while recording"
    if output == "path":
        assert sf.info(out).frames == total
    else:
        assert out.size == 44 + data_bytes


# --------------------------------------------------------------------------- FileSource


def test_a_file_source_has_the_file_rate_and_channels(tmp_path):
    inp, data = make_input(tmp_path, rate=22050, channels=2)
    src = FileSource(inp)
    assert (src.samplerate, src.channels, src.frames) == (22050, 2, len(data))


def test_a_file_source_mixes_down_to_mono_when_asked(tmp_path, recorders):
    inp = tmp_path / "st.wav"
    data = np.array([[1000, 3000], [-5, -6], [100, 0]] * 10, np.int16)
    sf.write(inp, data, RATE)
    rec, log = record_to_end(recorders, FileSource(inp, channels=1))
    y = read_output(log.of("dataavailable")[0].data.bytes(), channels=1)
    np.testing.assert_array_equal(y[:3, 0], [2000, -6, 50])  # -5.5 rounds to even


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing.wav", "no such file"),
    (lambda p: p, "directory"),
    (lambda p: (p / "t.wav").write_text("not audio") and p / "t.wav", "not a readable audio file"),
])
def test_a_file_source_that_cannot_be_read_is_a_source_error(make, match, tmp_path):
    with pytest.raises(SourceError, match=match):
        FileSource(make(tmp_path))
