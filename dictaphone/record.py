"""`dictaphone record`: choose the output and the source, run the recording, report.

This is the CLI's side of a recording (signals, keys, meter, summary); the recording
itself is the library's MediaRecorder. Errors are raised as DictaphoneError and become
messages and exit codes in cli.py.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import sys

from .errors import (BrokenPipeOutputError, InvalidStateError, NotSupportedError, OutputError)
from .formats import Format, format_by_name, format_for_path

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@dataclasses.dataclass
class RecordOptions:
    output: str | None = None
    format_name: str | None = None
    samplerate: int | None = None
    channels: int | None = None
    device: str | None = None
    duration: float | None = None
    input_path: str | None = None
    realtime: bool = False
    subtype: str | None = None
    force: bool = False
    quiet: bool = False


def warn(message: str) -> None:
    print(f"dictaphone: warning: {message}", file=sys.stderr, flush=True)


def resolve_output(opts: RecordOptions) -> tuple[Format, object, str]:
    """(format, output for MediaRecorder, label for messages); checks the path first."""
    if opts.output == "-":
        fmt = format_by_name(opts.format_name) if opts.format_name else _default_format()
        if sys.stdout.isatty():
            raise OutputError("refusing to write audio to a terminal; redirect stdout or name a file")
        return fmt, sys.stdout.buffer, "stdout"
    if opts.output is None:
        from .clips import new_clip_path

        fmt = format_by_name(opts.format_name) if opts.format_name else _default_format()
        path = new_clip_path(fmt.extension)
        return fmt, path, path
    path = opts.output
    by_ext = format_for_path(path)
    fmt = format_by_name(opts.format_name) if opts.format_name else (by_ext or _default_format())
    if by_ext is not None and by_ext is not fmt:
        warn(f"{path} will hold {fmt.name} data (-f {fmt.name}), not {by_ext.name}")
    check_output_path(path, opts.force)
    return fmt, path, path


def _default_format() -> Format:
    return format_by_name("wav")


def check_output_path(path: str, force: bool) -> None:
    """Refuse before anything is captured: a missing directory, an existing file."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputError(f"{path} is a directory")
    if not os.path.isdir(directory):
        raise OutputError(f"{path}: the directory {directory} does not exist")
    if os.path.lexists(path) and not force:
        raise OutputError(f"{path} exists (use --force to overwrite it)")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"{path}: cannot write to {directory}")


def make_source(opts: RecordOptions, fmt: Format):
    if opts.input_path is not None:
        from .sources import FileSource

        source = FileSource(opts.input_path, realtime=opts.realtime, channels=opts.channels)
        if opts.samplerate and opts.samplerate != source.samplerate:
            raise NotSupportedError(
                f"{opts.input_path} is {source.samplerate} Hz and dictaphone does not resample; "
                f"drop -r, or convert it first (sox IN -r {opts.samplerate} OUT)")
        return source
    from .sources import Microphone, find_input_device

    rate = opts.samplerate
    if rate is None:
        info = find_input_device(opts.device)
        rate = fmt.nearest_rate(int(info["default_samplerate"]))
        device = info["index"]
    else:
        device = opts.device
    return Microphone(device=device, samplerate=rate, channels=opts.channels or 1)


class Session:
    """One recording in the terminal: signals, keys, meter, and the main loop."""

    def __init__(self, recorder, label: str, quiet: bool):
        self.rec = recorder
        self.label = label
        self.quiet = quiet
        self.stop_reason: str | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._saved_handlers: dict[int, object] = {}

    def wake(self, *_args) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass  # the pipe is full: the loop is awake already

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.wake()

    def _on_signal(self, signum, frame) -> None:
        # A second signal while finishing is ignored: the file is being finalized and a
        # second Ctrl-C must not leave it half-written.
        self.request_stop(signal.Signals(signum).name)

    def install_signals(self) -> None:
        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            previous = signal.getsignal(signum)
            # SIGINT and SIGTERM always stop the recording, even when the shell started us
            # with SIGINT ignored (a background job in a script: `kill -INT $pid` must
            # work). SIGHUP ignored on purpose (nohup) stays ignored.
            if name == "SIGHUP" and previous is signal.SIG_IGN:
                continue
            self._saved_handlers[signum] = previous
            signal.signal(signum, self._on_signal)

    def restore_signals(self) -> None:
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler)
        self._saved_handlers.clear()

    def run(self) -> None:
        from contextlib import ExitStack

        from .terminal import PAUSE, STOP, Keys

        rec = self.rec
        rec.add_event_listener("stop", self.wake)
        self.install_signals()
        try:
            rec.start()
            with ExitStack() as stack:
                keys = stack.enter_context(Keys()) if Keys.available() else None
                if not self.quiet and sys.stderr.isatty():
                    from rich.console import Console

                    from .ui import Meter

                    stack.enter_context(Meter(rec, Console(stderr=True), self.label, keys is not None))
                watched = [self._wake_r] + ([keys] if keys else [])
                while rec.state != "inactive" and self.stop_reason is None:
                    try:
                        readable, _, _ = select.select(watched, [], [], 0.5)
                    except InterruptedError:
                        continue
                    if self._wake_r in readable:
                        os.read(self._wake_r, 512)
                    if keys in readable:
                        for action in keys.read():
                            if action == STOP:
                                self.request_stop("key")
                            elif action == PAUSE and rec.state == "recording":
                                rec.pause()
                            elif action == PAUSE and rec.state == "paused":
                                rec.resume()
                if rec.state != "inactive":
                    try:
                        rec.stop()
                    except InvalidStateError:
                        pass  # it ended by itself meanwhile (duration, end of input)
                rec.wait()
        finally:
            self.restore_signals()
            os.close(self._wake_r)
            os.close(self._wake_w)


def run_record(opts: RecordOptions) -> int:
    from .recorder import MediaRecorder
    from .ui import channels_name, clock, human_size

    fmt, output, label = resolve_output(opts)
    source = make_source(opts, fmt)
    rec = MediaRecorder(source, fmt.mime_type, output=output, subtype=opts.subtype,
                        force=opts.force, max_duration=opts.duration)
    session = Session(rec, label, opts.quiet)
    session.run()

    error = rec.error
    broken_pipe = isinstance(error, BrokenPipeOutputError)
    if output is sys.stdout.buffer:
        try:
            sys.stdout.flush()
        except OSError:
            broken_pipe = True
        if broken_pipe:
            # Python would print "Exception ignored ... BrokenPipeError" at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    what = (f"{clock(rec.duration)} ({rec.frames} frames), {human_size(rec.bytes_written)}, "
            f"{fmt.name} {rec.samplerate} Hz {channels_name(rec.channels)}, "
            f"{rec.dropped_frames} dropped frames")
    if error is not None and not broken_pipe:
        if rec.frames:
            print(f"dictaphone: error: {error}; kept {what} in {label}", file=sys.stderr)
        else:
            print(f"dictaphone: error: {error}", file=sys.stderr)
        return 1
    if not opts.quiet:
        verb = "Streamed to" if output is sys.stdout.buffer else "Saved"
        tail = " (the reader closed the pipe)" if broken_pipe else ""
        print(f"{verb} {label}: {what}{tail}", file=sys.stderr)
    elif rec.dropped_frames:
        warn(f"{rec.dropped_frames} frames were dropped")
    return 0
