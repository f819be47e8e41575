"""`--input` from a pipe: a FIFO, or stdin with `--input -`, as sox users expect.

A FIFO used to print libsndfile's "System error" and then hang for ever (it was opened a
second time, and no writer came again). Streams are now read once, front to back: WAV and
FLAC (whose readers need no seek to the end), sample for sample; other formats are refused
in words. No device is needed: these run without any audio server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from cliutil import CLI, no_device_env

EXIT_TIMEOUT = 30.0


@pytest.fixture
def stereo(tmp_path):
    """3 s of distinct stereo noise at 44.1 kHz, 16-bit: (path, samples)."""
    rng = np.random.default_rng(5)
    data = rng.integers(-20000, 20000, size=(3 * 44100, 2), dtype=np.int16)
    path = tmp_path / "ref.wav"
    sf.write(path, data, 44100, subtype="PCM_16")
    return path, data


def _writer(fifo, source, head: int | None = None, then_sleep: float = 0.0) -> subprocess.Popen:
    """`cat SOURCE > FIFO` (or only its first HEAD bytes, then a pause with the FIFO open)."""
    part = f"head -c {head} {source}" if head is not None else f"cat {source}"
    script = f"({part}; sleep {then_sleep}) > {fifo}" if then_sleep else f"{part} > {fifo}"
    return subprocess.Popen(["sh", "-c", script])


@pytest.mark.parametrize("container", ["WAV", "FLAC"])
def test_a_fifo_as_input_is_read_as_a_stream_sample_for_sample(tmp_path, stereo, container):
    ref, data = stereo
    src = ref
    if container == "FLAC":
        src = tmp_path / "ref.flac"
        sf.write(src, data, 44100, format="FLAC", subtype="PCM_16")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = _writer(fifo, src)
    try:
        r = cliutil.run("record", "--input", "fifo", "out.wav", env=no_device_env(tmp_path),
                        cwd=tmp_path, timeout=EXIT_TIMEOUT)
    finally:
        audiolab.stop_process(writer)
    assert r.returncode == 0, r.stderr
    assert "System error" not in r.stderr and "Traceback" not in r.stderr
    got, rate = sf.read(tmp_path / "out.wav", dtype="int16")
    assert rate == 44100
    np.testing.assert_array_equal(got, data)


def test_input_dash_reads_a_wav_streamed_by_sox_on_stdin(tmp_path, stereo):
    ref, data = stereo
    sox = audiolab.require_tool("sox")
    # sox writes a WAV to a pipe with sizes it cannot know (0xFFFFFFFF or 0): the stream
    # is read to its end all the same.
    stream = subprocess.run([sox, str(ref), "-t", "wav", "-"], capture_output=True,
                            timeout=60, check=True).stdout
    r = cliutil.run("record", "--input", "-", "out.flac", env=no_device_env(tmp_path),
                    cwd=tmp_path, input=stream, text=False, timeout=EXIT_TIMEOUT)
    assert r.returncode == 0, r.stderr
    got, rate = sf.read(tmp_path / "out.flac", dtype="int16")
    assert rate == 44100
    np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("fmt,subtype,words", [
    ("OGG", "VORBIS", "this one is Ogg"), ("MP3", "MPEG_LAYER_III", "this one is MP3"),
    (None, None, "empty"), ("text", None, "neither WAV nor FLAC"),
])
def test_a_stream_that_needs_seeking_or_is_not_audio_is_refused_in_words(tmp_path, fmt, subtype, words):
    if fmt == "MP3" and not sf.check_format("MP3", "MPEG_LAYER_III"):
        pytest.skip("libsndfile without MP3")
    if fmt in ("OGG", "MP3"):
        sf.write(tmp_path / "x", np.zeros(4800, dtype=np.int16), 48000, format=fmt, subtype=subtype)
        payload = (tmp_path / "x").read_bytes()
    else:
        payload = b"" if fmt is None else b"This is text, not audio.\n" * 20
    r = cliutil.run("record", "--input", "-", "out.wav", env=no_device_env(tmp_path),
                    cwd=tmp_path, input=payload, text=False, timeout=EXIT_TIMEOUT)
    stderr = r.stderr.decode()
    assert r.returncode == 2, stderr
    line = cliutil.one_error_line(stderr)
    assert words in line and "stdin" in line, line
    assert "System error" not in line
    assert not (tmp_path / "out.wav").exists()


def _record_from_fifo(tmp_path, out="out.wav"):
    return subprocess.Popen([*CLI, "record", "--input", "fifo", out], cwd=tmp_path,
                            env=no_device_env(tmp_path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_while_waiting_for_a_fifo_writer_ends_without_a_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    rec = _record_from_fifo(tmp_path)
    try:
        time.sleep(1.5)  # nobody writes: the recorder waits
        assert rec.poll() is None, rec.stderr.read()
        rec.send_signal(signal.SIGINT)
        _, stderr = rec.communicate(timeout=EXIT_TIMEOUT)
    finally:
        audiolab.stop_process(rec)
    assert rec.returncode == 130, stderr
    assert "before the recording began" in cliutil.one_error_line(stderr)
    assert not (tmp_path / "out.wav").exists()


def test_ctrl_c_while_a_fifo_writer_is_silent_keeps_what_it_sent(tmp_path, stereo):
    ref, data = stereo
    os.mkfifo(tmp_path / "fifo")
    sent = 44 + 4 * 44100  # the header and 1 s of frames, then silence with the FIFO open
    writer = _writer(tmp_path / "fifo", ref, head=sent, then_sleep=60)
    rec = _record_from_fifo(tmp_path)
    try:
        time.sleep(2.0)
        assert rec.poll() is None, rec.stderr.read()
        rec.send_signal(signal.SIGINT)
        _, stderr = rec.communicate(timeout=EXIT_TIMEOUT)
    finally:
        audiolab.stop_process(rec)
        audiolab.stop_process(writer)
    assert rec.returncode == 0, stderr
    got, rate = sf.read(tmp_path / "out.wav", dtype="int16")
    # All but the last 50 ms block at most, and exactly the frames that were sent.
    assert 44100 - 2205 <= len(got) <= 44100, len(got)
    np.testing.assert_array_equal(got, data[:len(got)])
