"""Shared helpers for the benchmarks: the virtual microphone, CPU clocks, bounded processes.

The virtual microphone is the test rig's ``PulseServer`` (tests/audiolab.py, imported, not
copied): a private PulseAudio server with a 48 kHz mono null sink ``testmic`` whose monitor is
the default source. ``Lab`` adds a player that loops a tone into the sink, so every recorder
hears real audio, in one of two modes:

- ``idle``: plain ``paplay`` (PulseAudio's default 2 s buffering). The sink then runs at the
  latency the *recorder* asks for, as a real microphone does when the recorder is the only
  audio client: this is the honest mode for CPU costs. Its catch: the null sink sleeps in
  long render cycles, so the first audio after a stream opens can take up to ~2 s.
- ``busy``: ``paplay --latency-msec=20``. The sink renders every 20 ms, like a device that
  another low-latency client keeps busy. First audio then arrives in tens of ms, so this is
  the mode for start-up timings; every capture client is woken every 20 ms, whatever it asked.

CPU time of another process is read from its POSIX CPU-time clock (``clock_gettime`` on
``(~pid << 3) | 2``, i.e. CPUCLOCK_SCHED of the whole thread group), which has nanosecond
resolution, unlike /proc/<pid>/stat (10 ms ticks). Whole-run totals come from ``wait4``'s
rusage of the child.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

from audiolab import SINK, PulseServer, Tmux, stop_process  # noqa: E402,F401  (re-exported)

RATE = 48000
PY = sys.executable
BINDIR = os.path.dirname(PY)


def dictaphone_cmd() -> list[str]:
    """The console script next to this Python (not a pyenv shim), else ``python -m``."""
    script = os.path.join(BINDIR, "dictaphone")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [PY, "-m", "dictaphone"]


# ---------------------------------------------------------------------------------------------
# CPU clocks and processes


def cpu_clock(pid: int) -> float | None:
    """CPU seconds (user+sys, all threads) used so far by process ``pid``; None if gone."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        return None


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def sleep_until(t: float) -> None:
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def wait4(proc: subprocess.Popen, timeout: float) -> tuple[int, object]:
    """Wait for ``proc`` (bounded) and return (exit code, rusage of that child alone).

    On time-out the process is killed and TimeoutError raised."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru
        if time.monotonic() > deadline:
            kill_tree(proc)
            raise TimeoutError(f"{proc.args} did not end within {timeout} s")
        time.sleep(0.005)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process we started (its process group when it has its own), then reap it."""
    if proc.poll() is not None:
        return
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_timed(argv, env, timeout=60.0, **kw) -> tuple[float, int, object]:
    """Run to completion; (wall seconds, exit code, rusage)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                         stdout=kw.pop("stdout", subprocess.DEVNULL),
                         stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
    code, ru = wait4(p, timeout)
    return time.monotonic() - t0, code, ru


def ru_cpu(ru) -> float:
    return ru.ru_utime + ru.ru_stime


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# ---------------------------------------------------------------------------------------------
# The lab: server, player, temp dir


class Lab:
    """A private PulseAudio server, a temp dir, and a tone player (see the module doc)."""

    def __init__(self):
        self.server = PulseServer()
        self.tmp: str | None = None
        self.player: subprocess.Popen | None = None
        self.player_mode: str | None = None

    def __enter__(self) -> "Lab":
        self.tmp = tempfile.mkdtemp(prefix="dictaphone-bench-")
        self.server.start()
        self.tone = os.path.join(self.tmp, "tone.wav")
        n = 120 * RATE  # two minutes: the loop restarts rarely
        t = np.arange(n) / RATE
        # A tone with a slow tremolo and a little noise: real, varying audio, never clipping.
        x = 0.3 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
        x += 0.02 * np.random.default_rng(0).standard_normal(n)
        sf.write(self.tone, x.astype(np.float32), RATE, subtype="PCM_16")
        return self

    def __exit__(self, *exc) -> None:
        self.stop_player()
        self.server.stop()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(self.server.env)
        env["DICTAPHONE_HOME"] = os.path.join(self.tmp, "clips")
        env.pop("DICTAPHONE_TRACEBACK", None)
        return env

    @property
    def pulse_pid(self) -> int:
        return self.server.pid

    def start_player(self, mode: str = "idle") -> None:
        if self.player is not None and self.player_mode == mode:
            return
        self.stop_player()
        lat = "--latency-msec=20 " if mode == "busy" else ""
        # Bounded: the loop ends by itself after an hour even if we were killed.
        script = (f'end=$(( $(date +%s) + 3600 )); while [ $(date +%s) -lt $end ]; do '
                  f'paplay {lat}-d {SINK} "$1" || sleep 0.2; done')
        self.player = subprocess.Popen(["sh", "-c", script, "player", self.tone], env=self.env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        self.player_mode = mode
        time.sleep(1.0)

    def stop_player(self) -> None:
        if self.player is not None:
            kill_tree(self.player)
            self.player = None
            self.player_mode = None

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)


class Hogs:
    """``n`` busy-looping Python processes (bounded: they exit after ``limit`` s anyway)."""

    def __init__(self, n: int = 2, limit: float = 300):
        self.n, self.limit = n, limit
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        code = f"import time\nend = time.monotonic() + {self.limit}\nwhile time.monotonic() < end: pass\n"
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([PY, "-c", code], stdin=subprocess.DEVNULL,
                                               start_new_session=True))
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            kill_tree(p)


# ---------------------------------------------------------------------------------------------
# Machine description


def _cmd_version(argv) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception:
        return "?"


def machine() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    import sounddevice as sd

    osr = "?"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osr = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": osr,
        "kernel": platform.release(),
        "python": platform.python_version() + f" ({PY})",
        "portaudio": sd.get_portaudio_version()[1],
        "sounddevice": sd.__version__,
        "libsndfile": sf.__libsndfile_version__,
        "soundfile": sf.__version__,
        "numpy": np.__version__,
        "pulseaudio": _cmd_version(["pulseaudio", "--version"]),
        "arecord": _cmd_version(["arecord", "--version"]),
        "sox": _cmd_version(["sox", "--version"]),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


def save_json(path, data) -> None:
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(tmp, path)
