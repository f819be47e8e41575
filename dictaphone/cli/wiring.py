"""The parts of a recording made from `dictaphone record`'s options: the source, the voice
gate, the speech model for --transcribe, the --events stream."""

from __future__ import annotations

import os
import sys

from ..containers.formats import Format
from ..errors import InvalidArgumentError, NotSupportedError, OutputError
from .options import RecordOptions
from .stderr import say_safely


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


def load_transcriber(opts: RecordOptions):
    """The speech model for --transcribe, loaded (EngineMissingError, ModelError: one line)."""
    from ..speech.live import DEFAULT_CPU_THREADS, passive_openmp

    passive_openmp()  # before faster-whisper loads CTranslate2 (its OpenMP reads it then)
    from ..speech.transcribe import Transcriber

    t = Transcriber(opts.model, opts.language, cpu_threads=DEFAULT_CPU_THREADS,
                    download_progress=not opts.quiet and sys.stderr.isatty())
    t.load()
    return t


def load_labeller():
    """The voice encoder for --speakers, loaded before recording (a missing model: one line)."""
    from ..speech.speakers import Labeller

    labeller = Labeller().load()
    labeller.voices()
    return labeller


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
