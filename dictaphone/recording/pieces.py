"""The files a recording makes: one, or numbered pieces when it is cut (split, on silence,
at markers), each opened when it has its first audio and closed into a blob."""

from __future__ import annotations

import os

from ..containers.encoders import Encoder, make_encoder
from ..containers.formats import Format
from ..containers.sidecars import remove_stale
from ..errors import OutputError


class Pieces:
    """The output of one recording: the encoder of the current file, the files made so far
    (``paths``) and the frames in each closed one (``frames_in``).

    ``cut``: the recording is cut into pieces, each its own self-contained file named by
    :func:`split_path`; otherwise ``output`` (None: memory, a path, or a binary stream) is
    the one output. Frames are counted in the whole recording: ``start`` is where the
    current piece began.
    """

    def __init__(self, output, format: Format, source, subtype: str, *, force: bool = False,
                 cut: bool = False, expected_frames: int | None = None):
        self.output = output
        #: the recording's length when it is known in advance (a stream's WAV header says it)
        self.expected_frames = expected_frames
        self.format = format
        self.source = source
        self.subtype = subtype
        self.force = force
        self.cut = cut
        self.encoder: Encoder | None = None
        self.number = 0  # the current piece (numbered from 1 as opened); 0 when not cut
        self.start = 0  # the recorded frame where the current piece began
        self.paths: list[str] = []
        #: frames in each finished file of ``paths`` (filled as pieces are closed)
        self.frames_in: dict[str, int] = {}
        self.bytes_closed = 0  # bytes in pieces already closed
        self.through = False  # the output path turned out to be a FIFO or a device

    @property
    def bytes_written(self) -> int:
        """Bytes of output so far (all pieces together)."""
        e = self.encoder
        return self.bytes_closed + (e.bytes_written if e is not None else 0)

    @property
    def path(self) -> str | None:
        """The current file (the last piece when cut); None for memory and streams."""
        if self.paths:
            return self.paths[-1]
        if self.through:
            return None  # a FIFO or a device, written as a stream: no file of ours
        return os.fspath(self.output) if isinstance(self.output, (str, os.PathLike)) else None

    def open(self, frames: int) -> Encoder:
        """Open the next file (the only one when not cut), its first frame being recorded
        frame ``frames``, and make it the current one."""
        output = self.output
        if self.cut:
            self.number += 1
            output = split_path(os.fspath(output), self.number)
            check_not_the_input(self.source, output)
        enc = make_encoder(output, self.format, self.source.samplerate, self.source.channels,
                           self.subtype, force=self.force,
                           expected_frames=None if self.cut else self.expected_frames)
        self.start = frames
        self.through = not enc.sink.path and isinstance(output, (str, os.PathLike))
        if enc.sink.path:
            self.paths.append(enc.sink.path)
            # A file made here is new audio: what was left beside an overwritten file (or
            # one deleted by hand) describes audio that is gone.
            remove_stale(enc.sink.path)
        self.encoder = enc
        return enc

    def abort(self) -> None:
        """Remove the file just opened (the recording could not start)."""
        if self.encoder is not None:
            self.encoder.abort()
            self.encoder = None
        self.paths = []  # the file was removed: nothing names it

    def close(self):
        """Close the current file; its blob, or None when no file is open (between pieces)."""
        enc, self.encoder = self.encoder, None
        if enc is None:
            return None
        blob = enc.close()
        self.closed(enc)
        return blob

    def closed(self, enc: Encoder) -> None:
        """Account for a file that was closed."""
        if enc.sink.path:
            self.frames_in[enc.sink.path] = enc.frames
        self.bytes_closed += enc.bytes_written

    def place_of(self, frame: int) -> tuple[int, float]:
        """(piece number, seconds into it) of recorded frame ``frame``, the next piece's
        start when no file is open (between pieces)."""
        if self.encoder is None:
            return self.number + 1, 0.0
        return self.number, (frame - self.start) / self.source.samplerate

    def number_of(self, path: str) -> int | None:
        """The piece number of one of ``paths`` (0 when the recording is not cut)."""
        if path not in self.paths:
            return None
        return self.paths.index(path) + 1 if self.number else 0


def split_path(path: str, n: int) -> str:
    """The name of piece ``n`` of a split recording: ``memo.wav`` -> ``memo-001.wav``.
    A path containing ``{n}`` (a str.format field, e.g. ``take-{n:02d}.flac``) is
    formatted instead."""
    if "{n" in path:
        return path.format(n=n)
    stem, ext = os.path.splitext(path)
    return f"{stem}-{n:03d}{ext}"


def same_file(a, b) -> bool:
    """Whether two paths (or open files) are one file: the same device and inode, so
    symlinks, hard links and other spellings of a path are all caught."""
    try:
        sa = os.fstat(a) if isinstance(a, int) else os.stat(a)
        sb = os.fstat(b) if isinstance(b, int) else os.stat(b)
    except (OSError, ValueError, TypeError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_not_the_input(source, output) -> None:
    """Refuse to write the recording over the file it is read from (with ``force`` too):
    opening the output would truncate the input before a frame of it was read."""
    path = getattr(source, "path", None)
    if not isinstance(path, (str, os.PathLike)) or output is None:
        return
    if isinstance(output, (str, os.PathLike)):
        target = os.fspath(output)
    else:
        try:
            target = output.fileno()
        except (AttributeError, OSError, ValueError):
            return
    if same_file(path, target):
        shown = target if isinstance(target, str) else "the output stream"
        raise OutputError(f"{shown} is the input file {os.fspath(path)}; recording into it "
                          f"would destroy it: choose another output")
