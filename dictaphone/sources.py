"""Sources of audio frames: the microphone (sounddevice) and audio files.

A source delivers frames to a *capture* object (the recorder's, see recorder.py) with
three methods: ``push(frames, owned=False)`` from a real-time thread (must not block;
drops and counts what does not fit; ``owned`` says the array is fresh and will not be
reused by the source), ``push_all(frames)`` from a thread that may wait (file sources never
drop), and ``end(error=None)`` when it has no more frames. ``overflow(frames)`` reports
input the audio system dropped before it reached us.

This is the only module that touches sounddevice input. sounddevice and soundfile are
imported when a source is made, not when dictaphone is imported.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol

import numpy as np

from .errors import (DeviceError, DeviceNotFoundError, InvalidArgumentError,
                     NotSupportedError, PortAudioMissingError, SourceError)
from .formats import MAX_CHANNELS, check_rate_and_channels


class Capture(Protocol):
    def push(self, frames: np.ndarray, owned: bool = False) -> None: ...
    def push_all(self, frames: np.ndarray) -> bool: ...
    def overflow(self, frames: int) -> None: ...
    def end(self, error: BaseException | None = None) -> None: ...


def import_sounddevice():
    """sounddevice, or PortAudioMissingError with the fix when PortAudio is not installed."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise PortAudioMissingError(
            "the PortAudio library was not found (on Debian/Ubuntu: sudo apt-get install "
            "libportaudio2; run 'dictaphone doctor' for other systems)"
        ) from e
    return sounddevice


def list_devices() -> list[dict]:
    """Every device: index, name, host API, channels, default rate, default flags."""
    sd = import_sounddevice()
    hostapis = sd.query_hostapis()
    default_in, default_out = sd.default.device
    return [{
        "index": d["index"], "name": d["name"], "hostapi": hostapis[d["hostapi"]]["name"],
        "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
        "default_samplerate": d["default_samplerate"],
        "default_input": d["index"] == default_in, "default_output": d["index"] == default_out,
    } for d in sd.query_devices()]


def find_device(device: int | str | None, kind: str = "input") -> dict:
    """Resolve an index, an exact name or a unique part of a name to a device dict.
    ``kind`` is "input" or "output"; None means the default device of that kind."""
    sd = import_sounddevice()
    key = f"max_{kind}_channels"
    try:
        if device is None:
            index = sd.default.device[0 if kind == "input" else 1]
            if index is None or index < 0:
                raise DeviceNotFoundError(f"there is no default {kind} device ('dictaphone devices' lists them)")
            return sd.query_devices(index)
        if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
            index = int(device)
            try:
                info = sd.query_devices(index)
            except (ValueError, sd.PortAudioError):
                raise DeviceNotFoundError(f"there is no audio device {index}") from None
            if info[key] < 1:
                raise DeviceNotFoundError(f"device {index} ({info['name']}) has no {kind}s")
            return info
        devices = [d for d in sd.query_devices() if d[key] > 0]
    except sd.PortAudioError as e:
        raise DeviceError(f"PortAudio: {e}") from e
    wanted = device.strip().lower()
    exact = [d for d in devices if d["name"].lower() == wanted]
    matches = exact or [d for d in devices if wanted in d["name"].lower()]
    if not matches:
        raise DeviceNotFoundError(f"no {kind} device matches {device!r} ('dictaphone devices' lists them)")
    if len(matches) > 1:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in matches)
        raise DeviceNotFoundError(f"{device!r} matches several {kind} devices ({names}); give its index")
    return matches[0]


def find_input_device(device: int | str | None) -> dict:
    return find_device(device, "input")


class Source:
    """What every source has: a rate, a channel count, and open/start/stop/close."""

    samplerate: int
    channels: int
    #: a short description for metadata and messages
    name: str = "source"
    #: frames are captured in real time and handed over in blocks (a device): the
    #: recorder carries its position forward between deliveries (MediaRecorder.mark)
    live: bool = False

    def open(self, capture: Capture, dtype: str) -> None:
        """Prepare to deliver frames of ``dtype`` to ``capture`` (validates; allocates)."""
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop delivering. After it returns no more frames arrive. Idempotent."""
        raise NotImplementedError

    def drain(self) -> None:
        """Before a stop the user asked for: wait for audio captured before now that is
        still on its way. Optional; the default waits for nothing."""

    def close(self) -> None:
        """Release the device or file. Idempotent."""
        raise NotImplementedError


class Microphone(Source):
    """An input device, like ``getUserMedia({audio: true})``.

    ``device`` is an index, a name or part of one, or None for the default input.
    ``samplerate`` None means the device's default rate.

    ``mode`` is how frames are taken from PortAudio:

    - ``"paced"`` (the default): a stream without a callback and a 0.5 s buffer; a
      thread wakes every ``pace`` seconds (default 0.25; 0.1 suits a live meter) and
      reads what is there. PortAudio's ALSA path then neither spins while it waits for
      the first audio (a callback stream polls one core flat out until then: up to 2 s
      on PulseAudio) nor wakes for every small period; the process wakes a few times a
      second, and each wake-up, not the work done in it, is what costs CPU
      (bench/RESULTS.md, "capture modes").
    - ``"callback"``: a PortAudio callback with ``blocksize`` frames (default 50 ms).

    Either way the audio side only copies frames into the recorder's ring, counts what
    was dropped and updates the level.
    """

    live = True

    #: seconds between two reads in paced mode (default), and the buffer PortAudio keeps
    #: (its ALSA period, what the server sends at once, is a quarter of it: 0.125 s)
    PACE = 0.25
    PACED_LATENCY = 0.5
    #: how often drain() looks for the audio still in flight
    DRAIN_POLL = 0.005

    def __init__(self, device: int | str | None = None, samplerate: int | None = None,
                 channels: int = 1, *, blocksize: int | None = None,
                 latency: str | float | None = None, mode: str = "paced",
                 pace: float | None = None):
        if mode not in ("paced", "callback"):
            raise InvalidArgumentError(f"mode must be 'paced' or 'callback', not {mode!r}")
        self.mode = mode
        if pace is not None and not 0.01 <= pace <= 0.3:
            # above 0.3 s the 0.5 s buffer could overflow while the reader sleeps
            raise InvalidArgumentError(f"pace must be between 0.01 and 0.3 seconds, not {pace}")
        self.pace = float(pace) if pace is not None else self.PACE
        self._sd = import_sounddevice()
        info = find_input_device(device)
        self.device = info["index"]
        self.name = info["name"]
        self.samplerate = int(samplerate or info["default_samplerate"])
        self.channels = int(channels)
        check_rate_and_channels(self.samplerate, self.channels)
        if self.channels > info["max_input_channels"]:
            raise NotSupportedError(
                f"{self.name} has {info['max_input_channels']} input channels, not {self.channels}"
            )
        # Callback mode: blocks of 50 ms. PortAudio's ALSA path then wakes 20 times a
        # second instead of ~150 with its default block, which cuts the cost of an idle
        # recording several times (bench/RESULTS.md, "capture modes"). Larger blocks cost
        # a little less but hold more audio in flight, which a stop must wait for (see
        # drain()). Paced mode: 0, PortAudio's own period (a quarter of the latency).
        if blocksize is None:
            blocksize = max(1, self.samplerate // 20) if mode == "callback" else 0
        self.blocksize = blocksize
        if latency is None:
            latency = self.PACED_LATENCY if mode == "paced" else "high"
        self.latency = latency
        self._reader: threading.Thread | None = None
        # Held while paced mode's reader runs; released to halt it. A bare lock: its
        # timed acquire is the reader's sleep, and costs less per wake-up than an Event.
        self._halt = threading.Lock()
        self._stream = None
        self._capture: Capture | None = None
        self._lock = threading.Lock()
        self._last_adc: float | None = None
        self._stalled = False
        #: True when PortAudio did not stop in time (a frozen server): the process should
        #: exit without waiting for it (see cli/session.py)
        self.hung = False
        self.check()

    def check(self, dtype: str = "float32") -> None:
        """Ask PortAudio whether the device takes this rate, channel count and dtype."""
        try:
            self._sd.check_input_settings(self.device, channels=self.channels, dtype=dtype,
                                          samplerate=self.samplerate)
        except (ValueError, self._sd.PortAudioError) as e:
            raise NotSupportedError(
                f"{self.name} cannot record {self.channels} channel(s) at {self.samplerate} Hz: {e}"
            ) from None

    def open(self, capture: Capture, dtype: str) -> None:
        sd = self._sd
        self._capture = capture
        self._last_adc = None
        self._halt = threading.Lock()
        self._halt.acquire()
        try:
            if self.mode == "paced":
                self._stream = sd.InputStream(
                    samplerate=self.samplerate, blocksize=self.blocksize, device=self.device,
                    channels=self.channels, dtype=dtype, latency=self.latency)
            else:
                self._stream = sd.InputStream(
                    samplerate=self.samplerate, blocksize=self.blocksize, device=self.device,
                    channels=self.channels, dtype=dtype, latency=self.latency,
                    callback=self._callback, finished_callback=self._finished)
        except (sd.PortAudioError, ValueError) as e:
            raise DeviceError(f"cannot open {self.name}: {e}") from e

    # Audio thread: copy, count, nothing else. No I/O, no locks, no waiting.
    def _callback(self, indata, frames, t, status) -> None:
        capture = self._capture
        if status.input_overflow:
            capture.overflow(self._lost_frames(t.inputBufferAdcTime, frames))
        self._last_adc = t.inputBufferAdcTime + frames / self.samplerate
        capture.push(indata)

    def _lost_frames(self, adc: float, frames: int) -> int:
        # PortAudio says that input was dropped, not how much. The gap in the ADC clock
        # tells, when the host API provides one; otherwise count one block.
        if self._last_adc and adc > self._last_adc:
            gap = int(round((adc - self._last_adc) * self.samplerate))
            if gap > 0:
                return gap
        return frames

    def _finished(self) -> None:
        # Runs when the stream ends, whether we stopped it or the device went away; the
        # capture tells the two apart (an end after stop() is expected).
        if self._capture is not None:
            self._capture.end(None)

    # Paced mode's reader thread: read what arrived, hand it over, sleep. It never waits
    # inside PortAudio: read() is asked only for frames that are already there.
    def _pace(self) -> None:
        stream, capture, sd = self._stream, self._capture, self._sd
        last = time.monotonic()
        try:
            while True:
                halting = self._halt.acquire(timeout=self.pace)
                self._read_available(stream, capture, last)
                last = time.monotonic()
                if halting:
                    return
        except sd.PortAudioError as e:
            capture.end(DeviceError(f"{self.name}: {e}"))

    def _read_available(self, stream, capture, last: float) -> int:
        """Read and hand over what PortAudio holds (never waits); returns the frames."""
        n = stream.read_available
        if n:
            data, overflowed = stream.read(n)
            if overflowed:  # the buffer filled up: what did not fit is lost
                elapsed = time.monotonic() - last
                capture.overflow(max(1, int(round(elapsed * self.samplerate)) - n))
            capture.push(data, owned=True)
        return n

    def start(self) -> None:
        try:
            self._stream.start()
        except self._sd.PortAudioError as e:
            raise DeviceError(f"cannot start {self.name}: {e}") from e
        if self.mode == "paced":
            self._reader = threading.Thread(target=self._pace, name="dictaphone-capture",
                                            daemon=True)
            self._reader.start()

    #: how long stop() waits for PortAudio before it gives the stream up as hung
    STOP_TIMEOUT = 2.0
    #: the most drain() waits for audio in flight (seconds)
    MAX_DRAIN = 0.25

    def drain(self) -> None:
        """Take in the audio captured before this moment that is still on its way: in
        the audio server, which sends it in fragments (a quarter of the buffer: 0.125 s
        in paced mode), and in PortAudio's buffer. Without it the last syllable before a
        stop could be lost.

        Paced mode stops the reader (which reads what PortAudio holds), then looks every
        DRAIN_POLL seconds until the next fragment arrives, which holds the audio up to
        about now, and takes it: on average half a fragment's wait instead of a fixed
        sleep, and nothing said before the stop is cut. Callback mode waits for the
        stream's input latency. Either way at most MAX_DRAIN. The stream's ADC
        timestamps are not usable through ALSA's PulseAudio plugin (they equal the
        callback's time), so the cut cannot be made to the sample: a few ms after the
        stop may be kept."""
        stream = self._stream
        if stream is None or self._stalled or self.hung or not stream.active:
            return
        if self.mode != "paced":
            time.sleep(min(self.MAX_DRAIN, max(0.0, float(stream.latency))))
            return
        with self._lock:
            if not self._halt_reader():
                return
            capture, sd = self._capture, self._sd
            deadline = time.monotonic() + self.MAX_DRAIN
            last = time.monotonic()
            try:
                while time.monotonic() < deadline:
                    time.sleep(self.DRAIN_POLL)
                    if self._read_available(stream, capture, last):
                        # a fragment may reach PortAudio in more than one piece
                        time.sleep(self.DRAIN_POLL)
                        self._read_available(stream, capture, last)
                        return
                    last = time.monotonic()
            except sd.PortAudioError as e:
                capture.end(DeviceError(f"{self.name}: {e}"))

    def _halt_reader(self) -> bool:
        """Stop paced mode's reader after one last read; False if it hung (a frozen
        server) and the stream must be given up."""
        reader, self._reader = self._reader, None
        if reader is None:
            return True
        self._halt.release()
        reader.join(self.STOP_TIMEOUT)
        if reader.is_alive():
            self.hung = True
            return False
        return True

    def stop(self) -> None:
        """Stop the stream. A device whose server froze can make PortAudio's stop wait
        forever (it joins its own audio thread, which waits on the server): the stop runs
        on a helper thread, and after STOP_TIMEOUT the stream is left behind as ``hung``
        so that the recording can still be finalized."""
        with self._lock:
            stream = self._stream
            if stream is None or self.hung or stream.stopped:
                return
            if not self._halt_reader():  # paced: one last read of what arrived
                return
            self._capture = _Detached()  # late callbacks of a hung stream go nowhere
            done = threading.Event()

            def stop():
                try:
                    stream.abort() if self._stalled else stream.stop()
                except self._sd.PortAudioError:
                    pass  # the device is gone already; nothing more will arrive
                done.set()

            threading.Thread(target=stop, name="dictaphone-stream-stop", daemon=True).start()
            if not done.wait(self.STOP_TIMEOUT):
                self.hung = True

    def mark_stalled(self) -> None:
        """The recorder saw no audio for a while: stop() aborts instead of draining."""
        self._stalled = True

    def close(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None and not self.hung:
            try:
                stream.close()
            except self._sd.PortAudioError:
                pass


class _Detached:
    """Where a stopped stream's late callbacks go: nowhere."""

    def push(self, frames) -> None:
        pass

    def overflow(self, frames) -> None:
        pass

    def end(self, error=None) -> None:
        pass


class FileSource(Source):
    """An audio file as the microphone, like a stream taken from a media element.

    ``realtime=False`` delivers as fast as the recorder writes (never dropping);
    ``realtime=True`` paces the frames at the file's rate, as a device would.
    ``channels`` None keeps the file's; 1 from several mixes down, N from 1 copies.
    """

    #: blocks read at once: large when as fast as possible (fewer trips through Python,
    #: 1.5 times faster on a 10-minute file), small when paced like a device
    BLOCK_SECONDS = 0.5
    REALTIME_BLOCK_SECONDS = 0.05

    def __init__(self, path: str | os.PathLike, realtime: bool = False,
                 channels: int | None = None):
        import soundfile as sf

        self.path = os.fspath(path)
        self.realtime = realtime
        self.name = os.path.basename(self.path)
        if not os.path.exists(self.path):
            raise SourceError(f"{self.path}: no such file")
        if os.path.isdir(self.path):
            raise SourceError(f"{self.path}: is a directory")
        try:
            with sf.SoundFile(self.path) as f:
                self.samplerate = int(f.samplerate)
                self.file_channels = int(f.channels)
                self.frames = int(f.frames)
                self.file_format = f.format
                self.file_subtype = f.subtype
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            raise SourceError(f"{self.path}: not a readable audio file ({_sf_reason(e)})") from None
        self.channels = self.file_channels if channels is None else int(channels)
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise InvalidArgumentError(f"channel count {self.channels} is out of range (1 to {MAX_CHANNELS})")
        if self.channels != self.file_channels and self.file_channels != 1 and self.channels != 1:
            raise NotSupportedError(
                f"{self.path} has {self.file_channels} channels; it can be recorded as 1 "
                f"or {self.file_channels}, not {self.channels}")
        self._file = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def open(self, capture: Capture, dtype: str) -> None:
        import soundfile as sf

        self._capture = capture
        self._dtype = dtype
        self._stopping.clear()
        try:
            self._file = sf.SoundFile(self.path)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise SourceError(f"{self.path}: {_sf_reason(e)}") from None
        seconds = self.REALTIME_BLOCK_SECONDS if self.realtime else self.BLOCK_SECONDS
        block = max(1, int(self.samplerate * seconds))
        self._buf = np.zeros((block, self.file_channels), dtype=dtype)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dictaphone-file", daemon=True)
        self._thread.start()

    def _convert(self, block: np.ndarray) -> np.ndarray:
        if self.channels == self.file_channels:
            return block
        if self.channels == 1:  # mix down
            mixed = block.mean(axis=1, keepdims=True)
            if block.dtype.kind != "f":
                mixed = np.round(mixed)
            return mixed.astype(block.dtype)
        return np.repeat(block, self.channels, axis=1)

    def _run(self) -> None:
        capture, f = self._capture, self._file
        error = None
        t0 = time.monotonic()
        delivered = 0
        try:
            while not self._stopping.is_set():
                n = f.read(out=self._buf, dtype=self._dtype, always_2d=True).shape[0]
                if n == 0:
                    break
                if self.realtime:
                    delay = t0 + delivered / self.samplerate - time.monotonic()
                    if delay > 0 and self._stopping.wait(delay):
                        break
                if not capture.push_all(self._convert(self._buf[:n])):
                    break
                delivered += n
                if n < len(self._buf):
                    break
        except Exception as e:  # a truncated or corrupt file: report it, keep what we read
            error = SourceError(f"{self.path}: read failed after {delivered} frames: {_sf_reason(e)}")
        capture.end(error)

    def stop(self) -> None:
        self._stopping.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()

    def close(self) -> None:
        self.stop()
        f, self._file = self._file, None
        if f is not None:
            f.close()


def _sf_reason(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    # libsndfile messages come as "Error opening 'x': Format not recognised."
    return msg.split(": ", 1)[-1].rstrip(".") if "Error opening" in msg else msg
