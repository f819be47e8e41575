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
blocking the suite, and every process started here is stopped in a ``finally``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolab
from audiolab import normalized_xcorr, read_mono, stop_process

RATE = audiolab.RATE  # 48000, the rate of the reference speech
DICTAPHONE = [sys.executable, "-m", "dictaphone"]

#: Generous bounds ("does not hang"), not timing assertions.
START_TIMEOUT = 20.0  # recorder started -> first audio frames written
EXIT_TIMEOUT = 20.0  # stop requested -> process ended

HAS_MP3 = sf.check_format("MP3", "MPEG_LAYER_III")

#: What must never appear on dictaphone's stderr, whatever happens.
NOISE = ("Traceback", "Exception ignored", "Illegal seek", "BrokenPipeError")


# ---------------------------------------------------------------------------------------------
# Helpers


def no_device_env(tmp_path: Path) -> dict[str, str]:
    """An environment for runs that need no audio device (--input, refusals, --help).

    Its own XDG_RUNTIME_DIR, so the control registry stays private. PULSE_SERVER points at
    nothing, so no client autospawns a PulseAudio server and no real device is reached.
    """
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ)
    for name in ("PULSE_SINK", "PULSE_SOURCE", "DICTAPHONE_TRACEBACK"):
        env.pop(name, None)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env["PULSE_SERVER"] = f"unix:{runtime}/no-pulse-here"
    env["DICTAPHONE_HOME"] = str(tmp_path / "clips")
    return env


def pulse_env(pulse) -> dict[str, str]:
    env = dict(pulse.env)
    env.pop("DICTAPHONE_TRACEBACK", None)
    return env


def run_dictaphone(args, *, env, cwd, timeout=60.0) -> subprocess.CompletedProcess:
    """Run `dictaphone ARGS` to its end (bounded); stdin is never the test's terminal."""
    return subprocess.run([*DICTAPHONE, *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


def assert_no_noise(stderr: str) -> None:
    for word in NOISE:
        assert word not in stderr, f"{word!r} on stderr:\n{stderr}"


def summary_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


class Drain(threading.Thread):
    """Reads a pipe to its end in the background (so a recorder writing to it never blocks)."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.fd = stream.fileno()
        self.chunks: list[bytes] = []

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            self.chunks.append(chunk)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class Recording:
    """A `dictaphone record` subprocess started for a test; stop it with ``stop(sig)``."""

    def __init__(self, args, *, env, cwd: Path, events: bool = True, stdout=subprocess.DEVNULL,
                 preexec_fn=None, drain: bool = True):
        self.cwd = Path(cwd)
        self.events_path = self.cwd / "events.jsonl" if events else None
        extra = ["--events", str(self.events_path), "--timeslice", "0.1"] if events else []
        self.args = [*DICTAPHONE, "record", *args, *extra]
        self.env = env
        self.stderr_path = self.cwd / "recorder-stderr.txt"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.args,
            env=env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=self._stderr,
            preexec_fn=preexec_fn,
        )
        self.drain = None
        if stdout is subprocess.PIPE and drain:
            self.drain = Drain(self.proc.stdout)
            self.drain.start()

    # -- waiting for the first audio --------------------------------------------------------

    def _check_alive(self, what: str) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"dictaphone ended (status {self.proc.returncode}) before {what}; "
                f"stderr:\n{self.stderr()}"
            )

    def wait_started(self, timeout: float = START_TIMEOUT) -> None:
        """Until the first audio was written: the event log's first dataavailable."""
        assert self.events_path is not None, "started without --events: use wait_started_status"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive("its first audio")
            try:
                lines = self.events_path.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            for line in lines:
                try:
                    if json.loads(line).get("type") == "dataavailable":
                        return
                except ValueError:
                    pass  # a line being written
            time.sleep(0.02)
        raise AssertionError(f"no dataavailable event within {timeout} s; stderr:\n{self.stderr()}")

    def wait_started_status(self, timeout: float = START_TIMEOUT) -> None:
        """Until `dictaphone status --json` (same environment) says this recording started."""
        wait_started_by_status(self.env, {self.proc.pid}, timeout, self.stderr,
                               alive=lambda: self.proc.poll() is None)

    # -- stopping ---------------------------------------------------------------------------

    def stop(self, sig=signal.SIGINT, timeout: float = EXIT_TIMEOUT) -> int:
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"dictaphone still running {timeout} s after being told to stop")
        if self.drain is not None:
            self.drain.join(timeout=10)
        return self.proc.returncode

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout_bytes(self) -> bytes:
        assert self.drain is not None
        return self.drain.data

    def close(self) -> None:
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_started_by_status(env, pids, timeout: float, stderr=lambda: "",
                           alive=lambda: True) -> None:
    """Poll `dictaphone status --json` until an entry whose pid is in ``pids`` (a set, or a
    function returning one) says "started": true."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"dictaphone ended before starting; stderr:\n{stderr()}")
        r = subprocess.run([*DICTAPHONE, "status", "--json"], env=env, capture_output=True,
                           text=True, timeout=15, stdin=subprocess.DEVNULL)
        last = r.stdout + r.stderr
        try:
            entries = json.loads(r.stdout) if r.stdout.strip() else []
        except ValueError:
            entries = []
        wanted = pids() if callable(pids) else pids
        if any(e.get("pid") in wanted and e.get("started") for e in entries):
            return
        time.sleep(0.1)
    raise AssertionError(f"recording never reported started within {timeout} s; last status:\n{last}")


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
    """For a recorder in a tmux pane (run directly or by a shell there)."""
    wait_started_by_status(pulse_env(pulse), lambda: process_tree(t.pane_pid()), timeout,
                           stderr, alive=t.is_alive)


def play_speech(pulse, speech) -> None:
    """Play the reference into the virtual microphone, wait until it was played, + 0.5 s
    so its end has travelled through PulseAudio and PortAudio into the recorder."""
    pulse.play_and_wait(speech)
    time.sleep(0.5)


def speech_score(speech, recording: np.ndarray) -> float:
    reference, rate = read_mono(speech)
    assert rate == RATE
    peak, _lag = normalized_xcorr(reference, recording)
    return peak


def parse_wav(data: bytes) -> dict:
    """The chunks of a RIFF/WAVE byte string: sizes as written, where the data starts."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", data[:16]
    out = {"riff_size": struct.unpack_from("<I", data, 4)[0]}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"fmt ":
            tag, ch, rate, _, align, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
            out.update(tag=tag, channels=ch, samplerate=rate, block_align=align, bits=bits)
        if cid == b"data":
            out.update(data_offset=pos + 8, data_size=size)
            return out
        pos += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def assert_complete_wav(path: Path) -> int:
    """The header's sizes agree with the file, and soundfile's frame count with both.
    Returns the frames."""
    data = path.read_bytes()
    h = parse_wav(data)
    body = len(data) - h["data_offset"]
    assert h["data_size"] in (body, body - 1), (h, len(data))  # -1: a RIFF pad byte
    assert h["riff_size"] == len(data) - 8, (h, len(data))
    assert h["data_size"] % h["block_align"] == 0
    frames = h["data_size"] // h["block_align"]
    assert sf.info(str(path)).frames == frames
    return frames


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
        pulse, speech, tmp_path, fmt, threshold):
    name = f"take.{fmt}"
    # A plain command line (no --events/--timeslice): started-ness comes from `status`.
    with Recording([name, "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path,
                   events=False, stdout=subprocess.PIPE) as rec:
        rec.wait_started_status()
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
    r = run_dictaphone(["record", name, "-r", str(RATE), *args], env=pulse_env(pulse),
                       cwd=tmp_path, timeout=60)
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert_no_noise(stderr)
    info = sf.info(str(tmp_path / name))
    assert (info.samplerate, info.frames) == (RATE, frames)
    if name.endswith(".wav"):
        assert assert_complete_wav(tmp_path / name) == frames


# ---------------------------------------------------------------------------------------------
# 3. Signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_sigterm_and_sighup_stop_the_recording_with_a_complete_file(pulse, tmp_path, sig):
    with Recording(["take.wav", "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path) as rec:
        rec.wait_started()
        time.sleep(0.3)
        status = rec.stop(sig)
        stderr = rec.stderr()
    assert status == 0, stderr
    assert_no_noise(stderr)
    assert summary_lines(stderr)[-1].startswith("Saved take.wav"), stderr
    assert assert_complete_wav(tmp_path / "take.wav") > 0


def test_a_second_sigint_right_after_the_first_does_not_corrupt_the_file(pulse, tmp_path):
    with Recording(["take.wav", "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path) as rec:
        rec.wait_started()
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
        pulse, tmp_path):
    """A user who hits Ctrl-C several times (SIGINT every 20 ms until the process is gone):
    every stop exits 0, and later Ctrl-Cs are ignored, not turned into an abort."""
    with Recording(["take.wav", "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path) as rec:
        rec.wait_started()
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


def test_a_recorder_started_with_sigint_ignored_still_stops_on_sigint(pulse, tmp_path):
    with Recording(["take.wav", "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path,
                   preexec_fn=_ignore_sigint) as rec:
        rec.wait_started()
        time.sleep(0.3)
        status = rec.stop(signal.SIGINT)
        stderr = rec.stderr()
    assert status == 0, stderr
    assert summary_lines(stderr)[-1].startswith("Saved take.wav"), stderr
    assert assert_complete_wav(tmp_path / "take.wav") > 0


def _ignore_sighup() -> None:
    # What `nohup` does.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_a_recorder_started_under_nohup_keeps_recording_through_sighup(pulse, tmp_path):
    with Recording(["take.wav", "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path,
                   preexec_fn=_ignore_sighup) as rec:
        rec.wait_started()
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
    r = run_dictaphone(["record", "-", "-f", "wav", "-d", "3", "-r", str(RATE)],
                       env=pulse_env(pulse), cwd=tmp_path, timeout=60)
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert_no_noise(stderr)
    data = r.stdout
    h = parse_wav(data)
    # Sizes unknown when the header was written: 0xFFFFFFFF, as arecord and ffmpeg write.
    assert (h["riff_size"], h["data_size"]) == (0xFFFFFFFF, 0xFFFFFFFF)
    assert len(data) - h["data_offset"] == 144000 * 2
    frames, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert (rate, len(frames)) == (RATE, 144000)
    assert sox_samples(data, "wav") == 144000
    assert list(tmp_path.iterdir()) == [], "nothing but stdout is written"


def test_raw_to_a_pipe_is_exactly_the_pcm_bytes_of_the_duration(pulse, tmp_path):
    r = run_dictaphone(["record", "-", "-f", "raw", "-d", "2", "-r", str(RATE)],
                       env=pulse_env(pulse), cwd=tmp_path, timeout=60)
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert_no_noise(stderr)
    assert len(r.stdout) == 2 * RATE * 2


@pytest.mark.parametrize("fmt", ["flac", "ogg", "opus"])
def test_compressed_formats_streamed_to_a_pipe_decode_to_about_the_duration(
        pulse, tmp_path, fmt):
    r = run_dictaphone(["record", "-", "-f", fmt, "-d", "2", "-r", str(RATE)],
                       env=pulse_env(pulse), cwd=tmp_path, timeout=60)
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert_no_noise(stderr)
    assert r.stdout, "nothing on stdout"
    expected = 2 * RATE
    if fmt == "flac":
        # A streamed FLAC has no total in STREAMINFO: libsndfile refuses it, sox decodes it.
        got = sox_samples(r.stdout, "flac")
    else:
        frames, rate = sf.read(io.BytesIO(r.stdout))
        assert rate == RATE
        got = len(frames)
    # "About": lossy codecs may pad or trim a frame's worth at the edges.
    assert abs(got - expected) <= 0.02 * expected, f"{got} frames, expected about {expected}"


def test_speech_streamed_as_wav_to_a_pipe_is_the_speech(pulse, speech, tmp_path):
    with Recording(["-", "-f", "wav", "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path,
                   stdout=subprocess.PIPE) as rec:
        rec.wait_started()
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


def test_a_reader_that_closes_the_pipe_early_ends_the_recording_with_status_0(pulse, tmp_path):
    """`dictaphone record - | head -c 1000`, done by hand: read 1000 bytes, close."""
    with Recording(["-", "-f", "wav", "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path,
                   events=False, stdout=subprocess.PIPE, drain=False) as rec:  # we read
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
    cmd = (f"{shlex.join(DICTAPHONE)} record - -f wav -r {RATE} 2>err.txt | head -c 1000 "
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
    t = terminal([*DICTAPHONE, "record", "-", "-f", "wav", "-r", str(RATE)],
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
    r = run_dictaphone(["record", "--input", "in.wav", out], env=no_device_env(tmp_path),
                       cwd=tmp_path)
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert_no_noise(stderr)
    want = _read_exact(src, channels)
    got = _read_exact(tmp_path / out, channels)
    assert got.shape == want.shape
    assert np.array_equal(got, want)
    if out.endswith(".raw"):
        assert (tmp_path / out).stat().st_size == want.size * 2
    if out.endswith(".wav"):
        assert assert_complete_wav(tmp_path / out) == len(want)


@pytest.mark.parametrize("out", ["out.wav", "out.flac"])
def test_a_24_bit_input_recorded_as_pcm_24_is_exact(tmp_path, out):
    src = audiolab.make_noise(tmp_path / "in24.wav", 1.0, channels=2, subtype="PCM_24", seed=7)
    r = run_dictaphone(["record", "--input", "in24.wav", "--subtype", "PCM_24", out],
                       env=no_device_env(tmp_path), cwd=tmp_path)
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert sf.info(str(tmp_path / out)).subtype == "PCM_24"
    want = _read_exact(src, 2, dtype="int32")
    got = _read_exact(tmp_path / out, 2, dtype="int32")
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_a_stereo_input_recorded_with_one_channel_is_mixed_down(tmp_path):
    # Different tones per channel, so a "mix" that just takes one channel fails.
    src = audiolab.make_tone(tmp_path / "in.wav", 1.0, [440.0, 1250.0], channels=2,
                             amplitude=0.4)
    r = run_dictaphone(["record", "--input", "in.wav", "-c", "1", "out.wav"],
                       env=no_device_env(tmp_path), cwd=tmp_path)
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    want = _read_exact(src, 2).astype(np.float64).mean(axis=1)
    got = _read_exact(tmp_path / "out.wav", 1)
    assert got.shape == (len(want), 1)
    assert np.max(np.abs(got[:, 0] - want)) <= 1.0  # within one LSB of the mean


def test_an_input_file_delivered_in_real_time_completes_exactly(tmp_path):
    src = audiolab.make_noise(tmp_path / "in.wav", 2.0, channels=1, seed=3)
    r = run_dictaphone(["record", "--input", "in.wav", "--realtime", "out.wav"],
                       env=no_device_env(tmp_path), cwd=tmp_path, timeout=60)
    stderr = r.stderr.decode(errors="replace")
    assert r.returncode == 0, stderr
    assert np.array_equal(_read_exact(tmp_path / "out.wav", 1), _read_exact(src, 1))


# ---------------------------------------------------------------------------------------------
# 6. In a terminal: meter, keys, summary, terminal restored

PEAK = re.compile(r"peak\s+(-?\d+(?:\.\d+)?|-?inf)")


def _record_in_terminal(terminal, pulse, tmp_path, *extra, shell_wrap: str | None = None):
    argv = [*DICTAPHONE, "record", "take.wav", "-r", str(RATE), *extra]
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


def test_without_a_terminal_on_stderr_there_is_no_meter_only_the_summary(pulse, tmp_path):
    with Recording(["take.wav", "-r", str(RATE)], env=pulse_env(pulse), cwd=tmp_path) as rec:
        rec.wait_started()
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
