"""`dictaphone record`."""

from __future__ import annotations

import signal

import click

from ..containers.formats import FORMATS, MAX_CHANNELS, MAX_RATE, MIN_RATE
from .app import Bounded, Decibels, Duration, Sectioned, cli

FORMAT_NAMES = list(FORMATS)


#: the groups of `record --help`, in the order a new user looks for them
SECTIONS = (
    ("Output", ("format_name", "subtype", "name", "force", "quiet")),
    ("Device or input", ("device", "samplerate", "channels", "input_path", "realtime")),
    ("Length", ("duration", "split")),
    ("Stopping", ("stop_on_silence", "reconnect")),
    ("Hands-free", ("wait_for_sound", "skip_silence", "split_on_silence", "threshold", "vad")),
    ("Transcripts", ("transcribe", "model", "language", "speakers", "on_text")),
    ("Markers", ("split_on_mark", "on_mark")),
    ("Scripting", ("timeslice", "events", "on_data", "on_stop")),
)


@cli.command(cls=Sectioned, sections=SECTIONS)
@click.argument("output", required=False)
@click.option("-f", "--format", "format_name", type=click.Choice(FORMAT_NAMES, case_sensitive=False),
              help="Container/codec. Default: from OUTPUT's extension, else wav.")
@click.option("-r", "--samplerate", type=Bounded(MIN_RATE, MAX_RATE, "sample rate", " Hz"),
              help="Sample rate in Hz. Default: the device's (or the input file's).")
@click.option("-c", "--channels", type=Bounded(1, MAX_CHANNELS, "channel count"),
              help="Channels. Default: 1 (an --input file: its own).")
@click.option("-D", "--device", help="Input device: an index or part of a name (see 'dictaphone devices').")
@click.option("-d", "--duration", type=Duration(), help="Stop after this much recorded audio, counted in frames (90, 1.5, 5m, 1:30).")
@click.option("--input", "input_path", metavar="FILE", help="Record an audio file instead of the microphone.")
@click.option("--realtime", is_flag=True, help="With --input: deliver the file at its own pace, like a device.")
@click.option("--subtype", metavar="NAME",
              help="Sample encoding for wav/flac/raw: PCM_16 (default), PCM_24, PCM_32, FLOAT. "
                   "ogg, opus and mp3 have none to choose.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No meter, no summary; errors only.")
@click.option("--timeslice", type=Duration(), metavar="SECONDS", help="A dataavailable event every SECONDS of recorded audio.")
@click.option("--split", type=Duration(), metavar="SECONDS", help="A new self-contained file every SECONDS: NAME-001.EXT, NAME-002.EXT, ...")
@click.option("--events", metavar="PATH", help="Append one JSON line per event to PATH (- for stdout when the audio goes to a file).")
@click.option("--on-data", metavar="CMD", help="Run CMD (with sh) after each chunk or split file; data comes in DICTAPHONE_* variables.")
@click.option("--on-stop", metavar="CMD", help="Run CMD (with sh) when the recording ends.")
@click.option("-n", "--name", help="Record a clip called NAME into the library (see 'dictaphone list').")
@click.option("--wait-for-sound", is_flag=True, help="Start writing only when speech begins (keeps 0.3 s before it).")
@click.option("--stop-on-silence", type=Duration(), metavar="SECONDS", help="Stop after SECONDS of continuous silence (keeps a 0.3 s tail).")
@click.option("--skip-silence", type=Duration(), metavar="SECONDS", help="Leave out silences longer than SECONDS (shortened to a 0.6 s gap).")
@click.option("--split-on-silence", type=Duration(), metavar="SECONDS", help="One file per utterance: a silence longer than SECONDS ends a file.")
@click.option("--reconnect", type=Duration(zero=True), metavar="SECONDS",
              help="When the device or its audio server goes away, wait up to SECONDS for it "
                   "to come back and go on in the same file (default 30; 0: end the recording).")
@click.option("--threshold", type=Decibels(), metavar="DBFS", help="Speech level threshold in dBFS (default -40; a noise floor is tracked too).")
@click.option("--vad", type=click.Choice(["silero", "level"], case_sensitive=False),
              help="Speech detector of --wait-for-sound, --stop-on-silence, --skip-silence and --split-on-silence: level (default) or silero (neural; needs the transcribe extra).")
@click.option("--transcribe", is_flag=True, help="Transcribe while recording (needs the transcribe extra); the text is saved with the recording.")
@click.option("--model", metavar="NAME|PATH", help="Whisper model for --transcribe: a size (tiny.en, base.en, small, ...) or a CTranslate2 directory. Default: $DICTAPHONE_MODEL, else base.en.")
@click.option("--language", metavar="CODE", help="Language for --transcribe (en, de, ...). Default: detect (English for .en models).")
@click.option("--speakers", is_flag=True, help="With --transcribe: label who speaks (Speaker 1, a known voice's name) in the saved transcript, at the stop.")
@click.option("--on-text", metavar="CMD", help="With --transcribe: run CMD (with sh) for each utterance; the text is in DICTAPHONE_TEXT, its times in DICTAPHONE_START and DICTAPHONE_END.")
@click.option("--on-mark", metavar="CMD", help="Run CMD (with sh) at each marker; DICTAPHONE_MARK_TIME, _LABEL and _NUMBER say which.")
@click.option("--split-on-mark", is_flag=True, help="Each marker (m key, 'dictaphone mark') also starts a new file: NAME-001.EXT, ...")
def record(output, format_name, samplerate, channels, device, duration, input_path, realtime,
           subtype, force, quiet, timeslice, split, events, on_data, on_stop, name,
           wait_for_sound, stop_on_silence, skip_silence, split_on_silence, threshold,
           reconnect, vad, transcribe, model, language, speakers, on_text, on_mark, split_on_mark):
    """Record from the microphone (or --input FILE) into OUTPUT.

    OUTPUT is a file, or - for stdout (audio only; messages go to stderr). Without OUTPUT
    the recording goes to a new timestamped file in the clip directory ($DICTAPHONE_HOME,
    else ~/.local/share/dictaphone).

    Stop with q, Enter, Esc or Ctrl-C, SIGTERM or SIGHUP, or let -d run out: the file is
    finished and playable either way, and the exit status is 0. Space or p pauses and
    resumes; paused time is left out of the file. m adds a marker (so does 'dictaphone
    mark LABEL' from another shell).

    \b
    Examples:
      dictaphone record memo.ogg
      dictaphone record -d 10 take.flac
      dictaphone record -d 2 - -f wav | sox - -n stat
      dictaphone record - -f raw -r 16000 | my-transcriber
      dictaphone record --input talk.wav talk.flac
      dictaphone record --split 1h meeting.flac
      dictaphone record --split 5m --on-data 'dictaphone transcribe -q "$DICTAPHONE_FILE"' notes.wav
      dictaphone record --wait-for-sound --stop-on-silence 3 idea.ogg
      dictaphone record --split-on-silence 1.5 --on-data 'dictaphone transcribe -q "$DICTAPHONE_FILE"' u.wav
      dictaphone record --transcribe -n standup
      dictaphone record --transcribe --on-text 'wtype "$DICTAPHONE_TEXT "' dictation.ogg

    Hooks get DICTAPHONE_EVENT, DICTAPHONE_FILE, DICTAPHONE_DURATION, DICTAPHONE_SIZE,
    DICTAPHONE_OFFSET, DICTAPHONE_INDEX, DICTAPHONE_FORMAT, DICTAPHONE_SAMPLERATE,
    DICTAPHONE_CHANNELS, DICTAPHONE_ID, and at the end DICTAPHONE_FILES,
    DICTAPHONE_FRAMES, DICTAPHONE_DROPPED_FRAMES (and DICTAPHONE_ERROR on failure).
    """
    from .session import RecordOptions, run_record

    opts = RecordOptions(output=output, format_name=format_name, samplerate=samplerate,
                         channels=channels, device=device, duration=duration,
                         input_path=input_path, realtime=realtime, subtype=subtype,
                         force=force, quiet=quiet, timeslice=timeslice, split=split,
                         events=events, on_data=on_data, on_stop=on_stop, name=name,
                         wait_for_sound=wait_for_sound, stop_on_silence=stop_on_silence,
                         skip_silence=skip_silence, split_on_silence=split_on_silence,
                         threshold=threshold, reconnect=reconnect, vad=vad, transcribe=transcribe,
                         model=model, language=language, speakers=speakers, on_text=on_text,
                         on_mark=on_mark, split_on_mark=split_on_mark)
    status = run_record(opts)
    # The recording is finished: from here on a stop signal has nothing to stop. Ignored
    # at the OS level (SIG_IGN survives interpreter shutdown, a Python handler does not),
    # so a Ctrl-C pressed again cannot turn this exit status into 130 or a SIGINT death.
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise RecordingDone(status)


class RecordingDone(SystemExit):
    """The recording is finished and everything it wrote is closed and synced: the
    program may exit at once (see cli.main), without Python's and PortAudio's teardown,
    which costs 60 to 120 ms of a stop here."""


