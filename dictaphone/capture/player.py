"""Playing a file to an output device, streamed in blocks (never loaded whole).

The PortAudio callback copies frames from a small queue of pre-read blocks; a reader
thread fills the queue from the file. ``Player.stop()`` ends playback at once.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from ..errors import DeviceError, InvalidArgumentError, SourceError
from ..containers.sfmessages import explain
from .sources import find_device, import_sounddevice


def find_output_device(device: int | str | None) -> int | None:
    """The PortAudio index of an output device given by index or name; None: the default."""
    return None if device is None else find_device(device, "output")["index"]


class Player:
    """Plays one file. ``position`` and ``duration`` are in seconds; ``wait()`` blocks.

    Steerable while it plays, from any thread: :meth:`pause`/:meth:`resume`,
    :meth:`seek` (to a time), :attr:`speed` (0.5 to 2 times, the pitch kept: see
    dictaphone.capture.stretch) and :attr:`skip_silence` (silent stretches, as ``show``
    finds them — at least 0.5 s below -50 dBFS — are cut to 0.25 s). A change is heard
    after what the device already holds (``LATENCY``)."""

    BLOCK = 2048
    QUEUE_BLOCKS = 32
    #: seconds of audio handed to the device ahead of what is heard. A file has no reason
    #: to be played with little latency, and PortAudio's "high" latency (85 ms on
    #: PulseAudio) ran dry on a loaded machine: the callback thread came late and the
    #: server played silence in the middle of the clip. (paplay keeps 2 s ahead.) q still
    #: stops at once: stop() drops what is buffered.
    LATENCY = 0.5
    SILENCE_DBFS = -50.0
    MIN_SILENCE = 0.5  #: s: shorter pauses are speech's own rhythm and stay
    KEEP_SILENCE = 0.25  #: s of each skipped silence still played

    def __init__(self, path: str, device: int | str | None = None, start: float = 0.0,
                 speed: float = 1.0, skip_silence: bool = False):
        from ..containers.decode import open_audio
        from .stretch import check_speed

        self._speed = check_speed(speed)
        self._skip = bool(skip_silence)
        self.sd = import_sounddevice()
        self._file = open_audio(path)  # libsndfile, else PyAV (M4A, WebM)
        self.path = path
        self.samplerate = self._file.samplerate
        self.channels = self._file.channels
        frames = self._file.frames
        self.frames = frames if 0 <= frames < 2**62 else None
        self.played = 0  # frames of the file handed to the device (its position)
        if start:
            self._seek(start)
        self._first = self.played  # where playback starts (frames)
        self._heard_at: float | None = None  # stream time when the last frame is heard
        self._tail = self._max_tail = 0  # frames of silence after the last one
        self._finished = False  # every frame handed over was heard (the stream ran out)
        self.device = find_output_device(device)
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(self.QUEUE_BLOCKS)
        self._pending = np.zeros((0, self.channels), dtype="float32")
        self._pending_src = (0, 1.0)  # (file frame of _pending[0], file frames per frame)
        self._done = threading.Event()
        self._stopping = threading.Event()
        self._paused = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every seek/speed/skip change: older blocks are dropped
        self._request: int | None = None  # a seek for the reader (file frame)
        self._reader_gen = -1
        self.stretcher_name = None
        self._reader = threading.Thread(target=self._read, daemon=True, name="dictaphone-play-reader")

    def _seek(self, seconds: float) -> None:
        """Start ``seconds`` in (``position`` counts from the file's start)."""
        frame = int(round(seconds * self.samplerate))
        if seconds < 0 or (self.frames is not None and frame >= self.frames):
            self._file.close()
            end = f" ({self.frames / self.samplerate:.3f} s)" if self.frames is not None else ""
            raise InvalidArgumentError(f"{self.path}: {seconds:.3f} s is past the end{end}")
        try:
            self._file_seek(frame)
        except Exception as e:
            self._file.close()
            raise SourceError(f"{self.path}: cannot start at {seconds:.3f} s: {e}") from None
        self.played = frame

    @property
    def duration(self) -> float | None:
        return None if self.frames is None else self.frames / self.samplerate

    @property
    def position(self) -> float:
        """Where playback is in the file: what was handed to the device, less what it
        still holds (until the end, when all of it was heard). Stopped early, what was
        dropped unheard is not counted."""
        played = self.played
        stream = getattr(self, "_stream", None)
        if stream is not None and not self._finished and not self._paused.is_set():
            ahead = int(round(stream.latency * self.samplerate * self._speed))
            played = max(self._first, played - ahead)
        return played / self.samplerate

    # -- steering (any thread) -------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def toggle_pause(self) -> bool:
        """Pause or resume; True when now paused."""
        if self._paused.is_set():
            self._paused.clear()
        else:
            self._paused.set()
        return self._paused.is_set()

    def seek(self, seconds: float) -> float:
        """Go to ``seconds`` (clamped to the file); returns where."""
        frame = max(0, int(round(seconds * self.samplerate)))
        if self.frames is not None:
            frame = min(frame, max(0, self.frames - 1))
        with self._lock:
            self._request = frame
            self._generation += 1
            self.played = self._first = frame
        return frame / self.samplerate

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        from .stretch import check_speed

        value = check_speed(value)
        with self._lock:
            if value == self._speed:
                return
            self._speed = value
            self._request = int(self.position * self.samplerate)
            self._generation += 1

    @property
    def skip_silence(self) -> bool:
        return self._skip

    @skip_silence.setter
    def skip_silence(self, on: bool) -> None:
        with self._lock:
            if bool(on) == self._skip:
                return
            self._skip = bool(on)
            self._request = int(self.position * self.samplerate)
            self._generation += 1

    # -- the reader thread: file -> (silence skipped) -> (stretched) -> queue -------------

    def _read(self) -> None:
        try:
            self._read_loop()
        except Exception as e:  # a damaged file: play what was read, then report
            self.error = SourceError(f"{self.path}: read failed: {e}")
            self._put((None, 0, 1.0, self._reader_gen))

    def _put(self, item) -> bool:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                if item[3] != self._generation:
                    return True  # (dropped: a seek or a change made it stale)
        return False

    def _file_seek(self, frame: int) -> None:
        if _takes_exact(self._file):
            self._file.seek(frame, exact=False)  # (a player needs no sample-exact seek)
        else:
            self._file.seek(frame)

    def _read_loop(self) -> None:
        from .stretch import make_stretcher

        stretcher = None
        silence = _SilenceSkipper(self.samplerate, self.SILENCE_DBFS, self.MIN_SILENCE, self.KEEP_SILENCE)
        pos = self.played  # file frame of the next read
        at_end = False
        while not self._stopping.is_set():
            with self._lock:
                gen, request, speed, skip = self._generation, self._request, self._speed, self._skip
                self._request = None
            if gen != self._reader_gen:
                if request is not None:
                    pos = request
                    self._file_seek(pos)
                stretcher = make_stretcher(self.samplerate, self.channels, speed) if speed != 1.0 else None
                self.stretcher_name = stretcher.name if stretcher else None
                silence.reset()
                self._reader_gen = gen
                at_end = False
            if at_end:
                # the end is queued; until it is heard a seek (← from the end) reads on
                if self._heard_at is not None:
                    return
                time.sleep(0.02)
                continue
            block = self._file.read(self.BLOCK * 4, dtype="float32", always_2d=True)
            if len(block) == 0:
                if stretcher is not None:
                    out = stretcher.flush()
                    if len(out):
                        self._put((out, pos, speed, gen))
                self._put((None, pos, 1.0, gen))
                at_end = True
                continue
            start = pos
            pos += len(block)
            parts = silence.process(block, start) if skip else [(block, start)]
            for part, at in parts:
                if stretcher is not None:
                    part = stretcher.process(part)
                if len(part) and not self._put((part, at, speed, gen)):
                    return

    # Audio thread: copy pre-read frames, no I/O.
    def _callback(self, outdata, frames, t, status) -> None:
        if self._heard_at is not None:
            # Every frame was handed over: silence until the last one was heard. Stopping
            # at once (CallbackStop) dropped what the device and the server still held:
            # the last 0.1 s of every clip, the whole buffer with a larger one.
            outdata.fill(0)
            self._tail += frames
            if t.currentTime >= self._heard_at or self._tail > self._max_tail:
                raise self.sd.CallbackStop
            return
        if self._paused.is_set():
            outdata.fill(0)
            return
        gen = self._generation
        filled = 0
        while filled < frames:
            if len(self._pending) == 0 or self._pending_gen != gen:
                self._pending = self._pending[:0]
                try:
                    block, at, ratio, bgen = self._queue.get_nowait()
                except queue.Empty:
                    break  # the reader is late: play silence for the rest (underrun)
                if bgen != gen:
                    continue  # made before a seek or a change: dropped unheard
                if block is None:
                    outdata[filled:] = 0
                    # when this block's last real frame reaches the listener, on the
                    # stream's clock (a host that gives no DAC time: now + the latency)
                    latency = self._stream.latency
                    dac = t.outputBufferDacTime or (t.currentTime + latency)
                    self._heard_at = dac + filled / self.samplerate
                    # (a clock that does not move must not keep the stream for ever)
                    self._max_tail = int((latency + 1.0) * self.samplerate)
                    return
                self._pending, self._pending_src, self._pending_gen = block, (at, ratio), bgen
            n = min(frames - filled, len(self._pending))
            outdata[filled:filled + n] = self._pending[:n]
            self._pending = self._pending[n:]
            at, ratio = self._pending_src
            self._pending_src = (at + n * ratio, ratio)
            self.played = int(at + n * ratio)
            filled += n
        outdata[filled:] = 0

    _pending_gen = 0

    def start(self) -> None:
        self._reader.start()
        # let the reader get ahead before the first callback
        deadline = time.monotonic() + 1.0
        while self._queue.qsize() < min(4, self.QUEUE_BLOCKS) and self._reader.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            self._stream = self.sd.OutputStream(
                samplerate=self.samplerate, channels=self.channels, dtype="float32",
                device=self.device, blocksize=self.BLOCK, latency=self.LATENCY,
                callback=self._callback, finished_callback=self._on_finished)
            self._stream.start()
        except (self.sd.PortAudioError, ValueError) as e:
            self.stop()
            from .sources import portaudio_words

            raise DeviceError(f"cannot play to the output device: {portaudio_words(e)}") from None

    def _on_finished(self) -> None:
        # (also after stop()'s abort, which dropped the buffer: only a stream that ran
        # to its end has played all it was given)
        if not self._stopping.is_set():
            self._finished = True
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        stream = getattr(self, "_stream", None)
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except self.sd.PortAudioError:
                pass
        self._done.set()
        if self._reader.is_alive():
            self._reader.join(2)
        self._file.close()


def _takes_exact(reader) -> bool:
    from ..containers.decode import is_pyav_reader

    return is_pyav_reader(reader)


class _SilenceSkipper:
    """Cuts silent stretches (``min_silence`` or longer below ``dbfs``, RMS over 50 ms
    windows) down to ``keep`` seconds, keeping each part's file position."""

    def __init__(self, rate: int, dbfs: float, min_silence: float, keep: float):
        self.window = max(1, int(rate * 0.05))
        self.threshold = 10 ** (dbfs / 20)
        self.keep = int(keep * rate)
        self.min = int(min_silence * rate)
        self.reset()

    def reset(self) -> None:
        self.quiet = 0  # frames of the silence going on

    def process(self, block: np.ndarray, start: int) -> list[tuple[np.ndarray, int]]:
        w = self.window
        n = len(block)
        parts: list[tuple[np.ndarray, int]] = []
        run_from = None
        for i in range(0, n, w):
            chunk = block[i:i + w]
            rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))) if len(chunk) else 0.0
            if rms < self.threshold:
                self.quiet += len(chunk)
                # a silence is cut only once it is long: its first `keep` frames play
                drop = self.quiet > self.keep and self.quiet > 0
            else:
                self.quiet = 0
                drop = False
            if drop:
                if run_from is not None:
                    parts.append((block[run_from:i], start + run_from))
                    run_from = None
            elif run_from is None:
                run_from = i
        if run_from is not None:
            parts.append((block[run_from:], start + run_from))
        return parts

