"""`dictaphone record`'s options, and everything about them that can be refused before a
device or a file is touched: values, combinations, the output's name, format and place."""

from __future__ import annotations

import dataclasses
import os
import sys

from ..containers.formats import Format, format_by_name, format_for_path
from ..errors import InvalidArgumentError, NotSupportedError, OutputError


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


#: the shortest silence that --stop-on-silence, --skip-silence and --split-on-silence
#: take (seconds)
MIN_SILENCE = 0.1


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
