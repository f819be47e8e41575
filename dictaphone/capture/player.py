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
    """Plays one file. ``position`` and ``duration`` are in seconds; ``wait()`` blocks."""

    BLOCK = 2048
    QUEUE_BLOCKS = 32
    #: seconds of audio handed to the device ahead of what is heard. A file has no reason
    #: to be played with little latency, and PortAudio's "high" latency (85 ms on
    #: PulseAudio) ran dry on a loaded machine: the callback thread came late and the
    #: server played silence in the middle of the clip. (paplay keeps 2 s ahead.) q still
    #: stops at once: stop() drops what is buffered.
    LATENCY = 0.5

    def __init__(self, path: str, device: int | str | None = None, start: float = 0.0):
        from ..containers.decode import open_audio

        self.sd = import_sounddevice()
        self._file = open_audio(path)  # libsndfile, else PyAV (M4A, WebM)
        self.path = path
        self.samplerate = self._file.samplerate
        self.channels = self._file.channels
        frames = self._file.frames
        self.frames = frames if 0 <= frames < 2**62 else None
        self.played = 0
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
        self._done = threading.Event()
        self._stopping = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True, name="dictaphone-play-reader")

    def _seek(self, seconds: float) -> None:
        """Start ``seconds`` in (``position`` counts from the file's start)."""
        frame = int(round(seconds * self.samplerate))
        if seconds < 0 or (self.frames is not None and frame >= self.frames):
            self._file.close()
            end = f" ({self.frames / self.samplerate:.3f} s)" if self.frames is not None else ""
            raise InvalidArgumentError(f"{self.path}: {seconds:.3f} s is past the end{end}")
        try:
            self._file.seek(frame)
        except Exception as e:
            self._file.close()
            raise SourceError(f"{self.path}: cannot start at {seconds:.3f} s: {e}") from None
        self.played = frame

    @property
    def duration(self) -> float | None:
        return None if self.frames is None else self.frames / self.samplerate

    @property
    def position(self) -> float:
        """Where playback is: what was handed to the device, less what it still holds
        (until the end, when all of it was heard). Stopped early, what was dropped
        unheard is not counted."""
        played = self.played
        stream = getattr(self, "_stream", None)
        if stream is not None and not self._finished:
            ahead = int(round(stream.latency * self.samplerate))
            played = max(self._first, played - ahead)
        return played / self.samplerate

    def _read(self) -> None:
        try:
            while not self._stopping.is_set():
                block = self._file.read(self.BLOCK * 4, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                while not self._stopping.is_set():
                    try:
                        self._queue.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except Exception as e:  # a damaged file: play what was read, then report
            self.error = SourceError(f"{self.path}: read failed: {e}")
        self._queue.put(None)

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
        filled = 0
        while filled < frames:
            if len(self._pending) == 0:
                try:
                    block = self._queue.get_nowait()
                except queue.Empty:
                    break  # the reader is late: play silence for the rest (underrun)
                if block is None:
                    outdata[filled:] = 0
                    self.played += filled
                    # when this block's last real frame reaches the listener, on the
                    # stream's clock (a host that gives no DAC time: now + the latency)
                    latency = self._stream.latency
                    dac = t.outputBufferDacTime or (t.currentTime + latency)
                    self._heard_at = dac + filled / self.samplerate
                    # (a clock that does not move must not keep the stream for ever)
                    self._max_tail = int((latency + 1.0) * self.samplerate)
                    return
                self._pending = block
            n = min(frames - filled, len(self._pending))
            outdata[filled:filled + n] = self._pending[:n]
            self._pending = self._pending[n:]
            filled += n
        outdata[filled:] = 0
        self.played += filled

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
