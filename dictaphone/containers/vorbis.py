"""Ogg Vorbis straight from libvorbisenc and libogg (ctypes), for pages on demand.

libsndfile's Vorbis writer hands libogg its packets and takes out a page only when
libogg offers one: after about 4 KiB, or 255 packets. Digital silence (a muted
microphone, an idle virtual source) codes to packets of a few bytes, so a page then
holds up to 5.4 s of audio, and a recorder killed meanwhile loses all of it; libsndfile
offers no command to flush. Driving the two libraries directly lets ``flush()`` end a
page whenever the writer syncs (once a second), so a kill loses at most that second.

The libraries are the ones libsndfile itself is built on (Debian: libvorbisenc2,
libogg0, which libsndfile1 pulls in). Where they cannot be loaded, ``available()`` is
False and the recorder falls back to libsndfile's Vorbis writer.

The states libvorbis and libogg keep (ogg_stream_state, vorbis_dsp_state, ...) are
handed over as opaque, generously sized buffers: only ``ogg_page`` and ``ogg_packet``,
whose layouts are part of libogg's stable ABI, are read from Python.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import numpy as np

#: libsndfile's default Vorbis quality (its ogg_vorbis.c), so files do not change size
QUALITY = 0.4
#: bytes for each opaque state: several times their size on any 64-bit ABI
_STATE_BYTES = 16384


class _Page(ctypes.Structure):
    _fields_ = [("header", ctypes.POINTER(ctypes.c_ubyte)), ("header_len", ctypes.c_long),
                ("body", ctypes.POINTER(ctypes.c_ubyte)), ("body_len", ctypes.c_long)]


class _Packet(ctypes.Structure):
    _fields_ = [("packet", ctypes.POINTER(ctypes.c_ubyte)), ("bytes", ctypes.c_long),
                ("b_o_s", ctypes.c_long), ("e_o_s", ctypes.c_long),
                ("granulepos", ctypes.c_int64), ("packetno", ctypes.c_int64)]


_libs: tuple | None = None
_load_error: str | None = None


def _load():
    global _libs, _load_error
    if _libs is not None or _load_error is not None:
        return _libs
    try:
        names = {}
        for name, soname in (("ogg", "libogg.so.0"), ("vorbis", "libvorbis.so.0"),
                             ("vorbisenc", "libvorbisenc.so.2")):
            try:  # the Linux soname first: find_library runs ldconfig, which takes time
                names[name] = ctypes.CDLL(soname)
            except OSError:
                names[name] = ctypes.CDLL(ctypes.util.find_library(name) or soname)
        ogg, vorbis, enc = names["ogg"], names["vorbis"], names["vorbisenc"]
        p = ctypes.c_void_p
        vorbis.vorbis_analysis_buffer.restype = ctypes.POINTER(ctypes.POINTER(ctypes.c_float))
        vorbis.vorbis_analysis_buffer.argtypes = [p, ctypes.c_int]
        vorbis.vorbis_analysis_wrote.argtypes = [p, ctypes.c_int]
        vorbis.vorbis_comment_add_tag.argtypes = [p, ctypes.c_char_p, ctypes.c_char_p]
        enc.vorbis_encode_init_vbr.argtypes = [p, ctypes.c_long, ctypes.c_long, ctypes.c_float]
        ogg.ogg_stream_init.argtypes = [p, ctypes.c_int]
        for f in (ogg.ogg_stream_packetin, ogg.ogg_stream_pageout, ogg.ogg_stream_flush):
            f.argtypes = [p, p]
        _libs = (ogg, vorbis, enc)
    except (OSError, AttributeError) as e:
        _load_error = str(e)
    return _libs


def available() -> bool:
    """True when libvorbisenc and libogg can be loaded (else libsndfile writes Vorbis)."""
    return os.environ.get("DICTAPHONE_SNDFILE_VORBIS") != "1" and _load() is not None


class VorbisStream:
    """One Ogg Vorbis logical stream: float frames in, bytes of whole pages out."""

    def __init__(self, samplerate: int, channels: int, quality: float = QUALITY):
        libs = _load()
        if libs is None:
            raise OSError(f"libvorbisenc is not available: {_load_error}")
        self._ogg, self._vorbis, enc = libs
        self.channels = channels
        buf = lambda: ctypes.create_string_buffer(_STATE_BYTES)  # noqa: E731
        self._info, self._comment, self._dsp, self._block, self._os = (buf() for _ in range(5))
        self._page, self._packet = _Page(), _Packet()
        v = self._vorbis
        v.vorbis_info_init(self._info)
        self._live = ["info"]
        if enc.vorbis_encode_init_vbr(self._info, channels, samplerate, quality) != 0:
            self.close()
            raise ValueError(f"libvorbis cannot encode {channels} channel(s) at {samplerate} Hz")
        v.vorbis_comment_init(self._comment)
        self._live.append("comment")
        v.vorbis_analysis_init(self._dsp, self._info)
        self._live.append("dsp")
        v.vorbis_block_init(self._dsp, self._block)
        self._live.append("block")
        self._ogg.ogg_stream_init(self._os, int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF)
        self._live.append("stream")
        self.ended = False

    def headers(self, comments: dict[str, str] | None = None) -> bytes:
        """The three header packets: the first alone on its page (as the spec asks), the
        other two flushed after it, so audio starts on a page of its own (as libsndfile
        writes them)."""
        for key, value in (comments or {}).items():
            self._vorbis.vorbis_comment_add_tag(self._comment, key.encode(), value.encode())
        head, comm, code = _Packet(), _Packet(), _Packet()
        self._vorbis.vorbis_analysis_headerout(self._dsp, self._comment, ctypes.byref(head),
                                               ctypes.byref(comm), ctypes.byref(code))
        for pkt in (head, comm, code):
            self._ogg.ogg_stream_packetin(self._os, ctypes.byref(pkt))
        return self._pages(self._ogg.ogg_stream_flush)

    def encode(self, frames: np.ndarray) -> bytes:
        """Analyse ``frames`` (float32, (n, channels)); the pages libogg completes."""
        n = len(frames)
        if n == 0:
            return b""
        bufs = self._vorbis.vorbis_analysis_buffer(self._dsp, n)
        planar = np.ascontiguousarray(frames.T, dtype=np.float32)
        for c in range(self.channels):
            ctypes.memmove(bufs[c], planar[c].ctypes.data, n * 4)
        self._vorbis.vorbis_analysis_wrote(self._dsp, n)
        return self._drain()

    def flush(self) -> bytes:
        """End a page with every packet encoded so far (libvorbis keeps back only its
        look-ahead, about one block)."""
        return self._pages(self._ogg.ogg_stream_flush)

    def finish(self) -> bytes:
        """The last packets and the end-of-stream page."""
        if self.ended:
            return b""
        self.ended = True
        self._vorbis.vorbis_analysis_wrote(self._dsp, 0)
        return self._drain() + self._pages(self._ogg.ogg_stream_flush)

    def _drain(self) -> bytes:
        v, o = self._vorbis, self._ogg
        dsp, block, stream, packet = self._dsp, self._block, self._os, ctypes.byref(self._packet)
        while v.vorbis_analysis_blockout(dsp, block) == 1:
            v.vorbis_analysis(block, None)
            v.vorbis_bitrate_addblock(block)
            while v.vorbis_bitrate_flushpacket(dsp, packet) == 1:
                o.ogg_stream_packetin(stream, packet)  # (libogg copies the packet)
        # the pages libogg has completed, once for all the packets of this write
        return self._pages(o.ogg_stream_pageout)

    def _pages(self, take) -> bytes:
        out = []
        page = self._page
        while take(self._os, ctypes.byref(page)):
            out.append(ctypes.string_at(page.header, page.header_len))
            out.append(ctypes.string_at(page.body, page.body_len))
        return b"".join(out)

    def close(self) -> None:
        """Free the libraries' state (idempotent)."""
        v, o = self._vorbis, self._ogg
        free = {"stream": lambda: o.ogg_stream_clear(self._os),
                "block": lambda: v.vorbis_block_clear(self._block),
                "dsp": lambda: v.vorbis_dsp_clear(self._dsp),
                "comment": lambda: v.vorbis_comment_clear(self._comment),
                "info": lambda: v.vorbis_info_clear(self._info)}
        while self._live:
            free[self._live.pop()]()
