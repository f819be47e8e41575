"""Repair what a killed recorder (or a saved pipe) left: WAV and FLAC headers.

- WAV: the header's sizes are set from what the file really holds (whole frames). This
  fixes a header that lags the data (a recorder killed between two header updates) and
  the 0xFFFFFFFF sizes of a WAV saved from a pipe. Markers the recorder had put in its
  ``<file>.markers.json`` sidecar (written as each marker reached the file) go back into
  the file as cue points after the data, when it has none. A finished WAV with chunks
  after its data (markers) is left alone.
- FLAC: a file whose STREAMINFO has no total length (killed before libFLAC rewrote it,
  or streamed) gets the total from its last frame header; a torn last frame is cut off.

Other containers cannot be repaired here: Ogg Vorbis and MP3 decode up to where they
were cut, Opus usually not at all (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import dataclasses
import os
import struct

from .errors import NotSupportedError, SourceError


@dataclasses.dataclass
class Repair:
    path: str
    kind: str  #: "wav" or "flac"
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
        return (f"{self.path}: repaired the {self.kind} header: it said {before}, the file holds "
                f"{self.frames} frames ({seconds:.2f} s){extra}")


def recover(path: str, dry_run: bool = False) -> Repair:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory") from None
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror}") from None
    if magic == b"RIFF":
        return recover_wav(path, dry_run)
    if magic == b"fLaC":
        return recover_flac(path, dry_run)
    raise NotSupportedError(f"{path}: only WAV and FLAC files can be repaired")


# ------------------------------------------------------------------------------ WAV


def recover_wav(path: str, dry_run: bool = False) -> Repair:
    size = os.path.getsize(path)
    with open(path, "r+b" if not dry_run else "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE":
            raise SourceError(f"{path}: not a WAV file")
        fmt = None
        fact_at = None
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
            elif cid == b"data":
                break
            pos += 8 + csize + (csize & 1)
        if fmt is None or len(fmt) < 16:
            raise SourceError(f"{path}: no valid fmt chunk")
        tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
        if block_align == 0:
            raise SourceError(f"{path}: invalid fmt chunk (block align 0)")
        data_at = pos + 8
        data_bytes = (size - data_at) // block_align * block_align
        said = csize
        trailer = None
        if said != 0xFFFFFFFF and data_at + said < size and _chunks_to_end(f, data_at + said + (said & 1), size):
            # a finished file with chunks after its data (cue points, labels): complete
            data_bytes = said // block_align * block_align
            trailer = size - (data_at + said + (said & 1))
        riff_said = struct.unpack("<I", head[4:8])[0]
        frames = data_bytes // block_align
        frames_before = None if said == 0xFFFFFFFF else min(said, size - data_at) // block_align
        riff = data_at - 8 + data_bytes + (data_bytes & 1) + (trailer or 0)
        markers = [] if trailer is not None else _sidecar_markers(path, frames, rate)
        changed = said != data_bytes or riff_said != min(riff, 0xFFFFFFFF) or bool(markers)
        rep = Repair(path, "wav", frames_before, frames, rate, changed)
        if data_bytes > 0xFFFFFFFF:
            rep.notes.append("over 4 GiB: sizes left at 0xFFFFFFFF (readers take the file to its end)")
            data_bytes_field = riff_field = 0xFFFFFFFF
        else:
            data_bytes_field, riff_field = data_bytes, riff
        if size - data_at != data_bytes and trailer is None:
            rep.notes.append(f"{size - data_at - data_bytes} bytes of a torn last frame ignored")
        if markers:
            rep.notes.append(f"{len(markers)} marker(s) restored from {os.path.basename(path)}.markers.json")
        if markers and not dry_run and data_bytes <= 0xFFFFFFFF:
            from .markers import wav_marker_chunks

            chunks = wav_marker_chunks([(m.frame, m.number, m.label) for m in markers])
            f.truncate(data_at + data_bytes)  # (a torn last frame goes)
            f.seek(data_at + data_bytes)
            f.write(b"\0" * (data_bytes & 1) + chunks)
            riff_field += len(chunks)
        if changed and not dry_run:
            f.seek(4)
            f.write(struct.pack("<I", riff_field))
            f.seek(data_at - 4)
            f.write(struct.pack("<I", data_bytes_field))
            if fact_at is not None:
                f.seek(fact_at)
                f.write(struct.pack("<I", min(frames, 0xFFFFFFFF)))
            f.flush()
            os.fsync(f.fileno())
        return rep


def _chunks_to_end(f, pos: int, size: int) -> bool:
    """Whether RIFF chunks from ``pos`` tile the file exactly to its end."""
    if pos >= size:
        return False
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(8)
        cid, n = head[:4], struct.unpack("<I", head[4:])[0]
        if not all(0x20 <= b <= 0x7E for b in cid):
            return False
        pos += 8 + n + (n & 1)
        if pos == size or (n & 1 and pos - 1 == size):
            return True
    return False


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
