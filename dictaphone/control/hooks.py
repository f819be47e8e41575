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
    if extra:
        rec.update(extra)
    return rec


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
                self.on_error(f"cannot write the event log any more: {e}")

    def attach(self) -> None:
        for t in ("start", "dataavailable", "pause", "resume", "stop", "error",
                  "devicelost", "devicerestored", "transcript", "mark"):
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
    """

    _DONE = object()

    NAMES = {"dataavailable": "--on-data", "stop": "--on-stop", "transcript": "--on-text",
             "mark": "--on-mark"}

    def __init__(self, recorder, on_data: str | None, on_stop: str | None,
                 report: Callable[[str], None], extra: dict | None = None,
                 on_text: str | None = None, on_mark: str | None = None):
        self.recorder = recorder
        self.commands = {"dataavailable": on_data, "stop": on_stop, "transcript": on_text,
                         "mark": on_mark}
        self.report = report
        self.extra = extra if extra is not None else {}
        self.failures = 0
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
        self._queue.put((self.commands[event.type], hook_environment(event, self.recorder, self.extra),
                         event.type))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            cmd, env, kind = item
            name = self.NAMES[kind]
            try:
                status = subprocess.run(cmd, shell=True, env=env, stdin=subprocess.DEVNULL,
                                        stdout=sys.stderr.fileno(),
                                        stderr=sys.stderr.fileno()).returncode
            except OSError as e:
                status = None
                self.report(f"{name} hook could not run: {e.strerror or e}")
            if status:
                self.failures += 1
                how = f"signal {-status}" if status < 0 else f"status {status}"
                self.report(f"{name} hook failed ({how}): {cmd}")

    def close(self) -> None:
        """Wait for the queued hooks to finish."""
        self._queue.put(self._DONE)
        self._thread.join()
