"""Running the dictaphone CLI from tests, the one way every test file does it.

- ``run(*args)``: one command to its end, bounded, stdin closed, output captured.
- ``Recorder``: a ``dictaphone record`` in the background. stdin is closed and stdout and
  stderr go to files, so no pipe ever fills; or stdout is a real pipe that a thread drains.
  Tests get recorders from the ``recorders`` fixture (``conftest.py``), which stops every
  one of them when the test ends, passed or failed.
- ``status_entries``, ``wait_for_status``, ``wait_started``: the per-user registry as
  ``dictaphone status --json`` shows it; a recorder has "started" once its first audio
  frames arrived (0.4 to 2 s after it starts, here).
- ``read_events``, ``wait_for_event``: the JSON lines of ``--events FILE``.
- ``no_device_env``, ``pulse_env``, ``registry``: environments and where they register.

Every wait is bounded so that a hang fails the test instead of blocking the suite; the
bounds are "does not hang" limits, never speed requirements.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import audiolab

CLI = [sys.executable, "-m", "dictaphone"]
RATE = audiolab.RATE  # 48000: the virtual microphone's rate and the reference speech's

COMMAND_TIMEOUT = 60.0  # s: a one-shot command that takes longer is hanging
STATUS_TIMEOUT = 15.0  # s: one `status --json` while polling for a state
START_TIMEOUT = 20.0  # s: recorder started -> first audio frames arrived
EXIT_TIMEOUT = 10.0  # s: stop requested -> recorder exited
POLL = 0.05  # s: between two looks at a state that is being waited for


def run(*args, env=None, cwd=None, timeout: float = COMMAND_TIMEOUT, text: bool = True,
        **kw) -> subprocess.CompletedProcess:
    """Run ``dictaphone ARGS`` to its end (at most ``timeout`` s) and return the result.

    stdin is /dev/null unless ``stdin`` or ``input`` is given, so a command never reads the
    test's terminal. stdout and stderr are captured: as text (UTF-8, undecodable bytes
    replaced) or, with ``text=False``, as bytes (audio on stdout).
    """
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    if text:
        kw.update(encoding="utf-8", errors="replace")
    return subprocess.run([*CLI, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                          timeout=timeout, **kw)


def one_error_line(stderr: str) -> str:
    """The only non-blank line of ``stderr`` (there must be exactly one, and no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------
# environments


def no_device_env(tmp_path) -> dict[str, str]:
    """An environment for runs that need no audio device (--input, refusals, --help).

    Its own XDG_RUNTIME_DIR (``tmp_path/runtime``), so the control registry stays private,
    and its own clip directory (``tmp_path/clips``). No PULSE_* or DICTAPHONE_* variable of
    the caller's gets through, and PULSE_SERVER points at nothing, so no client autospawns
    a PulseAudio server and no real device is reached.
    """
    runtime = Path(tmp_path) / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DICTAPHONE_"))}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env["PULSE_SERVER"] = f"unix:{runtime}/no-pulse-here"
    env["DICTAPHONE_HOME"] = str(Path(tmp_path) / "clips")
    return env


def pulse_env(pulse) -> dict[str, str]:
    """The ``pulse`` server's environment without DICTAPHONE_TRACEBACK (messages as users
    see them, whatever the developer's shell has set)."""
    env = dict(pulse.env)
    env.pop("DICTAPHONE_TRACEBACK", None)
    return env


def registry(env) -> Path:
    """The registry directory of recorders started with ``env`` (which has XDG_RUNTIME_DIR)."""
    return Path(env["XDG_RUNTIME_DIR"]) / "dictaphone"


# ---------------------------------------------------------------------------------------------
# the registry, through `dictaphone status --json`


def status_entries(env, cwd=None, timeout: float = COMMAND_TIMEOUT) -> list[dict]:
    """What ``dictaphone status --json`` lists ([] when nothing is recording)."""
    r = run("status", "--json", env=env, cwd=cwd, timeout=timeout)
    assert r.returncode in (0, 1), f"status --json failed ({r.returncode}): {r.stderr}"
    return json.loads(r.stdout) if r.stdout.strip() else []


def wait_for_status(env, ready: Callable[[list[dict]], bool], *, timeout: float = START_TIMEOUT,
                    check: Callable[[], None] | None = None,
                    what: str = "the recording to start") -> list[dict]:
    """Poll ``dictaphone status --json`` in ``env`` until ``ready(entries)``; return the entries.

    ``check()``, called before every look, raises if what is waited for can no longer come
    (say, the recorder exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        entries = status_entries(env, timeout=STATUS_TIMEOUT)
        if ready(entries):
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}; status: {entries}")
        time.sleep(POLL)


def wait_started(*recs: "Recorder", timeout: float = START_TIMEOUT) -> dict[int, dict]:
    """Wait until ``status --json`` says ``"started": true`` for each of ``recs`` (their first
    audio frames arrived). Returns ``{pid: entry}`` of everything listed then."""
    pids = {r.pid for r in recs}

    def all_started(entries):
        started = {e.get("pid") for e in entries if e.get("started")}
        return pids <= started

    def check():
        for r in recs:
            r.check_alive("it started")

    entries = wait_for_status(recs[0].env, all_started, timeout=timeout, check=check,
                              what=f"recorders {sorted(pids)} to start")
    return {e.get("pid"): e for e in entries}


# ---------------------------------------------------------------------------------------------
# --events


def read_events(path) -> list[dict]:
    """Every event of a finished ``--events`` file (one JSON object a line)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def wait_for_event(path, predicate: Callable[[dict], bool], rec: "Recorder | None" = None,
                   timeout: float = START_TIMEOUT) -> dict:
    """Poll the ``--events`` file ``path`` until an event satisfies ``predicate``; return it.

    A line still being written is skipped until it is complete. With ``rec``, fails as soon
    as that recorder has exited without writing such an event.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # being written right now
            if predicate(event):
                return event
        if rec is not None:
            rec.check_alive("the event came")
        if time.monotonic() > deadline:
            raise AssertionError(f"no such event in {path} within {timeout} s; events:\n{text}")
        time.sleep(POLL)


# ---------------------------------------------------------------------------------------------
# background recorders


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


def _option(args: list[str], name: str) -> str | None:
    """The value given to option ``name`` in ``args`` (the last one), or None."""
    values = [args[i + 1] for i, a in enumerate(args[:-1]) if a == name]
    return values[-1] if values else None


class Recorder:
    """``dictaphone record [-r RATE] ARGS OUTPUT`` in the background, in ``cwd`` with ``env``.

    stdin is /dev/null; stderr, and stdout unless ``stdout=subprocess.PIPE``, are written to
    files in ``logdir``, so no pipe ever fills. With ``stdout=subprocess.PIPE`` the audio
    goes through a real pipe, which a thread drains (``stdout_bytes``) unless ``drain=False``
    (the test reads ``proc.stdout`` itself). ``rate=None`` leaves out ``-r``.

    ``file`` is OUTPUT seen from the test; ``events`` the ``--events`` file, if any.
    ``close()`` stops the recorder (SIGINT, then harder) and is safe to call at any time.
    """

    def __init__(self, output, *args, env: dict, cwd, logdir, rate: int | None = RATE,
                 stdout=None, drain: bool = True, preexec_fn=None,
                 exit_timeout: float = EXIT_TIMEOUT):
        self.output = str(output)
        self.env = env
        self.cwd = Path(cwd)
        self.file = self.cwd / self.output
        self.exit_timeout = exit_timeout
        args = [str(a) for a in args]
        events = _option(args, "--events")
        self.events = self.cwd / events if events not in (None, "-") else None
        self.argv = [*CLI, "record", *(["-r", str(rate)] if rate is not None else []),
                     *args, self.output]
        stem = re.sub(r"[^\w.-]", "_", self.output)[-40:] + "."
        self._err = tempfile.NamedTemporaryFile(dir=logdir, prefix=stem, suffix=".stderr",
                                                delete=False)
        self._out = None
        if stdout is None:
            self._out = tempfile.NamedTemporaryFile(dir=logdir, prefix=stem, suffix=".stdout",
                                                    delete=False)
            stdout = self._out
        self.proc = subprocess.Popen(self.argv, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=stdout, stderr=self._err, preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.drain = None
        if stdout == subprocess.PIPE and drain:
            self.drain = Drain(self.proc.stdout)
            self.drain.start()

    # -- what it wrote --------------------------------------------------------------------

    def stderr(self) -> str:
        self._err.flush()
        return Path(self._err.name).read_text(errors="replace")

    @property
    def stdout_bytes(self) -> bytes:
        """What it wrote to stdout so far (all of it once ``wait`` returned)."""
        if self.drain is not None:
            return self.drain.data
        assert self._out is not None, "stdout is a pipe the test reads itself"
        self._out.flush()
        return Path(self._out.name).read_bytes()

    # -- waiting --------------------------------------------------------------------------

    def check_alive(self, before: str = "it was expected to") -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"recorder {self.output} exited with {self.proc.returncode} "
                                 f"before {before}; stderr:\n{self.stderr()}")

    def wait_started(self, timeout: float = START_TIMEOUT) -> dict:
        """Until ``status --json`` says this recording started; returns its entry."""
        return wait_started(self, timeout=timeout)[self.pid]

    def wait_for_event(self, predicate: Callable[[dict], bool],
                       timeout: float = START_TIMEOUT) -> dict:
        """Until its ``--events`` file has an event that satisfies ``predicate``."""
        assert self.events is not None, "started without --events FILE"
        return wait_for_event(self.events, predicate, self, timeout)

    def wait_for_audio(self, timeout: float = START_TIMEOUT) -> dict:
        """Until its event log shows the first audio written: a first ``dataavailable``
        (needs ``--events FILE`` and a ``--timeslice``)."""
        return self.wait_for_event(lambda e: e.get("type") == "dataavailable", timeout)

    # -- stopping -------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int:
        """Until it exits (at most ``timeout``, default ``exit_timeout``); its exit status."""
        timeout = self.exit_timeout if timeout is None else timeout
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"recorder {self.output} still running after {timeout} s; "
                                 f"stderr:\n{self.stderr()}") from None
        if self.drain is not None:
            self.drain.join(timeout=10)
        return self.proc.returncode

    def stop(self, sig: int = signal.SIGINT, timeout: float | None = None) -> int:
        """Send ``sig`` and wait until it exits; its exit status."""
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def close(self) -> None:
        audiolab.stop_process(self.proc)
        if self.drain is not None:
            self.drain.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        for f in (self._out, self._err):
            if f is not None:
                f.close()
