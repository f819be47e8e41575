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
import signal
import struct
import subprocess
import time

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


def _input_and_its_links(tmp_path):
    # The input, a symlink and a hard link to it: all three are one file.
    _wav_48k(tmp_path)
    os.symlink("x.wav", tmp_path / "link.wav")
    os.link(tmp_path / "x.wav", tmp_path / "hard.wav")
    (tmp_path / "sub").mkdir()


def _flac_input(tmp_path):
    audiolab.make_tone(tmp_path / "x.wav", 0.5, 440.0)
    data, rate = sf.read(tmp_path / "x.wav", dtype="int16")
    sf.write(tmp_path / "x.flac", data, rate)
    (tmp_path / "x.wav").unlink()


def _split_piece_is_the_input(tmp_path):
    # `--split` names its pieces x-001.wav, x-002.wav...: the first one is the input.
    audiolab.make_tone(tmp_path / "x-001.wav", 0.5, 440.0)


def _wav_with_header(tmp_path, name, patch):
    audiolab.make_tone(tmp_path / "whole.wav", 0.5, 440.0)
    data = bytearray((tmp_path / "whole.wav").read_bytes())
    (tmp_path / "whole.wav").unlink()
    patch(data)
    (tmp_path / name).write_bytes(bytes(data))


def _zero_hz_wav(tmp_path):
    _wav_with_header(tmp_path, "zero.wav", lambda d: struct.pack_into("<I", d, 24, 0))


def _malformed_fmt_wav(tmp_path):
    _wav_with_header(tmp_path, "malformed.wav", lambda d: struct.pack_into("<I", d, 16, 2))


def _cut_in_its_header_wav(tmp_path):
    # WAVE_FORMAT_EXTENSIBLE (sox's choice for many files) has a 40-byte 'fmt ' chunk: a copy
    # cut at 36 bytes ends inside it, which libsndfile calls "an unimplemented format".
    data = (b"RIFF" + struct.pack("<I", 60) + b"WAVE" + b"fmt " + struct.pack("<I", 40)
            + struct.pack("<HHIIHH", 0xFFFE, 1, 48000, 96000, 2, 16))
    (tmp_path / "cut.wav").write_bytes(data)


def _text_wav(tmp_path):
    (tmp_path / "text.wav").write_text("This is a text file with a .wav name.\n" * 5)


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
    # zero or empty is a value, refused as such, never taken for "not given"
    ("zero-rate", ["out.wav", "-r", "0", "-d", "1"], None, "rate 0"),
    ("zero-rate-with-input", ["--input", "x.wav", "-r", "0", "out.wav"], _wav_48k, "rate 0"),
    ("zero-channels-with-input", ["--input", "x.wav", "-c", "0", "out.wav"], _wav_48k, "channel"),
    ("empty-output", ["", "-d", "1"], None, "OUTPUT is empty"),
    ("empty-input", ["--input", "", "out.wav"], None, "--input is empty"),
    ("empty-events", ["--input", "x.wav", "--events", "", "out.wav"], _wav_48k, "--events is empty"),
    ("empty-on-data", ["--input", "x.wav", "--on-data", "", "out.wav"], _wav_48k, "--on-data is empty"),
    ("blank-on-stop", ["--input", "x.wav", "--on-stop", "  ", "out.wav"], _wav_48k, "--on-stop is empty"),
    ("empty-device", ["-D", "", "out.wav", "-d", "1"], None, "device is empty"),
    ("empty-name", ["--input", "x.wav", "--name", ""], _wav_48k, "name cannot be empty"),
    ("blank-name", ["--input", "x.wav", "--name", "   "], _wav_48k, "name cannot be empty"),
    # the input destroyed: OUTPUT is --input by any name, --force or not
    ("output-is-the-input", ["--input", "x.wav", "x.wav"], _input_and_its_links, "is the --input"),
    ("forced-output-is-the-input", ["--input", "x.wav", "--force", "x.wav"],
     _input_and_its_links, "is the --input"),
    ("output-is-a-symlink-to-the-input", ["--input", "x.wav", "--force", "link.wav"],
     _input_and_its_links, "is the --input"),
    ("input-is-a-symlink-to-the-output", ["--input", "link.wav", "--force", "x.wav"],
     _input_and_its_links, "is the --input"),
    ("output-is-a-hard-link-to-the-input", ["--input", "x.wav", "--force", "hard.wav"],
     _input_and_its_links, "is the --input"),
    ("output-is-the-input-spelt-differently", ["--input", "x.wav", "--force", "sub/../x.wav"],
     _input_and_its_links, "is the --input"),
    ("flac-output-is-the-input", ["--input", "x.flac", "--force", "x.flac"], _flac_input,
     "is the --input"),
    ("split-piece-is-the-input", ["--input", "x-001.wav", "--split", "0.2", "--force", "x.wav"],
     _split_piece_is_the_input, "is the --input"),
    # durations: typos, overflow, less than a frame
    ("duration-with-negative-seconds", ["--input", "x.wav", "-d", "1:-5", "out.wav"], _wav_48k,
     "duration"),
    ("duration-with-99-seconds", ["--input", "x.wav", "-d", "1:99", "out.wav"], _wav_48k, "0 to 59"),
    ("duration-too-long-for-a-float", ["out.wav", "-d", "1e400"], None, "too long"),
    ("duration-under-one-frame", ["--input", "x.wav", "-d", "0.00001", "out.wav"], _wav_48k,
     "less than one frame"),
    ("threshold-nan", ["--input", "x.wav", "--threshold", "nan", "out.wav"], _wav_48k, "-100 and 0"),
    ("threshold-inf", ["--input", "x.wav", "--threshold", "-inf", "out.wav"], _wav_48k, "-100 and 0"),
    ("realtime-without-input", ["--realtime", "out.wav", "-d", "1"], None, "--realtime"),
    ("absurdly-short-split", ["--input", "x.wav", "--split", "0.0001", "out.wav"], _wav_48k,
     "at least 0.1 s"),
    ("split-under-one-frame", ["--input", "x.wav", "--split", "0.00001", "out.wav"], _wav_48k,
     "at least 0.1 s"),
    ("absurdly-short-split-on-silence",
     ["--input", "x.wav", "--split-on-silence", "0.001", "out.wav"],
     _wav_48k, "at least 0.1 s"),
    ("absurdly-short-stop-on-silence",
     ["--input", "x.wav", "--stop-on-silence", "1e-9", "out.wav"],
     _wav_48k, "at least 0.1 s"),
    ("absurdly-short-timeslice", ["--input", "x.wav", "--timeslice", "0.0001", "out.wav"],
     _wav_48k, "at least 0.01 s"),
    # subtypes: lossy codecs have none, and say so
    ("pcm-subtype-for-ogg", ["--input", "x.wav", "--subtype", "pcm_24", "e.ogg"], _wav_48k,
     "always Vorbis-coded"),
    ("pcm-subtype-for-opus", ["--input", "x.wav", "--subtype", "PCM_16", "e.opus"], _wav_48k,
     "always Opus-coded"),
    ("unknown-subtype", ["--input", "x.wav", "--subtype", "PCM_12", "out.wav"], _wav_48k,
     "choose one of PCM_16"),
    # libsndfile's own words never reach the user
    ("input-with-a-0-hz-header", ["--input", "zero.wav", "out.wav"], _zero_hz_wav,
     "no usable sample rate"),
    ("input-with-a-malformed-fmt-chunk", ["--input", "malformed.wav", "out.wav"],
     _malformed_fmt_wav, "header is damaged"),
    ("input-cut-inside-its-header", ["--input", "cut.wav", "out.wav"], _cut_in_its_header_wav,
     "header is cut short"),
    ("input-that-is-text", ["--input", "text.wav", "out.wav"], _text_wav,
     "not a readable audio file"),
    ("input-that-is-a-device", ["--input", "/dev/zero", "out.wav"], None, "device"),
    # never a format in disguise: a name's extension is what the file holds
    ("extension-dictaphone-does-not-write", ["--input", "x.wav", "memo.m4a"], _wav_48k,
     r"does not write \.m4a files \(M4A/AAC\); its formats are \.wav, \.flac, \.ogg, \.opus, \.mp3, \.raw"),
    ("extension-that-is-no-audio", ["--input", "x.wav", "notes.txt"], _wav_48k,
     r"does not write \.txt files"),
    ("format-under-another-formats-extension", ["--input", "x.wav", "-f", "wav", "memo.ogg"],
     _wav_48k, "name it memo.wav, or drop -f to record ogg"),
    ("format-under-an-unwritten-formats-extension", ["--input", "x.wav", "-f", "wav", "memo.m4a"],
     _wav_48k, "name that says M4A/AAC; name it memo.wav"),
    ("unknown-extension-without-a-device", ["memo.webm", "-d", "1"], None, r"\.webm"),
]

#: libsndfile's messages, which mean nothing to a user (see dictaphone/containers/sfmessages.py)
RAW_LIBRARY_TEXT = ("SF_INFO", "Malformed", "Format not recognised", "System error", "PaErrorCode",
                    "unimplemented format")

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
    line = assert_refused(r, keyword)
    assert not any(raw in line for raw in RAW_LIBRARY_TEXT), line
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


@pytest.mark.parametrize("subtype,output", [("vorbis", "e.ogg"), ("OPUS", "e.opus"),
                                            ("pcm_24", "e.wav")])
def test_a_codec_named_as_its_own_subtype_is_accepted(tmp_path, subtype, output):
    _wav_48k(tmp_path)
    r = cliutil.run("record", "--input", "x.wav", "--subtype", subtype, output,
                    env=no_device_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sf.info(str(tmp_path / output)).frames == 24000


def test_an_empty_and_a_blank_clip_name_are_refused_the_same_way(tmp_path):
    _wav_48k(tmp_path)
    env = no_device_env(tmp_path)
    lines = {assert_refused(cliutil.run("record", "--input", "x.wav", "--name", name,
                                        env=env, cwd=tmp_path), "empty")
             for name in ("", "   ")}
    assert len(lines) == 1, lines
    assert not (tmp_path / "clips").exists() or not any((tmp_path / "clips").iterdir())


def test_recording_into_the_input_by_any_name_leaves_the_input_byte_for_byte(tmp_path):
    # The fault as found: `record --force --input in.wav in.wav` truncated the input to a
    # 44-byte WAV and exited 0.
    _input_and_its_links(tmp_path)
    before = (tmp_path / "x.wav").read_bytes()
    for out in ("x.wav", "link.wav", "hard.wav", "./x.wav", str(tmp_path / "x.wav")):
        r = cliutil.run("record", "--force", "--input", "x.wav", out,
                        env=no_device_env(tmp_path), cwd=tmp_path)
        assert_refused(r, "would destroy it")
        assert (tmp_path / "x.wav").read_bytes() == before
    data, rate = sf.read(tmp_path / "x.wav", dtype="int16")
    assert (len(data), rate) == (24000, 48000)


@pytest.mark.parametrize("command,keyword", [
    (["play", "/dev/zero"], "is a device"),
    (["play", "text.wav"], "not a readable audio file"),
    (["show", "zero.wav"], "no usable sample rate"),
    (["show", "malformed.wav"], "header is damaged"),
    (["show", "."], "is a directory"),
])
def test_play_and_show_say_in_words_what_is_wrong_with_a_file(tmp_path, command, keyword):
    _text_wav(tmp_path)
    _zero_hz_wav(tmp_path)
    _malformed_fmt_wav(tmp_path)
    r = cliutil.run(*command, env=no_device_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    line = cliutil.one_error_line(r.stderr)
    assert keyword in line, line
    assert not any(raw in line for raw in RAW_LIBRARY_TEXT), line


def test_an_event_log_that_cannot_be_written_warns_at_once_and_fails_at_the_end(
        tmp_path, recorders):
    # `--events /dev/full` used to lose every event silently and exit 0.
    env = no_device_env(tmp_path)
    audiolab.make_tone(tmp_path / "long.wav", 30, 440.0)
    rec = recorders("take.wav", "--input", "long.wav", "--realtime", "--events", "/dev/full",
                    env=env, rate=None)
    deadline = time.monotonic() + 20
    while "event log" not in rec.stderr():  # a warning while it is still recording
        rec.check_alive("it warned about the event log")
        assert time.monotonic() < deadline, rec.stderr()
        time.sleep(0.05)
    time.sleep(0.5)
    status = rec.stop(signal.SIGINT)
    stderr = rec.stderr()
    lines = stderr.strip().splitlines()
    assert status == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("dictaphone: warning: cannot write the event log"), stderr
    assert any(line.startswith("Saved take.wav") for line in lines), stderr
    assert lines[-1].startswith("dictaphone: error: the event log /dev/full is incomplete"), stderr
    data, rate = sf.read(tmp_path / "take.wav", dtype="int16")
    assert rate == 48000 and len(data) > 0
    assert_complete_wav(tmp_path / "take.wav")


def test_show_refuses_a_silence_threshold_that_is_not_a_level(tmp_path):
    _wav_48k(tmp_path)
    r = cliutil.run("show", "x.wav", "--silence", "nan", env=no_device_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "-100 and 0" in cliutil.one_error_line(r.stderr)


def test_an_error_message_is_one_line_even_for_a_file_name_with_a_newline(tmp_path):
    r = cliutil.run("record", "--input", "no\nsuch.wav", "out.wav", env=no_device_env(tmp_path),
                    cwd=tmp_path)
    line = assert_refused(r, "no such file")
    assert "no\\nsuch.wav" in line
