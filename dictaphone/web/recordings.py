"""Recordings started from the page: the CLI's own `dictaphone record`, as a child process.

Running exactly what a user would type keeps every safety of the command line (names
checked, files created exclusively, finalized on any stop, registered for
`dictaphone stop`), and the page then controls it through the registry like any other
recording. The server only remembers which children it started, reaps them, reports a
failure, and stops them (SIGINT: a clean stop) when it shuts down.
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from ..control import registry as control
from ..errors import DictaphoneError

START_TIMEOUT = 20.0  # s: a recorder that has not registered by then is not coming


class StartError(Exception):
    def __init__(self, message: str, usage: bool):
        super().__init__(message)
        self.usage = usage


class Notices:
    """Messages for every open page (a recorder that failed after it started)."""

    def __init__(self, keep: int = 50):
        self._items: collections.deque = collections.deque(maxlen=keep)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, level: str, text: str) -> None:
        with self._lock:
            self._items.append((next(self._seq), {"level": level, "text": text}))

    def last(self) -> int:
        with self._lock:
            return self._items[-1][0] if self._items else 0

    def since(self, seq: int) -> list[tuple[int, dict]]:
        with self._lock:
            return [item for item in self._items if item[0] > seq]


def _last_line(f) -> str:
    f.seek(0)
    lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1]
    for prefix in ("dictaphone record: error: ", "dictaphone: error: "):
        if line.startswith(prefix):
            return line[len(prefix):]
    return line


class Launcher:
    def __init__(self, notices: Notices, python: str | None = None):
        self.notices = notices
        self.python = python or sys.executable
        self._children: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def pids(self) -> set[int]:
        with self._lock:
            return set(self._children)

    def start(self, name: str | None, format_name: str | None, transcribe: bool) -> dict:
        """Start `dictaphone record -q [--name NAME] [-f FMT] [--transcribe]`; return its
        registry entry once it has registered (StartError with its message if it exits)."""
        argv = [self.python, "-m", "dictaphone", "record", "-q"]
        if name:
            argv += ["--name", name]
        if format_name:
            argv += ["-f", format_name]
        if transcribe:
            argv.append("--transcribe")
        errors = tempfile.TemporaryFile()
        # Its own session: a Ctrl-C in the server's terminal reaches the server, which then
        # stops it cleanly, instead of reaching both at once.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errors, start_new_session=True)
        with self._lock:  # known at once, so a shutdown now still stops it
            self._children[proc.pid] = proc
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                if proc.poll() is not None:
                    message = _last_line(errors) or f"the recorder exited with status {proc.returncode}"
                    raise StartError(message, usage=proc.returncode == 2)
                try:
                    entries = control.running(cleanup=False)
                except DictaphoneError as e:
                    raise StartError(str(e), usage=False) from None
                for entry in entries:
                    if entry.pid == proc.pid:
                        threading.Thread(target=self._reap, args=(proc, errors), daemon=True,
                                         name=f"dictaphone-web-reap-{proc.pid}").start()
                        return {"id": entry.id, "pid": proc.pid}
                if time.monotonic() > deadline:
                    raise StartError("the recorder did not start", usage=False)
                time.sleep(0.05)
        except BaseException:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            with self._lock:
                self._children.pop(proc.pid, None)
            errors.close()
            raise

    def _reap(self, proc: subprocess.Popen, errors) -> None:
        status = proc.wait()
        with self._lock:
            self._children.pop(proc.pid, None)
        if status != 0:
            line = _last_line(errors) or f"exit status {status}"
            self.notices.add("error", f"the recording started from the page failed: {line}")
        errors.close()

    def stop_all(self, say=None, timeout: float = 30.0) -> None:
        """Stop every recording this server started (each finalizes its file) and wait."""
        with self._lock:
            children = list(self._children.values())
        for proc in children:
            if proc.poll() is None:
                if say:
                    say(f"stopping the recording started from the page (pid {proc.pid})")
                try:
                    os.kill(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Transcriptions:
    """`dictaphone transcribe -q PATH` for clips the page asks about, one at a time (a
    speech model per clip at once would take every core and much memory); the CLI saves
    the transcript beside the clip, and the library's watcher shows it."""

    def __init__(self, notices: Notices, python: str | None = None):
        self.notices = notices
        self.python = python or sys.executable
        self._queue: collections.deque = collections.deque()
        self._running: tuple[str, subprocess.Popen] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="dictaphone-web-transcribe", daemon=True)
        self._thread.start()

    def busy(self) -> dict[str, str]:
        """Clip path -> "queued" or "transcribing"."""
        with self._lock:
            state = {path: "queued" for path, _ in self._queue}
            if self._running is not None:
                state[self._running[0]] = "transcribing"
        return state

    def add(self, path: str, name: str) -> bool:
        """Queue ``path``; False if it is queued or running already."""
        with self._lock:
            if path in self._busy_paths():
                return False
            self._queue.append((path, name))
            self._wake.notify()
            return True

    def _busy_paths(self) -> set[str]:
        return {p for p, _ in self._queue} | ({self._running[0]} if self._running else set())

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                path, name = self._queue.popleft()
                errors = tempfile.TemporaryFile()
                proc = subprocess.Popen([self.python, "-m", "dictaphone", "transcribe", "-q", "--", path],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=errors, start_new_session=True)
                self._running = (path, proc)
            status = proc.wait()
            with self._lock:
                self._running = None
            if status != 0 and not self._closed:
                self.notices.add("error", f"transcribing {name!r} failed: {_last_line(errors) or f'exit status {status}'}")
            errors.close()

    def close(self) -> None:
        """Drop the queue and end a transcription in progress (its transcript is saved
        atomically, so nothing half-written is left)."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            running = self._running
            self._wake.notify()
        if running is not None and running[1].poll() is None:
            running[1].terminate()
            try:
                running[1].wait(10)
            except subprocess.TimeoutExpired:
                running[1].kill()
                running[1].wait()
