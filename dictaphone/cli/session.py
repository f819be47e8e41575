"""`dictaphone record`: one recording in the terminal, from the options to the exit status.

:func:`run_record` checks the options (options.py), makes the parts (wiring.py), runs
the recording (:class:`Session`: signals, keys, the meter, the control socket, the main
loop) and reports it (report.py). The recording itself is the library's MediaRecorder.
Errors are raised as DictaphoneError and become messages and exit codes in cli/app.py.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import select
import signal
import sys
import threading

from ..errors import DictaphoneError, InvalidArgumentError, InvalidStateError
from .options import RecordOptions, check_frames, check_options, resolve_output
from .report import finish_transcript, report, report_dropped_hooks, save_clip_metadata
from .stderr import say_safely, warn
from .wiring import (load_labeller, load_transcriber, make_source, make_voice_gate, open_events,
                     shows_meter)

# (functions that lived here before the split, for code that imports them from here; the
# constants are not repeated: a test that patches one must patch the module that reads it)
from .options import (check_not_input, check_output_path, check_scripting_options,  # noqa: F401
                      format_of_output)
from .report import save_transcript  # noqa: F401


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class StoppedBeforeStart(Exception):
    """A stop signal came before the device was opened: nothing was recorded."""


class Session:
    """One recording in the terminal: signals, keys, meter, and the main loop."""

    def __init__(self, recorder, label: str, quiet: bool, control: bool = True,
                 extra: dict | None = None):
        self.rec = recorder
        self.label = label
        self.quiet = quiet
        self.control_enabled = control
        self.control = None
        self._started = threading.Event()  # set once rec.start() returned or failed
        self.extra = extra if extra is not None else {}  # shared with the event log and hooks
        self.stop_reason: str | None = None
        self.signals = 0  # stop signals received (a second one skips the transcript's tail)
        self.signal_name: str | None = None  # the last of them
        self.live = None  # a LiveTranscriber, whose latest text the meter shows
        self.hooks = None  # a HookRunner: a stop signal ends its running hook, drops its queue
        self._hook_stops = 0  # stop signals (and hang-ups) the hooks were told of
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._saved_handlers: dict[int, object] = {}
        self._continued = False  # SIGCONT came: put the terminal back in key mode
        #: the terminal hung up (closed window, dropped ssh): nothing can be shown any more
        self.hung_up = False
        from ..stopsignals import stdin_was_terminal

        was = stdin_was_terminal()
        #: stdin was a terminal when the program started (or, in-process, now): only then
        #: is a dead stdin a terminal that closed under the recording
        self.watch_terminal = was if was is not None else _stdin_is_terminal()

    def wake(self, *_args) -> None:
        if self._wake_w < 0:
            return  # the session is over (a late signal): nothing to wake
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass  # the pipe is full: the loop is awake already

    def request_stop(self, reason: str) -> None:
        from ..stopsignals import note

        if self.stop_reason is None:
            self.stop_reason = reason
        note(reason)  # ends a wait for a FIFO's reader (stopsignals.open_for_writing)
        self.wake()

    @property
    def stopped_by_signal(self) -> bool:
        """A stop signal or a hang-up ended (or came during the end of) the recording."""
        return self.signals > 0 or self.hung_up

    def interrupt_hooks(self) -> None:
        """A stop signal ends the running hook and drops the queued ones (HookRunner);
        a stop by key, `dictaphone stop` or the recording's own end runs them all."""
        stops = self.signals + (1 if self.hung_up else 0)
        if self.hooks is not None and stops > self._hook_stops:
            self._hook_stops = stops  # (once per signal: a later one ends --on-stop)
            self.hooks.interrupt()

    def terminal_gone(self) -> bool:
        from .terminal import terminal_gone

        return self.watch_terminal and terminal_gone()

    def hang_up(self) -> None:
        """The terminal is gone: stop as a SIGHUP does, even if SIGHUP is ignored (no key
        can stop us now, and a dead terminal must not be read in a loop)."""
        self.hung_up = True
        self.request_stop("the terminal's hang-up")

    def _on_signal(self, signum, frame) -> None:
        # A second signal while finishing is ignored: the file is being finalized and a
        # second Ctrl-C must not leave it half-written.
        self.signals += 1
        self.signal_name = signal.Signals(signum).name
        self.request_stop(self.signal_name)

    def install_signals(self) -> None:
        from ..stopsignals import original, take_over

        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            previous = original(signum)  # as it was at exec, before the entry point held it
            # SIGINT and SIGTERM always stop the recording, even when the shell started us
            # with SIGINT ignored (a background job in a script: `kill -INT $pid` must
            # work). SIGHUP ignored on purpose (nohup) stays ignored.
            if name == "SIGHUP" and previous is signal.SIG_IGN:
                continue
            self._saved_handlers[signum] = previous
            signal.signal(signum, self._on_signal)
        # A signal may land on a PortAudio or libpulse thread; Python then runs the handler
        # only when the main thread next runs bytecode. The wake-up fd makes the C-level
        # handler write to our pipe, so the main loop's select() returns at once.
        try:
            signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        except ValueError:
            pass  # not the main thread (an in-process caller): the 0.5 s select timeout
        # A stop signal that came during start-up (held since the entry point's first line)
        # counts as if it came now.
        early = take_over()
        if early is not None and early in self._saved_handlers:
            self.request_stop(signal.Signals(early).name)

    def install_job_control(self, keys) -> None:
        """Ctrl-Z gives the shell back a normal terminal; `fg` (SIGCONT) brings the key
        mode back, so keys work again at once instead of after an Enter."""
        if keys is None or not hasattr(signal, "SIGTSTP"):
            return
        self._keys = keys

        def on_tstp(signum, frame):
            keys.suspend()  # the terminal as it was before the recording
            signal.signal(signal.SIGTSTP, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTSTP)  # stop for real; SIGCONT resumes here

        def on_cont(signum, frame):
            signal.signal(signal.SIGTSTP, on_tstp)
            self._continued = True
            self.wake()

        for signum, handler in ((signal.SIGTSTP, on_tstp), (signal.SIGCONT, on_cont)):
            self._saved_handlers.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, handler)

    def restore_signals(self) -> None:
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler)
        self._saved_handlers.clear()

    def handle_control(self, command: str, params: dict | None = None) -> dict:
        """A request from `dictaphone stop|pause|resume|mark|status` (on the control
        thread). It does what the keys do in the recorder's own terminal."""
        rec = self.rec
        if command == "mark":
            label = (params or {}).get("label")
            if label is not None and not isinstance(label, str):
                raise InvalidArgumentError("a marker label must be text")
            self._started.wait(30)  # a mark that came while the device was opening
            try:
                marker = rec.mark(label)
            except InvalidStateError:
                raise InvalidStateError("the recording has ended; no marker was added") from None
            self.wake()
            reply = dict(self.status(), marker=marker.to_json())
            if rec.split_on_mark:
                # The marker starts a new file: name that one (the one open now ends
                # before it), once the writer has opened it.
                piece = rec.file_of(marker, timeout=2.0)
                reply.update(path=_abs(piece) if piece else None, starts_file=True)
            return reply
        if command == "stop":
            # Already stopping (a key, a signal, another `stop`)? Answer when it is done,
            # like the first caller.
            self.request_stop("control")
            self._started.wait(30)  # a stop that came while the device was opening
            rec.wait()
            return {"path": _abs(rec.path), "paths": [_abs(p) for p in rec.paths],
                    "duration": rec.duration,
                    "frames": rec.frames, "dropped_frames": rec.dropped_frames,
                    "error": str(rec.error) if rec.error else None}
        if command == "pause":
            rec.pause()
            self.wake()
        elif command == "resume":
            rec.resume()
            self.wake()
        return self.status()

    def status(self) -> dict:
        rec = self.rec
        # Paths are absolute: the controlling shell may be in another directory.
        return {"pid": os.getpid(), "path": _abs(rec.path) or self.label,
                "paths": [_abs(p) for p in rec.paths], "state": rec.state,
                "duration": rec.duration, "bytes": rec.bytes_written,
                "peak_dbfs": round(rec.level.peak_dbfs, 1), "rms_dbfs": round(rec.level.rms_dbfs, 1),
                "format": rec.mime_type, "samplerate": rec.samplerate, "channels": rec.channels,
                "dropped_frames": rec.dropped_frames, "started": rec.started,
                "device_lost": rec.device_lost, "gaps": list(rec.gaps),
                "markers": len(rec.markers), "transcript": self.live_text()}

    def live_text(self, last: int = 3) -> dict | None:
        """The running transcript (--transcribe): the last utterances' final text and the
        one being spoken (the page shows it); None without transcription."""
        live = self.live
        if live is None:
            return None
        p = live.latest_partial
        return {"utterances": [{"start": round(start, 3), "text": text}
                               for start, text in live.utterances[-last:]],
                "partial": None if p is None or not p.text else
                {"text": p.text, "committed": p.committed, "start": p.start, "end": p.end}}

    def run(self, timeslice: float | None = None) -> None:
        from contextlib import ExitStack

        from .terminal import HANGUP, MARK, PAUSE, STOP, Keys

        rec = self.rec
        rec.add_event_listener("stop", self.wake)
        self.install_signals()
        try:
            # Registered before the start, so the id is in every event and hook.
            if self.control_enabled:
                from ..control.registry import ControlServer

                try:
                    self.control = ControlServer({"path": _abs(rec.path) or self.label},
                                                 self.handle_control)
                    self.extra["id"] = self.control.id
                except DictaphoneError as e:
                    warn(f"{e}; 'dictaphone stop' cannot reach this recording")
            if self.terminal_gone():
                # The terminal closed while the program was starting (with SIGHUP ignored,
                # nothing else says so): a stop like any other before the device opens.
                self.hang_up()
            if self.stop_reason is not None:
                # Stopped before the device was even opened: nothing was recorded, and
                # nothing is created (no empty file, no clip).
                raise StoppedBeforeStart(self.stop_reason)
            try:
                rec.start(timeslice)
            finally:
                self._started.set()
            with ExitStack() as stack:
                keys = None
                if Keys.available():
                    try:
                        keys = stack.enter_context(Keys())
                    except OSError:
                        pass  # it hung up just now: self.terminal_gone() below says so
                self.install_job_control(keys)
                if shows_meter(self.quiet):
                    from rich.console import Console

                    from .ui import Meter

                    stack.enter_context(Meter(rec, Console(stderr=True), self.label, keys is not None,
                                              live=self.live))
                watched = [self._wake_r] + ([keys] if keys else [])
                while rec.state != "inactive" and self.stop_reason is None:
                    if (keys is None or keys not in watched) and self.terminal_gone():
                        # No key is being read (stdin was never ours, we are in the
                        # background, or a SIGCONT found the terminal gone: a hang-up
                        # brings one, often together with the end of file), so no end
                        # of file will tell: the terminal is gone, stop as at a hang-up.
                        self.hang_up()
                        break
                    try:
                        readable, _, _ = select.select(watched, [], [], 0.5)
                    except InterruptedError:
                        continue
                    if self._wake_r in readable:
                        os.read(self._wake_r, 512)
                    if self._continued and keys is not None:
                        self._continued = False
                        # In the foreground again (fg): keys back on. In the background
                        # (bg): leave the terminal alone, or reading it would stop us.
                        watched = [self._wake_r] + ([keys] if keys.resume() else [])
                    if keys is not None and keys in readable and keys in watched:
                        for action in keys.read():
                            if action == STOP:
                                self.request_stop("key")
                            elif action == HANGUP:
                                # EOF or EIO: the terminal is gone. Stop as a SIGHUP does
                                # (even if SIGHUP is ignored: no key can stop us now, and
                                # a dead terminal must not be read in a loop).
                                watched = [self._wake_r]
                                self.hang_up()
                            elif action == PAUSE and rec.state == "recording":
                                rec.pause()
                            elif action == PAUSE and rec.state == "paused":
                                rec.resume()
                            elif action == MARK and rec.state != "inactive":
                                try:
                                    rec.mark()
                                except InvalidStateError:
                                    pass  # it ended between the key and the mark
                self.interrupt_hooks()
                if rec.state != "inactive":
                    try:
                        rec.stop()
                    except InvalidStateError:
                        pass  # it ended by itself meanwhile (duration, end of input)
                rec.wait()
        finally:
            if self.control is not None:
                self.control.close()
            # The stop signals stay caught (and now ignored) until the process exits: a
            # Ctrl-C pressed again while the summary is printed must not turn a finished
            # recording into exit 130. In-process callers can call restore_signals().
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            wake_r, wake_w = self._wake_r, self._wake_w
            self._wake_r = self._wake_w = -1
            os.close(wake_r)
            os.close(wake_w)


@contextlib.contextmanager
def native_stderr_silenced():
    """Keep C libraries' diagnostics off the user's stderr while recording.

    PortAudio's ALSA host API and ALSA itself print lines such as "Expression
    'alsa_snd_pcm_poll_descriptors_revents(...)' failed" to file descriptor 2 when a
    device goes away; the user should see our one clear line instead. Python's own
    sys.stderr moves to a duplicate of the real stderr, and descriptor 2 points at
    /dev/null (never at a pipe someone must drain: a full pipe would block the audio
    thread). DICTAPHONE_TRACEBACK=1 leaves everything as it is, for debugging.
    """
    if os.environ.get("DICTAPHONE_TRACEBACK") == "1":
        yield
        return
    sys.stderr.flush()
    saved_fd = os.dup(2)
    saved_stream = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    sys.stderr = os.fdopen(saved_fd, "w", buffering=1, encoding=saved_stream.encoding,
                           errors="backslashreplace", closefd=False)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved_fd, 2)
        sys.stderr = saved_stream
        os.close(saved_fd)


def run_record(opts: RecordOptions) -> int:
    from ..stopsignals import StopRequested

    with native_stderr_silenced():
        try:
            status, hung = _run_record(opts)
        except StopRequested as stopped:  # while waiting for an --input stream's first bytes
            say_safely(f"dictaphone: stopped by {stopped} before the recording began; "
                       f"nothing was recorded and no file was written")
            return EXIT_STOPPED_BEFORE_START
    if hung:
        # The audio server froze and PortAudio's stream could not be stopped: the file is
        # finalized, but exiting normally would wait for PortAudio forever (its atexit
        # handler terminates the library, which joins the frozen stream).
        sys.stdout.flush()
        sys.stderr.flush()
        from ..library.clips import release_claims

        release_claims()  # (os._exit skips atexit)
        os._exit(status)
    return status


def _run_record(opts: RecordOptions) -> tuple[int, bool]:
    from ..recording.recorder import MediaRecorder

    check_options(opts)
    fmt, output, label = resolve_output(opts)
    fmt.check_subtype(opts.subtype)
    # The speech model is loaded before the device is even looked up: a missing extra or
    # a bad model is one line, and nothing is recorded.
    transcriber = load_transcriber(opts) if opts.transcribe else None
    labeller = load_labeller() if opts.speakers else None
    silero = None
    if opts.vad == "silero" and opts.uses_voice:
        from ..speech.silero import SileroVAD

        silero = SileroVAD()
    source = make_source(opts, fmt)
    check_frames(opts, source.samplerate)
    rec = MediaRecorder(source, fmt.mime_type, output=output, subtype=opts.subtype,
                        force=opts.force, max_duration=opts.duration, split=opts.split,
                        voice=make_voice_gate(opts, source.samplerate, silero),
                        split_on_mark=opts.split_on_mark)
    extra: dict = {}
    session = Session(rec, label, opts.quiet, extra=extra)
    live = summary = None
    if transcriber is not None:
        from ..speech.live import LiveTranscriber

        live = session.live = LiveTranscriber(rec, transcriber)
    session.labeller = labeller
    created = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    new_events_file = opts.events not in (None, "-") and not os.path.exists(opts.events)
    events_file = open_events(opts)
    hooks = event_log = None
    try:
        if events_file is not None:
            from ..control.hooks import EventLog

            event_log = EventLog(events_file, rec, extra=extra, on_error=warn)
            event_log.attach()
        if (opts.on_data is not None or opts.on_stop is not None or opts.on_text is not None
                or opts.on_mark is not None):
            from ..control.hooks import HookRunner

            hooks = session.hooks = HookRunner(rec, opts.on_data, opts.on_stop, report=warn,
                                               extra=extra, on_text=opts.on_text,
                                               on_mark=opts.on_mark)
            hooks.attach()
        try:
            session.run(opts.timeslice)
        except StoppedBeforeStart as stopped:
            if new_events_file and os.path.getsize(opts.events) == 0:
                os.unlink(opts.events)  # nothing happened, so nothing to log
            say_safely(f"dictaphone: stopped by {stopped} before the recording began; "
                       f"nothing was recorded and no file was written")
            return EXIT_STOPPED_BEFORE_START, False
        save_clip_metadata(rec, fmt, created)
        # The audio is complete and said so first; then the transcript's tail.
        status = report(rec, opts, fmt, label)
        if live is not None:
            summary = finish_transcript(live, rec, opts, session)
    finally:
        if live is not None:
            live.abandon()  # (after finish_transcript: nothing is left; after an error: stop it)
        if hooks is not None:
            session.interrupt_hooks()  # (a signal during the end: drop what is queued)
            def waiting(n: int) -> None:
                if not opts.quiet:
                    say_safely(f"dictaphone: waiting for {n} hook{'s' if n != 1 else ''} to "
                               f"finish (Ctrl-C ends {'them' if n != 1 else 'it'})")

            hooks.close(signals=lambda: session.signals, on_wait=waiting)
            if hooks.dropped_total:
                report_dropped_hooks(hooks, session, event_log)
        if events_file is not None and events_file is not sys.stdout:
            try:
                events_file.close()
            except OSError as e:  # its last buffered line could not be written
                if event_log is not None and not event_log.failed:
                    event_log.failed = True
                    warn(f"cannot write the event log any more: {e}")
    if summary:  # last: after the hooks that the last utterances ran
        print(summary, file=sys.stderr)
    if event_log is not None and event_log.failed and status == 0:
        # The audio is kept (the summary said where); a script must still learn that its
        # log of the recording is incomplete.
        say_safely(f"dictaphone: error: the event log {opts.events} is incomplete (it could "
                   f"not be written); the recording itself is complete")
        status = 1
    return status, getattr(source, "hung", False)


#: a stop before the device was open (the documented "interrupted before a recording
#: began"): nothing was written, so a script's `record x.wav && use x.wav` does not go on
EXIT_STOPPED_BEFORE_START = 130


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else path
