"""Encoders and sinks: every format to a file, to memory and to a stream.

What a reader gets back is checked with soundfile, and with sox when it is installed
(sox decodes what libsndfile refuses, such as a FLAC stream without a total length).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import soundfile as sf

from dictaphone.containers.encoders import (MAX_WRITE_FRAMES, UNKNOWN_SIZE, FileSink, MemorySink, pcm_bytes,
                                 StreamSink, make_encoder, open_sink, wav_header)
from dictaphone.errors import (BrokenPipeOutputError, InvalidStateError, NotSupportedError,
                               OutputError, WriteError)
from dictaphone.containers.formats import FORMATS

SOX = shutil.which("sox")
# Outside CI a missing sox skips these; under CI=true they run and fail without it.
needs_sox = pytest.mark.skipif(SOX is None and os.environ.get("CI") != "true",
                               reason="sox is not installed (Debian package: sox)")

RATE = 48000
CHANNELS = 2
FRAMES = 12345  # not a multiple of any block size
CHUNKS = [1000, 1, 4096, 2500, 0, 4748]  # how the frames are handed to the encoder
assert sum(CHUNKS) == FRAMES

LOSSLESS = [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"),
            ("flac", "PCM_16"), ("flac", "PCM_24"),
            ("raw", "PCM_16"), ("raw", "PCM_24"), ("raw", "PCM_32"), ("raw", "FLOAT")]
LOSSY = [("ogg", "VORBIS"), ("opus", "OPUS"), ("mp3", "MPEG_LAYER_III")]
#: a file, memory cut into blobs along the way, memory kept in one blob, a pipe
SINKS = ["path", "memory", "one blob", "stream"]


# --------------------------------------------------------------------------- helpers


class PipeLikeStream:
    """A write-only, non-seekable binary stream (like stdout on a pipe) that keeps what
    it is given. Any attempt to seek or tell fails the test."""

    name = "<pipe>"

    def __init__(self):
        self._buf = bytearray()
        self.flushes = 0

    def write(self, data) -> int:
        data = bytes(data)
        self._buf += data
        return len(data)

    def flush(self) -> None:
        self.flushes += 1

    def seekable(self) -> bool:
        return False

    def seek(self, *a):  # pragma: no cover - a failure if ever called
        raise AssertionError("a stream sink must never seek")

    tell = seek

    def getvalue(self) -> bytes:
        return bytes(self._buf)


class FailingStream(PipeLikeStream):
    """Accepts ``ok_bytes`` bytes, then every write raises ``exc``."""

    def __init__(self, exc: BaseException, ok_bytes: int = 0):
        super().__init__()
        self.exc = exc
        self.ok_bytes = ok_bytes

    def write(self, data) -> int:
        data = bytes(data)
        if len(self._buf) + len(data) > self.ok_bytes:
            raise self.exc
        return super().write(data)


def signal_for(subtype: str, n: int = FRAMES, channels: int = CHANNELS, seed: int = 1) -> np.ndarray:
    """Frames in the dtype an encoder of ``subtype`` takes.

    Lossless subtypes get random samples spanning the whole range (so that any byte order
    or packing mistake shows); PCM_24 samples are int32 with the low byte zero, as a
    24-bit capture delivers them. Lossy codecs get a sum of sines at half scale."""
    rng = np.random.default_rng(seed)
    if subtype == "PCM_16":
        return rng.integers(-32768, 32768, (n, channels), dtype=np.int16)
    if subtype == "PCM_24":
        return (rng.integers(-(2 ** 23), 2 ** 23, (n, channels), dtype=np.int32) << 8).astype(np.int32)
    if subtype == "PCM_32":
        return rng.integers(-(2 ** 31), 2 ** 31, (n, channels), dtype=np.int64).astype(np.int32)
    if subtype == "FLOAT":
        return rng.uniform(-1, 1, (n, channels)).astype(np.float32)
    t = np.arange(n) / RATE
    x = 0.25 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t + 1)
    return np.stack([x * (1 + 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def make_output(kind: str, tmp_path, ext: str):
    if kind == "path":
        return tmp_path / f"out{ext}"
    if kind in ("memory", "one blob"):
        return None
    return PipeLikeStream()


def encode(fmt_name, subtype, kind, tmp_path, data, cut_after=(0, 2, 3)):
    """Write ``data`` in CHUNKS, cutting a blob after the chunks listed; close.
    Returns (encoder, blobs, output, the bytes a reader gets)."""
    fmt = FORMATS[fmt_name]
    output = make_output(kind, tmp_path, fmt.extension)
    if kind == "one blob":
        cut_after = ()
    enc = make_encoder(output, fmt, RATE, data.shape[1], subtype)
    assert np.dtype(enc.dtype) == data.dtype
    blobs = []
    pos = 0
    for i, n in enumerate(CHUNKS):
        enc.write(data[pos:pos + n])
        pos += n
        if i in cut_after:
            blobs.append(enc.cut())
    blobs.append(enc.close())
    if kind == "path":
        got = output.read_bytes()
    elif kind in ("memory", "one blob"):
        got = b"".join(b.bytes() for b in blobs)
    else:
        got = output.getvalue()
    return enc, blobs, output, got


def read_back(fmt_name, subtype, data: bytes, channels=CHANNELS) -> np.ndarray:
    """Decode with soundfile into the dtype the encoder took."""
    dtype = {"PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32"}.get(subtype, "float32")
    kw = {}
    if fmt_name == "raw":
        kw = dict(format="RAW", subtype=subtype, samplerate=RATE, channels=channels, endian="LITTLE")
    y, rate = sf.read(io.BytesIO(data), dtype=dtype, always_2d=True, **kw)
    assert rate == RATE
    return y


def sox_decode(data: bytes, in_args: list[str], channels=CHANNELS) -> np.ndarray:
    """Decode with sox into 32-bit little-endian signed integers (full scale 2**31)."""
    p = subprocess.run([SOX, "-V1", *in_args, "-", "-t", "raw", "-e", "signed-integer",
                        "-b", "32", "-L", "-"], input=data, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return np.frombuffer(p.stdout, "<i4").reshape(-1, channels)


def as_int32_full_scale(data: np.ndarray, subtype: str) -> np.ndarray:
    if subtype == "PCM_16":
        return data.astype(np.int32) << 16
    return data.astype(np.int32)


SOX_RAW = {"PCM_16": ["-e", "signed-integer", "-b", "16"],
           "PCM_24": ["-e", "signed-integer", "-b", "24"],
           "PCM_32": ["-e", "signed-integer", "-b", "32"],
           "FLOAT": ["-e", "floating-point", "-b", "32"]}


def best_correlation(x: np.ndarray, y: np.ndarray, max_lag: int = 4096) -> float:
    """The highest normalised cross-correlation of two mono signals within ±max_lag."""
    n = min(len(x), len(y))
    x = x[:n] - x[:n].mean()
    y = y[:n] - y[:n].mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    c = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(y, size)), size)
    c = np.concatenate([c[-max_lag:], c[:max_lag + 1]])
    return float(c.max() / np.sqrt(np.dot(x, x) * np.dot(y, y)))


# --------------------------------------------------------------------------- every format × sink


@pytest.mark.parametrize("kind", SINKS)
@pytest.mark.parametrize("fmt_name, subtype", LOSSLESS + LOSSY)
def test_the_blobs_add_up_to_exactly_what_was_written_out(fmt_name, subtype, kind, tmp_path):
    data = signal_for(subtype)
    enc, blobs, output, got = encode(fmt_name, subtype, kind, tmp_path, data)
    assert enc.frames == FRAMES
    assert all(b.type == FORMATS[fmt_name].mime_type for b in blobs)
    assert sum(b.size for b in blobs) == len(got) == enc.bytes_written
    assert len(got) > 0
    if kind == "path":
        # blobs of a file recording are regions of the file, header patches included
        assert b"".join(b.bytes() for b in blobs) == got
        assert all(b.path == os.fspath(output) for b in blobs)
    elif kind == "stream":
        # the bytes went to the stream; the blobs only know their size
        assert all(b.path is None for b in blobs)
        assert blobs[0].size > 0


# A streamed FLAC (a pipe, or blobs cut along the way) has no total length in STREAMINFO,
# which libsndfile 1.2 refuses to read (AUDIO-LAB.md): those cases are decoded with sox
# instead, below.
@pytest.mark.parametrize("fmt_name, subtype, kind", [
    (f, s, k) for f, s in LOSSLESS for k in SINKS
    if not (f == "flac" and k in ("memory", "stream"))])
def test_lossless_output_reads_back_sample_exact_with_soundfile(fmt_name, subtype, kind, tmp_path):
    data = signal_for(subtype)
    _, _, _, got = encode(fmt_name, subtype, kind, tmp_path, data)
    y = read_back(fmt_name, subtype, got)
    assert y.shape == data.shape
    np.testing.assert_array_equal(y, data)


@needs_sox
@pytest.mark.parametrize("kind", SINKS)
@pytest.mark.parametrize("fmt_name, subtype", LOSSLESS)
def test_lossless_output_decodes_sample_exact_with_sox(fmt_name, subtype, kind, tmp_path):
    data = signal_for(subtype)
    _, _, _, got = encode(fmt_name, subtype, kind, tmp_path, data)
    if fmt_name == "raw":
        in_args = ["-t", "raw", "-r", str(RATE), "-c", str(CHANNELS), "-L", *SOX_RAW[subtype]]
    else:
        in_args = ["-t", fmt_name]
    y = sox_decode(got, in_args)
    assert y.shape == data.shape
    if subtype == "FLOAT":  # sox converts through its 32-bit integer samples
        np.testing.assert_allclose(y / 2.0 ** 31, data, atol=1e-6)
    else:
        np.testing.assert_array_equal(y, as_int32_full_scale(data, subtype))


@needs_sox
@pytest.mark.parametrize("kind", ["memory", "stream"])
def test_a_streamed_flac_is_complete_for_sox_though_its_streaminfo_has_no_total(kind, tmp_path):
    """A FLAC that could not be seeked back into keeps STREAMINFO's total at 0 ("unknown"):
    legal FLAC, which sox (libFLAC) decodes in full but libsndfile 1.2 refuses."""
    data = signal_for("PCM_16")
    _, _, _, got = encode("flac", "PCM_16", kind, tmp_path, data)
    assert got[:4] == b"fLaC"
    # STREAMINFO: 4-byte magic, 4-byte block header, then 10 bytes before the
    # 36-bit total sample count (its low 4 bits of byte 13 and bytes 14..17)
    total = int.from_bytes(got[8 + 13:8 + 18], "big") & ((1 << 36) - 1)
    assert total == 0
    np.testing.assert_array_equal(sox_decode(got, ["-t", "flac"]), as_int32_full_scale(data, "PCM_16"))


def test_a_flac_file_has_its_total_length_in_streaminfo(tmp_path):
    data = signal_for("PCM_16")
    _, _, _, got = encode("flac", "PCM_16", "path", tmp_path, data)
    total = int.from_bytes(got[8 + 13:8 + 18], "big") & ((1 << 36) - 1)
    assert total == FRAMES


@pytest.mark.parametrize("kind", SINKS)
@pytest.mark.parametrize("fmt_name", ["ogg", "opus"])
def test_vorbis_and_opus_keep_the_length_and_the_shape_of_the_signal(fmt_name, kind, tmp_path):
    subtype = FORMATS[fmt_name].default_subtype
    data = signal_for(subtype)
    _, _, _, got = encode(fmt_name, subtype, kind, tmp_path, data)
    y = read_back(fmt_name, subtype, got)
    assert y.shape[1] == CHANNELS
    assert abs(len(y) - FRAMES) <= 4096, "more than codec padding was gained or lost"
    for c in range(CHANNELS):
        assert best_correlation(data[:, c], y[:, c]) > 0.9


@needs_sox
@pytest.mark.parametrize("kind", SINKS)
def test_sox_decodes_vorbis_to_the_right_length(kind, tmp_path):
    data = signal_for("VORBIS")
    _, _, _, got = encode("ogg", "VORBIS", kind, tmp_path, data)
    y = sox_decode(got, ["-t", "ogg"]).astype(np.float64) / 2 ** 31
    assert abs(len(y) - FRAMES) <= 4096
    assert best_correlation(data[:, 0], y[:, 0]) > 0.9


@pytest.mark.parametrize("kind", SINKS)
def test_mp3_output_is_not_empty_and_decodes_to_something(kind, tmp_path):
    data = signal_for("MPEG_LAYER_III")
    _, _, _, got = encode("mp3", "MPEG_LAYER_III", kind, tmp_path, data)
    assert len(got) > 1000
    y = read_back("mp3", "MPEG_LAYER_III", got)
    assert len(y) > 0 and y.shape[1] == CHANNELS
    assert np.abs(y).max() > 0.1  # sound, not silence


# --------------------------------------------------------------------------- WAV headers


def riff_sizes(data: bytes) -> tuple[int, int]:
    """(RIFF size, data chunk size) of a WAV header written by dictaphone."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    pos = 12
    while pos < len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"data":
            return struct.unpack("<I", data[4:8])[0], size
        pos += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


@pytest.mark.parametrize("kind", ["memory", "stream"])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_a_streamed_wav_says_unknown_sizes_and_is_read_to_its_end(kind, subtype, tmp_path):
    data = signal_for(subtype)
    _, _, _, got = encode("wav", subtype, kind, tmp_path, data)
    assert riff_sizes(got) == (UNKNOWN_SIZE, UNKNOWN_SIZE)
    assert sf.info(io.BytesIO(got)).frames == FRAMES
    if subtype == "FLOAT":  # the fact chunk, which holds a frame count, says unknown too
        i = got.index(b"fact")
        assert struct.unpack("<I", got[i + 8:i + 12])[0] == UNKNOWN_SIZE
    if SOX:
        assert sox_decode(got, ["-t", "wav"]).shape == data.shape


@pytest.mark.parametrize("subtype, header_len", [("PCM_16", 80), ("PCM_24", 80),
                                                 ("PCM_32", 80), ("FLOAT", 94)])
def test_a_finished_wav_file_has_exact_sizes_in_its_header(subtype, header_len, tmp_path):
    """A file's header is the canonical one (44 bytes, 58 for float) plus the 36-byte
    JUNK chunk that keeps room for RF64's ds64 chunk, right after WAVE (as ffmpeg's
    -rf64 auto writes it)."""
    data = signal_for(subtype)
    _, _, _, got = encode("wav", subtype, "path", tmp_path, data)
    data_bytes = FRAMES * CHANNELS * {"PCM_16": 2, "PCM_24": 3}.get(subtype, 4)
    assert len(got) == header_len + data_bytes
    assert riff_sizes(got) == (len(got) - 8, data_bytes)
    assert got[12:20] == b"JUNK" + struct.pack("<I", 28) and got[20:48] == bytes(28)
    assert got[header_len - 8:header_len - 4] == b"data"


def test_a_wav_file_is_valid_up_to_the_last_sync_while_still_open(tmp_path):
    path = tmp_path / "live.wav"
    data = signal_for("PCM_16")
    enc = make_encoder(path, FORMATS["wav"], RATE, CHANNELS, "PCM_16")
    try:
        enc.write(data[:5000])
        enc.sync()
        with sf.SoundFile(path) as f:
            assert f.frames == 5000
            np.testing.assert_array_equal(f.read(dtype="int16", always_2d=True), data[:5000])
        enc.write(data[5000:8000])  # written, not synced yet: the header still says 5000
        assert sf.info(path).frames == 5000
        enc.sync()
        assert sf.info(path).frames == 8000
    finally:
        enc.close()
    assert sf.info(path).frames == 8000


def test_a_wav_file_never_synced_is_still_read_to_its_end(tmp_path):
    # as after a SIGKILL in the first second: the header still has its streaming sizes
    path = tmp_path / "killed.wav"
    data = signal_for("PCM_16")
    enc = make_encoder(path, FORMATS["wav"], RATE, CHANNELS, "PCM_16")
    try:
        enc.write(data[:3000])
        y, _ = sf.read(path, dtype="int16", always_2d=True)
        np.testing.assert_array_equal(y, data[:3000])
    finally:
        enc.close()


def test_the_bytes_of_a_streamed_blob_are_not_kept():
    enc = make_encoder(PipeLikeStream(), FORMATS["wav"], RATE, 1)
    enc.write(np.zeros((10, 1), np.int16))
    blob = enc.close()
    assert blob.size == 44 + 20
    with pytest.raises(InvalidStateError):
        blob.bytes()


def test_a_float_wav_file_fact_chunk_follows_the_frames_at_each_sync(tmp_path):
    path = tmp_path / "live.wav"
    enc = make_encoder(path, FORMATS["wav"], RATE, 1, "FLOAT")
    enc.write(np.zeros((300, 1), np.float32))
    enc.sync()
    raw = path.read_bytes()
    i = raw.index(b"fact")
    assert struct.unpack("<I", raw[i + 8:i + 12])[0] == 300
    enc.close()


def test_an_odd_length_pcm_24_mono_wav_gets_a_pad_byte(tmp_path):
    path = tmp_path / "odd.wav"
    data = signal_for("PCM_24", n=3, channels=1)
    enc = make_encoder(path, FORMATS["wav"], RATE, 1, "PCM_24")
    first = enc.cut()
    enc.write(data)
    last = enc.close()
    raw = path.read_bytes()
    assert len(raw) == 80 + 9 + 1
    assert raw[-1:] == b"\0"
    assert riff_sizes(raw) == (4 + 36 + 24 + 8 + 9 + 1, 9)  # RIFF counts the pad, data does not
    assert first.bytes() + last.bytes() == raw
    y, _ = sf.read(path, dtype="int32", always_2d=True)
    np.testing.assert_array_equal(y, data)


def test_an_even_length_wav_gets_no_pad_byte(tmp_path):
    path = tmp_path / "even.wav"
    enc = make_encoder(path, FORMATS["wav"], RATE, 1, "PCM_24")
    enc.write(signal_for("PCM_24", n=4, channels=1))
    enc.close()
    assert len(path.read_bytes()) == 80 + 12


def test_raw_output_has_no_header_and_no_pad(tmp_path):
    path = tmp_path / "x.raw"
    data = signal_for("PCM_24", n=3, channels=1)
    enc = make_encoder(path, FORMATS["raw"], RATE, 1, "PCM_24")
    enc.write(data)
    enc.close()
    raw = path.read_bytes()
    assert len(raw) == 9
    # little-endian, the top three bytes of each int32 sample
    assert raw == b"".join(int(v).to_bytes(4, "little", signed=True)[1:] for v in data[:, 0])


def test_wav_header_length_does_not_depend_on_the_data_size():
    for subtype in ["PCM_16", "FLOAT"]:
        for rf64 in (False, True):
            lengths = {len(wav_header(48000, 2, subtype, n, rf64))
                       for n in (None, 0, 1, 12345, 2 ** 32 - 100, 2 ** 33)}
            assert len(lengths) == 1


def test_a_huge_wav_header_saturates_its_sizes_instead_of_wrapping():
    h = wav_header(48000, 2, "PCM_16", 2 ** 33)
    assert struct.unpack("<I", h[4:8])[0] == UNKNOWN_SIZE
    assert struct.unpack("<I", h[40:44])[0] == UNKNOWN_SIZE


# --------------------------------------------------------------------------- outputs


def test_an_existing_output_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "memo.wav"
    path.write_bytes(b"precious")
    with pytest.raises(OutputError, match="exists"):
        make_encoder(path, FORMATS["wav"], RATE, 1)
    assert path.read_bytes() == b"precious"


@pytest.mark.parametrize("fmt_name", ["wav", "flac"])
def test_force_overwrites_an_existing_output_file(fmt_name, tmp_path):
    path = tmp_path / f"memo{FORMATS[fmt_name].extension}"
    path.write_bytes(b"old" * 10000)
    enc = make_encoder(path, FORMATS[fmt_name], RATE, 1, force=True)
    enc.write(signal_for("PCM_16", n=100, channels=1))
    enc.close()
    y, _ = sf.read(path, dtype="int16", always_2d=True)
    np.testing.assert_array_equal(y, signal_for("PCM_16", n=100, channels=1))


@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_a_missing_directory_is_an_output_error_and_creates_nothing(fmt_name, tmp_path):
    path = tmp_path / "no" / "such" / f"memo{FORMATS[fmt_name].extension}"
    with pytest.raises(OutputError, match="directory"):
        make_encoder(path, FORMATS[fmt_name], 48000, 1)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_as_output_is_an_output_error(tmp_path):
    with pytest.raises(OutputError):
        make_encoder(tmp_path, FORMATS["wav"], RATE, 1, force=True)


def test_a_format_that_cannot_take_the_rate_fails_before_creating_the_file(tmp_path):
    path = tmp_path / "x.opus"
    with pytest.raises(NotSupportedError):
        make_encoder(path, FORMATS["opus"], 44100, 1)
    assert not path.exists()


def test_a_text_stream_is_written_through_its_binary_buffer():
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, write_through=True)
    sink = open_sink(text)
    assert isinstance(sink, StreamSink) and sink.stream is raw


def test_open_sink_picks_the_sink_for_each_kind_of_output(tmp_path):
    assert isinstance(open_sink(None), MemorySink)
    assert isinstance(open_sink(PipeLikeStream()), StreamSink)
    sink = open_sink(tmp_path / "x.wav")
    assert isinstance(sink, FileSink)
    sink.close()
    with pytest.raises(TypeError):
        open_sink(42)


@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_close_twice_returns_an_empty_second_blob(fmt_name, tmp_path):
    fmt = FORMATS[fmt_name]
    enc = make_encoder(tmp_path / f"x{fmt.extension}", fmt, 48000, 1)
    enc.write(signal_for(fmt.default_subtype, n=4800, channels=1))
    first = enc.close()
    assert first.size == enc.bytes_written > 0
    assert enc.close().size == 0


@pytest.mark.parametrize("fmt_name", ["wav", "flac", "ogg"])
def test_abort_removes_the_output_file(fmt_name, tmp_path):
    fmt = FORMATS[fmt_name]
    path = tmp_path / f"x{fmt.extension}"
    enc = make_encoder(path, fmt, 48000, 1)
    assert path.exists()
    enc.abort()
    assert not path.exists()


# --------------------------------------------------------------------------- failing outputs


@pytest.mark.parametrize("ok_bytes", [0, 3000])
@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_a_reader_that_went_away_is_a_broken_pipe_error_without_stderr_noise(
        fmt_name, ok_bytes, capfd):
    fmt = FORMATS[fmt_name]
    stream = FailingStream(BrokenPipeError(errno.EPIPE, "Broken pipe"), ok_bytes)
    data = signal_for(fmt.default_subtype, n=48000, channels=1)
    with pytest.raises(BrokenPipeOutputError):
        enc = make_encoder(stream, fmt, 48000, 1)
        try:
            for i in range(0, len(data), 4800):
                enc.write(data[i:i + 4800])
                enc.cut()
        finally:
            enc.close()
    out, err = capfd.readouterr()
    assert "Exception ignored" not in err and "Traceback" not in err
    assert err == ""


@pytest.mark.parametrize("fmt_name", ["wav", "flac"])
def test_a_real_pipe_whose_reader_closed_is_a_broken_pipe_error(fmt_name, capfd):
    r, w = os.pipe()
    os.close(r)
    with open(w, "wb", buffering=0) as stream:
        with pytest.raises(BrokenPipeOutputError):
            enc = make_encoder(stream, FORMATS[fmt_name], 48000, 1)
            enc.write(np.zeros((48000, 1), np.int16))
            enc.close()
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("fmt_name", ["wav", "flac", "ogg"])
def test_a_real_pipe_carries_a_complete_recording(fmt_name):
    fmt = FORMATS[fmt_name]
    subtype = fmt.default_subtype
    data = signal_for(subtype, n=48000, channels=1)
    r, w = os.pipe()
    received = []

    def read_all():
        with os.fdopen(r, "rb") as f:
            received.append(f.read())

    reader = threading.Thread(target=read_all)
    reader.start()
    with open(w, "wb") as stream:
        enc = make_encoder(stream, fmt, 48000, 1)
        for i in range(0, len(data), 1000):
            enc.write(data[i:i + 1000])
        last = enc.close()
    reader.join(10)
    got = received[0]
    assert len(got) == enc.bytes_written == last.size > 0
    if fmt_name == "wav":
        np.testing.assert_array_equal(sf.read(io.BytesIO(got), dtype="int16")[0], data[:, 0])
    elif fmt_name == "flac" and SOX:
        np.testing.assert_array_equal(sox_decode(got, ["-t", "flac"], 1), as_int32_full_scale(data, subtype))
    elif fmt_name == "ogg":
        assert abs(sf.info(io.BytesIO(got)).frames - 48000) <= 4096


@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_a_full_output_is_a_write_error_not_a_broken_pipe(fmt_name, capfd):
    fmt = FORMATS[fmt_name]
    stream = FailingStream(OSError(errno.ENOSPC, "No space left on device"), 2000)
    data = signal_for(fmt.default_subtype, n=48000, channels=1)
    with pytest.raises(WriteError, match="disk full") as info:
        enc = make_encoder(stream, fmt, 48000, 1)
        try:
            for i in range(0, len(data), 4800):
                enc.write(data[i:i + 4800])
        finally:
            enc.close()
    assert not isinstance(info.value, BrokenPipeOutputError)
    assert capfd.readouterr().err == ""


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


@needs_dev_full
def test_a_full_disk_when_the_wav_header_is_written_is_a_write_error_and_removes_the_file(tmp_path, capfd):
    # A link to /dev/full: every write fails with ENOSPC. The device is written through
    # (never replaced), and make_encoder removes only what it created on failure: neither
    # the link (it was there before) nor /dev/full itself (issue #20).
    # (a stream's header goes out with the first audio: the first write is the one that fails)
    link = tmp_path / "full.wav"
    link.symlink_to("/dev/full")
    with pytest.raises(WriteError, match="disk full"):
        enc = make_encoder(link, FORMATS["wav"], 48000, 1, force=True)
        try:
            enc.write(np.zeros((4800, 1), np.int16))
        finally:
            enc.abort()
    assert os.path.islink(link) and os.readlink(link) == "/dev/full"
    assert os.path.exists("/dev/full")
    # A new file it made itself is removed.
    fresh = tmp_path / "fresh.wav"
    enc = make_encoder(fresh, FORMATS["wav"], 48000, 1)
    enc.abort()
    assert not os.path.lexists(fresh)
    assert capfd.readouterr().err == ""


@needs_dev_full
def test_a_full_disk_under_libsndfile_is_a_write_error_on_write_and_on_close(tmp_path):
    # libFLAC writes its header with the first audio, so the failure shows on write();
    # it comes out of libsndfile's virtual I/O as a WriteError, never as stderr noise.
    # In a child process with bounded memory: a close that tried to read /dev/full to
    # its end (a "repair" of the file) once filled the machine's memory.
    link = tmp_path / "full.flac"
    link.symlink_to("/dev/full")
    code = textwrap.dedent(f"""
        import numpy as np
        from dictaphone.containers.encoders import make_encoder
        from dictaphone.errors import WriteError
        from dictaphone.containers.formats import FORMATS
        enc = make_encoder({str(link)!r}, FORMATS["flac"], 48000, 1, force=True)
        for step in ("write", "close"):
            try:
                enc.write(np.zeros((48000, 1), np.int16)) if step == "write" else enc.close()
            except WriteError as e:
                print(step, "WriteError", e)
        print("closed", enc.closed)
        import resource
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB
    """)

    def limit_memory():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, preexec_fn=limit_memory)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert lines[0].startswith("write WriteError") and "disk full" in lines[0]
    assert lines[1].startswith("close WriteError") and "disk full" in lines[1]
    assert lines[2] == "closed True"
    assert int(lines[3]) < 1_000_000, "closing used more than 1 GB of memory"
    assert p.stderr == ""
    assert os.path.exists("/dev/full")


# --------------------------------------------------------------------------- big writes


def test_no_encoder_is_handed_more_than_a_safe_block_at_once():
    assert 0 < MAX_WRITE_FRAMES <= 1 << 20


def test_a_3_million_frame_vorbis_write_does_not_crash(tmp_path):
    # libvorbis crashes (SIGSEGV) on single writes of about 2 million frames
    # (AUDIO-LAB.md); the encoder splits writes. A crash must fail this test, not kill
    # pytest, so the write runs in a child process.
    path = tmp_path / "big.ogg"
    code = textwrap.dedent(f"""
        import numpy as np
        from dictaphone.containers.encoders import make_encoder
        from dictaphone.containers.formats import FORMATS
        t = np.arange(3_000_000, dtype=np.float32) / 48000
        x = (0.3 * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32)
        enc = make_encoder({str(path)!r}, FORMATS["ogg"], 48000, 1)
        enc.write(x)
        enc.close()
        print(enc.frames)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr[-2000:]}"
    assert p.stdout.split() == ["3000000"]
    assert abs(sf.info(path).frames - 3_000_000) <= 4096


# --------------------------------------------------------------------------- whole files
#
# What the recorder says it wrote (encoder.frames) against what independent readers
# count: soundfile (libsndfile: libFLAC, libvorbis, libopus, mpg123), ffmpeg (its own
# decoders), and sox where it has the format (no MP3 or Opus in Debian's sox).

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None and os.environ.get("CI") != "true",
                                  reason="ffmpeg is not installed (Debian package: ffmpeg)")
ALL = [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_24"), ("ogg", "VORBIS"),
       ("opus", "OPUS"), ("mp3", "MPEG_LAYER_III"), ("raw", "PCM_32")]
#: one blob (memory, no timeslice), blobs cut along the way and joined, a file, a pipe
WHOLE_KINDS = ["one blob", "blobs", "path", "stream"]
#: MP3 frame (samples) at 48 kHz, MPEG-1
MP3_FRAME = 1152
RAW_FF = {"PCM_16": "s16le", "PCM_24": "s24le", "PCM_32": "s32le", "FLOAT": "f32le"}


def encode_whole(fmt_name, subtype, kind, tmp_path, data):
    return encode(fmt_name, subtype, "memory" if kind == "blobs" else kind, tmp_path, data)


def ffmpeg_frames(data: bytes, fmt_name: str, subtype: str, tmp_path, channels=CHANNELS) -> int:
    """Frames ffmpeg decodes from the bytes, saved to a file (from a pipe ffmpeg cannot
    seek to the end, so it would not apply an MP3's end padding)."""
    fmt_in = (["-f", RAW_FF[subtype], "-ar", str(RATE), "-ac", str(channels)]
              if fmt_name == "raw" else [])
    path = tmp_path / f"for-ffmpeg.{fmt_name}"
    path.write_bytes(data)
    p = subprocess.run([FFMPEG, "-v", "error", *fmt_in, "-i", str(path), "-f", "f32le",
                        "-ac", str(channels), "pipe:1"], capture_output=True, timeout=120)
    assert p.returncode == 0 and not p.stderr, p.stderr.decode(errors="replace")
    return len(p.stdout) // (4 * channels)


def sox_frames(data: bytes, fmt_name: str, subtype: str, channels=CHANNELS) -> int:
    in_args = (["-t", "raw", "-r", str(RATE), "-c", str(channels), *SOX_RAW[subtype], "-L"]
               if fmt_name == "raw" else ["-t", {"ogg": "ogg"}.get(fmt_name, fmt_name)])
    return len(sox_decode(data, in_args, channels))


def soundfile_frames(data: bytes, fmt_name: str, subtype: str) -> int:
    y = read_back(fmt_name, subtype, data)
    return len(y)


def flac_streaminfo(data: bytes) -> tuple[int, bytes]:
    """(total samples, MD5) of a FLAC's STREAMINFO."""
    total = int.from_bytes(data[8 + 13:8 + 18], "big") & ((1 << 36) - 1)
    return total, data[8 + 18:8 + 34]


@pytest.mark.parametrize("kind", WHOLE_KINDS)
@pytest.mark.parametrize("fmt_name, subtype", ALL)
def test_every_format_reads_back_whole_with_two_readers(fmt_name, subtype, kind, tmp_path):
    """The recorder's frame count, soundfile's and ffmpeg's (and sox's) agree: exactly,
    except where a format streamed without a length header cannot say it (a streamed
    FLAC's total, checked by the next test; a streamed MP3, within three MP3 frames),
    and ffmpeg 5.1's Vorbis decoder, which trims the end of short streams inexactly
    (measured: -128 or +928 frames where libvorbis, sox and soundfile are exact)."""
    if FFMPEG is None:
        pytest.fail("ffmpeg is needed") if os.environ.get("CI") == "true" else pytest.skip("no ffmpeg")
    data = signal_for(subtype)
    enc, _, _, got = encode_whole(fmt_name, subtype, kind, tmp_path, data)
    assert enc.frames == FRAMES
    streamed = kind in ("blobs", "stream")
    counts = {"ffmpeg": ffmpeg_frames(got, fmt_name, subtype, tmp_path)}
    if not (fmt_name == "flac" and streamed):
        counts["soundfile"] = soundfile_frames(got, fmt_name, subtype)
    if SOX and fmt_name not in ("mp3", "opus"):
        counts["sox"] = sox_frames(got, fmt_name, subtype)
    if fmt_name == "mp3" and streamed:
        # constant bitrate and no Info tag: every reader counts the whole frames, which
        # include LAME's reserved first frame, its delay and its padding
        assert len(set(counts.values())) == 1, counts
        assert FRAMES < counts["ffmpeg"] <= FRAMES + 3 * MP3_FRAME
    else:
        if fmt_name == "ogg":
            assert abs(counts.pop("ffmpeg") - FRAMES) <= 2048, counts
        assert set(counts.values()) == {FRAMES}, counts


@pytest.mark.parametrize("kind", ["one blob", "path"])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_a_whole_flac_carries_its_total_length_and_the_md5_of_its_samples(subtype, kind, tmp_path):
    import hashlib

    data = signal_for(subtype)
    _, blobs, _, got = encode_whole("flac", subtype, kind, tmp_path, data)
    total, md5 = flac_streaminfo(got)
    assert total == FRAMES
    # FLAC's MD5 is of the samples, interleaved, little-endian, at their own width
    assert md5 == hashlib.md5(pcm_bytes(data, subtype)).digest()
    if kind == "one blob":
        assert len(blobs) == 1
    np.testing.assert_array_equal(read_back("flac", subtype, got), data)


@needs_sox
@pytest.mark.parametrize("kind", ["blobs", "stream"])
def test_a_streamed_flac_says_unknown_length_and_recover_fills_it_in(kind, tmp_path):
    """Blobs cut along the way (or a pipe) cannot carry the total: STREAMINFO says 0
    ("unknown", legal FLAC) and no MD5; sox and ffmpeg read it whole, libsndfile does
    not. Saved to a file, `recover` fills in the length from the last frame."""
    from dictaphone.containers.recover import recover

    data = signal_for("PCM_16")
    _, _, _, got = encode_whole("flac", "PCM_16", kind, tmp_path, data)
    assert flac_streaminfo(got) == (0, bytes(16))
    assert len(sox_decode(got, ["-t", "flac"])) == FRAMES
    saved = tmp_path / "saved.flac"
    saved.write_bytes(got)
    rep = recover(str(saved))
    assert rep.changed and rep.frames == FRAMES
    y, _ = sf.read(saved, dtype="int16", always_2d=True)
    np.testing.assert_array_equal(y, data)


@pytest.mark.parametrize("kind", ["one blob", "path"])
def test_a_whole_mp3_has_a_lame_info_tag_with_its_exact_length(kind, tmp_path):
    data = signal_for("MPEG_LAYER_III")
    _, _, _, got = encode_whole("mp3", "MPEG_LAYER_III", kind, tmp_path, data)
    side = 32  # MPEG-1 stereo side information
    assert got[4 + side:8 + side] in (b"Xing", b"Info")
    assert got[4 + side + 120:4 + side + 124] == b"LAME"
    y = read_back("mp3", "MPEG_LAYER_III", got)
    assert len(y) == FRAMES
    assert best_correlation(data[:, 0], y[:, 0]) > 0.9


@pytest.mark.parametrize("kind", ["one blob", "blobs", "path", "stream"])
def test_an_ogg_ends_with_an_end_of_stream_page_whose_granule_is_the_length(kind, tmp_path):
    data = signal_for("VORBIS")
    _, _, _, got = encode_whole("ogg", "VORBIS", kind, tmp_path, data)
    last = got.rindex(b"OggS")
    assert got[last + 5] & 4, "the last page is marked end-of-stream"
    assert struct.unpack("<q", got[last + 6:last + 14])[0] == FRAMES


def test_the_wav_of_one_blob_has_exact_sizes_and_blobs_cut_early_say_unknown(tmp_path):
    data = signal_for("PCM_16")
    _, _, _, one = encode_whole("wav", "PCM_16", "one blob", tmp_path, data)
    assert riff_sizes(one) == (len(one) - 8, FRAMES * CHANNELS * 2)
    _, _, _, joined = encode_whole("wav", "PCM_16", "blobs", tmp_path, data)
    assert riff_sizes(joined) == (UNKNOWN_SIZE, UNKNOWN_SIZE)


def test_an_ogg_vorbis_file_of_digital_silence_gets_a_page_at_every_sync(tmp_path):
    """libvorbis codes silence to packets of a few bytes; without a page ended at each
    sync they would wait for 255 of them (5 s) before reaching the file."""
    from dictaphone.containers.encoders import VorbisEncoder

    path = tmp_path / "silence.ogg"
    enc = make_encoder(path, FORMATS["ogg"], RATE, 1)
    assert isinstance(enc, VorbisEncoder)
    try:
        for second in range(1, 4):
            enc.write(np.zeros((RATE, 1), np.float32))
            enc.sync()
            copy = tmp_path / "copy.ogg"
            copy.write_bytes(path.read_bytes())
            # what a reader gets from the file as it stands: all but the encoder's look-ahead
            assert len(sf.read(copy)[0]) >= second * RATE - RATE // 10
    finally:
        enc.close()
    assert sf.info(path).frames == 3 * RATE


def test_libsndfile_writes_vorbis_when_asked_to(tmp_path, monkeypatch):
    """DICTAPHONE_SNDFILE_VORBIS=1 (or libvorbisenc missing) falls back to libsndfile."""
    from dictaphone.containers.encoders import SndfileEncoder

    monkeypatch.setenv("DICTAPHONE_SNDFILE_VORBIS", "1")
    enc = make_encoder(tmp_path / "x.ogg", FORMATS["ogg"], RATE, 1)
    assert isinstance(enc, SndfileEncoder)
    enc.write(signal_for("VORBIS", n=RATE, channels=1))
    enc.close()
    assert sf.info(tmp_path / "x.ogg").frames == RATE


def test_memory_keeps_rewrites_of_what_is_not_cut_yet_and_drops_those_of_blobs_gone_out():
    sink = MemorySink()
    sink.append(b"header--")
    sink.append(b"audio1")
    sink.patch(b"HEAD", 0)  # not cut yet: a header fixed in place
    first = sink.blob("x", 0, sink.size)
    assert first.bytes() == b"HEADer--audio1"
    sink.patch(b"EDIT", 2)  # inside the blob already handed out: dropped
    sink.append(b"audio2")
    sink.seek(12)  # spans the cut: only the part after it lands
    sink.write(b"XXYY")
    sink.seek(0, 2)
    sink.write(b"!")
    second = sink.blob("x", 14, sink.size)
    assert first.bytes() == b"HEADer--audio1"
    assert second.bytes() == b"YYdio2!"
    assert sink.size == 21


@pytest.mark.parametrize("fmt_name, subtype", [("flac", "PCM_16"), ("mp3", "MPEG_LAYER_III")])
def test_a_flac_or_mp3_file_says_its_length_at_each_sync_while_still_open(fmt_name, subtype, tmp_path):
    """As a WAV's header: STREAMINFO's total (FLAC) or the Info tag (MP3) is set at each
    sync to what the file holds, so a reader of the file as it stands (after a kill)
    gets all of it but what the codec still buffers; close writes the final values."""
    path = tmp_path / f"live{FORMATS[fmt_name].extension}"
    data = signal_for(subtype, n=RATE * 3, channels=1)
    enc = make_encoder(path, FORMATS[fmt_name], RATE, 1, subtype)
    try:
        for second in range(1, 4):
            enc.write(data[(second - 1) * RATE:second * RATE])
            enc.sync()
            copy = tmp_path / f"copy{FORMATS[fmt_name].extension}"
            copy.write_bytes(path.read_bytes())
            n = sf.info(copy).frames
            assert second * RATE - RATE // 4 <= n <= second * RATE
            assert len(sf.read(copy)[0]) == n
    finally:
        enc.close()
    assert sf.info(path).frames == 3 * RATE
    if fmt_name == "flac":
        np.testing.assert_array_equal(sf.read(path, dtype="int16", always_2d=True)[0], data)
