"""Audio files as sources: a file on disk, or a pipe (``--input -``, a FIFO) read front
to back. soundfile is imported when a FileSource is made."""

from __future__ import annotations

import io
import os
import stat
import threading
import time

import numpy as np

from ..args import seconds
from ..containers.formats import MAX_CHANNELS, _is_int
from ..containers.sfmessages import explain, raw_text
from ..errors import InvalidArgumentError, NotSupportedError, SourceError
from .base import Capture, Source


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
        self.name = "stdin" if self.path == "-" else os.path.basename(self.path)
        self._stopping = threading.Event()
        self._stream: _ForwardStream | None = None
        self._stream_file = None
        if self.path == "-" or _is_fifo(self.path):
            self._open_stream()
            f = self._stream_file
            self.samplerate = int(f.samplerate)
            self.file_channels = int(f.channels)
            self.frames = -1  # unknown until the stream ends
            self.file_format = f.format
            self.file_subtype = f.subtype
        else:
            if not os.path.exists(self.path):
                raise SourceError(f"{self.path}: no such file")
            if os.path.isdir(self.path):
                raise SourceError(f"{self.path}: is a directory")
            mode = os.stat(self.path).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                raise SourceError(f"{self.path}: is a device, not an audio file")
            from ..containers.decode import open_audio

            with open_audio(self.path) as f:  # libsndfile, else PyAV (M4A, WebM, MP4)
                self.samplerate = int(f.samplerate)
                self.file_channels = int(f.channels)
                self.frames = int(f.frames)
                self.file_format = f.format
                self.file_subtype = f.subtype
        if channels is not None and not _is_int(channels):
            raise InvalidArgumentError(f"channel count {channels!r} is not a whole number")
        self.channels = self.file_channels if channels is None else int(channels)
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise InvalidArgumentError(f"channel count {self.channels} is out of range (1 to {MAX_CHANNELS})")
        if self.channels != self.file_channels and self.file_channels != 1 and self.channels != 1:
            raise NotSupportedError(
                f"{self.path} has {self.file_channels} channels; it can be recorded as 1 "
                f"or {self.file_channels}, not {self.channels}")
        self._file = None
        self._thread: threading.Thread | None = None

    @property
    def label(self) -> str:
        return "stdin" if self.path == "-" else self.path

    def _open_stream(self) -> None:
        """A pipe or FIFO (or stdin for "-"): read it once, front to back. libsndfile
        wants to seek; a _ForwardStream lets it seek inside the header it has read. WAV
        and FLAC are read that way; formats whose reader must seek to the end first
        (Ogg, MP3) are refused, and said so."""
        import soundfile as sf

        label = self.label
        if self.path == "-":
            if os.isatty(0):
                raise SourceError("--input - reads audio from stdin, which is a terminal; "
                                  "pipe a WAV or FLAC stream into it")
            fd = os.dup(0)
        else:
            # O_NONBLOCK: opening a FIFO that has no writer yet would block, deaf to Ctrl-C;
            # the wait for the writer's first bytes happens in select(), which a stop ends.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            stream = _ForwardStream(fd, self._stopping)
            head = stream.peek(12)
            stream.check_stop()
            kind = _sniff(head)
            if kind not in ("WAV", "FLAC"):
                what = {None: "neither WAV nor FLAC" if head else "empty (the writer sent nothing)",
                        }.get(kind, f"{kind}, which libsndfile can only read from a file it can seek in")
                raise SourceError(f"{label}: a stream is read as WAV or FLAC, and this one is {what}; "
                                  f"save it to a file first (or have the writer send WAV or FLAC)")
            try:
                self._stream_file = sf.SoundFile(stream)
            except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
                stream.check_stop()
                raise SourceError(f"{label}: {explain(e)}") from None
            stream.check_stop()
        except BaseException:
            os.close(fd)
            raise
        self._stream = stream

    def open(self, capture: Capture, dtype: str) -> None:
        import soundfile as sf

        self._capture = capture
        self._dtype = dtype
        self._stopping.clear()
        if self._stream is not None:
            if self._stream_file is None:
                raise SourceError(f"{self.label}: a stream can be recorded only once")
            self._file, self._stream_file = self._stream_file, None
        else:
            from ..containers.decode import open_audio

            self._file = open_audio(self.path)
        # A stream comes in small blocks too: a stop while its writer is silent keeps
        # everything but the last 50 ms block at most.
        live = self.realtime or self._stream is not None
        seconds = self.REALTIME_BLOCK_SECONDS if live else self.BLOCK_SECONDS
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
        stream = self._stream
        if stream is not None and self._stream_file is None:  # (kept open until recorded)
            stream.close_fd()


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _sniff(head: bytes) -> str | None:
    """The container a stream's first bytes announce."""
    if head[:4] in (b"RIFF", b"RF64", b"RIFX") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    if head[:4] == b"FORM":
        return "AIFF"
    return None


class _ForwardStream(io.RawIOBase):
    """A pipe as libsndfile's virtual file: read front to back, with seeks back into the
    last LOOKBACK bytes (libsndfile re-reads headers) and an unknown length (the end of a
    stream is known only when it comes). Reads wait in select(), so a stop ends a wait
    for a writer that sends nothing."""

    LOOKBACK = 1 << 20
    UNKNOWN_END = 1 << 62
    #: a read this far beyond the data is a look for chunks after the audio (WAV) or a
    #: search for the end: answered with nothing rather than by reading the whole stream
    AHEAD = 1 << 16
    POLL = 0.25

    def __init__(self, fd: int, stopping: threading.Event):
        super().__init__()
        self.fd = fd
        self.stopping = stopping
        self.buf = bytearray()
        self.base = 0  # stream offset of buf[0]
        self.pos = 0
        self.eof = False
        self.stop_signal: int | None = None  # a stop signal ended a wait (main thread)

    def check_stop(self) -> None:
        if self.stop_signal is not None:
            from ..stopsignals import StopRequested

            raise StopRequested(self.stop_signal)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _wait_readable(self) -> bool:
        import select

        from ..stopsignals import pending

        while not self.stopping.is_set():
            if threading.current_thread() is threading.main_thread() and pending() is not None:
                # (no exception here: this runs inside libsndfile's callback; the caller
                # raises StopRequested once libsndfile has returned)
                self.stop_signal = pending()
                return False
            readable, _, _ = select.select([self.fd], [], [], self.POLL)
            if readable:
                return True
        return False

    def _fill(self, upto: int) -> None:
        while self.base + len(self.buf) < upto and not self.eof:
            if not self._wait_readable():
                self.eof = True  # stopped: what came is all there is
                break
            try:
                data = os.read(self.fd, max(65536, min(upto - self.base - len(self.buf), 1 << 20)))
            except BlockingIOError:
                continue
            if not data:
                self.eof = True
                break
            self.buf += data
        drop = self.pos - self.base - self.LOOKBACK
        if drop > 0:  # forget what lies far behind the reader
            del self.buf[:drop]
            self.base += drop

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self.buf[:n])

    def readinto(self, b) -> int:
        n = len(b)
        if self.pos > self.base + len(self.buf) + self.AHEAD:
            return 0
        self._fill(self.pos + n)
        i = self.pos - self.base
        if i < 0:
            raise OSError("a stream cannot go back that far")
        data = self.buf[i:i + n]
        b[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self.pos = (self.base + len(self.buf) if self.eof else self.UNKNOWN_END) + offset
        elif whence == io.SEEK_CUR:
            self.pos += offset
        else:
            self.pos = offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close_fd(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def _sf_reason(e: BaseException) -> str:
    return raw_text(e)
