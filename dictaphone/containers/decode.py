"""Reading audio files of any container: libsndfile where it can, else PyAV (FFmpeg).

libsndfile reads WAV, FLAC, Ogg Vorbis/Opus and MP3 (and AIFF, CAF, ...). A phone's
``.m4a`` (AAC), a browser's ``.webm`` (Opus) or an ``.mp4`` it cannot: those are read
through PyAV, which the ``transcribe`` extra brings. :func:`open_audio` gives either as
the same small reader (``samplerate``, ``channels``, ``frames``, ``read``, ``seek``,
``blocks``, ``close``), so the player, ``--input``, the waveform, trim and export read
every file the library holds, in blocks (never the whole file at once).

PyAV is imported only when a file needs it. Without it, such a file is refused in one
line that says what to install.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import SourceError

INSTALL_HINT = "pip install 'dictaphone[transcribe]'"

#: how much a PyAV reader decodes ahead at most (frames): a block, never the file
_CHUNK = 1 << 15


def have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


class AVReader:
    """A file decoded by PyAV, read like a ``soundfile.SoundFile``: float32 frames (or
    int16/int32, scaled), ``seek`` to a frame, ``frames`` the length in frames (from the
    container, so an estimate for some codecs; -1 when it does not say)."""

    def __init__(self, path: str):
        import av

        self.path = os.fspath(path)
        try:
            self._container = av.open(self.path, mode="r", metadata_errors="ignore")
        except Exception as e:  # InvalidDataError, PermissionError, ...
            raise SourceError(f"{self.path}: {_av_reason(e)}") from None
        try:
            if not self._container.streams.audio:
                kinds = sorted({s.type for s in self._container.streams})
                found = f"only {' and '.join(kinds)}" if kinds else "nothing"
                raise SourceError(f"{self.path}: has no audio in it (FFmpeg finds {found} there)")
            self._stream = self._container.streams.audio[0]
            ctx = self._stream.codec_context
            self.samplerate = int(ctx.sample_rate or self._stream.rate or 0)
            self.channels = int(ctx.channels or 0)
            if self.samplerate <= 0 or self.channels <= 0:
                raise SourceError(f"{self.path}: its audio stream gives no sample rate or channels")
            self.codec = ctx.name
            self.container_name = self._container.format.name
            self.format = _container_label(self._container.format.name, self.path)
            self.subtype = self.codec.upper()
            self.frames = self._length()
            self._open_decoder()
        except BaseException:
            self._container.close()
            raise

    def _length(self) -> int:
        s = self._stream
        if s.duration is not None and s.time_base is not None:
            return int(round(float(s.duration * s.time_base) * self.samplerate))
        if self._container.duration is not None:
            return int(round(self._container.duration / 1_000_000 * self.samplerate))
        return -1

    def _open_decoder(self) -> None:
        import av

        layout = self._stream.codec_context.layout
        self._resampler = av.AudioResampler(format="flt", layout=layout, rate=self.samplerate)
        self._frames_iter = self._decoded()
        self._buf = np.zeros((0, self.channels), np.float32)
        self._pos = 0  # frame index of _buf[0]
        self._first_pts = None

    def _decoded(self):
        """float32 (n, channels) arrays as decoded, each with its start frame when the
        stream says (None otherwise)."""
        for packet in self._container.demux(self._stream):
            try:
                frames = packet.decode()
            except Exception as e:
                raise SourceError(f"{self.path}: the audio is damaged at "
                                  f"{self._pos / self.samplerate:.1f} s ({_av_reason(e)})") from None
            for frame in frames:
                start = None
                if frame.pts is not None and frame.time_base is not None:
                    if self._first_pts is None:
                        self._first_pts = frame.pts
                    start = int(round(float((frame.pts - self._first_pts) * frame.time_base)
                                      * self.samplerate))
                for out in self._resampler.resample(frame):
                    yield _interleaved(out, self.channels), start
                    start = None
        for out in self._resampler.resample(None):
            yield _interleaved(out, self.channels), None

    def _fill(self, n: int) -> None:
        parts, have = [self._buf], len(self._buf)
        while have < n:
            try:
                block, _start = next(self._frames_iter)
            except StopIteration:
                break
            parts.append(block)
            have += len(block)
        if len(parts) > 1:
            self._buf = np.concatenate(parts)

    def read(self, frames: int = -1, dtype: str = "float64", always_2d: bool = False, out=None):
        if out is not None:
            frames = len(out)
        if frames < 0:
            frames = 1 << 62
        self._fill(frames)
        data, self._buf = self._buf[:frames], self._buf[frames:]
        self._pos += len(data)
        data = _as_dtype(data, dtype)
        if out is not None:
            out[:len(data)] = data if out.ndim == 2 else data[:, 0]
            return out[:len(data)]
        if not always_2d and self.channels == 1:
            return data[:, 0]
        return data

    def blocks(self, blocksize: int, dtype: str = "float64", always_2d: bool = False):
        while True:
            data = self.read(blocksize, dtype=dtype, always_2d=always_2d)
            if len(data) == 0:
                return
            yield data

    def tell(self) -> int:
        return self._pos

    def seek(self, frame: int, whence: int = 0, exact: bool = True) -> int:
        """Go to ``frame``. Exact (the default) decodes from the start, or on from here
        when ``frame`` is ahead: compressed streams' timestamps are too coarse (Matroska
        counts milliseconds) and their decoders need frames before the target to warm up,
        so a container seek lands near, not on, a frame. ``exact=False`` seeks the
        container (fast in a long file; for a player, where a few ms do not matter)."""
        if whence == 1:
            frame += self._pos
        elif whence == 2:
            frame += max(0, self.frames)
        frame = max(0, int(frame))
        if frame >= self._pos and (exact or frame - self._pos < 4 * self.samplerate):
            self._skip(frame - self._pos)  # forward: decode on
            return self._pos
        first = self._first_pts
        if exact or first is None or frame < self.samplerate:
            self._restart(0)
            self._skip(frame)
            return self._pos
        try:
            back = max(0.0, frame / self.samplerate - 0.5)  # the decoder's warm-up before it
            self._container.seek(int(back / self._stream.time_base) + first,
                                 stream=self._stream, backward=True)
        except Exception:
            self._restart(0)
            self._skip(frame)
            return self._pos
        self._open_decoder()
        self._first_pts = first
        start = None
        while start is None:  # where decoding resumed: the first frame that says its time
            try:
                block, start = next(self._frames_iter)
            except StopIteration:
                self._pos = max(0, self.frames)
                return self._pos
        if start > frame:
            self._restart(0)
            self._skip(frame)
            return self._pos
        self._buf, self._pos = block, start
        self._skip(frame - start)
        return self._pos

    def _restart(self, _at: int) -> None:
        """From the beginning, as a fresh open decodes it (a container seek to 0 is not
        the same: Opus then keeps its pre-skip, and every frame comes 312 samples late)."""
        import av

        first = self._first_pts
        self._container.close()
        self._container = av.open(self.path, mode="r", metadata_errors="ignore")
        self._stream = self._container.streams.audio[0]
        self._open_decoder()
        self._first_pts = first

    def _skip(self, n: int) -> None:
        while n > 0:
            got = len(self.read(min(n, _CHUNK), dtype="float32", always_2d=True))
            if got == 0:
                return
            n -= got

    def close(self) -> None:
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _interleaved(frame, channels: int) -> np.ndarray:
    a = frame.to_ndarray()  # packed float: (1, n * channels)
    return np.ascontiguousarray(a.reshape(-1, channels), dtype=np.float32)


def _as_dtype(data: np.ndarray, dtype: str) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return data.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    scaled = np.clip(np.round(data.astype(np.float64) * (info.max + 1)), info.min, info.max)
    return scaled.astype(dtype)


#: FFmpeg's demuxer names (some are lists) as the names a user knows
_CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": "m4a", "matroska,webm": "webm", "ogg": "ogg",
               "mp3": "mp3", "wav": "wav", "flac": "flac", "aac": "aac", "asf": "wma",
               "aiff": "aiff", "caf": "caf", "amr": "amr"}


def _container_label(name: str, path: str) -> str:
    label = _CONTAINERS.get(name)
    if label == "m4a" and path.lower().endswith(".mp4"):
        return "mp4"
    return label or name.split(",")[0]


def _av_reason(e: BaseException) -> str:
    if isinstance(e, PermissionError):
        return "cannot be read: permission denied"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, IsADirectoryError):
        return "is a directory"
    return ("not audio FFmpeg can decode: its contents are in no audio format it knows, or "
            "damaged")


def open_audio(path: str | os.PathLike, *, pyav: bool = True):
    """A reader for ``path``: a ``soundfile.SoundFile`` when libsndfile reads it, else an
    :class:`AVReader` (``pyav`` True and PyAV installed). SourceError in words otherwise."""
    import soundfile as sf

    from .sfmessages import explain

    path = os.fspath(path)
    try:
        if _looks_like_mp3(path):
            # libsndfile's MP3 decoder (mpg123) prints "Note: Illegal Audio-MPEG-Header"
            # lines on stderr while it looks at a damaged file: the error below says it
            with _quiet_stderr():
                return sf.SoundFile(path)
        return sf.SoundFile(path)
    except TypeError:  # headerless (raw): soundfile asks for a rate it cannot know
        raise SourceError(f"{path}: raw audio has no header to read its rate from") from None
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        sf_error = e
    if isinstance(sf_error, OSError) and not os.path.isfile(path):
        raise SourceError(f"{path}: {explain(sf_error, path)}") from None
    if pyav and _worth_asking_ffmpeg(path):
        if have_pyav():
            try:
                return AVReader(path)
            except SourceError:
                from .formats import format_for_path

                if format_for_path(path) is None:
                    raise
                # (a .wav or .ogg neither reads: libsndfile's words say more about it)
                raise SourceError(f"{path}: {explain(sf_error, path)}") from None
        raise SourceError(f"{path}: libsndfile cannot read it (it reads WAV, FLAC, Ogg and "
                          f"MP3); FFmpeg could, through PyAV: {INSTALL_HINT}")
    raise SourceError(f"{path}: {explain(sf_error, path)}") from None


def _looks_like_mp3(path: str) -> bool:
    if path.lower().endswith(".mp3"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(3)
    except OSError:
        return False
    return head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


class _quiet_stderr:
    """File descriptor 2 pointed at /dev/null for a moment (a C library's notes)."""

    def __enter__(self):
        import sys

        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        try:
            self.saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        except OSError:
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)


def _worth_asking_ffmpeg(path: str) -> bool:
    """Whether FFmpeg might read what libsndfile refused: not a WAV or FLAC whose own
    reader said what is wrong (a damaged header is better said by libsndfile)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE" or head[:4] == b"fLaC":
        return False
    return len(head) > 0


def is_pyav_reader(reader) -> bool:
    return isinstance(reader, AVReader)
