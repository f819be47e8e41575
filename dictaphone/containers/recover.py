"""Repair what a killed recorder (or a saved pipe) left, in every format it writes.

- WAV (and RF64): the header's sizes are set from what the file really holds (whole
  frames). This fixes a header that lags the data (a recorder killed between two
  header updates) and the 0xFFFFFFFF sizes of a WAV saved from a pipe. Past 4 GiB the
  file becomes RF64 when it has room for a ``ds64`` chunk (the ``JUNK`` chunk dictaphone
  reserves), else its sizes are left at 0xFFFFFFFF (readers take it to its end). Markers
  the recorder had put in its ``<file>.markers.json`` sidecar (written as each marker reached the file) go back into
  the file as cue points after the data, when it has none.
- FLAC: a file whose STREAMINFO has no total length (killed before libFLAC rewrote it,
  or streamed) gets the total from its last frame header; a torn last frame is cut off.
- MP3: cut after its last complete frame; the frame LAME reserves at the start is
  filled in as a Xing/LAME Info tag (frame count, encoder delay and padding).
- Ogg Vorbis and Opus: cut after the last complete page (checked by its CRC), which is
  marked end-of-stream (its CRC recomputed), so every decoder plays it to its end.
- FLAC and Ogg: the markers of the sidecar go into the comment the recorder reserved for
  them, as chapters.
"""

from __future__ import annotations

import dataclasses
import os
import struct

from ..errors import NotSupportedError, SourceError


@dataclasses.dataclass
class Repair:
    path: str
    kind: str  #: "wav", "rf64", "flac", "mp3", "ogg vorbis" or "ogg opus"
    frames_before: int | None  #: what the header said (None: unknown length)
    frames: int  #: what the file holds
    samplerate: int
    changed: bool
    notes: list[str] = dataclasses.field(default_factory=list)

    def describe(self) -> str:
        seconds = self.frames / self.samplerate if self.samplerate else 0.0
        if not self.changed:
            return f"{self.path}: nothing to repair ({self.kind}, {self.frames} frames, {seconds:.2f} s)"
        before = "an unknown length" if self.frames_before is None else f"{self.frames_before} frames"
        extra = "; " + "; ".join(self.notes) if self.notes else ""
        return (f"{self.path}: repaired ({self.kind}): its header said {before}, the file holds "
                f"{self.frames} frames ({seconds:.2f} s){extra}")


def recover(path: str, dry_run: bool = False) -> Repair:
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror}") from None
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        # a FIFO would block the open, a device never end the read
        raise SourceError(f"{path}: not a regular file (only a saved recording can be repaired)")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory") from None
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror}") from None
    try:
        if magic in (b"RIFF", b"RF64"):
            repair = recover_wav(path, dry_run)
        elif magic == b"fLaC":
            repair = _restore_chapters(recover_flac(path, dry_run), dry_run)
        elif magic == b"OggS":
            repair = _restore_chapters(recover_ogg(path, dry_run), dry_run)
        elif magic[:3] == b"ID3" or _mp3_frame(magic, 0) is not None:
            repair = recover_mp3(path, dry_run)
        else:
            raise NotSupportedError(
                f"{path}: not a recording dictaphone can repair (WAV, FLAC, Ogg Vorbis, Opus or MP3)")
    except struct.error:  # a structure cut short that a reader above did not check for
        raise SourceError(f"{path}: a header is cut short; not a recording that can be "
                          f"repaired") from None
    if not dry_run:
        # "repaired" only for a file that reads: a header set right over frames that are
        # not audio (or a STREAMINFO with no sample rate) is still a file no player opens.
        why = unreadable(path)
        if why is not None:
            done = ("its header was changed to say " if repair.changed else "its header says ")
            raise SourceError(f"{path}: could not be repaired ({repair.kind}): {done}"
                              f"{repair.frames} frames, but libsndfile still cannot read it "
                              f"({why})")
    return repair


def unreadable(path: str) -> str | None:
    """Why libsndfile cannot read ``path`` (its header, its first and last blocks), or
    None when it can."""
    import soundfile as sf

    from .sfmessages import raw_text

    try:
        with sf.SoundFile(path) as f:
            if f.samplerate <= 0 or f.channels <= 0:
                return "no sample rate or channel count"
            f.read(min(f.frames, 4096), dtype="float32")
            if f.frames > 4096:
                f.seek(max(0, f.frames - 4096))
                tail = f.read(4096, dtype="float32")
                if len(tail) == 0:
                    return "its last frames cannot be read"
    except Exception as e:  # LibsndfileError, RuntimeError (a seek libsndfile refuses)
        return raw_text(e) or type(e).__name__
    return None


# ------------------------------------------------------------------------------ WAV


UNKNOWN = 0xFFFFFFFF


def _chunks_to_end(f, pos: int, size: int) -> bool:
    """True when the bytes from ``pos`` are whole RIFF chunks (a cue or LIST chunk
    written after the audio) that end exactly at the end of the file."""
    while pos < size:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8 or not chunk[:4].isascii() or not chunk[:4].strip(b" ").isalnum():
            return False
        n = struct.unpack("<I", chunk[4:])[0]
        pos += 8 + n + (n & 1)
    return pos == size or pos == size + 1  # (a missing pad byte at the very end)


def recover_wav(path: str, dry_run: bool = False) -> Repair:
    size = os.path.getsize(path)
    with open(path, "r+b" if not dry_run else "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise SourceError(f"{path}: not a WAV file")
        fmt = None
        fact_at = ds64_at = None
        ds64 = (None, None, None)
        pos = 12
        while True:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                raise SourceError(f"{path}: no data chunk (nothing was recorded)")
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(min(csize, 40))
            elif cid == b"fact":
                fact_at = pos + 8
            elif cid == b"ds64" and csize >= 24 or cid == b"JUNK" and pos == 12 and csize >= 28:
                # ds64, or the JUNK chunk that holds its place until the file needs it
                ds64_at = pos
                if cid == b"ds64":
                    body = f.read(24)
                    if len(body) < 24:
                        raise SourceError(f"{path}: its ds64 chunk is cut short (not a recording "
                                          f"that can be repaired)")
                    ds64 = struct.unpack("<QQQ", body)
            elif cid == b"data":
                break
            pos += 8 + csize + (csize & 1)
        if fmt is None or len(fmt) < 16:
            raise SourceError(f"{path}: no valid fmt chunk")
        tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
        if block_align == 0:
            raise SourceError(f"{path}: invalid fmt chunk (block align 0)")
        data_at = pos + 8
        rf64 = head[:4] == b"RF64"
        if rf64 and (ds64_at is None or ds64[1] is None):
            raise SourceError(f"{path}: an RF64 file without its ds64 chunk")
        said = ds64[1] if rf64 and csize == UNKNOWN and ds64[1] is not None else csize
        known = said != UNKNOWN or rf64
        avail = size - data_at
        trailing = 0
        if known and said < avail and _chunks_to_end(f, data_at + said + (said & 1), size):
            # the data chunk is followed by chunks (markers, tags): its size was right
            data_bytes = said // block_align * block_align
            trailing = size - (data_at + said + (said & 1))
        else:
            data_bytes = avail // block_align * block_align
        frames = data_bytes // block_align
        frames_before = said // block_align if known else None
        pad = data_bytes & 1
        riff = data_at - 8 + data_bytes + (pad if trailing == 0 else (said & 1)) + trailing
        notes: list[str] = []
        # a killed recording's markers, from the recorder's sidecar, as cue points
        markers = [] if trailing else _sidecar_markers(path, frames, rate)
        cue_chunks = b""
        if markers:
            from .markers import wav_marker_chunks

            cue_chunks = wav_marker_chunks([(m.frame, m.number, m.label) for m in markers])
            riff += len(cue_chunks)
            notes.append(f"{len(markers)} marker(s) restored from {os.path.basename(path)}.markers.json")
        patches: list[tuple[int, bytes]] = []
        kind = "wav"
        if riff > UNKNOWN and ds64_at is not None:
            kind = "rf64"
            patches += [(0, b"RF64" + struct.pack("<I", UNKNOWN)),
                        (ds64_at, b"ds64" + struct.pack("<IQQQI", 28, riff, data_bytes, frames, 0)),
                        (data_at - 4, struct.pack("<I", UNKNOWN))]
            if fact_at is not None:
                patches.append((fact_at, struct.pack("<I", UNKNOWN)))
            if not rf64:
                notes.append("over 4 GiB: made RF64 (its ds64 chunk holds the 64-bit sizes)")
        else:
            if riff > UNKNOWN:
                notes.append("over 4 GiB with no room for RF64's ds64 chunk: sizes left at "
                             "0xFFFFFFFF (readers take the file to its end)")
            patches += [(4, struct.pack("<I", min(riff, UNKNOWN))),
                        (data_at - 4, struct.pack("<I", min(data_bytes, UNKNOWN)))]
            if rf64:  # an RF64 file that is small after all keeps its form, with true sizes
                kind = "rf64"
                patches = [(4, struct.pack("<I", UNKNOWN)), (data_at - 4, struct.pack("<I", UNKNOWN)),
                           (ds64_at + 8, struct.pack("<QQQ", riff, data_bytes, frames))]
            if fact_at is not None:
                patches.append((fact_at, struct.pack("<I", min(frames, UNKNOWN))))
        if avail > data_bytes and not trailing:
            notes.append(f"{avail - data_bytes} bytes of a torn last frame ignored")
        changed = False
        for offset, value in patches:
            f.seek(offset)
            changed |= f.read(len(value)) != value
        changed |= bool(cue_chunks)
        rep = Repair(path, kind, frames_before, frames, rate, changed, notes)
        if cue_chunks and not dry_run:
            f.truncate(data_at + data_bytes)  # (a torn last frame goes)
            f.seek(data_at + data_bytes)
            f.write(b"\0" * pad + cue_chunks)
        if changed and not dry_run:
            for offset, value in patches:
                f.seek(offset)
                f.write(value)
            f.flush()
            os.fsync(f.fileno())
        return rep


def _restore_chapters(rep: Repair, dry_run: bool) -> Repair:
    """A killed FLAC or Ogg recording still has the blank comment reserved for its
    chapters: the markers of its sidecar that lie within the recovered audio go there."""
    from .markers import read_file_markers, write_flac_chapters, write_ogg_chapters

    markers = _sidecar_markers(rep.path, rep.frames, rep.samplerate) if rep.samplerate else []
    if not markers or read_file_markers(rep.path):
        return rep
    if dry_run:
        rep.notes.append(f"{len(markers)} marker(s) would be restored from the sidecar")
        return rep
    write = write_flac_chapters if rep.kind == "flac" else write_ogg_chapters
    try:
        fd = os.open(rep.path, os.O_RDWR)
    except OSError:
        return rep
    try:
        done = write(fd, markers)
        os.fsync(fd)
    except (OSError, ValueError, struct.error):
        done = False
    finally:
        os.close(fd)
    if done:
        rep.changed = True
        rep.notes.append(f"{len(read_file_markers(rep.path))} marker(s) restored from "
                         f"{os.path.basename(rep.path)}.markers.json as chapters")
    return rep


def _sidecar_markers(path: str, frames: int, rate: int) -> list:
    """The markers of the recorder's sidecar that lie within the recovered audio, with
    their frame offsets (times are kept to the microsecond: the frame is exact)."""
    from .markers import _from_json_list, _read_json, sidecar_path

    side = _read_json(sidecar_path(path))
    found = _from_json_list(side.get("markers")) if isinstance(side, dict) else None
    if not found:
        return []
    for m in found:
        m.frame = int(round(m.time * rate))
    return [m for m in found if m.frame <= frames]


# ------------------------------------------------------------------------------ FLAC

_BLOCK_SIZES = {1: 192, 2: 576, 3: 1152, 4: 2304, 5: 4608, 8: 256, 9: 512, 10: 1024,
                11: 2048, 12: 4096, 13: 8192, 14: 16384, 15: 32768}


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _utf8_number(buf: bytes, i: int) -> tuple[int, int] | None:
    """FLAC's UTF-8-like coded frame/sample number at buf[i:]; (value, length)."""
    if i >= len(buf):
        return None
    b0 = buf[i]
    if b0 < 0x80:
        return b0, 1
    n = 0
    mask = 0x80
    while b0 & mask:
        n += 1
        mask >>= 1
    if n < 2 or n > 7 or i + n > len(buf):
        return None
    value = b0 & (mask - 1)
    for k in range(1, n):
        c = buf[i + k]
        if c & 0xC0 != 0x80:
            return None
        value = (value << 6) | (c & 0x3F)
    return value, n


def _parse_frame_header(buf: bytes, i: int, streaminfo_block: int) -> tuple[int, int, bool] | None:
    """(first sample, block size, variable-blocksize flag) of a frame header at buf[i:],
    or None when there is no valid header there (its CRC-8 is checked)."""
    if i + 6 > len(buf) or buf[i] != 0xFF or buf[i + 1] & 0xFE != 0xF8:
        return None
    variable = bool(buf[i + 1] & 1)
    bs_code, rate_code = buf[i + 2] >> 4, buf[i + 2] & 0x0F
    if bs_code == 0 or rate_code == 15 or buf[i + 3] & 1:
        return None
    num = _utf8_number(buf, i + 4)
    if num is None:
        return None
    number, n = num
    j = i + 4 + n
    if bs_code == 6:
        if j + 1 > len(buf):
            return None
        block = buf[j] + 1
        j += 1
    elif bs_code == 7:
        if j + 2 > len(buf):
            return None
        block = struct.unpack(">H", buf[j:j + 2])[0] + 1
        j += 2
    else:
        block = _BLOCK_SIZES.get(bs_code)
        if block is None:
            return None
    if rate_code == 12:
        j += 1
    elif rate_code in (13, 14):
        j += 2
    if j + 1 > len(buf) or _crc8(buf[i:j]) != buf[j]:
        return None
    first = number if variable else number * streaminfo_block
    return first, block, variable


def _crc16(data: bytes) -> int:
    crc = 0
    table = _CRC16_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


def _make_crc16_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        table.append(c)
    return table


_CRC16_TABLE = _make_crc16_table()


def _frames(data: bytes, start: int, min_block: int):
    """Frame headers from ``start`` on: (offset, first sample, block size). A sync code
    is taken as a frame only when its CRC-8 holds and its number is the next one, so
    look-alike bytes inside audio data are passed over."""
    pos, expected = start, None
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 6 > len(data):
            return
        hdr = _parse_frame_header(data, i, min_block)
        if hdr is not None:
            first, block, variable = hdr
            if expected is None or first == expected:
                yield i, first, block
                expected = first + block
                pos = i + 6
                continue
        pos = i + 1


class FlacIndex:
    """The samples in the whole frames of a FLAC as it is written, fed the bytes appended
    to the file: libFLAC hands libsndfile one whole frame per write, so the header at the
    start of each write says where the stream has got to. What a provisional total
    length in STREAMINFO needs. Never raises (it runs in libsndfile's write callback)."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._at = 0
        self.min_block: int | None = None
        self.total = 0
        self.broken = False

    def feed(self, data, offset: int) -> None:
        if self.broken:
            return
        try:
            if offset != self._at:
                self.broken = True
                return
            self._at = offset + len(data)
            if self.min_block is None:
                self._head += data
                if len(self._head) >= 26:
                    if self._head[:4] != b"fLaC" or self._head[4] & 0x7F != 0:
                        self.broken = True
                        return
                    self.min_block = struct.unpack(">H", self._head[8:10])[0]
                return
            hdr = _parse_frame_header(bytes(data[:16]), 0, self.min_block)
            if hdr is not None:  # (else metadata: a comment, padding)
                self.total = hdr[0] + hdr[1]
        except Exception:
            self.broken = True

    def streaminfo_patch(self) -> tuple[int, bytes] | None:
        """(offset, bytes) that set STREAMINFO's total length to the samples of the
        frames written so far (its MD5 stays zero: "not computed"), or None."""
        if self.broken or self.min_block is None or not self.total:
            return None
        packed = int.from_bytes(self._head[18:26], "big")
        packed = (packed & ~((1 << 36) - 1)) | self.total
        return 18, packed.to_bytes(8, "big")


def recover_flac(path: str, dry_run: bool = False) -> Repair:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 42 or data[4] & 0x7F != 0:
        raise SourceError(f"{path}: no STREAMINFO block")
    si = 8  # STREAMINFO body
    min_block = struct.unpack(">H", data[si:si + 2])[0]
    packed = int.from_bytes(data[si + 10:si + 18], "big")
    rate = packed >> 44
    total_said = packed & ((1 << 36) - 1)
    pos = 4  # skip the metadata blocks to the first frame
    while True:
        if pos + 4 > len(data):
            raise SourceError(f"{path}: truncated in its metadata (nothing was recorded)")
        last = data[pos] & 0x80
        pos += 4 + int.from_bytes(data[pos + 1:pos + 4], "big")
        if last:
            break
    last_frame = None
    for last_frame in _frames(data, pos, min_block):
        pass
    notes: list[str] = []
    end = len(data)
    if last_frame is None:
        frames, end = 0, pos
    else:
        offset, first, block = last_frame
        # A frame ends with a CRC-16 of all of it: a torn last frame is dropped.
        if _crc16(data[offset:-2]) == struct.unpack(">H", data[-2:])[0]:
            frames = first + block
        else:
            frames, end = first, offset
            notes.append(f"a torn last frame ({len(data) - offset} bytes) was cut off")
    changed = total_said != frames or end != len(data)
    rep = Repair(path, "flac", total_said or None, frames, rate, changed, notes)
    if changed and not dry_run:
        packed = (packed & ~((1 << 36) - 1)) | frames
        with open(path, "r+b") as f:
            f.seek(si + 10)
            f.write(packed.to_bytes(8, "big"))
            f.write(b"\0" * 16)  # the MD5 no longer matches: zero means "not computed"
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return rep


# ------------------------------------------------------------------------------ MP3

_MP3_BITRATES = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
                 2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
#: LAME's encoder delay, and the decoder's own delay that its tag counts in the padding
LAME_DELAY, DECODER_DELAY = 576, 529


def _mp3_frame(buf: bytes, i: int) -> tuple[int, int, int, int] | None:
    """(length, samples, sample rate, side info length) of an MPEG layer III frame
    header at buf[i:], or None."""
    if i + 4 > len(buf) or buf[i] != 0xFF or buf[i + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (buf[i + 1] >> 3) & 3, (buf[i + 1] >> 1) & 3
    bitrate, rate_i = buf[i + 2] >> 4, (buf[i + 2] >> 2) & 3
    if version == 1 or layer != 1 or bitrate in (0, 15) or rate_i == 3:
        return None
    rate = _MP3_RATES[version][rate_i]
    kbps = _MP3_BITRATES[3 if version == 3 else 2][bitrate]
    pad = (buf[i + 2] >> 1) & 1
    mono = buf[i + 3] >> 6 == 3
    if version == 3:
        return 144000 * kbps // rate + pad, 1152, rate, 17 if mono else 32
    return 72000 * kbps // rate + pad, 576, rate, 9 if mono else 17


def _crc16_lame(data: bytes) -> int:
    """The CRC-16 (ARC) that LAME's tag uses for its own bytes and for the music."""
    crc = 0
    table = _CRC16_ARC
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def _make_crc16_arc() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC16_ARC = _make_crc16_arc()


def lame_info_frame(first: bytes, offsets: list[int], total: int, music_crc: int,
                    padding: int = DECODER_DELAY) -> bytes:
    """The first frame rewritten as a Xing/Info frame with a LAME tag: the number of
    audio frames, the bytes, a seek table, the encoder delay and padding (so decoders
    play exactly the encoded samples) and both CRCs. ``offsets``: the audio frames'
    offsets in the file; ``total``: the file's size."""
    length, _, _, side = _mp3_frame(first, 0)
    n = len(offsets)
    toc = bytes(min(255, offsets[min(n - 1, i * n // 100)] * 256 // total) for i in range(100))
    xing = (b"Xing" + struct.pack(">III", 0x0F, n, total) + toc + struct.pack(">I", 0))
    lame = (b"LAME3.100" + bytes([0x04, 0]) + bytes(8) + bytes(2)
            + ((LAME_DELAY << 12) | padding).to_bytes(3, "big") + bytes(4)
            + struct.pack(">I", total) + struct.pack(">H", music_crc))
    frame = bytearray(first[:length])
    frame[4:] = bytes(length - 4)
    at = 4 + side
    frame[at:at + len(xing) + len(lame)] = xing + lame
    end = at + len(xing) + len(lame)
    frame[end:end + 2] = struct.pack(">H", _crc16_lame(bytes(frame[:end])))
    return bytes(frame)


def _is_reserved(first: bytes) -> bool:
    """LAME's reserved first frame: a tag, or zeros (a killed recorder, a stream), with
    room for the Xing fields and the LAME tag."""
    side = _mp3_frame(first, 0)[3]
    tag = first[4 + side:8 + side]
    return ((tag in (b"Xing", b"Info") or not any(first[4 + side:]))
            and len(first) >= 4 + side + 120 + 36)


class Mp3Index:
    """The frames of an MP3 as it is written, fed the bytes appended to the file: what
    a provisional Info tag for LAME's reserved first frame needs. Never raises (it is
    called from libsndfile's write callback); bytes that are not MPEG frames stop it."""

    def __init__(self) -> None:
        from array import array

        self._pending = bytearray()
        self._at = 0  # file offset of _pending[0]
        self.first: bytes | None = None
        self.first_at = 0
        self.offsets = array("q")  # the audio frames (after the first)
        self.broken = False

    def feed(self, data, offset: int) -> None:
        if self.broken:
            return
        try:
            if offset != self._at + len(self._pending):
                self.broken = True
                return
            self._pending += data
            buf, pos = self._pending, 0
            while True:
                hdr = _mp3_frame(buf, pos)
                if hdr is None:
                    self.broken = len(buf) - pos >= 4  # (else: wait for a whole header)
                    break
                if pos + hdr[0] > len(buf):
                    break
                if self.first is None:
                    self.first, self.first_at = bytes(buf[pos:pos + hdr[0]]), self._at + pos
                else:
                    self.offsets.append(self._at + pos)
                pos += hdr[0]
            del buf[:pos]
            self._at += pos
        except Exception:
            self.broken = True

    def info_frame(self) -> tuple[int, bytes] | None:
        """(offset, bytes) of the reserved frame filled in for the frames so far (the
        music CRC left 0: it is known only once all is written), or None."""
        if self.broken or self.first is None or len(self.offsets) < 2 or not _is_reserved(self.first):
            return None
        return self.first_at, lame_info_frame(self.first, self.offsets, self._at, 0)


def recover_mp3(path: str, dry_run: bool = False) -> Repair:
    """Cut an MP3 after its last complete frame and give it a length header: the frame
    libsndfile (LAME) reserves at the start for its Info tag is filled in, which is
    what a killed recorder or a saved stream left empty."""
    with open(path, "rb") as f:
        data = f.read()
    start = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        start = 10 + sum((b & 0x7F) << (7 * (3 - k)) for k, b in enumerate(data[6:10]))
    offsets: list[int] = []
    pos, rate, spf, notes = start, 0, 1152, []
    while True:
        hdr = _mp3_frame(data, pos)
        if hdr is None or (rate and hdr[2] != rate) or pos + hdr[0] > len(data):
            break
        rate, spf = hdr[2], hdr[1]
        offsets.append(pos)
        pos += hdr[0]
    if not offsets:
        raise SourceError(f"{path}: no MPEG audio frames (nothing was recorded)")
    end = pos
    tail = data[end:]
    if tail[:3] == b"TAG" and len(tail) == 128:
        end = len(data)  # an ID3v1 tag ends the file
    elif tail:
        notes.append(f"{len(tail)} bytes of a torn last frame were cut off")
    first = data[offsets[0]:offsets[0] + _mp3_frame(data, offsets[0])[0]]
    side = _mp3_frame(first, 0)[3]
    tag = first[4 + side:8 + side]
    reserved = _is_reserved(first)
    said = None
    if tag in (b"Xing", b"Info") and struct.unpack(">I", first[8 + side:12 + side])[0] & 1:
        n_said = struct.unpack(">I", first[12 + side:16 + side])[0]
        lame = first[4 + side + 120:4 + side + 156]
        delay_pad = int.from_bytes(lame[21:24], "big") if lame[:4] == b"LAME" else 0
        said = max(0, n_said * spf - (delay_pad >> 12) - (delay_pad & 0xFFF))
    audio = offsets[1:] if reserved else offsets
    if len(audio) * spf <= LAME_DELAY + DECODER_DELAY:
        raise SourceError(f"{path}: no MPEG audio beyond the encoder's delay (nothing was recorded)")
    frames = len(audio) * spf - LAME_DELAY - DECODER_DELAY
    new_first = None
    if reserved and audio:
        total = end - offsets[0] + start
        new_first = lame_info_frame(first, audio, total,
                                    _crc16_lame(data[audio[0]:pos]))
        if said is not None and n_said == len(audio):
            frames = said  # a header that is right keeps its exact padding
            new_first = None if end == len(data) else new_first
    elif not reserved:
        notes.append("no frame reserved for a length header: readers estimate the length")
    changed = end != len(data) or new_first is not None
    rep = Repair(path, "mp3", said, frames, rate, changed, notes)
    if changed and not dry_run:
        with open(path, "r+b") as f:
            if new_first is not None:
                f.seek(offsets[0])
                f.write(new_first)
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return rep


# ------------------------------------------------------------------------------ Ogg


def _make_ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if c & 0x80000000 else (c << 1) & 0xFFFFFFFF
        table.append(c)
    return table


_OGG_CRC = _make_ogg_crc_table()


def ogg_crc(page: bytes) -> int:
    """The CRC-32 of an Ogg page (its checksum field taken as zero)."""
    crc = 0
    table = _OGG_CRC
    for k, b in enumerate(page):
        if 22 <= k < 26:
            b = 0
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) ^ b) & 0xFF]
    return crc


#: pages that start this close to the end have their CRC checked (a kill tears only
#: the end; checking every page of a long file in Python would take minutes)
OGG_CHECKED_TAIL = 1 << 20


def _ogg_pages(data: bytes):
    """Complete pages from the start, up to the first broken one: (offset, header, body).
    The CRC is checked on the first pages (the headers) and near the end."""
    pos = 0
    check_from = len(data) - OGG_CHECKED_TAIL
    while pos + 27 <= len(data) and data[pos:pos + 4] == b"OggS" and data[pos + 4] == 0:
        nseg = data[pos + 26]
        hlen = 27 + nseg
        if pos + hlen > len(data):
            return
        blen = sum(data[pos + 27:pos + hlen])
        page = data[pos:pos + hlen + blen]
        if len(page) < hlen + blen:
            return
        if (pos < 1 << 16 or pos >= check_from) and ogg_crc(page) != struct.unpack("<I", page[22:26])[0]:
            return
        yield pos, page[:hlen], page[hlen:]
        pos += hlen + blen


def _ogg_page(header: bytes, lacing: bytes, body: bytes, flags: int, granule: int) -> bytes:
    h = bytearray(header[:26]) + bytes([len(lacing)]) + lacing
    h[5] = flags
    h[6:14] = struct.pack("<q", granule)
    h[22:26] = bytes(4)
    page = bytes(h) + body
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def recover_ogg(path: str, dry_run: bool = False) -> Repair:
    """Cut an Ogg Vorbis or Opus file after its last complete page (a torn page or a
    packet that never ended is dropped) and mark that page end-of-stream, with its
    checksum recomputed, so every decoder plays it to its end."""
    with open(path, "rb") as f:
        data = f.read()
    pages = list(_ogg_pages(data))
    if not pages:
        raise SourceError(f"{path}: not an Ogg file (no valid page)")
    head = pages[0][2]
    if head[:7] == b"\x01vorbis":
        kind, rate, skip, scale = "ogg vorbis", struct.unpack("<I", head[12:16])[0], 0, 1.0
    elif head[:8] == b"OpusHead":
        rate = struct.unpack("<I", head[12:16])[0] or 48000
        kind, skip, scale = "ogg opus", struct.unpack("<H", head[10:12])[0], rate / 48000
    else:
        raise NotSupportedError(f"{path}: an Ogg stream that is neither Vorbis nor Opus")
    headers = 3 if kind == "ogg vorbis" else 2  # header packets before the audio
    notes: list[str] = []
    # Drop trailing pages on which no packet ends (granule -1) and, on the last one,
    # a packet that continues on a page that never came.
    keep = list(pages)
    last = None
    while keep:
        off, hdr, body = keep[-1]
        granule = struct.unpack("<q", hdr[6:14])[0]
        lacing = hdr[27:]
        ends = [k for k, v in enumerate(lacing) if v < 255]
        if granule >= 0 and ends:
            cut = ends[-1] + 1
            last = (off, hdr, lacing[:cut], body[:sum(lacing[:cut])], granule)
            break
        keep.pop()
    packets = sum(sum(1 for v in h[27:] if v < 255) for _, h, _ in keep)
    if last is None or packets <= headers:
        raise SourceError(f"{path}: no audio page survived (nothing was recorded)")
    off, hdr, lacing, body, granule = last
    eos = bool(hdr[5] & 4)
    end = off + len(hdr) + len(body) if len(lacing) == len(hdr) - 27 else None
    torn = len(data) - (pages[-1][0] + len(pages[-1][1]) + len(pages[-1][2]))
    if torn:
        notes.append(f"a torn last page ({torn} bytes) was cut off")
    if len(keep) < len(pages) or end is None:
        notes.append("an unfinished packet was dropped")
    frames = max(0, round((granule - skip) * scale))
    new_last = None if eos and end is not None else _ogg_page(hdr, lacing, body, hdr[5] | 4, granule)
    final_len = off + (len(new_last) if new_last else len(hdr) + len(body))
    changed = new_last is not None or final_len != len(data)
    if not eos:
        notes.append("the last page now ends the stream")
    rep = Repair(path, kind, frames if eos else None, frames, rate, changed, notes)
    if changed and not dry_run:
        with open(path, "r+b") as f:
            if new_last is not None:
                f.seek(off)
                f.write(new_last)
            f.truncate(final_len)
            f.flush()
            os.fsync(f.fileno())
    return rep
