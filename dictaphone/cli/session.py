"""`dictaphone record`: choose the output and the source, run the recording, report.

This is the CLI's side of a recording (signals, keys, meter, summary); the recording
itself is the library's MediaRecorder. Errors are raised as DictaphoneError and become
messages and exit codes in cli.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import select
import signal
import sys
import threading

from ..errors import (BrokenPipeOutputError, DictaphoneError, InvalidArgumentError,
                     InvalidStateError, NotSupportedError, OutputError)
from ..containers.formats import Format, format_by_name, format_for_path

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
    timeslice: float | None = None
    split: float | None = None
    events: str | None = None
    on_data: str | None = None
    on_stop: str | None = None
    name: str | None = None
    wait_for_sound: bool = False
    stop_on_silence: float | None = None
    skip_silence: float | None = None
    split_on_silence: float | None = None
    threshold: float | None = None
    reconnect: float | None = None  #: None: the default (Microphone.RECONNECT)
    vad: str | None = None
    transcribe: bool = False
    model: str | None = None
    language: str | None = None
    speakers: bool = False
    on_text: str | None = None
    on_mark: str | None = None
    split_on_mark: bool = False

    @property
    def splits(self) -> bool:
        """Whether the recording goes to numbered pieces (NAME-001.EXT, ...)."""
        return (self.split is not None or self.split_on_silence is not None
                or bool(self.split_on_mark))

    @property
    def uses_voice(self) -> bool:
        return bool(self.wait_for_sound or self.stop_on_silence is not None
                    or self.skip_silence is not None or self.split_on_silence is not None
                    or self.threshold is not None)


def warn(message: str) -> None:
    try:
        print(f"dictaphone: warning: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr is gone (a terminal that hung up): the warning has no reader


def resolve_output(opts: RecordOptions) -> tuple[Format, object, str]:
    """(format, output for MediaRecorder, label for messages); checks the path first."""
    if opts.output == "-":
        fmt = format_by_name(opts.format_name) if opts.format_name else _default_format()
        if sys.stdout.isatty():
            raise OutputError("refusing to write audio to a terminal; redirect stdout or name a file")
        return fmt, getattr(sys.stdout, "buffer", sys.stdout), "stdout"
    if opts.output is None:
        from ..library.clips import named_clip_path, new_clip_path

        fmt = format_by_name(opts.format_name) if opts.format_name else _default_format()
        ext = ("-{n:03d}" if opts.splits else "") + fmt.extension
        path = named_clip_path(opts.name, ext) if opts.name is not None else new_clip_path(ext)
        return fmt, path, path
    path = opts.output
    fmt = format_of_output(path, opts.format_name)
    from ..atomic import is_write_through

    if is_write_through(path):  # a FIFO, a device, /dev/stdout, /dev/fd/N: written into
        if opts.splits:
            raise InvalidArgumentError(f"{path} is a FIFO or a device, written as a stream: "
                                       f"pieces (--split...) need a file name")
        if _is_terminal(path):
            raise OutputError(f"refusing to write audio to a terminal ({path}); "
                              f"redirect it or name a file")
    from ..recording.recorder import split_path

    first = split_path(path, 1) if opts.splits else path
    check_not_input(opts, first)
    check_output_path(first, opts.force)
    return fmt, path, path


def format_of_output(path: str, format_name: str | None) -> Format:
    """The format a recording into ``path`` is written in; never one in disguise.

    The extension decides (``memo.ogg``: Ogg Vorbis). One that names no format dictaphone
    writes (``memo.m4a``, ``notes.txt``) is refused, not filled with a WAV. ``-f`` is for
    a name without an audio extension (``take``, ``take.bin -f raw``, ``x.part -f flac``);
    with an extension that names another audio format (``memo.ogg -f wav``, ``memo.m4a
    -f wav``) it is refused too: a reader would take the file for what its name says.
    """
    from ..containers.formats import FORMATS, audio_extension

    by_ext = format_for_path(path)
    ext = os.path.splitext(os.path.basename(path))[1]
    names = ", ".join(f.extension for f in FORMATS.values())
    if format_name is None:
        if by_ext is not None:
            return by_ext
        if not ext:
            return _default_format()
        what = audio_extension(ext)
        raise NotSupportedError(f"{path}: dictaphone does not write {ext} files"
                                f"{f' ({what})' if what else ''}; its formats are {names}: "
                                f"name the file with one of them")
    fmt = format_by_name(format_name)
    if by_ext is fmt:
        return fmt
    claimed = by_ext.name if by_ext is not None else audio_extension(ext)
    if claimed is not None:
        raise NotSupportedError(f"{path} would hold {fmt.name} data under a name that says "
                                f"{claimed}; name it {os.path.splitext(path)[0]}{fmt.extension}"
                                + (f", or drop -f to record {by_ext.name}" if by_ext else ""))
    return fmt


def _is_terminal(path: str) -> bool:
    """Whether the output ``path`` (a device or one of our descriptors) is a terminal."""
    import stat

    from ..atomic import fd_alias

    fd = fd_alias(path)
    if fd is not None:
        return os.isatty(fd)
    try:
        if not stat.S_ISCHR(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return False
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)


def check_not_input(opts: RecordOptions, path: str) -> None:
    """OUTPUT must not be --input itself (by any link or spelling), --force or not: this
    is checked before "it exists", so that the advice is not to add --force."""
    from ..recording.recorder import same_file

    if opts.input_path is not None and opts.input_path != "-" and same_file(opts.input_path, path):
        raise OutputError(f"{path} is the --input file {opts.input_path}; recording into it "
                          f"would destroy it: choose another OUTPUT")


def _default_format() -> Format:
    return format_by_name("wav")


def check_output_path(path: str, force: bool) -> None:
    """Refuse before anything is captured: a missing directory, an existing file (a FIFO
    or a device is written through, --force or not), what is neither (a block device, a
    socket, a symlink to nothing)."""
    from ..atomic import NotRegularError, output_kind

    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputError(f"{path} is a directory")
    if not os.path.isdir(directory):
        raise OutputError(f"{path}: the directory {directory} does not exist")
    try:
        kind = output_kind(path)
    except NotRegularError as e:
        raise OutputError(str(e)) from None
    if kind == "through":
        return
    if kind == "file" and not force:
        raise OutputError(f"{path} exists (use --force to overwrite it)")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"{path}: cannot write to {directory}")


def make_source(opts: RecordOptions, fmt: Format):
    if opts.input_path is not None:
        from ..capture.sources import FileSource

        if opts.reconnect is not None:
            raise InvalidArgumentError("--reconnect is for a device; --input reads a file")
        source = FileSource(opts.input_path, realtime=opts.realtime, channels=opts.channels)
        if opts.samplerate is not None and opts.samplerate != source.samplerate:
            raise NotSupportedError(
                f"{opts.input_path} is {source.samplerate} Hz and dictaphone does not resample; "
                f"drop -r, or convert it first (sox IN -r {opts.samplerate} OUT)")
        return source
    from ..capture.sources import Microphone, find_input_device

    rate = opts.samplerate
    if rate is None:
        info = find_input_device(opts.device)
        rate = fmt.nearest_rate(int(info["default_samplerate"]))
    # A live meter wants fresh levels ten times a second; without one, the default pace
    # (four reads a second) costs less CPU (see Microphone).
    pace = METER_PACE if shows_meter(opts.quiet) else None
    reconnect = Microphone.RECONNECT if opts.reconnect is None else opts.reconnect
    # the device as the user named it (None: the default input, whichever it is when a
    # lost device is looked for again)
    return Microphone(device=opts.device, samplerate=rate, pace=pace, reconnect=reconnect,
                      channels=1 if opts.channels is None else opts.channels)


#: seconds between two reads of the microphone while the meter is drawn
METER_PACE = 0.1


def shows_meter(quiet: bool) -> bool:
    """Whether a recording draws the live meter (the Session and the source agree)."""
    return not quiet and sys.stderr.isatty()


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
            hooks.close(signals=lambda: session.signals)
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


def report_dropped_hooks(hooks, session: Session, event_log) -> None:
    """One line (and a ``hooksdropped`` event) for the hooks a stop kept from running."""
    n = hooks.dropped_total
    by = ", ".join(f"{name}: {k}" for name, k in hooks.dropped.items())
    why = session.signal_name or session.stop_reason or "a stop signal"
    warn(f"stopped by {why}: {n} queued hook{'s' if n != 1 else ''} did not run ({by})")
    if event_log is not None:
        event_log.note("hooksdropped", count=n, hooks=dict(hooks.dropped), reason=why)


#: a transcript this short (utterances, characters) is printed after the stop
SHOW_UTTERANCES, SHOW_CHARACTERS = 6, 600

#: the longest a stop waits for the transcript's tail (the backlog is bounded; a second
#: Ctrl-C skips the wait)
TAIL_TIMEOUT = 120.0


def load_transcriber(opts: RecordOptions):
    """The speech model for --transcribe, loaded (EngineMissingError, ModelError: one line)."""
    from ..speech.live import DEFAULT_CPU_THREADS
    from ..speech.transcribe import Transcriber

    t = Transcriber(opts.model, opts.language, cpu_threads=DEFAULT_CPU_THREADS,
                    download_progress=not opts.quiet and sys.stderr.isatty())
    t.load()
    return t


def finish_transcript(live, rec, opts: RecordOptions, session: Session) -> str | None:
    """After the stop: recognise what is still queued (a progress line on a terminal; a
    second Ctrl-C gives it up), then save the transcript beside the recording. Returns the
    line that says where it went (None: nothing to say)."""
    import time

    live.finish()
    tty = not opts.quiet and sys.stderr.isatty()
    signals = session.signals
    deadline = time.monotonic() + TAIL_TIMEOUT
    shown = gave_up = False
    while not live.wait(0.1):
        if session.signals > signals or time.monotonic() > deadline:
            live.abandon()
            gave_up = True
            break
        if tty:
            print(f"\r\033[Ktranscribing the last {live.pending_seconds:.1f} s of speech… "
                  f"(Ctrl-C skips)", end="", file=sys.stderr, flush=True)
            shown = True
    if shown:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    live.wait(5.0)  # the utterance being recognised when it was given up
    complete = not gave_up and not live.error and not live.missed_seconds
    if live.error is not None:
        warn(f"transcription failed: {live.error}; the recording is complete")
    elif live.missed_seconds:
        warn(f"{live.missed_seconds:.1f} s of audio could not be transcribed in time")
    elif gave_up:
        warn("the transcript's last utterances were left out" +
             ("" if session.signals > signals else f" (still busy after {TAIL_TIMEOUT:g} s)"))
    if not complete and rec.paths:
        warn(f"the transcript is incomplete and was not saved; 'dictaphone transcribe "
             f"{rec.paths[0]}' makes it from the recording")
    t = live.transcript
    if complete and getattr(session, "labeller", None) is not None and not t.empty:
        t = label_speakers(session.labeller, t, rec, tty)
    saved = save_transcript(t, rec) if complete else []
    if saved and not opts.quiet:
        n = len(t.text.split())
        where = saved[0] if len(saved) == 1 else f"{len(saved)} files"
        if n == 0:  # as `dictaphone transcribe` says it: silence is not "0 words in 0 segments"
            return f"Transcript: no speech, saved as {where}"
        who = (f", {len(t.speakers)} speaker{'s' if len(t.speakers) != 1 else ''}"
               if t.labelled else "")
        line = (f"Transcript: {n} word{'s' if n != 1 else ''} in {len(t.segments)} "
                f"segment{'s' if len(t.segments) != 1 else ''}{who}, saved as {where}")
        # A dictated note is short: its words right here, no other command needed.
        texts = [text for _, text in getattr(live, "utterances", [])] or [s.text for s in t.segments]
        if len(texts) <= SHOW_UTTERANCES and sum(len(x) for x in texts) <= SHOW_CHARACTERS:
            line += "".join(f"\n  {x}" for x in texts)
        return line
    return None


def load_labeller():
    """The voice encoder for --speakers, loaded before recording (a missing model: one line)."""
    from ..speech.speakers import Labeller

    labeller = Labeller().load()
    labeller.voices()
    return labeller


def label_speakers(labeller, transcript, rec, tty: bool):
    """The transcript labelled with speakers from the recorded files (read back whole, at
    the stop); unlabelled, with a warning, when they cannot be read."""
    import numpy as np

    from ..speech.transcribe import read_audio

    if tty:
        print("\r\033[Klabelling speakers…", end="", file=sys.stderr, flush=True)
    try:
        paths = [p for p in rec.paths if os.path.exists(p)]
        audio = np.concatenate([read_audio(p) for p in paths]) if paths else None
        if audio is None:
            return transcript
        return labeller.label(transcript, audio)
    except Exception as e:  # the transcript is still worth saving without labels
        warn(f"speaker labels failed ({e}); the transcript is saved without them")
        return transcript
    finally:
        if tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def save_transcript(transcript, rec) -> list[str]:
    """Save the transcript beside each file of the recording. Split pieces get the words
    said in them, in their own time: an utterance that goes on over a cut is cut with it
    (a word belongs to the piece that holds its middle). Nothing for stdout or memory."""
    import dataclasses

    from ..library import transcript as tmod
    from ..library.edit import cut_transcript

    paths = [p for p in rec.paths if os.path.exists(p)]
    if not paths:
        return []
    bounds, t0 = [], 0.0
    for p in paths:
        n = _file_frames(p, rec.samplerate) if len(paths) > 1 else rec.frames
        bounds.append((p, t0, t0 + n / rec.samplerate))
        t0 += n / rec.samplerate
    saved = []
    for i, (path, a, b) in enumerate(bounds):
        if len(bounds) == 1:
            piece = dataclasses.replace(transcript, segments=[_clamped(s, a, b) for s in transcript.segments])
        else:
            # half open, so that a word on a cut goes to one piece only
            piece = cut_transcript(transcript, a, b if i == len(bounds) - 1 else b - 1e-6, 0.0)
        piece.duration = round(b - a, 3)
        try:
            saved.append(tmod.save(path, piece))
        except OSError as e:
            warn(f"cannot save the transcript of {path}: {e.strerror or e}")
    return saved


def _clamped(segment, a: float, b: float):
    import dataclasses

    def c(x):
        return round(min(b, max(a, x)), 3)

    return dataclasses.replace(segment, start=c(segment.start), end=c(segment.end),
                               words=[dataclasses.replace(w, start=c(w.start), end=c(w.end))
                                      for w in segment.words])


#: the shortest silence that --stop-on-silence, --skip-silence and --split-on-silence
#: take (seconds)
MIN_SILENCE = 0.1

#: a stop before the device was open (the documented "interrupted before a recording
#: began"): nothing was written, so a script's `record x.wav && use x.wav` does not go on
EXIT_STOPPED_BEFORE_START = 130


def say_safely(line: str) -> None:
    """A line on stderr that may have nobody to read it (a terminal that hung up): a
    failing write must not turn a finished recording into a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def report(rec, opts: RecordOptions, fmt: Format, label: str) -> int:
    """The summary line (or the error line) of a finished recording; the exit status."""
    from .text import channels_name, clock, human_size

    error = rec.error
    broken_pipe = isinstance(error, BrokenPipeOutputError)
    to_stdout = opts.output == "-"
    if to_stdout:
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
    gaps = getattr(rec, "gaps", [])
    missing = ""
    if gaps:  # audio is missing where the device was lost: say so, as for dropped frames
        missing = (f"{len(gaps)} gap{'s' if len(gaps) > 1 else ''} where the device was lost "
                   f"({sum(g['duration'] for g in gaps):.1f} s of audio missing)")
        what += f", {missing}"
    if error is not None and not broken_pipe:
        if rec.frames:
            say_safely(f"dictaphone: error: {error}; kept {what} in {label}")
        else:
            say_safely(f"dictaphone: error: {error}")
        return 1
    if len(rec.paths) > 1:
        label = f"{rec.paths[0]} … {os.path.basename(rec.paths[-1])} ({len(rec.paths)} files)"
    if not opts.quiet:
        verb = "Streamed to" if to_stdout else "Saved"
        tail = " (the reader closed the pipe)" if broken_pipe else ""
        say_safely(f"{verb} {label}: {what}{tail}")
    elif rec.dropped_frames:
        warn(f"{rec.dropped_frames} frames were dropped")
    if opts.quiet and missing:
        warn(missing)
    return 0


def make_voice_gate(opts: RecordOptions, samplerate: int, silero=None):
    """The voice gate of the hands-free options; ``silero``: the loaded Silero model for
    ``--vad silero`` (loaded before the device is looked up, so a missing extra says so)."""
    if not opts.uses_voice:
        return None
    from ..recording.vad import DEFAULT_THRESHOLD_DBFS, LevelDetector, VoiceGate

    if opts.vad == "silero":
        from ..speech.silero import SileroDetector

        detector = SileroDetector(samplerate, vad=silero)
    else:
        detector = LevelDetector(DEFAULT_THRESHOLD_DBFS if opts.threshold is None else opts.threshold)
    skip = opts.split_on_silence if opts.split_on_silence is not None else opts.skip_silence
    return VoiceGate(samplerate, detector, wait_for_sound=opts.wait_for_sound,
                     stop_on_silence=opts.stop_on_silence, skip_silence=skip,
                     split_on_silence=opts.split_on_silence is not None)


def check_options(opts: RecordOptions) -> None:
    """Everything that can be refused before a device or file is touched. An option
    given as 0 or "" is given: it is checked like any other value, never taken for the
    default."""
    from ..containers.formats import check_rate_and_channels

    for flag, value in (("OUTPUT", opts.output), ("--input", opts.input_path),
                        ("--events", opts.events), ("-D/--device", opts.device),
                        ("--on-data", opts.on_data), ("--on-stop", opts.on_stop),
                        ("--on-mark", opts.on_mark)):
        if value is not None and not value.strip():
            what = {"OUTPUT": "a file name or - for stdout", "--input": "a file name or - for stdin",
                    "--events": "a file name or - for stdout",
                    "-D/--device": "an index or part of a name ('dictaphone devices' lists them)",
                    }.get(flag, "a command")
            raise InvalidArgumentError(f"{flag} is empty; give {what}")
    if opts.name is not None:
        from ..library.clips import check_name

        check_name(opts.name)
    if opts.samplerate is not None:
        check_rate_and_channels(opts.samplerate, 1)
    if opts.channels is not None:
        check_rate_and_channels(8000, opts.channels)
    if opts.realtime and opts.input_path is None:
        raise InvalidArgumentError("--realtime paces an --input file; without --input there is nothing to pace")
    from .. import args
    from ..recording.recorder import MIN_SPLIT, MIN_TIMESLICE

    args.seconds("--timeslice", opts.timeslice, minimum=MIN_TIMESLICE)
    args.seconds("--split", opts.split, minimum=MIN_SPLIT)
    # A silence shorter than a few of the detector's 30 ms windows is a pause inside a
    # word: as a file boundary it would cut speech into fragments.
    for flag, value in (("--stop-on-silence", opts.stop_on_silence),
                        ("--skip-silence", opts.skip_silence),
                        ("--split-on-silence", opts.split_on_silence)):
        args.seconds(flag, value, minimum=MIN_SILENCE)
    check_scripting_options(opts)


def check_frames(opts: RecordOptions, samplerate: int) -> None:
    """Durations that are less than one frame at the recording's rate mean nothing."""
    from .. import args

    for flag, value in (("-d/--duration", opts.duration), ("--timeslice", opts.timeslice),
                        ("--split", opts.split)):
        args.frames_of(flag, value, samplerate)


def check_scripting_options(opts: RecordOptions) -> None:
    if opts.split_on_silence is not None and opts.output == "-":
        raise InvalidArgumentError("--split-on-silence writes files; it cannot go to stdout")
    if opts.split_on_silence is not None and opts.split is not None:
        raise InvalidArgumentError("use either --split or --split-on-silence, not both")
    if opts.split_on_silence is not None and opts.skip_silence is not None:
        raise InvalidArgumentError("--split-on-silence leaves the silences out already; drop --skip-silence")
    if opts.name is not None and opts.output is not None:
        raise InvalidArgumentError("give either OUTPUT or --name (a clip in the library), not both")
    if opts.split is not None and opts.output == "-":
        raise InvalidArgumentError("--split writes files; it cannot go to stdout")
    if opts.split is not None and opts.timeslice is not None:
        raise InvalidArgumentError("use either --timeslice or --split, not both")
    if opts.split_on_mark and opts.output == "-":
        raise InvalidArgumentError("--split-on-mark writes files; it cannot go to stdout")
    if opts.split_on_mark and opts.timeslice is not None:
        raise InvalidArgumentError("use either --timeslice or --split-on-mark, not both")
    if opts.events == "-" and opts.output == "-":
        raise InvalidArgumentError("--events - needs stdout, which carries the audio; give the events a file")
    if not opts.transcribe:
        for name, value in (("--model", opts.model), ("--language", opts.language),
                            ("--on-text", opts.on_text), ("--speakers", opts.speakers or None)):
            if value is not None:
                raise InvalidArgumentError(f"{name} goes with --transcribe")
    if opts.speakers and opts.output == "-":
        raise InvalidArgumentError("--speakers labels the saved transcript; a recording to stdout has none")
    for name, value in (("--model", opts.model), ("--language", opts.language),
                        ("--on-text", opts.on_text)):
        if value is not None and not str(value).strip():
            what = {"--model": "a model name or directory", "--language": "a language code such as en",
                    "--on-text": "a command"}[name]
            raise InvalidArgumentError(f"{name} is empty; give {what}")
    if opts.vad is not None:
        opts.vad = opts.vad.lower()
        if not (opts.wait_for_sound or opts.stop_on_silence is not None
                or opts.skip_silence is not None or opts.split_on_silence is not None):
            raise InvalidArgumentError("--vad chooses the detector of --wait-for-sound, --stop-on-silence, "
                                       "--skip-silence and --split-on-silence; give one of them")
        if opts.vad == "silero" and opts.threshold is not None:
            raise InvalidArgumentError("--threshold is a level in dBFS for --vad level; Silero has none")


def open_events(opts: RecordOptions):
    """The stream for --events: stdout for '-', else a new file (appended if it exists,
    so several recordings can share one log). A FIFO is waited for until its reader
    comes, and a stop signal ends that wait (StopRequested: exit 130, nothing made); its
    lines then go through FifoLines, so a reader that goes away or stops reading ends the
    log, never the recording."""
    if opts.events is None:
        return None
    if opts.events == "-":
        return sys.stdout
    directory = os.path.dirname(os.path.abspath(opts.events))
    if not os.path.isdir(directory):
        raise OutputError(f"--events {opts.events}: the directory {directory} does not exist")
    from ..stopsignals import open_for_writing

    def waiting():
        if not opts.quiet:
            say_safely(f"dictaphone: waiting for a reader of the FIFO {opts.events} (--events); "
                       f"Ctrl-C or SIGTERM ends the wait")

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = open_for_writing(opts.events, flags, on_wait=waiting)
    except IsADirectoryError:
        raise OutputError(f"--events {opts.events} is a directory") from None
    except OSError as e:
        raise OutputError(f"--events {opts.events}: {e.strerror}") from None
    import stat

    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        from ..control.hooks import FifoLines

        return FifoLines(fd, opts.events)
    return os.fdopen(fd, "a", buffering=1, encoding="utf-8")


def save_clip_metadata(rec, fmt: Format, created: str) -> None:
    """Write the sidecar of each file that went into the clip library (its markers
    included: they move from the recorder's markers sidecar into the clip's metadata)."""
    from ..library.clips import is_clip_path, write_metadata
    from ..containers.markers import remove_sidecar

    split = int(round(rec.split * rec.samplerate)) if rec.split else None
    for i, path in enumerate(rec.paths):
        if not is_clip_path(path) or not os.path.exists(path):
            continue
        if len(rec.paths) == 1:
            frames = rec.frames
        elif split is not None and not rec.split_on_mark:
            frames = min(split, rec.frames - i * split)
        elif path in rec.piece_frames:  # pieces cut on silence or at markers
            frames = rec.piece_frames[path]
        else:
            frames = _file_frames(path, rec.samplerate)
        try:
            write_metadata(path, created=created, duration=frames / rec.samplerate,
                           format=fmt.name, samplerate=rec.samplerate, channels=rec.channels,
                           device=rec.source.name, dropped_frames=rec.dropped_frames,
                           gaps=rec.gaps_in(path), markers=[m.to_json() for m in rec.markers_in(path)])
        except OSError as e:
            warn(f"cannot write the metadata of {path}: {e.strerror}")
        else:
            remove_sidecar(path)


def _file_frames(path: str, samplerate: int) -> int:
    try:
        import soundfile as sf

        return sf.info(path).frames
    except Exception:
        return 0


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else path
