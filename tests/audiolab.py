"""Real-audio test rig: a private PulseAudio server as a virtual microphone, test signals,
a content check by cross-correlation, checks of WAV files as written, and a terminal (tmux)
for driving the CLI.

Plain helpers, no pytest fixtures (those live in ``conftest.py``), so benchmarks can import
this module too. Facts behind the choices made here are in ``../shared/AUDIO-LAB.md``.

How the virtual microphone works: ``PulseServer`` starts ``pulseaudio`` with a null sink
called ``testmic`` and makes its monitor (``testmic.monitor``) the default source. Whatever
is played into the sink (``PulseServer.play``) is what the "microphone" hears. Programs find
the server through ``PULSE_SERVER``/``XDG_RUNTIME_DIR`` (``PulseServer.env``); in-process
PortAudio reaches it through ALSA's ``pulse``/``default`` devices (libasound2-plugins).

PortAudio and the environment (measured, see ``reinit_portaudio``): ALSA decides once per
process whether its ``default`` device is PulseAudio, by trying to connect to a server when
it first reads its configuration (``/etc/alsa/conf.d/99-pulse.conf``, "load if running").
If ``sounddevice`` was imported (PortAudio initialised) before the server was reachable,
call ``reinit_portaudio()`` after setting the environment.

Every wait here is bounded, and every process started here can be stopped by its owner
(``PulseServer.stop``, ``stop_process``, ``Tmux.kill``), which callers do in ``finally``
blocks or fixture finalizers.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import soundfile as sf

PathLike = Union[str, os.PathLike]

#: Debian package that provides each external tool the rig uses.
DEBIAN_PACKAGES = {
    "pulseaudio": "pulseaudio",
    "pactl": "pulseaudio-utils",
    "paplay": "pulseaudio-utils",
    "parecord": "pulseaudio-utils",
    "pacat": "pulseaudio-utils",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
    "tmux": "tmux",
    "arecord": "alsa-utils",
    "aplay": "alsa-utils",
}

SINK = "testmic"
SOURCE = "testmic.monitor"
RATE = 48000

# Environment variables that would send clients elsewhere than the server we start.
_PULSE_REDIRECTS = ("PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE")


# ---------------------------------------------------------------------------------------------
# Tools and processes


def require_tool(name: str) -> str:
    """Return the path of the executable ``name``; skip the test if it is missing.

    On CI (``CI=true``) a missing tool fails the test instead: there the tool is part of the
    set-up, and a skipped real-audio suite would pass silently.
    """
    path = shutil.which(name)
    if path:
        return path
    import pytest  # only here, so that benchmarks can import this module without pytest

    package = DEBIAN_PACKAGES.get(name, name)
    message = f"{name} not found on PATH (Debian package: {package}; apt-get install {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def stop_process(
    proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 5.0
) -> int | None:
    """Stop ``proc``: send ``sig``, then SIGTERM, then SIGKILL, each with a bounded wait.

    Returns the exit status (negative for a signal, as in ``subprocess``). Safe to call on a
    process that has already ended.
    """
    for s in (sig, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            proc.send_signal(s)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout if s != signal.SIGKILL else 10.0)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def _wait_file_grows(path: Path, min_size: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with status {proc.returncode}")
        try:
            if path.stat().st_size >= min_size:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{path} did not reach {min_size} bytes within {timeout} s")


# ---------------------------------------------------------------------------------------------
# PulseAudio


class PulseServer:
    """A private PulseAudio server whose default source hears what is played into its sink.

    Independent of any other PulseAudio on the machine: it has its own runtime directory,
    and clients started with ``env`` (or a process whose ``os.environ`` carries ``PULSE_SERVER``
    and ``XDG_RUNTIME_DIR`` from it) connect to it and to nothing else.

    The daemon is not daemonized: this object owns its pid, and ``stop()``/``kill()`` end it.
    Its log (stderr) is ``log_path``, inside the runtime directory.
    """

    def __init__(self, start_timeout: float = 10.0):
        self.start_timeout = start_timeout
        self.runtime_dir: str | None = None
        self.env: dict[str, str] = {}
        self.pid: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: str | None = None
        self.start_seconds: float | None = None  # measured: pulseaudio start to `pactl info` OK
        self._log_file = None

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "PulseServer":
        if self.proc is not None:
            raise RuntimeError("PulseServer already started")
        require_tool("pulseaudio")
        require_tool("pactl")
        self.runtime_dir = tempfile.mkdtemp(prefix="dictaphone-pulse-")
        os.chmod(self.runtime_dir, 0o700)
        env = {k: v for k, v in os.environ.items() if k not in _PULSE_REDIRECTS}
        env["XDG_RUNTIME_DIR"] = self.runtime_dir
        # An explicit server also stops libpulse from autospawning a daemon of its own.
        env["PULSE_SERVER"] = f"unix:{self.runtime_dir}/pulse/native"
        self.env = env
        self.log_path = os.path.join(self.runtime_dir, "pulseaudio.log")
        self._log_file = open(self.log_path, "wb")
        self._launch()
        return self

    def restart(self) -> "PulseServer":
        """Start the server again after ``kill()``, on the same socket and runtime directory,
        as a user's audio server comes back after a crash or ``pulseaudio -k``: clients that
        reconnect find it where it was. The sink and source get their old names."""
        if self.runtime_dir is None:
            raise RuntimeError("PulseServer was never started")
        if self.is_alive():
            raise RuntimeError("PulseServer is still running; kill() it first")
        self.proc = None
        self._launch()
        return self

    def _launch(self) -> None:
        pulseaudio = require_tool("pulseaudio")
        argv = [
            pulseaudio,
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--log-target=stderr",
            "-L", "module-native-protocol-unix auth-anonymous=1",
            "-L", f"module-null-sink sink_name={SINK} rate={RATE} channels=1",
            "-L", "module-always-sink",
        ]  # fmt: skip
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log_file,
                # Its own process group: a Ctrl-C in the terminal running pytest does not reach
                # it before our finalizers have run.
                start_new_session=True,
            )
            self.pid = self.proc.pid
            self._wait_ready()
            self.start_seconds = time.monotonic() - t0
            self.pactl("set-default-sink", SINK)
            self.pactl("set-default-source", SOURCE)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"pulseaudio exited with status {self.proc.returncode}:\n{self.log()}"
                )
            try:
                r = subprocess.run(
                    ["pactl", "info"], env=self.env, capture_output=True, text=True, timeout=2
                )
            except subprocess.TimeoutExpired:
                last = "pactl info timed out"
                continue
            if r.returncode == 0:
                return
            last = r.stderr.strip()
            time.sleep(0.05)
        raise RuntimeError(
            f"pulseaudio not ready after {self.start_timeout} s (pactl: {last}):\n{self.log()}"
        )

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL) and remove its runtime directory.

        Idempotent; also fine after ``kill()``.
        """
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, timeout=5.0)
            self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            self.runtime_dir = None

    def kill(self) -> None:
        """SIGKILL the server (for fault tests); ``stop()`` still cleans up afterwards."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def is_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "PulseServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        """The server's log so far (stderr of pulseaudio)."""
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return Path(self.log_path).read_text(errors="replace")
        except (OSError, TypeError):
            return ""

    # -- clients ----------------------------------------------------------------------------

    def pactl(self, *args: str, timeout: float = 5.0) -> str:
        """Run ``pactl ARGS`` against this server; return stdout, raise on failure."""
        r = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if r.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def play(self, path: PathLike, stderr=subprocess.DEVNULL) -> subprocess.Popen:
        """Start playing ``path`` into the sink (what the microphone hears); returns at once.

        The caller owns the process: wait for it or ``stop_process`` it.
        """
        require_tool("paplay")
        return subprocess.Popen(
            ["paplay", "-d", SINK, os.fspath(path)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )

    def play_and_wait(self, path: PathLike, timeout: float | None = None) -> None:
        """Play ``path`` into the sink and wait until it has been played.

        ``timeout`` defaults to the file's duration plus 10 s.
        """
        if timeout is None:
            timeout = sf.info(os.fspath(path)).duration + 10.0
        proc = self.play(path, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"paplay {path} did not finish within {timeout} s") from None
        finally:
            stop_process(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"paplay {path} failed ({proc.returncode}): {err.decode()}")

    def start_recording(self, path: PathLike, wait: bool = True, timeout: float = 10.0):
        """Start ``parecord`` of the sink's monitor into the WAV ``path`` (48 kHz mono s16le).

        With ``wait`` (the default), return only once audio frames have reached the file, so
        that anything played afterwards is in the recording (measured: 0.02 to 2 s after the
        start, however long the server has been idle). Stop it with ``stop_process``
        (SIGINT: parecord finalises the WAV header).
        """
        require_tool("parecord")
        path = Path(path)
        path.unlink(missing_ok=True)  # the wait below watches this file grow
        proc = subprocess.Popen(
            [
                "parecord", "-d", SOURCE, "--file-format=wav",
                f"--rate={RATE}", "--channels=1", "--format=s16le",
                "--latency-msec=20",
                os.fspath(path),
            ],  # fmt: skip
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait:
            try:
                # A 44-byte header, then at least 10 ms of audio.
                _wait_file_grows(path, 44 + RATE // 100 * 2, proc, timeout)
            except BaseException:
                stop_process(proc)
                raise
        return proc

    def stop_recording_after(self, proc: subprocess.Popen, path: PathLike, reference: np.ndarray,
                             margin: float = 0.25, timeout: float = 15.0) -> int | None:
        """Stop the ``start_recording`` capture ``proc`` once its file ``path`` holds the
        samples ``reference`` (at ``RATE``) and ``margin`` s beyond their end, or after
        ``timeout`` s (then the content check that follows fails and says why).

        Measured on the capture's own timeline: on a loaded machine parecord may be behind
        what the sink has played, and a fixed sleep after the player exits could cut off the
        end of what was played. Returns ``stop_process``'s status.
        """
        ref = np.asarray(reference, dtype=np.float64).ravel()
        need = len(ref) + int(margin * RATE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                raw = Path(path).read_bytes()[44:]  # parecord's header, then s16le mono
            except FileNotFoundError:
                raw = b""
            got = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2") / 32768.0
            if len(got) >= need:
                peak, lag = normalized_xcorr(ref, got)
                if peak > 0.5 and len(got) >= lag + need:
                    break
            time.sleep(0.1)
        return stop_process(proc)

    def record_monitor(self, path: PathLike, seconds: float) -> Path:
        """Record the sink's monitor to the WAV ``path`` for about ``seconds`` (blocking).

        The time counts from the first frames written, not from process start.
        """
        proc = self.start_recording(path)
        try:
            time.sleep(seconds)
        finally:
            status = stop_process(proc)
        if status not in (0, -signal.SIGINT):
            raise RuntimeError(f"parecord exited with status {status}")
        return Path(path)


# ---------------------------------------------------------------------------------------------
# PortAudio (in-process capture)


def reinit_portaudio() -> None:
    """Terminate and initialise PortAudio again, so it sees the current environment.

    Needed when ``sounddevice`` was imported before ``PULSE_SERVER``/``XDG_RUNTIME_DIR`` were
    set (measured: PortAudio then lists no device at all on a machine without a sound card,
    and ``sd.default.device`` is -1). ALSA's ``default`` becomes PulseAudio only if a server
    was reachable when ALSA read its configuration, and PortAudio probes devices only when it
    initialises; terminating frees ALSA's global configuration, so the next initialisation
    reads it again. Any open stream is invalid afterwards.
    """
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def record_with_sounddevice(
    seconds: float,
    samplerate: int = RATE,
    channels: int = 1,
    device=None,
    on_first_frames: Callable[[], object] | None = None,
    timeout: float = 10.0,
    dtype: str = "float32",
) -> np.ndarray:
    """Capture ``seconds`` from an input device in this process (like ``sounddevice.rec``).

    Unlike ``sd.rec`` the clock starts at the first callback, which arrives 0.45 to 1.9 s
    after ``start()`` here; ``on_first_frames`` is then called (in the calling thread, not
    the audio callback), typically to start playing into the sink. Returns an array of
    shape (frames, channels).
    """
    import sounddevice as sd

    frames = int(round(seconds * samplerate))
    out = np.zeros((frames, channels), dtype=dtype)
    filled = 0
    first = threading.Event()
    done = threading.Event()

    def callback(indata, n, time_info, status):
        nonlocal filled
        first.set()
        take = min(n, frames - filled)
        out[filled : filled + take] = indata[:take]
        filled += take
        if filled >= frames:
            done.set()
            raise sd.CallbackStop

    with sd.InputStream(
        samplerate=samplerate, channels=channels, dtype=dtype, device=device, callback=callback
    ):
        if not first.wait(timeout):
            raise TimeoutError(f"no input frames within {timeout} s")
        if on_first_frames is not None:
            on_first_frames()
        if not done.wait(seconds + timeout):
            raise TimeoutError(f"only {filled} of {frames} frames within {seconds + timeout} s")
    return out


# ---------------------------------------------------------------------------------------------
# Test signals


def make_speech(
    path: PathLike,
    text: str,
    rate: int = RATE,
    pad_start: float = 0.0,
    pad_end: float = 0.0,
    voice: str | None = None,
) -> Path:
    """Write ``text`` spoken by espeak-ng to ``path``: WAV, ``rate`` Hz, mono, 16-bit.
    ``voice``: an espeak-ng voice (``en+f3``, ``en-us``, ...; default its own).

    ``pad_start``/``pad_end`` add that many seconds of digital silence; the speech samples
    are the same with or without padding. Deterministic (sox runs without dither).
    """
    require_tool("espeak-ng")
    require_tool("sox")
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="dictaphone-speech-") as tmp:
        raw = os.path.join(tmp, "espeak.wav")
        subprocess.run(["espeak-ng", *(["-v", voice] if voice else []), "-w", raw, text],
                       check=True, capture_output=True, timeout=60)
        # Pad after the rate change, so padding adds exactly pad * rate samples.
        cmd = ["sox", "-D", raw, "-b", "16", os.fspath(path), "channels", "1", "rate", str(rate)]
        if pad_start or pad_end:
            cmd += ["pad", str(pad_start), str(pad_end)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return path


def make_tone(
    path: PathLike,
    seconds: float,
    freq: float | Sequence[float],
    rate: int = RATE,
    channels: int = 1,
    subtype: str = "PCM_16",
    amplitude: float = 0.5,
) -> Path:
    """Write a sine tone (deterministic) to ``path`` with soundfile; format from the suffix.

    ``freq`` is one frequency for every channel, or one per channel (so channels can be told
    apart). Returns the path; read it back for exact-sample comparisons.
    """
    freqs = np.broadcast_to(np.asarray(freq, dtype=np.float64), (channels,))
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    data = amplitude * np.sin(2 * np.pi * t[:, None] * freqs[None, :])
    sf.write(os.fspath(path), data, rate, subtype=subtype)
    return Path(path)


def make_noise(
    path: PathLike,
    seconds: float,
    rate: int = RATE,
    channels: int = 1,
    seed: int = 0,
    subtype: str = "PCM_16",
    amplitude: float = 0.5,
) -> Path:
    """Write uniform white noise in [-amplitude, amplitude), reproducible from ``seed``."""
    n = int(round(seconds * rate))
    rng = np.random.default_rng(seed)
    data = rng.uniform(-amplitude, amplitude, size=(n, channels))
    sf.write(os.fspath(path), data, rate, subtype=subtype)
    return Path(path)


def read_mono(path: PathLike) -> tuple[np.ndarray, int]:
    """Read ``path`` as float64 samples in [-1, 1]; several channels are averaged to one."""
    data, rate = sf.read(os.fspath(path), dtype="float64", always_2d=True)
    return data.mean(axis=1), rate


# ---------------------------------------------------------------------------------------------
# Content check


def normalized_xcorr(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Find the reference ``a`` inside the recording ``b``: return ``(peak, lag)``.

    For every lag ``k`` (from ``-(len(a) - 1)`` to ``len(b) - 1``) this computes::

        r[k] = sum_n a[n] * b[n + k]  /  ( ||a|| * ||b[k : k + len(a)]|| )

    where ``b[k : k + len(a)]`` is the window of ``b`` that ``a`` overlaps when it starts at
    ``b[k]`` (samples outside ``b`` count as zero), and ``||.||`` is the Euclidean norm. No
    mean is removed. ``peak = max_k r[k]`` (signed: an inverted copy scores -1), and ``lag``
    is that ``k``: the index in ``b`` where ``a`` starts (negative if ``b`` starts inside
    ``a``).

    By Cauchy-Schwarz ``-1 <= r[k] <= 1``, with 1 exactly when that window of ``b`` is a
    positive multiple of ``a``: a recording that holds the reference somewhere, with silence
    or anything else around it, scores close to 1 whatever its gain; unrelated audio scores
    low. Because ``a``'s full norm is used, a window that overlaps only the end of ``a``
    cannot score high (a reference cut at the edge of the recording scores the square root
    of the fraction of its energy that is inside). Windows of ``b`` with (almost) no energy
    -- at most 1e-12 of the loudest window, e.g. digital silence -- score 0, and so does a
    ``b`` that is all zeros.

    FFT-based, O((len(a) + len(b)) log(...)); a few hundred thousand samples take well under
    a second.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        raise ValueError("normalized_xcorr needs two non-empty arrays")
    norm_a = np.sqrt(np.dot(a, a))
    if norm_a == 0:
        raise ValueError("the reference is all zeros")
    n = 1 << int(np.ceil(np.log2(na + nb - 1)))
    c = np.fft.irfft(np.conj(np.fft.rfft(a, n)) * np.fft.rfft(b, n), n)
    # c[k] = sum_n a[n] b[n + k] (circular); negative lags sit at the end.
    lags = np.arange(-(na - 1), nb)
    corr = np.concatenate([c[n - (na - 1) :], c[:nb]]) if na > 1 else c[:nb]
    cs = np.concatenate([[0.0], np.cumsum(b * b)])
    lo = np.clip(lags, 0, nb)
    hi = np.clip(lags + na, 0, nb)
    energy = np.maximum(cs[hi] - cs[lo], 0.0)
    valid = energy > energy.max() * 1e-12
    r = np.zeros_like(corr)
    r[valid] = corr[valid] / (norm_a * np.sqrt(energy[valid]))
    i = int(np.argmax(r))
    return float(r[i]), int(lags[i])


def speech_score(
    reference: PathLike, recording: Union[PathLike, np.ndarray], rate: int = RATE
) -> float:
    """How well ``recording`` (a file, or mono samples at ``rate``) holds the ``reference``
    file: the ``peak`` of ``normalized_xcorr``. Both files must be at ``rate``."""
    ref, ref_rate = read_mono(reference)
    assert ref_rate == rate, f"{reference} is at {ref_rate} Hz, not {rate}"
    if isinstance(recording, np.ndarray):
        got = recording
    else:
        got, got_rate = read_mono(recording)
        assert got_rate == rate, f"{recording} is at {got_rate} Hz, not {rate}"
    return normalized_xcorr(ref, got)[0]


# ---------------------------------------------------------------------------------------------
# WAV files as written


def parse_wav(data: bytes) -> dict:
    """The chunks of a RIFF/WAVE byte string: sizes as written, the fmt fields, and where the
    data starts (``riff_size``, ``tag``, ``channels``, ``samplerate``, ``block_align``,
    ``bits``, ``data_offset``, ``data_size``)."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", f"not a RIFF/WAVE file: {data[:16]!r}"
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


def assert_complete_wav(path: PathLike, channels: int = 1, rate: int = RATE) -> int:
    """Check that ``path`` is a finished 16-bit WAV of ``channels`` at ``rate``: the RIFF size
    is the file's, the data chunk's size is the bytes that follow it (and a whole number of
    frames), and libsndfile finds and reads that many frames. Returns the frames."""
    blob = Path(path).read_bytes()
    h = parse_wav(blob)
    size, body = h["data_size"], len(blob) - h["data_offset"]
    assert body in (size, size + (size & 1)), f"{path}: data chunk of {size} bytes, {body} follow"
    assert h["riff_size"] == len(blob) - 8, f"{path}: RIFF size {h['riff_size']}, {len(blob)} bytes"
    assert h["block_align"] == channels * 2 and size % h["block_align"] == 0, (path, h)
    frames = size // h["block_align"]
    info = sf.info(os.fspath(path))
    assert (info.samplerate, info.channels) == (rate, channels), f"{path}: {info}"
    assert info.frames == frames, f"{path}: libsndfile finds {info.frames} frames, not {frames}"
    data, _ = sf.read(os.fspath(path), dtype="int16")
    assert len(data) == frames
    return frames


# ---------------------------------------------------------------------------------------------
# A terminal for CLI tests


# The command runs under this wrapper (the pane's process) instead of being the pane's process:
# - tmux 3.3a loses output: when the pane's process exits, tmux may close the pty before
#   reading the last lines written just before the exit (measured: a final "got hello" missing
#   from the screen about one run in 50). The wrapper keeps the pty open after the command ends.
# - tmux 3.3a sometimes misses the SIGCHLD of a pane's process, which then never gets an exit
#   status; the wrapper reports the status itself.
# After the command ends the wrapper writes its status to a file, then sets the pane title to
# an end marker: tmux processes a pane's output in order, so once the title shows the marker,
# everything the command wrote is on the screen. Ctrl-C and Ctrl-\ reach the command with
# their default dispositions (a handler, unlike SIG_IGN, is not inherited across exec); the
# wrapper catches them so it survives to report the status.
_TMUX_WRAPPER = r"""
import os, signal, subprocess, sys
status_path, pid_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
for s in (signal.SIGINT, signal.SIGQUIT):
    signal.signal(s, lambda *a: None)
def put(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
try:
    proc = subprocess.Popen(argv)
except OSError as e:
    print(f"{argv[0]}: {e}", file=sys.stderr, flush=True)
    code = 127
else:
    put(pid_path, str(proc.pid))
    code = proc.wait()
put(status_path, str(code))
sys.stdout.write(f"\033]2;{MARKER}{code}\033\\")
sys.stdout.flush()
while True:
    signal.pause()
"""
_END_MARKER = "dictaphone-test-ended:"


class Tmux:
    """Run a command in a detached tmux session of a given size, on a private tmux server.

    The server's socket and config live in a temporary directory (``tmux -S``, ``-f``), so a
    user's tmux server and ``~/.tmux.conf`` are never touched. The status line is off, so the
    pane is exactly ``width`` x ``height``. The pane stays after the command ends: its last
    screen can still be captured and its exit status read.

    ``command`` is an argv list (run directly) or a string (run by ``sh -c``). The command
    gets ``env`` (default: ``os.environ``) and starts in ``cwd``. It runs as a child of a
    small wrapper (see ``_TMUX_WRAPPER``): ``pane_pid()`` is the wrapper, the leader of the
    pane's process group; ``command_pid()`` is the command, the one to send signals to.
    One tmux server per instance; ``kill()`` (or leaving the ``with`` block) ends it.
    """

    def __init__(
        self,
        command: Union[str, Sequence[str]],
        env: dict[str, str] | None = None,
        cwd: PathLike | None = None,
        width: int = 100,
        height: int = 20,
        name: str = "test",
    ):
        self.tmux = require_tool("tmux")
        self.name = name
        self.width, self.height = width, height
        self.dir = tempfile.mkdtemp(prefix="dictaphone-tmux-")
        self.socket = os.path.join(self.dir, "socket")
        self._status_path = os.path.join(self.dir, "status")
        self._pid_path = os.path.join(self.dir, "pid")
        conf = os.path.join(self.dir, "tmux.conf")
        wrapper = os.path.join(self.dir, "wrapper.py")
        self._base = [self.tmux, "-S", self.socket, "-f", conf]
        self._pane_pid: int | None = None
        self._server_pid: int | None = None
        env = dict(os.environ if env is None else env)
        env.pop("TMUX", None)  # we may be inside a user's tmux
        self.env = env
        self.command = ["sh", "-c", command] if isinstance(command, str) else list(command)
        cwd = os.fspath(cwd) if cwd is not None else os.getcwd()
        try:
            with open(conf, "w") as f:
                f.write(
                    "set -g status off\n"
                    "set -g remain-on-exit on\n"
                    "set -g history-limit 10000\n"
                    "set -s escape-time 0\n"
                )
            with open(wrapper, "w") as f:
                f.write(f"MARKER = {_END_MARKER!r}\n{_TMUX_WRAPPER}")
            argv = [sys.executable, "-I", "-S", wrapper, self._status_path, self._pid_path]
            self._run(
                "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
                "-c", cwd, *argv, *self.command,
                cwd=cwd,
            )  # fmt: skip
            self._pane_pid = int(self._display("#{pane_pid}"))
            self._server_pid = int(self._display("#{pid}"))
        except BaseException:
            self.kill()
            raise

    def _run(self, *args: str, cwd=None, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [*self._base, *args],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"tmux {shlex.join(args)} failed: {r.stderr.strip()}")
        return r

    def _display(self, fmt: str) -> str:
        return self._run("display-message", "-p", "-t", self.name, fmt).stdout.strip()

    def send_keys(self, *keys: str) -> None:
        """``tmux send-keys``: names such as ``Enter``, ``Space``, ``Escape``, ``C-c`` are keys,
        anything else is typed as text. Use ``type_text`` for text that could be a key name."""
        self._run("send-keys", "-t", self.name, *keys)

    def type_text(self, text: str) -> None:
        """Type ``text`` literally (``send-keys -l``)."""
        self._run("send-keys", "-l", "-t", self.name, text)

    def capture(self, history: bool = False) -> str:
        """The pane's text (``capture-pane -p``); with ``history``, the scrollback too."""
        args = ["capture-pane", "-p", "-t", self.name]
        if history:
            args += ["-S", "-"]
        return self._run(*args).stdout

    def wait_for(
        self,
        what: Union[str, Callable[[str], bool]],
        timeout: float = 10.0,
        interval: float = 0.05,
    ) -> str:
        """Poll the pane until it contains ``what`` (a substring) or ``what(text)`` is true.

        Returns the pane's text; raises AssertionError with the last screen on time-out.
        """
        pred = (lambda text: what in text) if isinstance(what, str) else what
        deadline = time.monotonic() + timeout
        while True:
            text = self.capture()
            if pred(text):
                return text
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what!r}; screen:\n{text}"
                )
            time.sleep(interval)

    def pane_pid(self) -> int:
        """Pid of the pane's process (the wrapper), leader of the pane's process group."""
        return self._pane_pid

    def command_pid(self, timeout: float = 5.0) -> int:
        """Pid of the command itself (of ``sh`` when ``command`` was a string)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return int(Path(self._pid_path).read_text())
            except FileNotFoundError:
                if self._status() is not None:
                    raise RuntimeError("the command did not start") from None
            if time.monotonic() >= deadline:
                raise AssertionError(f"command not started after {timeout} s")
            time.sleep(0.01)

    def _status(self) -> int | None:
        try:
            return int(Path(self._status_path).read_text())
        except FileNotFoundError:
            pass
        # The wrapper itself died (killed, or tmux gone): no status will come.
        if self._pane_pid is not None and not _pid_alive(self._pane_pid):
            raise RuntimeError(f"the tmux pane's process ended; screen:\n{self._try_capture()}")
        return None

    def _try_capture(self) -> str:
        try:
            return self.capture()
        except Exception as e:  # the screen is only decoration for an error message here
            return f"(no screen: {e})"

    def is_alive(self) -> bool:
        """Whether the command is still running."""
        try:
            return self._status() is None
        except RuntimeError:
            return False

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait until the command has ended and all its output is on the screen; return its
        exit status (``-N`` if signal N killed it, as in ``subprocess``).

        Raises AssertionError with the last screen on time-out.
        """
        deadline = time.monotonic() + timeout
        while (status := self._status()) is None:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"command still running after {timeout} s; screen:\n{self.capture()}"
                )
            time.sleep(0.02)
        # The title marker comes after the command's last output (see _TMUX_WRAPPER).
        marker_by = time.monotonic() + 5.0
        while not self._display("#{pane_title}").startswith(_END_MARKER):
            if time.monotonic() >= marker_by:
                break  # the status is known; a garbled terminal state can eat the marker
            time.sleep(0.01)
        return status

    exit_status = wait_exit

    def kill(self) -> None:
        """End the tmux server and the command (SIGKILL to the pane's process group if it
        survives the server's SIGHUP), and remove the temporary directory. Idempotent."""
        if self.dir is None:
            return
        try:
            self._run("kill-server", check=False)
        except subprocess.TimeoutExpired:
            pass
        for pid in (self._pane_pid, self._server_pid):
            if pid is None:
                continue
            deadline = time.monotonic() + 2.0
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        if self._pane_pid is not None:
            try:
                # tmux makes each pane's process a session leader: this is its process group.
                os.killpg(self._pane_pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._server_pid is not None and _pid_alive(self._server_pid):
            try:
                os.kill(self._server_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # SIGKILL is delivered asynchronously: wait (bounded) until they are really gone.
        try:
            command_pid = int(Path(self._pid_path).read_text())
        except (OSError, ValueError):
            command_pid = None
        pids = [p for p in (self._pane_pid, self._server_pid, command_pid) if p is not None]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
            time.sleep(0.01)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> "Tmux":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def mount_tmpfs(path, size: str) -> None:
    """A real small file system at ``path`` (made if missing): a tmpfs of ``size`` (``256k``),
    for full and read-only disks. Needs root: a failure under CI=true (which runs as root),
    a skip elsewhere. The caller unmounts it (``umount -l``)."""
    import pytest

    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run as root to mount a tmpfs")
        pytest.skip("mounting a tmpfs needs root")
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a tmpfs: {r.stderr}"
