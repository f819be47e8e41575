"""Markers: moments flagged while recording, kept where other programs find them.

A marker has a ``number`` (1, 2, … in the order they were made), a ``time`` (seconds
into the file that holds it) and a ``label`` (one line of text, "Marker N" when none was
given). Where they are kept:

- every file recording: the clip's metadata (``NAME.EXT.json``, field ``markers``) for
  clips in the library, else a sidecar ``<audio>.markers.json`` (``{"markers": [...]}``)
  beside the file. The sidecar is written while recording, each time a marker reaches
  the file, so a killed recorder leaves it behind (``dictaphone recover`` puts the
  markers of a WAV back into its cue chunk from there).
- WAV: a ``cue `` chunk (one cue point per marker, at its exact sample offset) and a
  ``LIST``/``adtl`` chunk of ``labl`` texts, after the data chunk (as Audacity, ocenaudio
  and libsndfile read them).
- FLAC, Ogg Vorbis, Ogg Opus: Vorbis comments in the chapter convention
  (``CHAPTER001=00:01:23.456``, ``CHAPTER001NAME=label``). libsndfile writes its comment
  block before the audio and cannot change it later, so the encoder reserves room for it
  (a blank comment) at the start and it is rewritten in place when the file is finished.

``load(audio)`` finds them again, from whichever of these the file has. This module is
pure Python (no numpy, no soundfile) so ``dictaphone marks`` stays quick.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import unicodedata

from .. import jsontext
from ..atomic import write_text
from ..errors import InvalidArgumentError, SourceError
from . import sidecars

#: the longest label accepted (characters): a marker's label is a short line, and every
#: place it is kept (a control request, a Vorbis comment, a label track) wants it short
MAX_LABEL = 256

#: bytes reserved before the audio of FLAC and Ogg files for the chapter comments
COMMENT_RESERVE = 16384


class MarkerNotFoundError(InvalidArgumentError):
    """``--at`` named a marker the clip does not have."""


@dataclasses.dataclass
class Marker:
    number: int
    time: float  #: seconds into the file that holds it
    label: str
    frame: int | None = None  #: the exact sample offset, when known

    def to_json(self) -> dict:
        return {"number": self.number, "time": round(self.time, 6), "label": self.label}

    @classmethod
    def from_json(cls, d: dict) -> "Marker":
        return cls(int(d["number"]), float(d["time"]), str(d.get("label") or f"Marker {d['number']}"))


# ------------------------------------------------------------------------------ labels


def clean_label(label: str | None, number: int) -> str:
    """The label a marker gets: control characters and line breaks become spaces (a label
    is one line everywhere it is kept), runs of spaces shrink to one; empty: "Marker N".
    Longer than MAX_LABEL characters: refused (cutting it would silently lose text)."""
    if label is None:
        return default_label(number)
    if not isinstance(label, str):
        raise InvalidArgumentError(f"a marker label must be text, not {type(label).__name__}")
    text = one_line(label)
    if len(text) > MAX_LABEL:
        raise InvalidArgumentError(f"a marker label is at most {MAX_LABEL} characters (this one has {len(text)})")
    return text or default_label(number)


#: format characters that are part of writing, kept in labels: zero-width (non-)joiners
#: (emoji sequences, Indic and Persian script), the left-to-right, right-to-left and
#: Arabic letter marks, the word joiner, the soft hyphen, and emoji tag characters
#: (subdivision flags). Other format characters (bidi embeddings, overrides and isolates
#: that reorder the rest of a line, BOMs) are controls and become spaces.
TEXT_FORMAT_CHARS = frozenset("\u200c\u200d\u200e\u200f\u061c\u2060\u00ad") | frozenset(
    map(chr, range(0xE0020, 0xE0080)))


def _is_control(c: str) -> bool:
    kind = unicodedata.category(c)
    return kind in ("Cc", "Zl", "Zp", "Cs") or (kind == "Cf" and c not in TEXT_FORMAT_CHARS)


def one_line(text: str) -> str:
    """Control characters and line breaks as spaces, runs of spaces as one (the format
    characters of TEXT_FORMAT_CHARS are text and stay)."""
    text = "".join(" " if _is_control(c) else c for c in text)
    return " ".join(text.split())


def default_label(number: int) -> str:
    return f"Marker {number}"


# ------------------------------------------------------------------------------ times


def format_time(seconds: float) -> str:
    """HH:MM:SS.mmm, the chapter convention's form (and ffmpeg's)."""
    ms = int(round(max(0.0, seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")
_SECONDS = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*s?$")


def parse_time(text: str) -> float | None:
    """Seconds from ``1:23``, ``1:23.456``, ``01:02:03.5``, ``83.5``, ``83s``; None if
    the text is not a time."""
    text = text.strip()
    m = _CLOCK.match(text)
    if m:
        h, mi, s = m.groups()
        if int(mi) >= 60 and h is not None or float(s) >= 60:
            return None
        return int(h or 0) * 3600 + int(mi) * 60 + float(s)
    m = _SECONDS.match(text)
    if m:
        return float(m.group(1))
    return None


def find(markers: list[Marker], spec: str, where: str = "this file") -> Marker:
    """The marker ``spec`` names: its number (``3``) or its label (exact, else ignoring
    case). MarkerNotFoundError (a usage error) when there is none."""
    spec = spec.strip()
    if _number(spec):
        for m in markers:
            if m.number == int(spec):
                return m
        for m in markers:
            if m.label == spec:
                return m  # a label that is a number ("2024"), when no marker has that number
        hint = f"; for a time write {spec}s or 0:{int(spec):02d}" if int(spec) < 60 else f"; for a time write {spec}s"
        raise MarkerNotFoundError(f"no marker {spec} in {where} ({_have(markers)}{hint})")
    for same in (lambda a, b: a == b, lambda a, b: a.casefold() == b.casefold()):
        for m in markers:
            if same(m.label, spec):
                return m
    raise MarkerNotFoundError(f"no marker labelled {spec!r} in {where} ({_have(markers)})")


def _number(text: str) -> bool:
    """A marker's number: ASCII digits (str.isdigit() also takes "²", which int() refuses)."""
    return text.isascii() and text.isdigit()


def _have(markers: list[Marker]) -> str:
    if not markers:
        return "it has none"
    listed = ", ".join(f"{m.number} {m.label!r}" for m in markers[:5])
    return f"it has {listed}" + (f" and {len(markers) - 5} more" if len(markers) > 5 else "")


def resolve_position(markers: list[Marker], spec: str, where: str = "this file") -> float:
    """``play --at``: a plain integer is a marker's number, a time (``1:30``, ``12.5``,
    ``12s``) is a time, anything else a marker's label."""
    text = spec.strip()
    if not text:
        raise InvalidArgumentError("--at needs a time (1:30, 12.5, 12s) or a marker (its number or label)")
    if _number(text):
        return find(markers, text, where).time
    t = parse_time(text)
    if t is not None:
        return t
    return find(markers, text, where).time


# ------------------------------------------------------------------------------ sidecars


def sidecar_path(audio: str) -> str:
    return os.fspath(audio) + sidecars.MARKERS


def save_sidecar(audio: str, markers: list[Marker]) -> None:
    """Write ``<audio>.markers.json`` atomically."""
    write_text(sidecar_path(audio),
               json.dumps({"markers": [m.to_json() for m in markers]}, indent=2, ensure_ascii=False))


def remove_sidecar(audio: str) -> None:
    try:
        os.unlink(sidecar_path(audio))
    except FileNotFoundError:
        pass


def _from_json_list(items) -> list[Marker] | None:
    if not isinstance(items, list):
        return None
    try:
        return sorted((Marker.from_json(d) for d in items), key=lambda m: (m.time, m.number))
    except (KeyError, TypeError, ValueError):
        return None


def _read_json(path: str):
    try:
        return jsontext.load_file(path)
    except (OSError, ValueError):
        return None


def load(audio: str) -> list[Marker]:
    """The markers of an audio file: from its clip metadata or its sidecar, else from
    the file itself (a WAV's cue chunk, FLAC/Ogg chapter comments). [] if none.
    Labels come out as one line whoever wrote them (another program's chapter name with a
    tab or a line break broke `marks --audacity` and the listing)."""
    found = _load(os.fspath(audio))
    for m in found:
        m.label = one_line(m.label) or default_label(m.number)
    return found


def _load(audio: str) -> list[Marker]:
    meta = _read_json(audio + ".json")
    if isinstance(meta, dict) and "markers" in meta:
        found = _from_json_list(meta["markers"])
        if found is not None:
            return found
    side = _read_json(sidecar_path(audio))
    if isinstance(side, dict):
        found = _from_json_list(side.get("markers"))
        if found is not None:
            return found
    return read_file_markers(audio)


def check_audio(path: str) -> None:
    """A SourceError in words when ``path`` is not audio at all (`marks notes.txt` said
    "no markers in notes.txt", where show and play say what is wrong). A raw file has no
    header to check: its extension is taken at its word."""
    from .formats import format_for_path

    fmt = format_for_path(path)
    if fmt is not None and fmt.name == "raw":
        return
    import soundfile

    from .sfmessages import explain

    try:
        soundfile.info(os.fspath(path))
    except Exception as e:  # soundfile's errors, and the OSErrors of opening
        raise SourceError(f"{path}: {explain(e, path)}") from None


def read_file_markers(path: str) -> list[Marker]:
    """Markers stored in the audio file itself."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror}") from None
    try:
        if magic == b"RIFF":
            return read_wav_markers(path)
        if magic == b"fLaC":
            return chapters_from_comments(read_flac_comments(path))
        if magic == b"OggS":
            return chapters_from_comments(read_ogg_comments(path))
    except (OSError, ValueError, struct.error):
        return []  # a damaged file has no markers we can trust
    return []


def to_audacity(markers: list[Marker]) -> str:
    """An Audacity label track (File > Import > Labels): start, end and label, tab-separated."""
    return "".join(f"{m.time:.6f}\t{m.time:.6f}\t{m.label}\n" for m in markers)


# ------------------------------------------------------------------------------ WAV


def wav_marker_chunks(markers: list[tuple[int, int, str]]) -> bytes:
    """The ``cue `` and ``LIST``/``adtl`` chunks for markers given as (sample offset,
    number, label). Cue point ids are the markers' numbers."""
    if not markers:
        return b""
    cue = struct.pack("<I", len(markers))
    adtl = b"adtl"
    for offset, number, label in markers:
        # id, position (play order), fccChunk, chunk start, block start, sample offset
        cue += struct.pack("<II4sIII", number, offset, b"data", 0, 0, offset)
        text = label.encode("utf-8") + b"\0"
        body = struct.pack("<I", number) + text
        adtl += b"labl" + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")
    out = b"cue " + struct.pack("<I", len(cue)) + cue
    out += b"LIST" + struct.pack("<I", len(adtl)) + adtl
    return out


def _riff_chunks(data: bytes, start: int):
    pos = start
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def read_wav_markers(path: str) -> list[Marker]:
    """Cue points and their ``labl`` texts. Reads the chunk headers only (seeking past
    the audio), so a long file costs nothing."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE":
            return []
        size = os.fstat(f.fileno()).st_size
        pos, rate, cues, labels = 12, None, [], {}
        while pos + 8 <= size:
            f.seek(pos)
            cid, n = struct.unpack("<4sI", f.read(8))
            if cid == b"fmt ":
                rate = struct.unpack("<HHI", f.read(8))[2]
            elif cid == b"cue ":
                body = f.read(n)
                count = struct.unpack("<I", body[:4])[0]
                for i in range(min(count, (len(body) - 4) // 24)):
                    cid_, _pos, _fcc, _cs, _bs, offset = struct.unpack("<II4sIII", body[4 + 24 * i: 28 + 24 * i])
                    cues.append((cid_, offset))
            elif cid == b"LIST":
                body = f.read(n)
                if body[:4] == b"adtl":
                    for sub, at, sn in _riff_chunks(body, 4):
                        if sub == b"labl" and sn >= 4:
                            text = body[at + 4: at + sn].split(b"\0", 1)[0]
                            labels[struct.unpack("<I", body[at:at + 4])[0]] = text.decode("utf-8", "replace")
            elif cid == b"data" and n == 0xFFFFFFFF:
                break  # a streamed WAV: the data runs to the end
            pos += 8 + n + (n & 1)
    if not rate:
        return []
    out = [Marker(number=cid_, time=offset / rate, label=labels.get(cid_) or default_label(cid_), frame=offset)
           for cid_, offset in cues]
    out.sort(key=lambda m: (m.frame, m.number))
    return out


# ------------------------------------------------------------------------------ Vorbis comments


def chapter_comments(markers: list[Marker]) -> list[str]:
    """``CHAPTER001=00:01:23.456`` and ``CHAPTER001NAME=label`` for each marker, numbered
    in the file's order (the convention numbers chapters, not our markers)."""
    out = []
    for i, m in enumerate(sorted(markers, key=lambda m: (m.time, m.number)), 1):
        out.append(f"CHAPTER{i:03d}={format_time(m.time)}")
        out.append(f"CHAPTER{i:03d}NAME={m.label}")
    return out


_CHAPTER = re.compile(r"^CHAPTER(\d+)(NAME)?$", re.IGNORECASE)


def chapters_from_comments(comments: list[str]) -> list[Marker]:
    times: dict[int, float] = {}
    names: dict[int, str] = {}
    for c in comments:
        key, sep, value = c.partition("=")
        m = _CHAPTER.match(key) if sep else None
        if not m:
            continue
        n = int(m.group(1))
        if m.group(2):
            names[n] = value
        else:
            t = parse_time(value)
            if t is not None:
                times[n] = t
    return [Marker(number=n, time=times[n], label=names.get(n) or default_label(n))
            for n in sorted(times)]


def vorbis_comment_body(vendor: bytes, comments: list[str]) -> bytes:
    out = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
    for c in comments:
        b = c.encode("utf-8")
        out += struct.pack("<I", len(b)) + b
    return out


def parse_vorbis_comment_body(data: bytes, at: int = 0) -> tuple[bytes, list[str], int]:
    """(vendor, comments, end offset) of a comment list starting at ``data[at]``."""
    n = struct.unpack("<I", data[at:at + 4])[0]
    vendor = data[at + 4: at + 4 + n]
    pos = at + 4 + n
    count = struct.unpack("<I", data[pos:pos + 4])[0]
    pos += 4
    comments = []
    for _ in range(count):
        k = struct.unpack("<I", data[pos:pos + 4])[0]
        if pos + 4 + k > len(data):
            raise ValueError("a comment runs past its block")
        comments.append(data[pos + 4: pos + 4 + k].decode("utf-8", "replace"))
        pos += 4 + k
    return vendor, comments, pos


def _keep(comments: list[str]) -> list[str]:
    """The comments to carry over: not chapters, not the blank reserve."""
    return [c for c in comments
            if not _CHAPTER.match(c.partition("=")[0]) and c.partition("=")[2].strip(" ")]


# -- FLAC


def _flac_blocks(read, limit: int = 1 << 24):
    """(offset of the block header, last flag, type, length) of each metadata block."""
    pos = 4
    while pos < limit:
        head = read(pos, 4)
        if len(head) < 4:
            raise ValueError("truncated FLAC metadata")
        last, kind, n = head[0] & 0x80, head[0] & 0x7F, int.from_bytes(head[1:4], "big")
        yield pos, bool(last), kind, n
        pos += 4 + n
        if last:
            return


def _pread_from(fd: int):
    return lambda offset, n: os.pread(fd, n, offset)


def read_flac_comments(path: str) -> list[str]:
    fd = os.open(path, os.O_RDONLY)
    try:
        read = _pread_from(fd)
        if read(0, 4) != b"fLaC":
            return []
        for pos, _last, kind, n in _flac_blocks(read):
            if kind == 4:
                return parse_vorbis_comment_body(read(pos + 4, n))[1]
    finally:
        os.close(fd)
    return []


def _fitting(markers: list[Marker], fits) -> list[Marker]:
    """The first markers (in time order) whose chapters ``fits(comments)``: as many as the
    reserved room takes (the rest stay in the metadata and sidecar)."""
    ordered = sorted(markers, key=lambda m: (m.time, m.number))
    n = len(ordered)
    while n and not fits(chapter_comments(ordered[:n])):
        n -= 1
    return ordered[:n]


def write_flac_chapters(fd: int, markers: list[Marker]) -> bool:
    """Rewrite a FLAC file's VORBIS_COMMENT block in place with the chapters (and its
    other comments but the blank reserve), the rest of its room as a PADDING block. When
    not all fit, the first ones that do. False when there is no such block."""
    read = _pread_from(fd)
    if read(0, 4) != b"fLaC":
        return False
    for pos, last, kind, n in _flac_blocks(read):
        if kind != 4:
            continue
        vendor, comments, _ = parse_vorbis_comment_body(read(pos + 4, n))
        kept = _keep(comments)

        def fits(chapters):
            room = n - len(vorbis_comment_body(vendor, kept + chapters))
            return room == 0 or room >= 4  # (a PADDING block needs its 4-byte header)

        chapters = chapter_comments(_fitting(markers, fits))
        if not fits(chapters):
            return False  # the other comments alone fill it
        body = vorbis_comment_body(vendor, kept + chapters)
        room = n - len(body)
        if room == 0:
            blocks = bytes([(0x80 if last else 0) | 4]) + len(body).to_bytes(3, "big") + body
        else:
            blocks = bytes([4]) + len(body).to_bytes(3, "big") + body
            pad = room - 4
            blocks += bytes([(0x80 if last else 0) | 1]) + pad.to_bytes(3, "big") + b"\0" * pad
        os.pwrite(fd, blocks, pos)
        return True
    return False


# -- Ogg (Vorbis and Opus)

_OGG_CRC_TABLE = []
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if _r & 0x80000000 else (_r << 1) & 0xFFFFFFFF
    _OGG_CRC_TABLE.append(_r)


def ogg_crc(data: bytes) -> int:
    crc = 0
    table = _OGG_CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) & 0xFF) ^ b]
    return crc


def _ogg_pages(data: bytes):
    """(page offset, header length, segment table, body offset) of each complete page."""
    pos = 0
    while pos + 27 <= len(data) and data[pos:pos + 4] == b"OggS":
        nseg = data[pos + 26]
        table = data[pos + 27: pos + 27 + nseg]
        body = pos + 27 + nseg
        end = body + sum(table)
        if end > len(data):
            return
        yield pos, 27 + nseg, table, body
        pos = end


def _ogg_packet_spans(data: bytes, index: int):
    """The file spans [(offset, length)] holding packet ``index`` (0-based) of the first
    logical stream, and the pages they are on."""
    spans, pages, packet = [], [], 0
    for page, _hl, table, body in _ogg_pages(data):
        at = body
        for lace in table:
            if packet == index:
                if lace:
                    spans.append((at, lace))
                if not pages or pages[-1] != page:
                    pages.append(page)
            at += lace
            if lace < 255:
                packet += 1
                if packet > index:
                    return spans, pages
    raise ValueError("the Ogg headers are incomplete")


_OGG_MAGIC = ((b"\x03vorbis", True), (b"OpusTags", False))


def _ogg_comment_packet(data: bytes):
    spans, pages = _ogg_packet_spans(data, 1)
    packet = b"".join(data[a:a + n] for a, n in spans)
    for magic, framing in _OGG_MAGIC:
        if packet.startswith(magic):
            return spans, pages, packet, magic, framing
    raise ValueError("not a Vorbis or Opus comment header")


HEAD_BYTES = 1 << 20  #: the comment header is within the first pages of an Ogg file


def read_ogg_comments(path: str) -> list[str]:
    with open(path, "rb") as f:
        data = f.read(1 << 16)
        try:
            packet, magic = _ogg_comment_packet(data)[2:4]
        except ValueError:  # a comment header longer than the first 64 KiB
            f.seek(0)
            packet, magic = _ogg_comment_packet(f.read(HEAD_BYTES))[2:4]
    return parse_vorbis_comment_body(packet, len(magic))[1]


def write_ogg_chapters(fd: int, markers: list[Marker]) -> bool:
    """Rewrite an Ogg Vorbis/Opus file's comment header in place, keeping its length:
    the chapters replace the blank reserve, and what is left over is zero padding after
    the comments (which Vorbis decoders ignore after the framing bit, and which Opus
    defines as padding). The page checksums are recomputed. When not all fit, the first
    ones that do."""
    data = os.pread(fd, HEAD_BYTES, 0)
    spans, pages, packet, magic, framing = _ogg_comment_packet(data)
    vendor, comments, _ = parse_vorbis_comment_body(packet, len(magic))
    kept = _keep(comments)

    def build(chapters):
        return magic + vorbis_comment_body(vendor, kept + chapters) + (b"\x01" if framing else b"")

    new = build(chapter_comments(_fitting(markers, lambda c: len(build(c)) <= len(packet))))
    if len(new) > len(packet):
        return False
    new += b"\0" * (len(packet) - len(new))
    buf = bytearray(data)
    done = 0
    for at, n in spans:
        buf[at:at + n] = new[done:done + n]
        done += n
    for page in pages:
        _pos, hl, table, body = next(p for p in _ogg_pages(bytes(buf[page:])))
        end = page + hl + sum(table)
        buf[page + 22: page + 26] = b"\0\0\0\0"
        crc = ogg_crc(bytes(buf[page:end]))
        buf[page + 22: page + 26] = struct.pack("<I", crc)
    first, last = pages[0], pages[-1]
    last_end = last + 27 + buf[last + 26] + sum(buf[last + 27: last + 27 + buf[last + 26]])
    os.pwrite(fd, bytes(buf[first:last_end]), first)
    return True
