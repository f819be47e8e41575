"""Writers that turn frames into a container, for a file, a stream or memory.

Where the bytes go (a *sink*):
- ``FileSink``: a file we created (exclusively). Seekable, so headers are made valid
  while recording (``sync``), and blobs are regions of the file.
- ``StreamSink``: a binary stream such as stdout. Never seeks; blobs carry sizes only.
- ``MemorySink``: bytes kept for the blobs (the browser's model), nothing else.

What writes them (an *encoder*):
- ``WavEncoder`` and ``RawEncoder`` write PCM themselves. libsndfile cannot write a WAV
  to a pipe (it seeks back to fix the header; see AUDIO-LAB.md), and writing the header
  ourselves lets a file's header be rewritten once a second, so a killed recorder leaves
  a valid file. A streamed WAV says 0xFFFFFFFF for its sizes, as arecord and ffmpeg do:
  sox and libsndfile then read it to the end.
- ``SndfileEncoder`` uses libsndfile (FLAC, Ogg Vorbis, Ogg Opus, MP3) through a
  virtual file, so stream sinks work: a seek back to rewrite a header is discarded
  instead of corrupting the stream or flooding stderr with "Illegal seek".

Every encoder takes frames of ``encoder.dtype`` (int16 for 16-bit PCM, int32 for 24/32
bit, float32 otherwise), so lossless paths never round through float.
"""

from __future__ import annotations

import errno
import os
import struct

import numpy as np

from .errors import BrokenPipeOutputError, NotSupportedError, OutputError, WriteError
from .events import Blob
from .formats import SUBTYPE_DTYPES, Format

#: libsndfile's Ogg Vorbis encoder crashes on single writes of about 2 million frames
#: (AUDIO-LAB.md); no encoder is handed more than this at once.
MAX_WRITE_FRAMES = 1 << 16


def _write_error(e: OSError, what: str) -> WriteError:
    if isinstance(e, BrokenPipeError) or e.errno == errno.EPIPE:
        return BrokenPipeOutputError(f"{what}: the reader closed the pipe")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return WriteError(f"{what}: disk full")
    return WriteError(f"{what}: {e.strerror or e}")


# --------------------------------------------------------------------------- sinks


class _VirtualPosition:
    """The position libsndfile's virtual I/O sees: ``seek``/``tell`` move it, and
    ``write`` decides what a write at that position means for the sink."""

    _pos = 0
    size = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos


class FileSink(_VirtualPosition):
    """A file created for this recording. ``write`` appends; ``pwrite`` patches headers."""

    seekable = True

    def __init__(self, path: str, force: bool = False):
        self.path = os.fspath(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
        flags |= getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            self.fd = os.open(self.path, flags, 0o666)
        except FileExistsError:
            raise OutputError(f"{self.path} exists (use --force to overwrite it)") from None
        except FileNotFoundError:
            raise OutputError(f"{self.path}: the directory does not exist") from None
        except IsADirectoryError:
            raise OutputError(f"{self.path} is a directory") from None
        except OSError as e:
            raise OutputError(f"cannot create {self.path}: {e.strerror}") from None
        self.size = 0  # bytes that reached the file, at the end
        self._pos = 0  # libsndfile's virtual position (see seek)
        self.error: WriteError | None = None

    # The file-like trio libsndfile's virtual I/O calls. It must never raise: an exception
    # in a cffi callback is printed to stderr and swallowed. Errors are kept in .error.
    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        # After a failed write (a full disk) appends are dropped, but rewrites inside the
        # file still go through: they need no new space, and they are how libFLAC
        # finishes its header at close.
        if self.error is None or self._pos + len(data) <= self.size:
            try:
                if self._pos == self.size:
                    self._append(data)
                else:
                    self._pwrite(data, self._pos)
            except WriteError as e:
                if self.error is None:
                    self.error = e
        self._pos += len(data)
        return len(data)


    def read(self, n: int = -1) -> bytes:
        try:
            return os.pread(self.fd, self.size - self._pos if n < 0 else n, self._pos)
        except OSError:
            return b""

    def _append(self, data: memoryview) -> None:
        done = 0
        try:
            while done < len(data):
                done += os.pwrite(self.fd, data[done:], self.size + done)
        except OSError as e:
            raise _write_error(e, self.path) from None
        finally:
            self.size += done

    def append(self, data) -> None:
        """Append bytes at the end; WriteError when they do not fit (what fit is kept)."""
        if self.error is not None:
            raise self.error
        self._append(memoryview(data).cast("B"))
        self._pos = self.size

    def _pwrite(self, data, offset: int) -> None:
        try:
            os.pwrite(self.fd, data, offset)
        except OSError as e:
            raise _write_error(e, self.path) from None
        self.size = max(self.size, offset + len(data))

    def patch(self, data: bytes, offset: int) -> None:
        self._pwrite(data, offset)

    def flush(self, durable: bool = False) -> None:
        if durable:
            try:
                os.fdatasync(self.fd) if hasattr(os, "fdatasync") else os.fsync(self.fd)
            except OSError:
                pass  # some files (pipes, some mounts) cannot sync; the data is written

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
            self.size = size
        except OSError:
            pass

    def blob(self, type: str, start: int, end: int) -> Blob:
        return Blob(type, path=self.path, offset=start, size=end - start)

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            finally:
                self.fd = -1

    def remove(self) -> None:
        """Close and delete the file (used when a recording fails before any audio)."""
        self.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class _AppendOnly(_VirtualPosition):
    """Shared by the stream and memory sinks: they cannot seek back, so the virtual
    position libsndfile sees moves, and bytes written behind the end are dropped."""

    seekable = False

    def __init__(self) -> None:
        self.size = 0
        self._pos = 0
        self.error: WriteError | None = None

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        n = len(data)
        skip = min(n, max(0, self.size - self._pos))  # a rewrite of the past: drop it
        if skip < n and self.error is None:
            try:
                self._emit(data[skip:])
                self.size += n - skip
            except WriteError as e:
                self.error = e
        self._pos += n
        return n


    def read(self, n: int = -1) -> bytes:
        return b""

    def append(self, data) -> None:
        if self.error is not None:
            raise self.error
        self._pos = self.size
        self.write(data)
        if self.error is not None:
            raise self.error

    def patch(self, data: bytes, offset: int) -> None:
        pass  # a stream cannot be patched; its header was written for streaming

    def flush(self, durable: bool = False) -> None:
        pass

    def close(self) -> None:
        pass

    def remove(self) -> None:
        pass

    def _emit(self, data: memoryview) -> None:
        raise NotImplementedError


class StreamSink(_AppendOnly):
    """A binary stream (stdout, a pipe, a socket file). Blobs carry only their size."""

    def __init__(self, stream, name: str = "<stream>"):
        super().__init__()
        self.stream = stream
        self.path = None
        self.name = name

    def _emit(self, data: memoryview) -> None:
        try:
            self.stream.write(data)
        except OSError as e:
            raise _write_error(e, self.name) from None
        except ValueError as e:  # "write to closed file"
            raise BrokenPipeOutputError(f"{self.name}: {e}") from None

    def flush(self, durable: bool = False) -> None:
        if self.error is not None:
            return
        try:
            self.stream.flush()
        except OSError as e:
            self.error = _write_error(e, self.name)
        except ValueError as e:
            self.error = BrokenPipeOutputError(f"{self.name}: {e}")

    def blob(self, type: str, start: int, end: int) -> Blob:
        return Blob(type, size=end - start)


class MemorySink(_AppendOnly):
    """Keeps the bytes until the next blob takes them (an in-memory recording)."""

    def __init__(self) -> None:
        super().__init__()
        self.path = None
        self._chunks: list[bytes] = []

    def _emit(self, data: memoryview) -> None:
        self._chunks.append(bytes(data))

    def blob(self, type: str, start: int, end: int) -> Blob:
        data = b"".join(self._chunks)
        self._chunks.clear()
        assert len(data) == end - start
        return Blob(type, data)


def open_sink(output, force: bool = False):
    """A sink for a path, a binary stream, or None (memory)."""
    if output is None:
        return MemorySink()
    if isinstance(output, (str, os.PathLike)):
        return FileSink(os.fspath(output), force=force)
    if hasattr(output, "write"):
        stream = getattr(output, "buffer", output)  # a text stream's binary buffer
        return StreamSink(stream, name=getattr(output, "name", "<stream>"))
    raise TypeError(f"output must be a path, a binary stream or None, not {type(output).__name__}")


# --------------------------------------------------------------------------- encoders


def pcm_bytes(frames: np.ndarray, subtype: str) -> bytes:
    """Little-endian interleaved PCM bytes for frames of the subtype's dtype."""
    if subtype == "PCM_24":  # int32 frames, keep the top three bytes
        b = np.ascontiguousarray(frames, dtype="<i4").view(np.uint8).reshape(-1, 4)
        return b[:, 1:].tobytes()
    dtype = {"PCM_16": "<i2", "PCM_32": "<i4", "FLOAT": "<f4"}[subtype]
    return np.ascontiguousarray(frames, dtype=dtype).tobytes()


_BITS = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32}
UNKNOWN_SIZE = 0xFFFFFFFF


def wav_header(samplerate: int, channels: int, subtype: str, data_bytes: int | None,
               trailer_bytes: int = 0) -> bytes:
    """A canonical WAV header; ``data_bytes`` None writes the streaming sizes (0xFFFFFFFF).
    ``trailer_bytes``: chunks after the data (markers), counted in the RIFF size.

    PCM is format tag 1 (44 bytes). Float is tag 3 with the ``fact`` chunk the spec asks
    for non-PCM data (58 bytes). The header's length does not depend on ``data_bytes``,
    so it can be rewritten in place.
    """
    bits = _BITS[subtype]
    block_align = channels * bits // 8
    is_float = subtype == "FLOAT"
    fmt = struct.pack("<HHIIHH", 3 if is_float else 1, channels, samplerate,
                      samplerate * block_align, block_align, bits)
    if is_float:
        fmt += struct.pack("<H", 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if is_float:
        frames = UNKNOWN_SIZE if data_bytes is None else data_bytes // block_align
        chunks += b"fact" + struct.pack("<II", 4, min(frames, UNKNOWN_SIZE))
    if data_bytes is None:
        riff_size = data_size = UNKNOWN_SIZE
    else:
        data_size = min(data_bytes, UNKNOWN_SIZE)
        riff_size = min(4 + len(chunks) + 8 + data_bytes + (data_bytes & 1) + trailer_bytes,
                        UNKNOWN_SIZE)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_size)


class Encoder:
    """Common bookkeeping: frames in, bytes out, blobs cut at the caller's request."""

    def __init__(self, sink, fmt: Format, samplerate: int, channels: int, subtype: str):
        self.sink = sink
        self.format = fmt
        self.samplerate = samplerate
        self.channels = channels
        self.subtype = subtype
        self.dtype = SUBTYPE_DTYPES.get(subtype, "float32")
        self.frames = 0
        self._cut_at = 0  # sink offset where the next blob starts
        self.closed = False
        #: markers in this file: (frame offset, number, label), written when it is finished
        self.markers: list[tuple[int, int, str]] = []

    @property
    def mime_type(self) -> str:
        return self.format.mime_type

    @property
    def bytes_written(self) -> int:
        return self.sink.size

    def write(self, frames: np.ndarray) -> None:
        raise NotImplementedError

    def add_marker(self, offset: int, number: int, label: str) -> None:
        """A marker ``offset`` frames into this file (stored in the container at close,
        where the format has a place for it)."""
        self.markers.append((offset, number, label))

    def sync(self, durable: bool = False) -> None:
        """Make what is written so far a valid, flushed file (when the sink can seek)."""

    def _flush_codec(self) -> None:
        """Push buffered encoder output to the sink (so a blob can be cut)."""

    def cut(self) -> Blob:
        """The bytes written since the last cut, as a Blob."""
        self._flush_codec()
        end = self.sink.size
        blob = self.sink.blob(self.mime_type, self._cut_at, end)
        self._cut_at = end
        return blob

    def close(self) -> Blob:
        """Finish the container; return the last blob. Idempotent (later calls: empty blob)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the output: used when a recording fails before it captured anything."""
        self.closed = True
        self.sink.remove()


class PcmEncoder(Encoder):
    """Headerless PCM (raw), and the base of WAV."""

    header_len = 0
    trailer_len = 0  #: bytes of chunks after the data (WAV markers, at close)

    def _trailer(self) -> bytes:
        """Chunks to append after the data when the file is finished."""
        return b""

    def _header(self, data_bytes: int | None) -> bytes:
        return b""

    def begin(self) -> None:
        # The streaming header (sizes 0xFFFFFFFF) until the first sync: a recorder killed
        # in its first second still leaves a file that readers take to its end.
        header = self._header(None)
        if header:
            self.sink.append(header)

    def write(self, frames: np.ndarray) -> None:
        if len(frames):
            try:
                self.sink.append(pcm_bytes(frames, self.subtype))
            finally:
                self.frames = (self.sink.size - self.header_len) // (
                    self.channels * _BITS[self.subtype] // 8)

    def _data_bytes(self) -> int:
        return self.frames * self.channels * _BITS[self.subtype] // 8

    def sync(self, durable: bool = False) -> None:
        if self.sink.seekable and self.header_len:
            self.sink.patch(self._header(self._data_bytes()), 0)
        self.sink.flush(durable)

    def close(self) -> Blob:
        if self.closed:
            return Blob(self.mime_type, b"")
        self.closed = True
        try:
            if self.sink.seekable:
                data = self._data_bytes()
                # a partial frame left by a failed write is cut off
                self.sink.truncate(self.header_len + data)
                if data & 1 and self.header_len:
                    try:
                        self.sink.append(b"\0")  # RIFF chunks are padded to an even length
                    except WriteError:
                        pass  # a full disk: readers accept a missing pad byte
                trailer = self._trailer()
                if trailer and self.sink.error is None:
                    end = self.sink.size
                    try:
                        self.sink.append(trailer)
                        self.trailer_len = len(trailer)
                    except WriteError:
                        self.sink.truncate(end)  # a full disk: the sidecar keeps the markers
                self.sync(durable=True)
            else:
                self.sink.flush()
            return self.cut()
        finally:
            self.sink.close()


class RawEncoder(PcmEncoder):
    pass


class WavEncoder(PcmEncoder):
    def __init__(self, *args):
        super().__init__(*args)
        self.header_len = len(self._header(0))

    def _header(self, data_bytes: int | None) -> bytes:
        return wav_header(self.samplerate, self.channels, self.subtype, data_bytes,
                          self.trailer_len)

    def _trailer(self) -> bytes:
        from .markers import wav_marker_chunks

        return wav_marker_chunks(sorted(self.markers))


class SndfileEncoder(Encoder):
    """FLAC, Ogg Vorbis, Ogg Opus and MP3 through libsndfile."""

    def begin(self) -> None:
        import soundfile as sf

        try:
            self._sf = sf.SoundFile(self.sink, "w", self.samplerate, self.channels,
                                    self.subtype, format=self.format.sf_format)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
            raise NotSupportedError(
                f"libsndfile cannot write {self.format.name} at {self.samplerate} Hz with "
                f"{self.channels} channel(s): {e}") from None
        self._reserve_comments()
        self._check()

    #: formats whose markers are Vorbis comments (chapters), rewritten in place at close
    CHAPTER_FORMATS = ("flac", "ogg", "opus")

    def _reserve_comments(self) -> None:
        """Room for chapter comments: libsndfile writes its comment block before the first
        frames and never again, so a blank comment holds the place; close() rewrites it
        (FLAC: the chapters and a PADDING block; Ogg: the chapters and zero padding).
        Only for files: a stream cannot be rewritten."""
        self._reserved = False
        if self.format.name in self.CHAPTER_FORMATS and isinstance(self.sink, FileSink):
            from .markers import COMMENT_RESERVE

            try:
                self._sf.comment = " " * COMMENT_RESERVE
                self._reserved = True
            except Exception:
                pass  # this libsndfile takes no comments: markers stay in the sidecar

    def _check(self) -> None:
        if self.sink.error is not None:
            raise self.sink.error

    def write(self, frames: np.ndarray) -> None:
        for i in range(0, len(frames), MAX_WRITE_FRAMES):
            block = frames[i: i + MAX_WRITE_FRAMES]
            try:
                self._sf.write(block)
            except (AssertionError, RuntimeError) as e:  # soundfile asserts on short writes
                self._check()
                raise WriteError(f"{self.format.name} encoder failed: {e}") from None
            self._check()
            self.frames += len(block)

    def _flush_codec(self) -> None:
        if not self.closed:
            self._sf.flush()
        self._check()

    def sync(self, durable: bool = False) -> None:
        self._flush_codec()
        self.sink.flush(durable)

    def close(self) -> Blob:
        if self.closed:
            return Blob(self.mime_type, b"")
        try:
            try:
                self._sf.close()
            except (RuntimeError, AssertionError):
                pass  # the error, if any, is in sink.error
            self.closed = True
            # Only a regular file: recover_flac reads the whole file, which never ends
            # on a device such as /dev/full (it filled the memory) and blocks on a FIFO.
            if (self.sink.error is not None and self.sink.path
                    and os.path.isfile(self.sink.path)):
                self._after_failed_write(self.sink.path)
            elif self._reserved and self.sink.error is None:
                self._write_chapters()
            self.sink.flush(durable=True)
            blob = self.cut()
        finally:
            self.closed = True
            self.sink.close()
        return blob


    def _write_chapters(self) -> None:
        """Replace the reserved comment with the markers as chapter comments (in place:
        the file's length and audio do not change)."""
        from .markers import Marker, write_flac_chapters, write_ogg_chapters

        markers = [Marker(number, offset / self.samplerate, label, frame=offset)
                   for offset, number, label in sorted(self.markers)]
        write = write_flac_chapters if self.format.name == "flac" else write_ogg_chapters
        self.written_chapters = False  # if not, the sidecar and clip metadata keep them
        if not os.path.isfile(self.sink.path):
            return
        try:
            # (the sink's descriptor is write-only)
            fd = os.open(self.sink.path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        except OSError:
            return
        try:
            self.written_chapters = write(fd, markers)
        except (OSError, ValueError, struct.error):
            pass
        finally:
            os.close(fd)

    def _after_failed_write(self, path: str) -> None:
        """A write failed (a full disk): make what fit a valid file and count it. The
        codec had frames in flight, so ``frames`` is taken from the file itself."""
        import soundfile as sf

        try:
            self.sink.flush()
            if self.format.name == "flac":
                # a torn last frame and a header that says nothing of the length
                from .recover import recover_flac

                self.frames = recover_flac(path).frames
            else:
                frames = sf.info(path).frames
                if 0 <= frames < 2**62:
                    self.frames = frames
            self.sink.size = os.path.getsize(path)
        except Exception:
            pass  # `dictaphone recover` can still be run by hand on FLAC and WAV


def make_encoder(output, fmt: Format, samplerate: int, channels: int,
                 subtype: str | None = None, force: bool = False) -> Encoder:
    """Validate, create the output (exclusively unless ``force``) and write the header."""
    subtype = fmt.check(samplerate, channels, subtype)
    sink = open_sink(output, force=force)
    cls = {"wav": WavEncoder, "raw": RawEncoder}.get(fmt.name, SndfileEncoder)
    enc = cls(sink, fmt, samplerate, channels, subtype)
    try:
        enc.begin()
    except BaseException:
        sink.remove()
        raise
    return enc
