"""Scripting outputs of a recording: the JSON-lines event log and shell hooks.

Both are event listeners, so they run on the recorder's dispatcher thread, never on the
audio or writer threads: a slow consumer cannot lose or delay audio. Hooks run one at a
time on a thread of their own, so even a slow hook does not hold up the event log.

A hook receives its data only through environment variables (DICTAPHONE_*); nothing is
pasted into the command text, so a file name cannot inject a command.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import subprocess
import sys
import threading
from typing import Callable, TextIO


def event_record(event, recorder, extra: dict | None = None) -> dict:
    """The JSON object for one event: type, wall time, recorded duration, bytes/paths."""
    rec = {
        "type": event.type,
        "time": datetime.datetime.fromtimestamp(event.time).astimezone().isoformat(timespec="milliseconds"),
        "duration": round(event.timecode, 6),
    }
    if event.type == "dataavailable":
        blob = event.data
        rec["bytes"] = blob.size
        if blob.path:
            rec["path"] = blob.path
            rec["offset"] = blob.offset
    elif event.type == "stop":
        rec.update(path=event.path, paths=event.paths, frames=event.frames,
                   dropped_frames=event.dropped_frames, bytes=recorder.bytes_written)
    elif event.type == "error":
        rec["error"] = str(event.error)
    elif event.type in ("pause", "resume") and event.reason:
        rec["reason"] = event.reason
    elif event.type == "mark":
        # "duration", as on every line, is the recorded time: here the marker's place
        rec.update(number=event.number, label=event.label)
    elif event.type in ("devicelost", "devicerestored"):
        rec.update(device=event.device, reason=event.reason)
        if event.type == "devicelost":
            rec["wait"] = event.wait
        else:
            rec["gap"] = round(event.gap, 3)
    elif event.type == "start":
        rec.update(path=recorder.path, format=recorder.mime_type,
                   samplerate=recorder.samplerate, channels=recorder.channels)
    elif event.type == "transcript":
        rec.update(text=event.text, start=round(event.start, 3), end=round(event.end, 3))
    elif event.type == "partial":
        rec.update(text=event.text, committed=event.committed, start=round(event.start, 3),
                   end=round(event.end, 3))
    if extra:
        rec.update(extra)
    return rec


class FifoLines:
    """The event log's stream when --events names a FIFO: whole lines written to a
    non-blocking descriptor. A reader that goes away (EPIPE; SIGPIPE is ignored by
    Python) or stops reading for STALL seconds while the pipe is full is an OSError, so
    EventLog reports the log as failed and the recording goes on: a FIFO can end the log,
    never hold up or hang the recording (the events are dispatched on one thread, which
    the end of a recording waits for)."""

    #: seconds a full pipe may stay full before the log is given up
    STALL = 5.0

    def __init__(self, fd: int, name: str):
        self.fd = fd
        self.name = name
        os.set_blocking(fd, False)

    def write(self, text: str) -> int:
        import errno
        import select
        import time

        data = memoryview(text.encode("utf-8"))
        deadline = None
        while data:
            try:
                n = os.write(self.fd, data)
            except BlockingIOError:
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.STALL
                if now >= deadline:
                    raise OSError(errno.ETIMEDOUT, f"its reader has not read for {self.STALL:g} s "
                                                   f"(the FIFO is full)") from None
                select.select([], [self.fd], [], deadline - now)
                continue
            except BrokenPipeError:
                raise OSError(errno.EPIPE, "its reader went away (the FIFO was closed)") from None
            data = data[n:]
            deadline = None
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class EventLog:
    """Writes one JSON line per event to a file or stream, flushed at once."""

    def __init__(self, stream: TextIO, recorder, extra: dict | None = None,
                 on_error: Callable[[str], None] | None = None):
        self.stream = stream
        self.recorder = recorder
        self.extra = extra if extra is not None else {}
        self.on_error = on_error
        self.failed = False

    def __call__(self, event) -> None:
        if self.failed:
            return
        try:
            self.stream.write(json.dumps(event_record(event, self.recorder, self.extra)) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as e:
            self.failed = True  # report once; the recording goes on
            if self.on_error:
                reason = getattr(e, "strerror", None) or e
                self.on_error(f"cannot write the event log any more: {reason}")

    def note(self, type: str, **fields) -> None:
        """A line that is no recorder event (``hooksdropped``), shaped like the others."""
        if self.failed:
            return
        line = {"type": type,
                "time": datetime.datetime.now().astimezone().isoformat(timespec="milliseconds"),
                "duration": round(self.recorder.duration, 6), **fields}
        line.update(self.extra)
        try:
            self.stream.write(json.dumps(line) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as e:
            self.failed = True
            if self.on_error:
                self.on_error(f"cannot write the event log any more: {getattr(e, 'strerror', None) or e}")

    def attach(self) -> None:
        for t in ("start", "dataavailable", "pause", "resume", "stop", "error",
                  "devicelost", "devicerestored", "transcript", "partial", "mark"):
            self.recorder.add_event_listener(t, self)


def hook_environment(event, recorder, extra: dict | None = None) -> dict[str, str]:
    """DICTAPHONE_* variables describing an event, added to this process's environment."""
    env = dict(os.environ)
    env.update({
        "DICTAPHONE_EVENT": event.type,
        "DICTAPHONE_DURATION": f"{event.timecode:.6f}",
        "DICTAPHONE_FORMAT": recorder.mime_type,
        "DICTAPHONE_SAMPLERATE": str(recorder.samplerate),
        "DICTAPHONE_CHANNELS": str(recorder.channels),
        "DICTAPHONE_FILE": "",
    })
    if event.type == "dataavailable":
        blob = event.data
        env["DICTAPHONE_SIZE"] = str(blob.size)
        env["DICTAPHONE_FILE"] = blob.path or ""
        env["DICTAPHONE_OFFSET"] = str(blob.offset)
        if blob.path and blob.path in recorder.paths:
            env["DICTAPHONE_INDEX"] = str(recorder.paths.index(blob.path) + 1)
    elif event.type == "mark":
        # only in a mark hook's environment: the label is data, never command text
        env["DICTAPHONE_MARK_TIME"] = f"{event.timecode:.6f}"
        env["DICTAPHONE_MARK_LABEL"] = event.label
        env["DICTAPHONE_MARK_NUMBER"] = str(event.number)
        env["DICTAPHONE_FILE"] = recorder.path or ""
    elif event.type == "stop":
        env["DICTAPHONE_FILE"] = event.path or ""
        env["DICTAPHONE_FILES"] = "\n".join(event.paths)
        env["DICTAPHONE_FRAMES"] = str(event.frames)
        env["DICTAPHONE_DROPPED_FRAMES"] = str(event.dropped_frames)
        env["DICTAPHONE_SIZE"] = str(recorder.bytes_written)
        if recorder.error is not None:
            env["DICTAPHONE_ERROR"] = str(recorder.error)
    elif event.type == "transcript":
        env["DICTAPHONE_TEXT"] = event.text
        env["DICTAPHONE_START"] = f"{event.start:.3f}"
        env["DICTAPHONE_END"] = f"{event.end:.3f}"
    for key, value in (extra or {}).items():
        env[f"DICTAPHONE_{key.upper()}"] = str(value)
    return env


class HookRunner:
    """Runs shell commands for events, one at a time, on its own thread.

    A hook's stdout goes to our stderr: dictaphone's stdout is for audio (or the event
    log) only. A failing hook is reported through ``report`` and the next one runs.

    Each hook runs in a process group of its own, so that a stop can end all of it (the
    shell and what it started). A stop signal (``interrupt``) ends the running hook
    (SIGTERM to its group; SIGKILL after KILL_GRACE s) and drops every hook queued until
    then and every later ``--on-data`` and ``--on-mark`` one; the ``--on-stop`` hook
    still runs, once (and ``--on-text`` hooks of the transcript's tail, which come after
    the stop: a second stop signal drops those too). ``dropped`` counts the hooks that
    did not run.
    """

    _DONE = object()

    NAMES = {"dataavailable": "--on-data", "stop": "--on-stop", "transcript": "--on-text",
             "mark": "--on-mark"}

    #: seconds between SIGTERM and SIGKILL for a hook that a stop ends
    KILL_GRACE = 2.0
    #: kinds of hook that a stop drops also when they are queued after it
    DROPPED_AFTER_STOP = ("dataavailable", "mark")

    def __init__(self, recorder, on_data: str | None, on_stop: str | None,
                 report: Callable[[str], None], extra: dict | None = None,
                 on_text: str | None = None, on_mark: str | None = None):
        self.recorder = recorder
        self.commands = {"dataavailable": on_data, "stop": on_stop, "transcript": on_text,
                         "mark": on_mark}
        self.report = report
        self.extra = extra if extra is not None else {}
        self.failures = 0
        #: hooks that a stop kept from running, by option (--on-data: 4, ...)
        self.dropped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._seq = 0  # hooks queued so far
        self._drop_upto = 0  # a stop came after this many were queued: those do not run
        self._stopped = False  # a stop came: later data and mark hooks do not run
        self._interrupts = 0  # stops asked for; the running hook ends at each
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dictaphone-hooks", daemon=True)
        self._thread.start()

    def attach(self) -> None:
        for t, cmd in self.commands.items():
            if cmd:
                self.recorder.add_event_listener(t, self)

    def __call__(self, event) -> None:
        if event.type == "dataavailable" and event.data.size == 0:
            return  # an empty last chunk (e.g. split ended on a boundary) is not data
        with self._lock:
            if self._stopped and event.type in self.DROPPED_AFTER_STOP:
                self._count_dropped(event.type)
                return
            self._seq += 1
            seq = self._seq
        self._queue.put((seq, self.commands[event.type],
                         hook_environment(event, self.recorder, self.extra), event.type))

    def interrupt(self) -> None:
        """A stop signal: end the running hook, drop what is queued (not --on-stop)."""
        with self._lock:
            self._stopped = True
            self._drop_upto = self._seq
            self._interrupts += 1

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def _count_dropped(self, kind: str) -> None:
        name = self.NAMES[kind]
        self.dropped[name] = self.dropped.get(name, 0) + 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            seq, cmd, env, kind = item
            with self._lock:
                drop = kind != "stop" and seq <= self._drop_upto
                if drop:
                    self._count_dropped(kind)
                interrupts = self._interrupts
            if not drop:
                self._run_one(cmd, env, self.NAMES[kind], interrupts)

    def _run_one(self, cmd: str, env: dict, name: str, interrupts: int) -> None:
        import signal

        try:
            proc = subprocess.Popen(cmd, shell=True, env=env, stdin=subprocess.DEVNULL,
                                    stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno(),
                                    process_group=0)
        except OSError as e:
            self.report(f"{name} hook could not run: {e.strerror or e}")
            return
        ended_by_stop = False
        killed_at = None
        while True:
            try:
                status = proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            with self._lock:
                stop = self._interrupts > interrupts
                interrupts = self._interrupts
            try:
                if stop:
                    ended_by_stop = True
                    os.killpg(proc.pid, signal.SIGTERM)
                    if killed_at is None:
                        import time

                        killed_at = time.monotonic()
                elif killed_at is not None:
                    import time

                    if time.monotonic() - killed_at > self.KILL_GRACE:
                        os.killpg(proc.pid, signal.SIGKILL)
                        killed_at = float("inf")  # once
            except ProcessLookupError:
                pass  # the group is gone already
        if ended_by_stop:
            self.report(f"{name} hook was ended by the stop: {cmd}")
        elif status:
            self.failures += 1
            how = f"signal {-status}" if status < 0 else f"status {status}"
            self.report(f"{name} hook failed ({how}): {cmd}")

    def close(self, signals: Callable[[], int] | None = None,
              on_wait: Callable[[int], None] | None = None, waited: float = 2.0) -> None:
        """Wait for the queued hooks to finish. ``signals()`` counts the stop signals so
        far; each one that comes while waiting is an interrupt(), so that a hook that never
        ends (one that opens a FIFO nobody reads) or a long queue cannot make the program
        deaf to stop signals. ``on_wait(n)`` is called once when the wait has lasted
        ``waited`` s, with the number of hooks not finished yet (the running one included)."""
        import time

        self._queue.put(self._DONE)
        seen = signals() if signals is not None else 0
        begun, told = time.monotonic(), on_wait is None
        while self._thread.is_alive():
            self._thread.join(0.05)
            if signals is not None and signals() > seen:
                seen = signals()
                self.interrupt()
            if not told and time.monotonic() - begun >= waited and self._thread.is_alive():
                told = True
                on_wait(max(1, self._queue.qsize()))  # (the _DONE mark stands for the running one)
