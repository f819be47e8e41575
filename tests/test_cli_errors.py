"""`dictaphone record` refuses bad input the way the README promises: one line on stderr
starting with "dictaphone", no traceback, exit status 2, and no file left behind.

Cases that are refused before any device is opened run in an environment without audio
(no PulseAudio reachable), so they need no sound server; cases decided against a device
use the session's virtual microphone (the ``pulse`` fixture). Each case also names a word
its message must contain, so that a case refused for some other reason (say, "no default
input device" instead of "the directory does not exist") does not pass by accident.

Cases that would record if the check were missing also get ``-d 1``: a wrongly accepted
option then records one second and fails the test, instead of recording until the
time-out.
"""

from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from audiolab import assert_complete_wav
from cliutil import RATE, no_device_env, pulse_env


def listing(directory) -> dict[str, bytes]:
    """Every file under ``directory`` (but the private runtime dir) and its bytes."""
    out = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "runtime"]
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), directory) + "/"] = b""
    return out


def assert_refused(result: subprocess.CompletedProcess, keyword: str) -> str:
    stderr = result.stderr
    lines = stderr.splitlines()
    assert "Traceback" not in stderr, stderr
    assert result.returncode == 2, f"exit status {result.returncode}; stderr:\n{stderr}"
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("dictaphone"), stderr
    assert re.search(keyword, lines[0], re.I), f"{keyword!r} not in {lines[0]!r}"
    assert result.stdout == "", "nothing on stdout for a refused recording"
    return lines[0]


# --- set-ups for the --input cases -------------------------------------------------------------


def _wav_48k(tmp_path):
    audiolab.make_tone(tmp_path / "x.wav", 0.5, 440.0)


def _not_audio(tmp_path):
    (tmp_path / "notaudio.txt").write_text("These are not the samples you are looking for.\n")


def _truncated_wav(tmp_path):
    # A real WAV header cut after 30 bytes: in the middle of its fmt chunk, no data chunk.
    audiolab.make_tone(tmp_path / "whole.wav", 0.5, 440.0)
    data = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "whole.wav").unlink()
    (tmp_path / "truncated.wav").write_bytes(data[:30])


def _corrupt_wav(tmp_path):
    # RIFF/WAVE magic, then bytes that are no valid chunk.
    rng = np.random.default_rng(11)
    (tmp_path / "corrupt.wav").write_bytes(
        b"RIFF\x24\x10\x00\x00WAVE" + rng.integers(0, 256, 64, dtype=np.uint8).tobytes())


def _existing_output(tmp_path):
    (tmp_path / "out.wav").write_bytes(b"precious bytes that must survive\n" * 10)


# (id, arguments after `record`, set-up, word the message must contain)
WITHOUT_DEVICE = [
    ("unknown-format", ["out.wav", "-f", "xyz"], None, "xyz"),
    ("missing-directory", ["nodir/out.wav", "-d", "1"], None, "nodir"),
    ("existing-output", ["out.wav", "-d", "1"], _existing_output, "exists"),
    ("zero-duration", ["out.wav", "-d", "0"], None, "duration"),
    ("duration-not-a-number", ["out.wav", "-d", "abc"], None, "duration"),
    ("negative-duration", ["out.wav", "-d", "-1"], None, "duration"),
    ("missing-input", ["--input", "missing.wav", "out.wav"], None, "missing.wav"),
    ("input-not-audio", ["--input", "notaudio.txt", "out.wav"], _not_audio, "notaudio.txt"),
    ("input-truncated-header", ["--input", "truncated.wav", "out.wav"], _truncated_wav,
     "truncated.wav"),
    ("input-corrupt-header", ["--input", "corrupt.wav", "out.wav"], _corrupt_wav, "corrupt.wav"),
    ("input-at-another-rate", ["--input", "x.wav", "-r", "44100", "out.wav"], _wav_48k, "44100"),
    ("split-to-stdout", ["--split", "1", "-"], None, "split"),
    ("events-and-audio-both-to-stdout", ["--events", "-", "-"], None, "events"),
]

WITH_DEVICE = [
    ("rate-too-low", ["out.wav", "-r", "5", "-d", "1"], None, "rate"),
    ("rate-too-high", ["out.wav", "-r", "10000000", "-d", "1"], None, "rate"),
    ("zero-channels", ["out.wav", "-c", "0", "-d", "1"], None, "channel"),
    ("too-many-channels", ["out.wav", "-c", "99", "-d", "1"], None, "channel"),
    ("no-such-device", ["out.wav", "-D", "nosuchdevice", "-d", "1"], None, "nosuchdevice"),
    ("opus-at-44100", ["out.opus", "-f", "opus", "-r", "44100", "-d", "1"], None, "44100"),
    ("mp3-with-3-channels", ["out.mp3", "-f", "mp3", "-c", "3", "-d", "1"], None, "channel"),
    ("forced-output-with-a-bad-rate", ["out.wav", "--force", "-r", "5", "-d", "1"],
     _existing_output, "rate"),
]


def _run_case(tmp_path, env, args, setup, keyword):
    if setup is not None:
        setup(tmp_path)
    before = listing(tmp_path)
    r = cliutil.run("record", *args, env=env, cwd=tmp_path, timeout=60)
    assert_refused(r, keyword)
    # No file created, none changed (an existing output keeps its exact bytes).
    assert listing(tmp_path) == before


@pytest.mark.parametrize("args,setup,keyword",
                         [pytest.param(*c[1:], id=c[0]) for c in WITHOUT_DEVICE])
def test_bad_input_is_refused_in_one_line_with_status_2_and_no_file(
        tmp_path, args, setup, keyword):
    _run_case(tmp_path, no_device_env(tmp_path), args, setup, keyword)


@pytest.mark.parametrize("args,setup,keyword",
                         [pytest.param(*c[1:], id=c[0]) for c in WITH_DEVICE])
def test_settings_the_device_or_codec_cannot_take_are_refused_in_one_line_with_status_2(
        pulse, tmp_path, args, setup, keyword):
    _run_case(tmp_path, pulse_env(pulse), args, setup, keyword)


def test_force_replaces_an_existing_file_with_a_valid_recording(pulse, tmp_path):
    _existing_output(tmp_path)
    r = cliutil.run("record", "out.wav", "--force", "-d", "1", "-r", RATE,
                    env=pulse_env(pulse), cwd=tmp_path, timeout=60)
    stderr = r.stderr
    assert r.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert assert_complete_wav(tmp_path / "out.wav") == RATE
    assert sf.info(str(tmp_path / "out.wav")).samplerate == RATE


@pytest.mark.parametrize("args", [["--help"], ["record", "--help"]], ids=["top", "record"])
def test_help_prints_usage_to_stdout_and_exits_0(tmp_path, args):
    r = cliutil.run(*args, env=no_device_env(tmp_path), cwd=tmp_path, timeout=60, text=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("Usage: dictaphone"), out
    if args[0] == "record":
        assert "--duration" in out and "OUTPUT" in out
    assert r.stderr == b""
