"""Writers that turn frames into a container, for a file, a stream or memory.

Where the bytes go (a *sink*):
- ``FileSink``: a file we created (exclusively). Seekable, so headers are made valid
  while recording (``sync``), and blobs are regions of the file.
- ``StreamSink``: a binary stream such as stdout. Never seeks; blobs carry sizes only.
- ``MemorySink``: bytes kept for the blobs (the browser's model). What is not cut yet can
  still be rewritten, so a recording kept in one blob gets the header a file gets.

What writes them (an *encoder*):
- ``WavEncoder`` and ``RawEncoder`` write PCM themselves. libsndfile cannot write a WAV
  to a pipe (it seeks back to fix the header; see AUDIO-LAB.md), and writing the header
  ourselves lets a file's header be rewritten once a second, so a killed recorder leaves
  a valid file. A streamed WAV of a length known in advance (``expected_frames``: a
  recording with a duration limit, a whole file as the input) carries its real sizes,
  as arecord's ``-d`` does, so readers that want sizes (sox's, Python's wave) take it;
  one cut short then reads as truncated, which they tolerate. An open-ended stream says
  0xFFFFFFFF, as arecord and ffmpeg do: sox and libsndfile then read it to the end. On a
  stream the header goes out with the first audio, never alone: sox's format detection
  reads the first 256 bytes in one read from a pipe and fails on a lone 44-byte header.
- ``SndfileEncoder`` uses libsndfile (FLAC, Ogg Opus, MP3) through a virtual file, so
  stream sinks work: a seek back to rewrite a header is discarded instead of corrupting
  the stream or flooding stderr with "Illegal seek". To a file, FLAC's total length and
  MP3's Info tag are set at every sync from the frames written so far (as a WAV's sizes).
- ``VorbisEncoder`` drives libvorbisenc and libogg (dictaphone/containers/vorbis.py) so that a page
  ends at every sync; libsndfile's Vorbis writer is the fallback.

Every encoder takes frames of ``encoder.dtype`` (int16 for 16-bit PCM, int32 for 24/32
bit, float32 otherwise), so lossless paths never round through float.
"""

from __future__ import annotations

import errno
import os
import struct

import numpy as np

from ..errors import BrokenPipeOutputError, NotSupportedError, OutputError, WriteError
from ..events import Blob
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
    live_header = True  #: headers are kept valid while recording (crash safety)

    def __init__(self, path: str, force: bool = False):
        self.path = os.fspath(path)
        flags = os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        #: this sink made the file (exclusively): only then may remove() delete it
        self.created = True
        try:
            try:
                self.fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                if not force:
                    raise
                # --force: an existing regular file (or a symlink to one) is truncated and
                # written; anything else is refused (open_sink writes FIFOs and devices
                # through, and never gets here with one).
                self.created = False
                self.fd = os.open(self.path, flags | os.O_TRUNC | getattr(os, "O_NONBLOCK", 0))
                import stat

                if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                    os.close(self.fd)
                    raise OutputError(f"{self.path} is not a regular file; not writing over it")
                os.set_blocking(self.fd, True)
        except FileExistsError:
            raise OutputError(f"{self.path} exists (use --force to overwrite it)") from None
        except FileNotFoundError:
            raise OutputError(f"{self.path}: the directory does not exist") from None
        except IsADirectoryError:
            raise OutputError(f"{self.path} is a directory") from None
        except OSError as e:
            raise OutputError(f"cannot create {self.path}: {e.strerror}") from None
        self._identity = os.fstat(self.fd)
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

    #: called with (bytes, offset) for what each append put in the file (an MP3's
    #: frames are indexed so; see SndfileEncoder._tune). Must not raise.
    tap = None

    def _append(self, data: memoryview) -> None:
        done = 0
        try:
            while done < len(data):
                done += os.pwrite(self.fd, data[done:], self.size + done)
        except OSError as e:
            raise _write_error(e, self.path) from None
        finally:
            if self.tap is not None and done:
                self.tap(data[:done], self.size)
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
        """Close and delete the file (used when a recording fails before any audio): only
        a regular file this sink created, and only while the path still names it. A file
        that was there before (--force) is left as it is now."""
        self.close()
        if not self.created:
            return
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return
        import stat

        if stat.S_ISREG(now.st_mode) and os.path.samestat(now, self._identity):
            try:
                os.unlink(self.path)
            except OSError:
                pass


class _AppendOnly(_VirtualPosition):
    """Shared by the stream and memory sinks: they cannot seek back, so the virtual
    position libsndfile sees moves, and bytes written behind the end are dropped."""

    seekable = False
    live_header = False

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

    def __init__(self, stream, name: str = "<stream>", owned: bool = False):
        super().__init__()
        self.stream = stream
        self.path = None
        self.name = name
        self.owned = owned  #: opened for this recording (a FIFO, a device): closed at the end

    def close(self) -> None:
        if self.owned and not self.stream.closed:
            try:
                self.stream.close()  # (flushes what is buffered)
            except (OSError, ValueError) as e:
                if self.error is None:
                    self.error = _write_error(e, self.name) if isinstance(e, OSError) else \
                        BrokenPipeOutputError(f"{self.name}: {e}")

    def remove(self) -> None:
        self.close()  # (what a stream got cannot be taken back; never unlinked)

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


class MemorySink(_VirtualPosition):
    """Keeps the bytes until the next blob takes them (an in-memory recording).

    The bytes not yet handed out in a blob can still be rewritten, so a recording kept
    in one blob gets the header a file gets at close (WAV sizes, FLAC's total length and
    MD5, MP3's Info tag). Once a blob has gone out its bytes are the caller's: a later
    rewrite of them (a header fixed at close) is dropped, as on a stream.
    """

    seekable = True  # within the bytes not yet cut (see patch)
    live_header = False

    def __init__(self) -> None:
        self.path = None
        self.size = 0
        self._pos = 0
        self._base = 0  # offset of _buf[0]: where the next blob starts
        self._buf = bytearray()
        self.error: WriteError | None = None

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        n = len(data)
        self._put(data, self._pos)
        self._pos += n
        return n

    def _put(self, data: memoryview, offset: int) -> None:
        skip = min(len(data), max(0, self._base - offset))  # already handed out: dropped
        start = offset + skip - self._base
        end = start + len(data) - skip
        if start == len(self._buf):  # an append (nearly every write)
            self._buf += data[skip:]
        else:
            if end > len(self._buf):
                self._buf.extend(bytes(end - len(self._buf)))
            self._buf[start:end] = data[skip:]
        self.size = max(self.size, self._base + len(self._buf))

    def read(self, n: int = -1) -> bytes:
        start = self._pos - self._base
        if start < 0:
            return b""
        return bytes(self._buf[start:] if n < 0 else self._buf[start:start + n])

    def append(self, data) -> None:
        self._pos = self.size
        self.write(data)

    def patch(self, data: bytes, offset: int) -> None:
        self._put(memoryview(data).cast("B"), offset)

    def truncate(self, size: int) -> None:
        if size >= self._base:
            del self._buf[size - self._base:]
            self.size = self._base + len(self._buf)

    def flush(self, durable: bool = False) -> None:
        pass

    def close(self) -> None:
        pass

    def remove(self) -> None:
        self._buf = bytearray()

    def blob(self, type: str, start: int, end: int) -> Blob:
        assert start == self._base and end == self.size
        data = bytes(self._buf)
        self._buf = bytearray()
        self._base = end
        return Blob(type, data)


class _FdStream:
    """A descriptor as the stream of a StreamSink: every write is written whole at once
    (unbuffered, so a device that refuses it, /dev/full, fails that write)."""

    def __init__(self, fd: int):
        self.fd = fd

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def write(self, data) -> int:
        if self.fd < 0:
            raise ValueError("write to closed file")
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(self.fd, view):]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def open_sink(output, force: bool = False):
    """A sink for a path, a binary stream, or None (memory)."""
    if output is None:
        return MemorySink()
    if isinstance(output, (str, os.PathLike)):
        path = os.fspath(output)
        from ..atomic import NotRegularError, open_through, output_kind

        try:
            kind = output_kind(path)
        except NotRegularError as e:
            raise OutputError(str(e)) from None
        if kind != "through":
            return FileSink(path, force=force)
        # A FIFO, a character device, /dev/stdout, /dev/fd/N: written into as a stream
        # (never created, truncated, renamed or removed; a FIFO's reader is waited for
        # until a stop signal: StopRequested).
        try:
            fd = open_through(path)
        except OSError as e:
            raise OutputError(f"cannot open {path}: {e.strerror}") from None
        return StreamSink(_FdStream(fd), name=path, owned=True)
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
#: ds64's body: RIFF size, data size and sample count (64 bits each), table length 0.
DS64_SIZE = 28


def wav_header(samplerate: int, channels: int, subtype: str, data_bytes: int | None,
               rf64: bool = False, trailer_bytes: int = 0) -> bytes:
    """A WAV header; ``data_bytes`` None writes the streaming sizes (0xFFFFFFFF).
    ``trailer_bytes``: chunks after the data (markers), counted in the RIFF size.

    PCM is format tag 1 (44 bytes). Float is tag 3 with the ``fact`` chunk the spec asks
    for non-PCM data (58 bytes). ``rf64`` reserves room for RF64 (EBU Tech 3306), as
    ffmpeg's ``-rf64 auto`` does: a 28-byte ``JUNK`` chunk after ``WAVE`` while the sizes
    fit in 32 bits, rewritten as ``ds64`` (and ``RIFF`` as ``RF64``) once they do not.
    The header's length does not depend on ``data_bytes``, so it is rewritten in place;
    without ``rf64``, sizes past 4 GiB saturate at 0xFFFFFFFF (read to the end).
    """
    bits = _BITS[subtype]
    block_align = channels * bits // 8
    is_float = subtype == "FLOAT"
    fmt = struct.pack("<HHIIHH", 3 if is_float else 1, channels, samplerate,
                      samplerate * block_align, block_align, bits)
    if is_float:
        fmt += struct.pack("<H", 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    frames = None if data_bytes is None else data_bytes // block_align
    if is_float:
        chunks += b"fact" + struct.pack("<II", 4, UNKNOWN_SIZE if frames is None
                                        else min(frames, UNKNOWN_SIZE))
    reserve = 8 + DS64_SIZE if rf64 else 0
    if data_bytes is None:
        riff_size = data_size = UNKNOWN_SIZE
    else:
        data_size = data_bytes
        riff_size = 4 + reserve + len(chunks) + 8 + data_bytes + (data_bytes & 1) + trailer_bytes
    if rf64 and data_bytes is not None and riff_size > UNKNOWN_SIZE:
        ds64 = b"ds64" + struct.pack("<IQQQI", DS64_SIZE, riff_size, data_size, frames, 0)
        return (b"RF64" + struct.pack("<I", UNKNOWN_SIZE) + b"WAVE" + ds64 + chunks
                + b"data" + struct.pack("<I", UNKNOWN_SIZE))
    junk = b"JUNK" + struct.pack("<I", DS64_SIZE) + bytes(DS64_SIZE) if rf64 else b""
    return (b"RIFF" + struct.pack("<I", min(riff_size, UNKNOWN_SIZE)) + b"WAVE" + junk + chunks
            + b"data" + struct.pack("<I", min(data_size, UNKNOWN_SIZE)))


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

    def _write_chapters(self) -> None:
        """FLAC and Ogg: replace the reserved comment (see SndfileEncoder._reserve_comments)
        with the markers as chapter comments, in place: the file's length and audio do not
        change."""
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
    #: frames a stream's header declares (None: an open-ended stream, 0xFFFFFFFF)
    expected_frames: int | None = None
    _pending_header = b""  #: a stream's header, held until the first audio goes with it

    def _trailer(self) -> bytes:
        """Chunks to append after the data when the file is finished."""
        return b""

    def _header(self, data_bytes: int | None) -> bytes:
        return b""

    def begin(self) -> None:
        # The streaming header (sizes 0xFFFFFFFF) until the first sync: a recorder killed
        # in its first second still leaves a file that readers take to its end. A stream
        # of known length declares it; a stream's header waits for the first audio.
        if isinstance(self.sink, StreamSink):
            declared = None if self.expected_frames is None else self._data_bytes(self.expected_frames)
            self._pending_header = self._header(declared)
            return
        header = self._header(None)
        if header:
            self.sink.append(header)

    def write(self, frames: np.ndarray) -> None:
        if len(frames):
            data = pcm_bytes(frames, self.subtype)
            if self._pending_header:
                data = self._pending_header + data
                self._pending_header = b""
            try:
                self.sink.append(data)
            finally:
                self.frames = max(0, self.sink.size - self.header_len) // (
                    self.channels * _BITS[self.subtype] // 8)

    def _release_header(self) -> None:
        """A stream that ends before any audio: its header, with the sizes it has (0)."""
        if self._pending_header:
            self._pending_header = b""
            header = self._header(0)
            if header:
                self.sink.append(header)

    def _data_bytes(self, frames: int | None = None) -> int:
        return (self.frames if frames is None else frames) * self.channels * _BITS[self.subtype] // 8

    def sync(self, durable: bool = False) -> None:
        # Only a file gets its true sizes while recording (so a killed recorder leaves a
        # valid file); a memory recording keeps the streaming sizes until close, so a
        # blob cut meanwhile tells readers to read to the end, never a stale length.
        if self.sink.live_header and self.header_len:
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
                if self.header_len:
                    self.sink.patch(self._header(data), 0)  # (dropped if already cut)
                self.sink.flush(durable=True)
            else:
                try:
                    self._release_header()
                    data = self._data_bytes()
                    if (self.header_len and data & 1 and self.expected_frames is not None
                            and data == self._data_bytes(self.expected_frames)):
                        self.sink.append(b"\0")  # the pad byte its declared RIFF size counts
                except WriteError:
                    pass  # the reader went away: nothing more can reach it
                self.sink.flush()
            return self.cut()
        finally:
            self.sink.close()


class RawEncoder(PcmEncoder):
    pass


class WavEncoder(PcmEncoder):
    def __init__(self, *args):
        super().__init__(*args)
        # A file may outgrow 4 GiB: it gets the room to turn into RF64 (a memory
        # recording or a stream keeps the canonical 44-byte header).
        self.rf64 = bool(self.sink.live_header)
        self.header_len = len(self._header(0))

    def _header(self, data_bytes: int | None) -> bytes:
        return wav_header(self.samplerate, self.channels, self.subtype, data_bytes, self.rf64,
                          self.trailer_len)

    def _trailer(self) -> bytes:
        from .markers import wav_marker_chunks

        return wav_marker_chunks(sorted(self.markers))


SFC_SET_OGG_PAGE_LATENCY = 0x1303  # sndfile.h (1.2): double, milliseconds, 50..1600
SFC_SET_BITRATE_MODE = 0x1305
SF_BITRATE_MODE_CONSTANT = 0
OPUS_PAGE_MS = 500.0


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
        self._tune()

    def _command(self, command: int, ctype: str, value) -> bool:
        """An ``sf_command`` that soundfile does not wrap; True when libsndfile took it."""
        import soundfile as sf

        ptr = sf._ffi.new(f"{ctype}*", value)
        return sf._snd.sf_command(self._sf._file, command, ptr, sf._ffi.sizeof(ctype)) == 0

    def _tune(self) -> None:
        if self.format.name == "opus":
            # Pages every half second of audio (libsndfile's default is one second), so a
            # killed recorder leaves at most that much in the encoder (docs/RELIABILITY.md).
            self._command(SFC_SET_OGG_PAGE_LATENCY, "double", OPUS_PAGE_MS)
        elif self.format.name == "mp3" and not self.sink.live_header:
            # A stream (or memory cut into blobs) cannot be given its Info tag at the end:
            # constant bitrate lets every reader tell its length from its size.
            self._command(SFC_SET_BITRATE_MODE, "int", SF_BITRATE_MODE_CONSTANT)
        elif self.format.name == "flac" and self.sink.live_header and self.sink.size == 0:
            # The same for FLAC: STREAMINFO's total length set at each sync to the
            # samples of the frames in the file (libFLAC writes the final one at close),
            # so a killed recording needs no repair to be read by libsndfile.
            from .recover import FlacIndex

            self._index = FlacIndex()
            self.sink.tap = self._index.feed
        elif self.format.name == "mp3" and self.sink.size == 0:
            # A file: its frames are indexed as they are written, so each sync can fill
            # LAME's reserved first frame with an Info tag for what the file holds (a
            # killed recorder then leaves an MP3 of the right length, as a WAV's header
            # is kept right); libsndfile writes the final tag over it at close.
            from .recover import Mp3Index

            self._index = Mp3Index()
            self.sink.tap = self._index.feed

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

    _index = None  #: FlacIndex or Mp3Index of a file being written (see _tune)

    def sync(self, durable: bool = False) -> None:
        self._flush_codec()
        if self._index is not None and not self.closed:
            patch = self._index.streaminfo_patch() if self.format.name == "flac" \
                else self._index.info_frame()
            if patch is not None:
                self.sink.patch(patch[1], patch[0])
        self.sink.flush(durable)

    def close(self) -> Blob:
        if self.closed:
            return Blob(self.mime_type, b"")
        self.sink.tap = self._index = None
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

    def _after_failed_write(self, path: str) -> None:
        """A write failed (a full disk): make what fit a valid file and count it. The
        codec had frames in flight, so ``frames`` is taken from the file itself."""
        import soundfile as sf

        try:
            self.sink.flush()
            if self.format.name in ("flac", "mp3", "opus", "ogg"):
                # a torn last frame (or page) and a header that says nothing of the length
                from .recover import recover_flac, recover_mp3, recover_ogg

                fix = {"flac": recover_flac, "mp3": recover_mp3, "opus": recover_ogg,
                       "ogg": recover_ogg}
                self.frames = fix[self.format.name](path).frames
            else:
                frames = sf.info(path).frames
                if 0 <= frames < 2**62:
                    self.frames = frames
            self.sink.size = os.path.getsize(path)
        except Exception:
            pass  # `dictaphone recover` can still be run by hand on FLAC and WAV


class VorbisEncoder(Encoder):
    """Ogg Vorbis through libvorbisenc and libogg directly (dictaphone/containers/vorbis.py), so a
    page is ended at every sync and every blob cut: a killed recorder loses at most
    the last second even of digital silence, which libsndfile's writer can hold back
    for 5 s (up to 255 tiny packets on one page)."""

    def begin(self) -> None:
        from .vorbis import VorbisStream

        try:
            self._vs = VorbisStream(self.samplerate, self.channels)
        except (OSError, ValueError) as e:
            raise NotSupportedError(
                f"libvorbis cannot write {self.format.name} at {self.samplerate} Hz with "
                f"{self.channels} channel(s): {e}") from None
        self._headed = False

    def _header_comments(self) -> dict[str, str]:
        """The Vorbis comments of the header, written with the first audio (as libsndfile
        does: comments may be set after the encoder is made). A file gets a blank comment
        that holds the place of the markers' chapters (rewritten at close)."""
        comments = {"ENCODER": "dictaphone (libvorbis)"}
        self._reserved = isinstance(self.sink, FileSink)
        if self._reserved:
            from .markers import COMMENT_RESERVE

            comments["COMMENT"] = " " * COMMENT_RESERVE
        return comments

    def _head(self) -> None:
        """The header packets go into the stream before any audio packet."""
        if not self._headed:
            self._headed = True
            self._emit(self._vs.headers(self._header_comments()))

    def _emit(self, data: bytes) -> None:
        if data:
            self.sink.append(data)

    def write(self, frames: np.ndarray) -> None:
        self._head()
        for i in range(0, len(frames), MAX_WRITE_FRAMES):
            block = frames[i: i + MAX_WRITE_FRAMES]
            self._emit(self._vs.encode(block))
            self.frames += len(block)

    def _flush_codec(self) -> None:
        if not self.closed:
            self._head()
            self._emit(self._vs.flush())

    def sync(self, durable: bool = False) -> None:
        self._flush_codec()
        self.sink.flush(durable)

    def close(self) -> Blob:
        if self.closed:
            return Blob(self.mime_type, b"")
        try:
            try:
                self._head()
                self._emit(self._vs.finish())
            except WriteError:
                if self.sink.path and os.path.isfile(self.sink.path):
                    self._after_failed_write(self.sink.path)
                raise
            finally:
                self.closed = True
                self._vs.close()
            if getattr(self, "_reserved", False) and self.sink.error is None:
                self._write_chapters()
            self.sink.flush(durable=True)
            return self.cut()
        finally:
            self.sink.close()

    def abort(self) -> None:
        self._vs.close()
        super().abort()

    def _after_failed_write(self, path: str) -> None:
        from .recover import recover_ogg

        try:
            self.frames = recover_ogg(path).frames
            self.sink.size = os.path.getsize(path)
        except Exception:
            pass  # `dictaphone recover` can still be run by hand


def _encoder_class(fmt: Format) -> type:
    if fmt.name == "ogg":
        from .vorbis import available

        if available():
            return VorbisEncoder
    return {"wav": WavEncoder, "raw": RawEncoder}.get(fmt.name, SndfileEncoder)


def make_encoder(output, fmt: Format, samplerate: int, channels: int,
                 subtype: str | None = None, force: bool = False,
                 expected_frames: int | None = None) -> Encoder:
    """Validate, create the output (exclusively unless ``force``) and write the header.
    ``expected_frames``: the length the recording will have unless it is cut short (a
    stream's WAV header declares it; None: not known)."""
    subtype = fmt.check(samplerate, channels, subtype)
    sink = open_sink(output, force=force)
    cls = _encoder_class(fmt)
    enc = cls(sink, fmt, samplerate, channels, subtype)
    if expected_frames is not None and expected_frames >= 0:
        enc.expected_frames = int(expected_frames)
    try:
        enc.begin()
    except BaseException:
        sink.remove()
        raise
    return enc
