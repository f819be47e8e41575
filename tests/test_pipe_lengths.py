"""A WAV on a pipe: its real sizes when the length is known in advance (-d, a whole file as
the input), 0xFFFFFFFF when only the end will tell, and the header never alone in the pipe.

sox detects a format from the first 256 bytes it reads from a pipe in one read: a 44-byte
header written alone made `record - -f wav | sox - -n stat` (the `record --help` example)
fail with "WAVE: RIFF header not found"; and a header that says 0xFFFFFFFF is read to the
end with a warning ("Premature EOF"). Readers that want sizes (Python's wave module) take a
WAV only with its real sizes. Measured end to end through real pipes, sox and the session's
virtual microphone; plus the encoder alone.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import signal
import struct
import subprocess
import sys
import time
import wave

import numpy as np
import pytest

import audiolab
import cliutil
from audiolab import parse_wav
from cliutil import CLI, RATE, no_device_env, pulse_env
from dictaphone.containers.encoders import UNKNOWN_SIZE, make_encoder
from dictaphone.containers.formats import format_by_name


class Writes(io.RawIOBase):
    """A binary stream that keeps each write apart (what a pipe's reader may get at once)."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self):
        return True

    def write(self, b):
        self.chunks.append(bytes(b))
        return len(b)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def _stream(frames_per_write: int, writes: int, expected=None, subtype="PCM_16", channels=1):
    out = Writes()
    enc = make_encoder(out, format_by_name("wav"), RATE, channels, subtype, expected_frames=expected)
    rng = np.random.default_rng(3)
    sent = []
    for _ in range(writes):
        x = rng.integers(-2000, 2000, (frames_per_write, channels)).astype(enc.dtype)
        if subtype == "PCM_24":
            x = x << 8
        enc.write(x)
        sent.append(x)
    enc.close()
    return out, np.concatenate(sent) if sent else np.zeros((0, channels), enc.dtype)


def test_a_stream_of_known_length_declares_its_real_sizes_and_python_wave_reads_it():
    out, sent = _stream(4800, 10, expected=48000)
    h = parse_wav(out.data)
    assert (h["riff_size"], h["data_size"]) == (36 + 96000, 96000)
    with wave.open(io.BytesIO(out.data)) as w:
        assert (w.getnframes(), w.getframerate()) == (48000, RATE)
        assert np.array_equal(np.frombuffer(w.readframes(48000), "<i2"), sent[:, 0])


def test_an_open_ended_stream_says_read_to_the_end():
    out, _ = _stream(4800, 3)
    h = parse_wav(out.data)
    assert (h["riff_size"], h["data_size"]) == (UNKNOWN_SIZE, UNKNOWN_SIZE)


@pytest.mark.parametrize("expected", [None, 48000])
def test_the_header_goes_out_with_the_first_audio_never_alone(expected):
    out, _ = _stream(4800, 3, expected=expected)
    assert out.chunks[0][:4] == b"RIFF"
    assert len(out.chunks[0]) == 44 + 4800 * 2  # header and the first block in one write


def test_a_stream_cut_short_declares_the_length_it_was_to_have():
    out, sent = _stream(4800, 4, expected=48000)  # stopped after 0.4 s of 1 s
    h = parse_wav(out.data)
    assert h["data_size"] == 96000 and len(out.data) - 44 == len(sent) * 2
    r = subprocess.run(["sox", "-t", "wav", "-", "-n", "stat"], input=out.data,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert re.search(rb"Samples read:\s+19200\b", r.stderr), r.stderr  # what is there


def test_a_stream_that_ends_before_any_audio_is_an_empty_wav():
    out, _ = _stream(0, 0, expected=48000)
    h = parse_wav(out.data)
    assert out.data[:4] == b"RIFF" and (h["riff_size"], h["data_size"]) == (36, 0)


def test_an_odd_declared_size_gets_its_pad_byte():
    out, _ = _stream(3, 1, expected=3, subtype="PCM_24")  # 9 bytes of data
    h = parse_wav(out.data)
    assert h["data_size"] == 9 and h["riff_size"] == 36 + 10 and len(out.data) == 44 + 10


# --- the CLI through real pipes -----------------------------------------------------------------


def _sh(command: str, env, cwd, timeout=60) -> subprocess.CompletedProcess:
    """``command`` in bash with pipefail, `dictaphone` being this checkout's."""
    prefix = f"dictaphone() {{ {shlex.join(CLI)} \"$@\"; }}; set -o pipefail; "
    return subprocess.run(["bash", "-c", prefix + command], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_record_help_pipe_example_works_as_written(pulse, tmp_path):
    help_text = cliutil.run("record", "--help").stdout
    example = next(line.strip() for line in help_text.splitlines() if "| sox" in line)
    assert example == "dictaphone record -d 2 - -f wav | sox - -n stat"
    r = _sh(example, pulse_env(pulse), tmp_path)
    assert r.returncode == 0, r.stderr
    rate = int(re.search(r"wav (\d+) Hz", r.stderr).group(1))
    assert re.search(rf"Samples read:\s+{2 * rate}\n", r.stderr), r.stderr
    assert "WARN" not in r.stderr and "FAIL" not in r.stderr


def test_a_whole_file_as_the_input_streams_with_its_real_sizes(tmp_path):
    src = audiolab.make_tone(tmp_path / "in.wav", 0.75, 440.0)
    env = no_device_env(tmp_path)
    r = _sh(f"dictaphone record -q --input {src} - -f wav | sox - -n stat", env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"Samples read:\s+36000\n", r.stderr) and "WARN" not in r.stderr, r.stderr
    r = cliutil.run("record", "-q", "--input", src, "-", "-f", "wav", env=env, text=False)
    with wave.open(io.BytesIO(r.stdout)) as w:
        assert w.getnframes() == 36000
    # a stream as the input: its length is only known at its end
    with open(src, "rb") as stdin:
        r = cliutil.run("record", "-q", "--input", "-", "-", "-f", "wav", env=env, text=False,
                        stdin=stdin)
    assert parse_wav(r.stdout)["data_size"] == UNKNOWN_SIZE


def test_an_open_ended_recording_to_a_pipe_says_0xffffffff_and_sox_reads_it(pulse, tmp_path,
                                                                           recorders):
    rec = recorders("-", "-f", "wav", "--timeslice", "0.25", "--events", "ev.jsonl",
                    stdout=subprocess.PIPE)
    rec.wait_for_audio()
    time.sleep(0.5)
    assert rec.stop(signal.SIGINT) == 0, rec.stderr()
    data = rec.stdout_bytes
    assert parse_wav(data)["data_size"] == UNKNOWN_SIZE
    r = subprocess.run(["sox", "-", "-n", "stat"], input=data, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_a_recording_with_d_stopped_early_reads_as_truncated(pulse, tmp_path, recorders):
    rec = recorders("-", "-f", "wav", "-d", "30", "--timeslice", "0.25", "--events", "ev.jsonl",
                    stdout=subprocess.PIPE)
    rec.wait_for_audio()
    time.sleep(0.5)
    assert rec.stop(signal.SIGINT) == 0, rec.stderr()
    data = rec.stdout_bytes
    h = parse_wav(data)
    assert h["data_size"] == 30 * RATE * 2  # what -d promised
    got = (len(data) - h["data_offset"]) // 2
    assert 0 < got < 30 * RATE
    r = subprocess.run(["sox", "-", "-n", "stat"], input=data, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert re.search(rb"Samples read:\s+%d\n" % got, r.stderr), r.stderr
