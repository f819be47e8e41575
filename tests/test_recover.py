"""`recover` and the headers it writes, format by format, on files left by a real
SIGKILL (a child process that encodes, syncs as the recorder does, and kills itself)
and on hand-made damage; RF64 on sparse files, so nothing fills the disk.

Each result is read back by two independent readers: soundfile (libsndfile) and ffmpeg
or sox.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from dictaphone.containers.encoders import DS64_SIZE, UNKNOWN_SIZE, make_encoder, wav_header
from dictaphone.containers.formats import FORMATS
from dictaphone.containers.recover import LAME_DELAY, DECODER_DELAY, ogg_crc, recover

RATE = 48000
FFMPEG = shutil.which("ffmpeg")
SOX = shutil.which("sox")
CI = os.environ.get("CI") == "true"
needs_tools = pytest.mark.skipif((FFMPEG is None or SOX is None) and not CI,
                                 reason="ffmpeg and sox are needed (Debian: ffmpeg, sox)")


def ffmpeg_frames(path) -> int:
    p = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1",
                        "pipe:1"], capture_output=True, timeout=120)
    assert p.returncode == 0 and not p.stderr, p.stderr.decode(errors="replace")
    return len(p.stdout) // 4


def soxi_frames(path) -> int:
    p = subprocess.run([SOX, "--i", "-s", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return int(p.stdout)


def ffprobe_frames(path) -> int:
    """The length ffprobe takes from the header alone."""
    p = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=duration_ts",
                        "-of", "csv=p=0", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return int(p.stdout)


def tone(n: int, rate: int = RATE) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t)))[:, None].astype(np.float32)


def killed_recording(tmp_path, fmt: str, seconds: float, quiet: bool = False) -> tuple:
    """A child encodes ``seconds`` of a tone (or digital silence) to a file in 0.25 s
    writes, syncing once a second as the recorder's writer does, reports how many frames
    it wrote, and SIGKILLs itself in the middle of the next write. Returns (path, frames
    written before the kill)."""
    path = tmp_path / f"killed.{FORMATS[fmt].extension.lstrip('.')}"
    code = textwrap.dedent(f"""
        import os, signal, sys, numpy as np
        from dictaphone.containers.encoders import make_encoder
        from dictaphone.containers.formats import FORMATS
        rate, quarter = {RATE}, {RATE} // 4
        enc = make_encoder({str(path)!r}, FORMATS[{fmt!r}], rate, 1)
        t = np.arange(int({seconds} * rate)) / rate
        x = ({0.0 if quiet else 0.3} * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32)
        for i in range(0, len(x), quarter):
            enc.write(x[i:i + quarter])
            if (i // quarter) % 4 == 3:
                enc.sync(durable=True)
        print(enc.frames, flush=True)
        enc.write(x[:quarter // 2])  # some more in flight
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == -9, p.stderr
    return path, int(p.stdout)


# ------------------------------------------------------------------------------ WAV


def test_recover_of_a_truncated_wav_reports_what_its_header_said_and_writes_what_it_reports(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, np.zeros((48000, 1), np.int16), RATE, subtype="PCM_16")
    os.truncate(path, 30001)  # 44-byte header, 14978 frames and one byte of the next
    rep = recover(str(path))
    assert rep.frames_before == 48000  # what the header said, not what the file holds
    assert rep.frames == 14978 == sf.info(path).frames
    assert "said 48000 frames" in rep.describe() and "holds 14978 frames" in rep.describe()
    assert not recover(str(path)).changed


def test_recover_leaves_alone_a_wav_whose_data_is_followed_by_other_chunks(tmp_path):
    """A cue or LIST chunk after the audio is not audio: the data size was right."""
    path = tmp_path / "tagged.wav"
    enc = make_encoder(path, FORMATS["wav"], RATE, 1, "PCM_16")
    enc.write(np.arange(1001, dtype=np.int16)[:, None])
    enc.close()
    with open(path, "ab") as f:
        f.write(b"LIST" + struct.pack("<I", 12) + b"INFOICMT" + struct.pack("<I", 0))
    raw = path.read_bytes()
    raw = raw[:4] + struct.pack("<I", len(raw) - 8) + raw[8:]
    path.write_bytes(raw)
    rep = recover(str(path))
    assert not rep.changed and rep.frames == 1001
    assert path.read_bytes() == raw


# ------------------------------------------------------------------------------ RF64


def test_a_wav_header_turns_into_rf64_past_4_gib_in_the_room_its_junk_chunk_kept():
    small = wav_header(RATE, 2, "PCM_24", 1000, rf64=True)
    data_bytes = 2 ** 32  # 4 GiB of audio: the RIFF size no longer fits
    big = wav_header(RATE, 2, "PCM_24", data_bytes, rf64=True)
    assert len(small) == len(big) == 80
    assert small[:4] == b"RIFF" and small[12:16] == b"JUNK"
    assert big[:4] == b"RF64" and struct.unpack("<I", big[4:8])[0] == UNKNOWN_SIZE
    assert big[12:16] == b"ds64" and struct.unpack("<I", big[16:20])[0] == DS64_SIZE
    riff, data, frames, table = struct.unpack("<QQQI", big[20:48])
    assert (riff, data, frames, table) == (len(big) - 8 + data_bytes, data_bytes, data_bytes // 6, 0)
    assert big[-8:] == b"data" + struct.pack("<I", UNKNOWN_SIZE)
    assert big[48:72] == small[48:72]  # the same fmt chunk, in the same place
    # just under the limit it is still a plain RIFF with exact sizes
    edge = UNKNOWN_SIZE - (80 - 8)
    assert wav_header(RATE, 2, "PCM_24", edge - edge % 6, rf64=True)[:4] == b"RIFF"


@needs_tools
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_soundfile_sox_and_ffmpeg_read_a_small_rf64_file_written_with_this_header(subtype, tmp_path):
    """The ds64 layout is the one readers parse: a real (small) RF64 file, its header
    made by wav_header's RF64 branch with the true small sizes put in."""
    data = tone(4321)
    frames_bytes = data.astype("<f4").tobytes() if subtype == "FLOAT" else \
        (data * 32767).astype("<i2").tobytes()
    h = bytearray(wav_header(RATE, 1, subtype, 2 ** 33, rf64=True))
    assert h[:4] == b"RF64"
    h[20:44] = struct.pack("<QQQ", len(h) - 8 + len(frames_bytes), len(frames_bytes), 4321)
    path = tmp_path / "small-rf64.wav"
    path.write_bytes(bytes(h) + frames_bytes)
    assert sf.info(path).frames == 4321 and len(sf.read(path)[0]) == 4321
    assert soxi_frames(path) == 4321
    assert ffmpeg_frames(path) == 4321


@needs_tools
def test_a_wav_file_that_grows_past_4_gib_switches_to_rf64_and_readers_see_all_of_it(tmp_path):
    """A sparse file stands for the first 4 GiB (no disk is filled): the writer goes on
    from there, and its next sync writes the RF64 header."""
    path = tmp_path / "long.wav"
    enc = make_encoder(path, FORMATS["wav"], RATE, 2, "PCM_24")
    enc.write(np.zeros((10, 2), np.int32))
    enc.sync()
    assert path.read_bytes()[:4] == b"RIFF"
    hole = (2 ** 32 // 6 + 1000) * 6  # whole frames of 6 bytes, past 4 GiB
    sink = enc.sink
    os.ftruncate(sink.fd, enc.header_len + hole)
    sink.size = sink._pos = enc.header_len + hole
    enc.write(np.ones((500, 2), np.int32) << 8)
    enc.close()
    frames = hole // 6 + 500
    with open(path, "rb") as f:
        head = f.read(80)
    assert head[:4] == b"RF64" and head[12:16] == b"ds64"
    assert sf.info(path).frames == frames
    assert ffprobe_frames(path) == frames  # (sox would read the whole 4 GiB)
    with sf.SoundFile(path) as f:  # the last frames are where the header says
        f.seek(frames - 500)
        assert (f.read(dtype="int32") == 1 << 8).all()
    assert not recover(str(path)).changed


def test_recover_turns_a_killed_wav_past_4_gib_into_rf64(tmp_path):
    """Killed after passing 4 GiB but before the header caught up: the header is RIFF
    with stale sizes, the JUNK chunk is still there; recover makes it RF64."""
    path = tmp_path / "killed-long.wav"
    enc = make_encoder(path, FORMATS["wav"], RATE, 1, "PCM_16")
    enc.write(np.zeros((100, 1), np.int16))
    enc.sync()
    os.ftruncate(enc.sink.fd, enc.header_len + 2 ** 32 + 2 * 777 + 1)  # and a torn frame
    os.close(enc.sink.fd)
    enc.sink.fd = -1
    rep = recover(str(path))
    frames = (2 ** 32 + 2 * 777) // 2
    assert rep.changed and rep.kind == "rf64" and rep.frames_before == 100 and rep.frames == frames
    assert sf.info(path).frames == frames
    again = recover(str(path))
    assert not again.changed and again.frames == frames


# ------------------------------------------------------------------------------ MP3


@needs_tools
def test_a_killed_mp3_is_cut_after_its_last_frame_and_given_an_exact_length_header(tmp_path):
    path, written = killed_recording(tmp_path, "mp3", 3.0)
    # before any repair: the Info tag of the last sync (once a second) says its length
    before = sf.info(path).frames
    assert written - 1.1 * RATE <= before <= written
    assert ffmpeg_frames(path) >= before  # (ffmpeg decodes every frame it finds)
    rep = recover(str(path))
    assert rep.changed and rep.kind == "mp3"
    # the decoders agree with the header recover wrote, and almost nothing is lost
    assert sf.info(path).frames == rep.frames == ffmpeg_frames(path) == len(sf.read(path)[0])
    assert written - 0.1 * RATE <= rep.frames <= written + 0.25 * RATE
    frame = 1152
    assert (rep.frames + LAME_DELAY + DECODER_DELAY) % frame == 0
    y, _ = sf.read(path, dtype="float32")
    ref = tone(len(y))[:, 0]
    assert np.abs(y[RATE // 2:RATE]).max() > 0.2  # sound, where sound was written
    assert not recover(str(path)).changed


def test_an_mp3_cut_in_the_middle_of_a_frame_loses_only_that_frame(tmp_path):
    path = tmp_path / "whole.mp3"
    enc = make_encoder(path, FORMATS["mp3"], RATE, 1)
    enc.write(tone(RATE * 2))
    enc.close()
    whole = sf.info(path).frames
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) - 100])
    rep = recover(str(path))
    assert rep.changed and any("torn" in n for n in rep.notes)
    assert whole - 2 * 1152 <= sf.info(path).frames == rep.frames <= whole


# ------------------------------------------------------------------------------ Ogg


@needs_tools
@pytest.mark.parametrize("quiet", [False, True], ids=["tone", "digital silence"])
@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_a_killed_ogg_is_cut_after_its_last_page_and_ends_its_stream(fmt, quiet, tmp_path):
    """Digital silence is the hard case for Vorbis: its packets are a few bytes, and
    libsndfile's writer would keep 5 s of them on one unwritten page."""
    path, written = killed_recording(tmp_path, fmt, 3.0, quiet=quiet)
    rep = recover(str(path))
    raw = path.read_bytes()
    last = raw.rindex(b"OggS")
    assert raw[last + 5] & 4, "the last page ends the stream"
    assert struct.unpack("<I", raw[last + 22:last + 26])[0] == ogg_crc(raw[last:])
    n = len(sf.read(path)[0])
    assert n == rep.frames
    assert abs(ffmpeg_frames(path) - n) <= 2048
    if fmt == "ogg":
        assert soxi_frames(path) == n
    # all but the last second at most (measured: Opus 0.53 s, its pages flushed every
    # 0.5 s; Vorbis 0.05 s, a page ended at every sync)
    assert written - 1.0 * RATE <= n <= written
    assert not recover(str(path)).changed


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_an_ogg_with_a_torn_last_page_loses_only_that_page(fmt, tmp_path):
    path = tmp_path / f"x.{fmt}"
    enc = make_encoder(path, FORMATS[fmt], RATE, 1)
    for i in range(8):
        enc.write(tone(RATE // 2))
    enc.close()
    raw = path.read_bytes()
    last = raw.rindex(b"OggS")
    path.write_bytes(raw[:last + 30])  # the EOS page torn
    rep = recover(str(path))
    assert rep.changed and any("torn" in n for n in rep.notes)
    n = len(sf.read(path)[0])
    assert n == rep.frames and 2 * RATE < n < 4 * RATE


def test_recover_takes_the_name_of_a_clip_whose_recorder_was_killed(tmp_path):
    # A killed `record --name meeting` leaves a clip the user knows by its name only;
    # `recover meeting` said "meeting: no such file".
    import cliutil

    library = tmp_path / "library"
    library.mkdir()
    path, written = killed_recording(library, "wav", 2.3)  # library/killed.wav
    assert sf.info(path).frames < written  # the header lags behind the audio
    env = dict(cliutil.no_device_env(tmp_path), DICTAPHONE_HOME=str(library))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cliutil.run("recover", "killed", env=env, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(f"{path}: repaired (wav)"), r.stderr
    assert sf.info(path).frames >= written
    assert soxi_frames(path) == sf.info(path).frames
    # A name that is neither a file here nor a clip is still one line, and nothing is made.
    r = cliutil.run("recover", "nothing", env=env, cwd=elsewhere)
    assert r.returncode == 2 and "nothing: no such file" in cliutil.one_error_line(r.stderr)
    assert sorted(p.name for p in elsewhere.iterdir()) == []


def test_recover_refuses_a_file_it_cannot_repair_in_one_line(tmp_path):
    from dictaphone.errors import DictaphoneError

    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DictaphoneError, match="not a recording"):
        recover(str(path))


@needs_tools
@pytest.mark.parametrize("kind", ["stream", "blobs"])
def test_a_saved_mp3_stream_gets_its_length_header_from_recover(kind, tmp_path):
    """A piped MP3 (or blobs cut along the way) keeps LAME's reserved first frame empty:
    recover fills it in. The stream's last padding is not known any more, so the length
    is exact to within one frame (1152 samples), and both decoders agree on it."""
    written = RATE * 2 + 345
    sink = tmp_path / "saved.mp3"
    if kind == "stream":
        with open(sink, "wb") as f:
            enc = make_encoder(f, FORMATS["mp3"], RATE, 1)
            enc.write(tone(written))
            enc.close()
    else:
        enc = make_encoder(None, FORMATS["mp3"], RATE, 1)
        blobs = []
        for i in range(0, written, RATE // 2):
            enc.write(tone(written)[i:i + RATE // 2])
            blobs.append(enc.cut().bytes())
        sink.write_bytes(b"".join(blobs) + enc.close().bytes())
    rep = recover(str(sink))
    assert rep.changed and rep.frames_before is None
    n = sf.info(sink).frames
    assert n == rep.frames == ffmpeg_frames(sink) == len(sf.read(sink)[0])
    assert written <= n <= written + 1152


def _seed(tmp_path, fmt: str) -> bytes:
    path = tmp_path / f"seed.{fmt}"
    if path.exists():
        return path.read_bytes()
    if fmt == "rf64":  # a small RF64 file, as the header writer makes them past 4 GiB
        frames = (tone(RATE // 4) * 32767).astype("<i2").tobytes()
        h = bytearray(wav_header(RATE, 1, "PCM_16", 2 ** 33, rf64=True))
        h[20:44] = struct.pack("<QQQ", len(h) - 8 + len(frames), len(frames), RATE // 4)
        path.write_bytes(bytes(h) + frames)
        return path.read_bytes()
    enc = make_encoder(path, FORMATS[fmt], 8000 if fmt == "mp3" else RATE, 1)
    enc.write(tone(RATE // 2))
    enc.close()
    return path.read_bytes()


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_recover_turns_any_damage_into_a_repair_or_one_clear_error(tmp_path, data):
    """Truncated, bytes changed anywhere, or random: recover either repairs the file
    (and then soundfile opens it) or raises a DictaphoneError, never anything else."""
    from dictaphone.errors import DictaphoneError

    fmt = data.draw(st.sampled_from(["wav", "rf64", "ogg", "opus", "mp3"]))
    seed = _seed(tmp_path, fmt)
    how = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if how == "truncate":
        blob = seed[:data.draw(st.integers(0, len(seed)))]
    elif how == "flip":
        blob = bytearray(seed)
        for _ in range(data.draw(st.integers(1, 20))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(blob)
    else:
        blob = seed[:4] + data.draw(st.binary(max_size=4096))
    path = tmp_path / f"damaged.{fmt.replace('rf64', 'wav')}"
    path.write_bytes(blob)
    try:
        rep = recover(str(path))
    except DictaphoneError:
        return
    assert rep.frames >= 0
    if how == "truncate":  # a clean cut of a real file: readable after
        assert len(sf.read(path)[0]) == rep.frames


def test_recover_refuses_a_fifo_or_a_device_at_once_in_one_line(tmp_path):
    """A FIFO would block the open and a device never end the read."""
    import cliutil

    fifo = tmp_path / "take.wav"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        r = cliutil.run("recover", path, timeout=30)
        assert r.returncode == 2
        assert cliutil.one_error_line(r.stderr).endswith("not a regular file (only a saved recording can be repaired)")


def test_an_rf64_file_without_its_ds64_chunk_is_one_clear_error(tmp_path):
    from dictaphone.errors import SourceError

    path = tmp_path / "bad.wav"
    path.write_bytes(b"RF64" + wav_header(RATE, 1, "PCM_16", 100)[4:] + bytes(100))
    with pytest.raises(SourceError, match="without its ds64 chunk"):
        recover(str(path))


def _flac_without_length(path, damage: str) -> None:
    """A FLAC as a killed recorder leaves it (no total length in STREAMINFO), damaged
    further: ``garbage`` (its frames overwritten) or ``no-rate`` (STREAMINFO's rate 0)."""
    rng = np.random.default_rng(0)
    sf.write(os.fspath(path), rng.uniform(-0.3, 0.3, 48000 * 2), 48000, subtype="PCM_16")
    b = bytearray(path.read_bytes())
    si = 8  # STREAMINFO's body
    b[si + 13] &= 0xF0
    b[si + 14:si + 18] = b"\0\0\0\0"
    if damage == "garbage":
        first = b.find(b"\xff\xf8", 42)
        for k in range(first, len(b)):
            b[k] = (k * 7) & 0xFF
    else:
        b[si + 10:si + 13] = b"\0\0\0"
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("damage", ["garbage", "no-rate"])
def test_recover_does_not_say_repaired_for_a_file_libsndfile_still_cannot_read(tmp_path, damage):
    """It said "repaired (flac)" (exit 0) for files no reader opens afterwards."""
    import cliutil

    path = tmp_path / "bad.flac"
    _flac_without_length(path, damage)
    r = cliutil.run("recover", path.name, env=cliutil.no_device_env(tmp_path), cwd=tmp_path)
    line = cliutil.one_error_line(r.stderr)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert line.startswith("dictaphone: error: bad.flac: could not be repaired (flac): ")
    assert "but libsndfile still cannot read it (" in line and ": repaired (" not in line
    with pytest.raises(Exception):
        sf.read(os.fspath(path))


def test_recover_still_says_repaired_for_a_flac_it_makes_readable(tmp_path):
    path = tmp_path / "killed.flac"
    rng = np.random.default_rng(1)
    sf.write(os.fspath(path), rng.uniform(-0.3, 0.3, 48000), 48000, subtype="PCM_16")
    b = bytearray(path.read_bytes())
    b[8 + 13] &= 0xF0
    b[8 + 14:8 + 18] = b"\0\0\0\0"
    path.write_bytes(bytes(b))
    assert recover(os.fspath(path)).describe().startswith(f"{path}: repaired (flac)")
    assert sf.info(os.fspath(path)).frames == 48000


def test_a_wav_cut_inside_its_ds64_chunk_is_one_clear_error(tmp_path):
    """Found by the fuzz test above (rf64, cut at 20 bytes): struct.error, not a DictaphoneError."""
    from dictaphone.errors import DictaphoneError

    path = tmp_path / "cut.wav"
    path.write_bytes(b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"ds64"
                     + struct.pack("<I", 28) + b"\0\0\0\0")
    with pytest.raises(DictaphoneError, match="cut short"):
        recover(str(path))
