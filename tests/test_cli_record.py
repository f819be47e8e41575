"""`dictaphone record` end to end, driven as a user would, through real audio.

The path under test is the whole one: espeak-ng speech played with paplay into a private
PulseAudio null sink, whose monitor is the default source, read through ALSA's pulse plugin
by PortAudio and sounddevice inside a `python -m dictaphone record` subprocess, written by
dictaphone, and decoded back here. Content is checked by normalised cross-correlation with
the reference (``audiolab.normalized_xcorr``), lossless paths sample by sample.

Timing: the first audio frames reach a recorder 0.4 to 2 s after it starts (AUDIO-LAB.md),
so speech is played only once the recorder has really started: either its event log
(``--events FILE --timeslice 0.1``) shows a first ``dataavailable`` (0.1 s of audio was
written), or ``dictaphone status --json`` says ``"started": true``. No test asserts a
duration of wall-clock time; every wait is bounded only so that a hang fails instead of
blocking the suite, and every process started here is stopped by a fixture's finalizer
(``recorders``, ``terminal``) or in a ``finally``.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from audiolab import assert_complete_wav, parse_wav, speech_score, stop_process
from cliutil import CLI, RATE, START_TIMEOUT, no_device_env, pulse_env

#: Generous bounds ("does not hang"), not timing assertions.
EXIT_TIMEOUT = 20.0  # stop requested -> process ended

HAS_MP3 = sf.check_format("MP3", "MPEG_LAYER_III")

#: What must never appear on dictaphone's stderr, whatever happens.
NOISE = ("Traceback", "Exception ignored", "Illegal seek", "BrokenPipeError")

#: An event log whose first dataavailable says that 0.1 s of audio was written.
EVENTS = ("--events", "events.jsonl", "--timeslice", "0.1")


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def recorders(recorders, pulse):
    """conftest's ``recorders``, with ``pulse_env`` and this module's EXIT_TIMEOUT."""
    return functools.partial(recorders, env=pulse_env(pulse), exit_timeout=EXIT_TIMEOUT)


def assert_no_noise(stderr: str) -> None:
    for word in NOISE:
        assert word not in stderr, f"{word!r} on stderr:\n{stderr}"


def assert_clean_exit(r: subprocess.CompletedProcess) -> str:
    """The command exited 0 with no noise on stderr; returns stderr."""
    stderr = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert_no_noise(stderr)
    return stderr


def summary_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def record_to_pipe(pulse, tmp_path, fmt: str, seconds) -> bytes:
    """`dictaphone record - -f FMT -d SECONDS` from the microphone into a pipe: exits 0 with
    no noise on stderr; returns what came through the pipe."""
    r = cliutil.run("record", "-", "-f", fmt, "-d", seconds, "-r", RATE, env=pulse_env(pulse),
                    cwd=tmp_path, text=False)
    assert_clean_exit(r)
    return r.stdout


def process_tree(pid: int) -> set[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in tree:
            tree.add(p)
            todo += children.get(p, [])
    return tree


def wait_started_in_terminal(pulse, t, timeout: float = START_TIMEOUT, stderr=lambda: "") -> None:
    """For a recorder in a tmux pane (run directly or by a shell there): until `dictaphone
    status --json` says a process of the pane started recording."""
    def check():
        if not t.is_alive():
            raise AssertionError(f"dictaphone ended before starting; stderr:\n{stderr()}")

    def started(entries):
        tree = process_tree(t.pane_pid())
        return any(e.get("pid") in tree and e.get("started") for e in entries)

    cliutil.wait_for_status(pulse_env(pulse), started, timeout=timeout, check=check)


def play_speech(pulse, speech) -> None:
    """Play the reference into the virtual microphone, wait until it was played, + 0.5 s
    so its end has travelled through PulseAudio and PortAudio into the recorder."""
    pulse.play_and_wait(speech)
    time.sleep(0.5)


def sox_samples(data: bytes, file_type: str) -> int:
    """What `sox -t TYPE - -n stat` reports as "Samples read" for these bytes on stdin."""
    sox = audiolab.require_tool("sox")
    r = subprocess.run([sox, "-t", file_type, "-", "-n", "stat"], input=data,
                       capture_output=True, timeout=60)
    text = r.stderr.decode(errors="replace")
    m = re.search(r"Samples read:\s*(\d+)", text)
    assert r.returncode == 0 and m, f"sox failed ({r.returncode}):\n{text}"
    return int(m.group(1))


# ---------------------------------------------------------------------------------------------
# 1. Speech to every format, stopped with Ctrl-C (SIGINT)

# Threshold 0.9 for every format. The capture path is lossless 16-bit PCM end to end
# (PulseAudio at 48 kHz, no resampling): WAV and FLAC takes measured 1.000 against the
# reference. Vorbis, Opus and MP3 are lossy, and perceptual coding changes the waveform, but
# at their default quality speech still measured 0.995 to 0.999, so 0.9 holds for them too
# with room to spare, while it fails on missing, truncated or garbled speech (the reference
# against silence or unrelated audio scores below 0.3; speech cut in half scores ~0.7).
FORMATS = [
    pytest.param("wav", 0.9, id="wav"),
    pytest.param("flac", 0.9, id="flac"),
    pytest.param("ogg", 0.9, id="ogg"),
    pytest.param("opus", 0.9, id="opus"),
    pytest.param("mp3", 0.9, id="mp3",
                 marks=pytest.mark.skipif(not HAS_MP3, reason="libsndfile without MP3")),
]


@pytest.mark.parametrize("fmt,threshold", FORMATS)
def test_speech_recorded_to_a_file_and_stopped_with_ctrl_c_is_the_speech(
        pulse, speech, tmp_path, recorders, fmt, threshold):
    name = f"take.{fmt}"
    # A plain command line (no --events/--timeslice): started-ness comes from `status`.
    rec = recorders(name, stdout=subprocess.PIPE)
    rec.wait_started()
    play_speech(pulse, speech)
    status = rec.stop(signal.SIGINT)
    stderr = rec.stderr()
    assert status == 0, stderr
    assert rec.stdout_bytes == b"", "stdout must stay empty when recording to a file"
    assert_no_noise(stderr)
    lines = summary_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith(f"Saved {name}"), stderr
    data, rate = sf.read(str(tmp_path / name), dtype="float64", always_2d=True)
    assert rate == RATE and data.shape[1] == 1
    score = speech_score(speech, data.mean(axis=1))
    assert score > threshold, f"{fmt}: correlation with the reference {score:.3f}"


# ---------------------------------------------------------------------------------------------
# 2. Exact durations


@pytest.mark.parametrize("args,name,frames", [
    pytest.param(["-d", "2.5"], "take.wav", 120000, id="wav-2.5s"),
    pytest.param(["-d", "1.3", "-f", "flac"], "take.flac", 62400, id="flac-1.3s"),
])
def test_a_duration_records_exactly_that_many_frames_and_exits_by_itself(
        pulse, tmp_path, args, name, frames):
    r = cliutil.run("record", name, "-r", RATE, *args, env=pulse_env(pulse), cwd=tmp_path,
                    timeout=60)
    assert_clean_exit(r)
    info = sf.info(str(tmp_path / name))
    assert (info.samplerate, info.frames) == (RATE, frames)
    if name.endswith(".wav"):
        assert assert_complete_wav(tmp_path / name) == frames


# ---------------------------------------------------------------------------------------------
# 3. Signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_sigterm_and_sighup_stop_the_recording_with_a_complete_file(
        pulse, tmp_path, recorders, sig):
    rec = recorders("take.wav", *EVENTS)
    rec.wait_for_audio()
    time.sleep(0.3)
    status = rec.stop(sig)
    stderr = rec.stderr()
    assert status == 0, stderr
    assert_no_noise(stderr)
    assert summary_lines(stderr)[-1].startswith("Saved take.wav"), stderr
    assert assert_complete_wav(tmp_path / "take.wav") > 0


def test_a_second_sigint_right_after_the_first_does_not_corrupt_the_file(
        pulse, tmp_path, recorders):
    rec = recorders("take.wav", *EVENTS)
    rec.wait_for_audio()
    time.sleep(0.3)
    rec.proc.send_signal(signal.SIGINT)
    rec.proc.send_signal(signal.SIGINT)
    status = rec.wait()
    stderr = rec.stderr()
    assert_no_noise(stderr)
    assert assert_complete_wav(tmp_path / "take.wav") > 0
    # README: "A second Ctrl-C while the file is being finalized is ignored" and "every
    # stop ... exits 0".
    assert status == 0, stderr


def test_ctrl_c_pressed_again_and_again_while_stopping_still_exits_0_with_a_summary(
        pulse, tmp_path, recorders):
    """A user who hits Ctrl-C several times (SIGINT every 20 ms until the process is gone):
    every stop exits 0, and later Ctrl-Cs are ignored, not turned into an abort."""
    rec = recorders("take.wav", *EVENTS)
    rec.wait_for_audio()
    time.sleep(0.3)
    deadline = time.monotonic() + EXIT_TIMEOUT
    while rec.proc.poll() is None and time.monotonic() < deadline:
        try:
            rec.proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    status = rec.wait()
    stderr = rec.stderr()
    assert_no_noise(stderr)
    assert assert_complete_wav(tmp_path / "take.wav") > 0
    assert status == 0, f"exit status {status}; stderr:\n{stderr}"
    assert summary_lines(stderr)[-1].startswith("Saved take.wav"), stderr


def _ignore_sigint() -> None:
    # What a non-interactive shell does to `cmd &`: the child starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_recorder_started_with_sigint_ignored_still_stops_on_sigint(
        pulse, tmp_path, recorders):
    rec = recorders("take.wav", *EVENTS, preexec_fn=_ignore_sigint)
    rec.wait_for_audio()
    time.sleep(0.3)
    status = rec.stop(signal.SIGINT)
    stderr = rec.stderr()
    assert status == 0, stderr
    assert summary_lines(stderr)[-1].startswith("Saved take.wav"), stderr
    assert assert_complete_wav(tmp_path / "take.wav") > 0


def _ignore_sighup() -> None:
    # What `nohup` does.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_a_recorder_started_under_nohup_keeps_recording_through_sighup(
        pulse, tmp_path, recorders):
    rec = recorders("take.wav", *EVENTS, preexec_fn=_ignore_sighup)
    rec.wait_for_audio()
    rec.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)  # the signal is delivered at once; give a handler time to act
    assert rec.proc.poll() is None, f"SIGHUP stopped a nohup recorder:\n{rec.stderr()}"
    status = rec.stop(signal.SIGINT)
    stderr = rec.stderr()
    assert status == 0, stderr
    assert assert_complete_wav(tmp_path / "take.wav") > 0


# ---------------------------------------------------------------------------------------------
# 4. Pipes


def test_a_wav_streamed_to_a_pipe_has_exactly_the_duration_for_soundfile_and_sox(
        pulse, tmp_path):
    data = record_to_pipe(pulse, tmp_path, "wav", 3)
    h = parse_wav(data)
    # -d: the length is known before the first frame, so the header declares it, as
    # arecord -d does (an open-ended pipe says 0xFFFFFFFF: test_pipe_lengths.py)
    assert (h["riff_size"], h["data_size"]) == (36 + 144000 * 2, 144000 * 2)
    assert len(data) - h["data_offset"] == 144000 * 2
    frames, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert (rate, len(frames)) == (RATE, 144000)
    assert sox_samples(data, "wav") == 144000
    assert list(tmp_path.iterdir()) == [], "nothing but stdout is written"


def test_raw_to_a_pipe_is_exactly_the_pcm_bytes_of_the_duration(pulse, tmp_path):
    assert len(record_to_pipe(pulse, tmp_path, "raw", 2)) == 2 * RATE * 2


@pytest.mark.parametrize("fmt", ["flac", "ogg", "opus"])
def test_compressed_formats_streamed_to_a_pipe_decode_to_about_the_duration(
        pulse, tmp_path, fmt):
    data = record_to_pipe(pulse, tmp_path, fmt, 2)
    assert data, "nothing on stdout"
    expected = 2 * RATE
    if fmt == "flac":
        # A streamed FLAC has no total in STREAMINFO: libsndfile refuses it, sox decodes it.
        got = sox_samples(data, "flac")
    else:
        frames, rate = sf.read(io.BytesIO(data))
        assert rate == RATE
        got = len(frames)
    # "About": lossy codecs may pad or trim a frame's worth at the edges.
    assert abs(got - expected) <= 0.02 * expected, f"{got} frames, expected about {expected}"


def test_speech_streamed_as_wav_to_a_pipe_is_the_speech(pulse, speech, tmp_path, recorders):
    rec = recorders("-", "-f", "wav", *EVENTS, stdout=subprocess.PIPE)
    rec.wait_for_audio()
    play_speech(pulse, speech)
    status = rec.stop(signal.SIGINT)
    stderr = rec.stderr()
    data = rec.stdout_bytes
    assert status == 0, stderr
    assert_no_noise(stderr)
    frames, rate = sf.read(io.BytesIO(data), dtype="float64")
    assert rate == RATE
    score = speech_score(speech, frames)
    assert score > 0.9, f"correlation with the reference {score:.3f}"


def test_a_reader_that_closes_the_pipe_early_ends_the_recording_with_status_0(
        pulse, tmp_path, recorders):
    """`dictaphone record - | head -c 1000`, done by hand: read 1000 bytes, close."""
    rec = recorders("-", "-f", "wav", stdout=subprocess.PIPE, drain=False)  # we read
    got = b""
    deadline = time.monotonic() + START_TIMEOUT
    while len(got) < 1000 and time.monotonic() < deadline:
        chunk = os.read(rec.proc.stdout.fileno(), 1000 - len(got))
        if not chunk:
            break
        got += chunk
    rec.proc.stdout.close()
    assert len(got) == 1000 and got[:4] == b"RIFF"
    status = rec.wait(timeout=EXIT_TIMEOUT)
    stderr = rec.stderr()
    assert status == 0, stderr
    assert_no_noise(stderr)


def test_a_shell_pipeline_into_head_ends_the_recording_with_status_0(pulse, tmp_path):
    bash = audiolab.require_tool("bash")
    cmd = (f"{shlex.join(CLI)} record - -f wav -r {RATE} 2>err.txt | head -c 1000 "
           f">head.out; echo ${{PIPESTATUS[0]}} >status.txt")
    r = subprocess.run([bash, "-c", cmd], env=pulse_env(pulse), cwd=tmp_path,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    stderr = (tmp_path / "err.txt").read_text(errors="replace")
    assert (tmp_path / "status.txt").read_text().strip() == "0", stderr
    assert (tmp_path / "head.out").stat().st_size == 1000
    assert_no_noise(stderr)


def test_recording_to_stdout_refuses_a_terminal(terminal, tmp_path):
    # No audio device is needed: the refusal comes before any is opened. The environment
    # has none, so a missing refusal fails with another message rather than recording.
    t = terminal([*CLI, "record", "-", "-f", "wav", "-r", str(RATE)],
                 env=no_device_env(tmp_path), cwd=tmp_path)
    status = t.wait_exit(timeout=30)
    screen = t.capture(history=True)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert status == 2, screen
    assert len(lines) == 1 and lines[0].startswith("dictaphone"), screen
    assert "terminal" in lines[0], screen


# ---------------------------------------------------------------------------------------------
# 5. --input: sample-exact lossless paths (no device needed)


def _read_exact(path: Path, channels: int, dtype: str = "int16", subtype: str = "PCM_16"):
    if path.suffix == ".raw":
        data, rate = sf.read(str(path), format="RAW", subtype=subtype, channels=channels,
                             samplerate=RATE, dtype=dtype, always_2d=True, endian="LITTLE")
    else:
        data, rate = sf.read(str(path), dtype=dtype, always_2d=True)
    assert rate == RATE
    return data


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("out", ["out.wav", "out.flac", "out.raw"])
def test_an_input_file_recorded_losslessly_has_exactly_its_samples(tmp_path, channels, out):
    src = audiolab.make_noise(tmp_path / "in.wav", 1.5, channels=channels, seed=channels)
    r = cliutil.run("record", "--input", "in.wav", out, env=no_device_env(tmp_path),
                    cwd=tmp_path)
    assert_clean_exit(r)
    want = _read_exact(src, channels)
    got = _read_exact(tmp_path / out, channels)
    assert got.shape == want.shape
    assert np.array_equal(got, want)
    if out.endswith(".raw"):
        assert (tmp_path / out).stat().st_size == want.size * 2
    if out.endswith(".wav"):
        assert assert_complete_wav(tmp_path / out, channels) == len(want)


@pytest.mark.parametrize("out", ["out.wav", "out.flac"])
def test_a_24_bit_input_recorded_as_pcm_24_is_exact(tmp_path, out):
    src = audiolab.make_noise(tmp_path / "in24.wav", 1.0, channels=2, subtype="PCM_24", seed=7)
    r = cliutil.run("record", "--input", "in24.wav", "--subtype", "PCM_24", out,
                    env=no_device_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sf.info(str(tmp_path / out)).subtype == "PCM_24"
    want = _read_exact(src, 2, dtype="int32")
    got = _read_exact(tmp_path / out, 2, dtype="int32")
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_a_stereo_input_recorded_with_one_channel_is_mixed_down(tmp_path):
    # Different tones per channel, so a "mix" that just takes one channel fails.
    src = audiolab.make_tone(tmp_path / "in.wav", 1.0, [440.0, 1250.0], channels=2,
                             amplitude=0.4)
    r = cliutil.run("record", "--input", "in.wav", "-c", "1", "out.wav",
                    env=no_device_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    want = _read_exact(src, 2).astype(np.float64).mean(axis=1)
    got = _read_exact(tmp_path / "out.wav", 1)
    assert got.shape == (len(want), 1)
    assert np.max(np.abs(got[:, 0] - want)) <= 1.0  # within one LSB of the mean


def test_an_input_file_delivered_in_real_time_completes_exactly(tmp_path):
    src = audiolab.make_noise(tmp_path / "in.wav", 2.0, channels=1, seed=3)
    r = cliutil.run("record", "--input", "in.wav", "--realtime", "out.wav",
                    env=no_device_env(tmp_path), cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(_read_exact(tmp_path / "out.wav", 1), _read_exact(src, 1))


# ---------------------------------------------------------------------------------------------
# 6. In a terminal: meter, keys, summary, terminal restored

PEAK = re.compile(r"peak\s+(-?\d+(?:\.\d+)?|-?inf)")


def _record_in_terminal(terminal, pulse, tmp_path, *extra, shell_wrap: str | None = None):
    argv = [*CLI, "record", "take.wav", "-r", str(RATE), *extra]
    command = argv if shell_wrap is None else shell_wrap.format(cmd=shlex.join(argv))
    return terminal(command, env=pulse_env(pulse), cwd=tmp_path, width=100, height=20)


def test_the_terminal_meter_shows_the_speech_pauses_resumes_and_q_saves(
        pulse, speech, terminal, tmp_path):
    # A shell around the recorder: the terminal's settings before and after, and the status.
    wrap = ("stty -g >before.txt; {cmd}; echo \"EXIT=$?\"; stty -g >after.txt; "
            "stty -a | tr -s ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo")
    t = _record_in_terminal(terminal, pulse, tmp_path, shell_wrap=wrap)
    screen = t.wait_for(lambda s: "dBFS" in s and ("REC" in s or "WAITING" in s), timeout=20)
    t.wait_for("● REC", timeout=START_TIMEOUT)  # the first audio arrived

    player = pulse.play(speech)
    peaks = []
    try:
        deadline = time.monotonic() + 30
        while player.poll() is None and time.monotonic() < deadline:
            screen = t.capture()
            peaks += [float(m) for m in PEAK.findall(screen)]
            time.sleep(0.05)
        player.wait(timeout=10)
    finally:
        stop_process(player)
    time.sleep(0.3)
    peaks += [float(m) for m in PEAK.findall(t.capture())]
    assert peaks and max(peaks) > -60, f"peaks seen while speech played: {peaks}"

    t.send_keys("Space")
    t.wait_for("PAUSED", timeout=10)
    t.send_keys("Space")
    t.wait_for(lambda s: "● REC" in s and "PAUSED" not in s, timeout=10)
    t.send_keys("q")
    assert t.wait_exit(timeout=EXIT_TIMEOUT) == 0
    screen = t.capture(history=True)
    assert "EXIT=0" in screen, screen
    assert re.search(r"^Saved take\.wav", screen, re.M), screen
    assert "Traceback" not in screen, screen
    assert assert_complete_wav(tmp_path / "take.wav") > 0
    # The terminal is restored: exactly its settings from before, and canonical with echo.
    before = (tmp_path / "before.txt").read_text().strip()
    assert before and (tmp_path / "after.txt").read_text().strip() == before
    settings = screen.split("EXIT=0", 1)[1].split()
    assert "icanon" in settings and "echo" in settings, screen


@pytest.mark.parametrize("key", ["Enter", "Escape", "C-c"])
def test_enter_escape_and_ctrl_c_in_the_terminal_stop_with_a_complete_file(
        pulse, terminal, tmp_path, key):
    t = _record_in_terminal(terminal, pulse, tmp_path)
    t.wait_for("● REC", timeout=START_TIMEOUT)
    time.sleep(0.3)
    t.send_keys(key)
    status = t.wait_exit(timeout=EXIT_TIMEOUT)
    screen = t.capture(history=True)
    assert status == 0, screen
    assert re.search(r"^Saved take\.wav", screen, re.M), screen
    assert "Traceback" not in screen, screen
    assert assert_complete_wav(tmp_path / "take.wav") > 0


def test_quiet_in_a_terminal_shows_no_meter_and_no_summary(pulse, terminal, tmp_path):
    t = _record_in_terminal(terminal, pulse, tmp_path, "-q")
    wait_started_in_terminal(pulse, t)
    time.sleep(0.3)
    t.send_keys("q")
    status = t.wait_exit(timeout=EXIT_TIMEOUT)
    screen = t.capture(history=True)
    assert status == 0, screen
    assert screen.strip() == "", f"expected a blank terminal, got:\n{screen}"
    assert assert_complete_wav(tmp_path / "take.wav") > 0


def test_without_a_terminal_on_stderr_there_is_no_meter_only_the_summary(
        pulse, tmp_path, recorders):
    rec = recorders("take.wav", *EVENTS)
    rec.wait_for_audio()
    time.sleep(1.0)  # several meter refreshes, were there a meter
    status = rec.stop(signal.SIGINT)
    stderr = rec.stderr()
    assert status == 0, stderr
    assert "\x1b" not in stderr and "dBFS" not in stderr, repr(stderr)
    lines = summary_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("Saved take.wav"), repr(stderr)


def test_keys_still_work_in_a_terminal_when_stderr_goes_to_a_file(pulse, terminal, tmp_path):
    t = _record_in_terminal(terminal, pulse, tmp_path, shell_wrap="{cmd} 2>err.txt")
    wait_started_in_terminal(pulse, t,
                             stderr=lambda: (tmp_path / "err.txt").read_text(errors="replace"))
    time.sleep(0.5)
    t.send_keys("q")
    assert t.wait_exit(timeout=EXIT_TIMEOUT) == 0
    stderr = (tmp_path / "err.txt").read_text(errors="replace")
    assert "\x1b" not in stderr and "dBFS" not in stderr, repr(stderr)
    lines = summary_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("Saved take.wav"), repr(stderr)
    assert assert_complete_wav(tmp_path / "take.wav") > 0
