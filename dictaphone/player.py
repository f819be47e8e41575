"""Playing a file to an output device, streamed in blocks (never loaded whole).

The PortAudio callback copies frames from a small queue of pre-read blocks; a reader
thread fills the queue from the file. ``Player.stop()`` ends playback at once.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from .errors import DeviceError, InvalidArgumentError, SourceError
from .sfmessages import explain
from .sources import find_device, import_sounddevice


def find_output_device(device: int | str | None) -> int | None:
    """The PortAudio index of an output device given by index or name; None: the default."""
    return None if device is None else find_device(device, "output")["index"]


class Player:
    """Plays one file. ``position`` and ``duration`` are in seconds; ``wait()`` blocks."""

    BLOCK = 2048
    QUEUE_BLOCKS = 32

    def __init__(self, path: str, device: int | str | None = None, start: float = 0.0):
        import soundfile as sf

        self.sd = import_sounddevice()
        try:
            self._file = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            raise SourceError(f"{path}: {explain(e, path)}") from None
        self.path = path
        self.samplerate = self._file.samplerate
        self.channels = self._file.channels
        frames = self._file.frames
        self.frames = frames if 0 <= frames < 2**62 else None
        self.played = 0
        if start:
            self._seek(start)
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
        return self.played / self.samplerate

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
                    raise self.sd.CallbackStop
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
                device=self.device, blocksize=self.BLOCK, latency="high",
                callback=self._callback, finished_callback=self._done.set)
            self._stream.start()
        except (self.sd.PortAudioError, ValueError) as e:
            self.stop()
            from .sources import portaudio_words

            raise DeviceError(f"cannot play to the output device: {portaudio_words(e)}") from None

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
