"""The command line. The only place that knows click, exit codes and messages.

Exit status: 0 done (every way of stopping a recording is a success), 1 runtime error
(a device or a disk failed), 2 usage error (an argument, a path, a format), 130 when
interrupted before a recording began. Every error is one line on stderr; set
DICTAPHONE_TRACEBACK=1 to see the Python traceback instead.

Audio modules (numpy, sounddevice, soundfile, rich) are imported inside the commands,
so ``dictaphone --help`` stays fast.
"""

from __future__ import annotations

import os
import re
import sys

import click

from . import __version__
from .errors import DictaphoneError
from .formats import FORMATS

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def say(message: str) -> None:
    click.echo(message, err=True)


def fail(message: str, code: int) -> None:
    say(f"dictaphone: error: {message}")
    raise SystemExit(code)


class Duration(click.ParamType):
    """Seconds as 90, 1.5, 90s, 5m, 1h, 1:30 or 1:02:03."""

    name = "duration"
    _UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            text = value.strip().lower()
            try:
                if ":" in text:
                    seconds = 0.0
                    for part in text.split(":"):
                        seconds = seconds * 60 + float(part)
                else:
                    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([smh]?)", text)
                    if not m:
                        raise ValueError
                    seconds = float(m.group(1)) * self._UNITS[m.group(2)]
            except ValueError:
                self.fail(f"{value!r} is not a duration (try 90, 1.5, 5m, 1h or 1:30)", param, ctx)
        if not 0 < seconds < float("inf"):
            self.fail(f"{value!r} must be more than zero seconds", param, ctx)
        return seconds


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dictaphone")
def cli():
    """A dictaphone for the terminal: record real audio to a file or a pipe.

    \b
      dictaphone record memo.ogg        record until q, Enter, Esc or Ctrl-C
      dictaphone record - -f wav | ...  stream a WAV to another program
      dictaphone formats                the formats and their MIME types
    """


FORMAT_NAMES = list(FORMATS)


@cli.command()
@click.argument("output", required=False)
@click.option("-f", "--format", "format_name", type=click.Choice(FORMAT_NAMES, case_sensitive=False),
              help="Container/codec. Default: from OUTPUT's extension, else wav.")
@click.option("-r", "--samplerate", type=int, help="Sample rate in Hz. Default: the device's (or the input file's).")
@click.option("-c", "--channels", type=int, help="Channels. Default: 1 (an --input file: its own).")
@click.option("-D", "--device", help="Input device: an index or part of a name (see 'dictaphone devices').")
@click.option("-d", "--duration", type=Duration(), help="Stop after this much recorded audio, counted in frames (90, 1.5, 5m, 1:30).")
@click.option("--input", "input_path", metavar="FILE", help="Record an audio file instead of the microphone.")
@click.option("--realtime", is_flag=True, help="With --input: deliver the file at its own pace, like a device.")
@click.option("--subtype", type=click.Choice(["PCM_16", "PCM_24", "PCM_32", "FLOAT"], case_sensitive=False),
              help="Sample encoding for wav/flac/raw. Default: PCM_16.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No meter, no summary; errors only.")
@click.option("--timeslice", type=Duration(), metavar="SECONDS", help="A dataavailable event every SECONDS of recorded audio.")
@click.option("--split", type=Duration(), metavar="SECONDS", help="A new self-contained file every SECONDS: NAME-001.EXT, NAME-002.EXT, ...")
@click.option("--events", metavar="PATH", help="Append one JSON line per event to PATH (- for stdout when the audio goes to a file).")
@click.option("--on-data", metavar="CMD", help="Run CMD (with sh) after each chunk or split file; data comes in DICTAPHONE_* variables.")
@click.option("--on-stop", metavar="CMD", help="Run CMD (with sh) when the recording ends.")
def record(output, format_name, samplerate, channels, device, duration, input_path, realtime,
           subtype, force, quiet, timeslice, split, events, on_data, on_stop):
    """Record from the microphone (or --input FILE) into OUTPUT.

    OUTPUT is a file, or - for stdout (audio only; messages go to stderr). Without OUTPUT
    the recording goes to a new timestamped file in the clip directory ($DICTAPHONE_HOME,
    else ~/.local/share/dictaphone).

    Stop with q, Enter, Esc or Ctrl-C, SIGTERM or SIGHUP, or let -d run out: the file is
    finished and playable either way, and the exit status is 0. Space or p pauses and
    resumes; paused time is left out of the file.

    \b
    Examples:
      dictaphone record memo.ogg
      dictaphone record -d 10 take.flac
      dictaphone record - -f wav | sox - -n stat
      dictaphone record - -f raw -r 16000 | my-transcriber
      dictaphone record --split 1h meeting.flac
      dictaphone record --split 5m --on-data 'transcribe "$DICTAPHONE_FILE"' notes.wav

    Hooks get DICTAPHONE_EVENT, DICTAPHONE_FILE, DICTAPHONE_DURATION, DICTAPHONE_SIZE,
    DICTAPHONE_OFFSET, DICTAPHONE_INDEX, DICTAPHONE_FORMAT, DICTAPHONE_SAMPLERATE,
    DICTAPHONE_CHANNELS, DICTAPHONE_ID, and at the end DICTAPHONE_FILES,
    DICTAPHONE_FRAMES, DICTAPHONE_DROPPED_FRAMES (and DICTAPHONE_ERROR on failure).
    """
    from .record import RecordOptions, run_record

    opts = RecordOptions(output=output, format_name=format_name, samplerate=samplerate,
                         channels=channels, device=device, duration=duration,
                         input_path=input_path, realtime=realtime, subtype=subtype,
                         force=force, quiet=quiet, timeslice=timeslice, split=split,
                         events=events, on_data=on_data, on_stop=on_stop)
    raise SystemExit(run_record(opts))


@cli.command()
def formats():
    """List the formats, their MIME types and limits."""
    from .formats import is_type_supported

    for fmt in FORMATS.values():
        rates = ", ".join(str(r) for r in fmt.rates) if fmt.rates else f"up to {fmt.max_rate}"
        ok = "" if is_type_supported(fmt.mime_type) else "  (not available: libsndfile lacks it)"
        click.echo(f"{fmt.name:5} {fmt.mime_type:26} {fmt.extension:6} {'/'.join(fmt.subtypes):28} "
                   f"rates: {rates}; up to {fmt.max_channels} ch{ok}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device, in a list.")
def devices(as_json):
    """List the audio devices (* marks the default input, > the default output)."""
    import json

    from .sources import list_devices

    devs = list_devices()
    if as_json:
        click.echo(json.dumps(devs, indent=2))
        return
    for d in devs:
        mark = ("*" if d["default_input"] else " ") + (">" if d["default_output"] else " ")
        click.echo(f"{mark} {d['index']:3} {d['name']}  ({d['hostapi']}; {d['inputs']} in, "
                   f"{d['outputs']} out; {d['default_samplerate']:g} Hz)")


def _control(command: str, id: str | None, all_: bool) -> list[dict]:
    from .control import select

    return [entry.request(command) for entry in select(id, all_)]


@cli.command()
@click.argument("id", required=False)
@click.option("--all", "all_", is_flag=True, help="Stop every running recording.")
def stop(id, all_):
    """Stop a running recording and print its file once it is finished.

    With several recordings running, give the ID (or pid) that 'dictaphone status'
    shows, or --all.
    """
    for reply in _control("stop", id, all_):
        for path in reply.get("paths") or [reply.get("path") or "-"]:
            click.echo(path)
        if reply.get("error"):
            say(f"dictaphone: warning: recording {reply['id']} ended with an error: {reply['error']}")


@cli.command()
@click.argument("id", required=False)
@click.option("--all", "all_", is_flag=True, help="Pause every running recording.")
def pause(id, all_):
    """Pause a running recording (paused time is left out of the file)."""
    for reply in _control("pause", id, all_):
        say(f"{reply['id']}: {reply['state']} at {reply['duration']:.1f} s ({reply['path']})")


@cli.command()
@click.argument("id", required=False)
@click.option("--all", "all_", is_flag=True, help="Resume every paused recording.")
def resume(id, all_):
    """Resume a paused recording."""
    for reply in _control("resume", id, all_):
        say(f"{reply['id']}: {reply['state']} at {reply['duration']:.1f} s ({reply['path']})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def status(as_json):
    """Show the running recordings: id, pid, path, state, duration, level.

    Exits 1 when nothing is recording, so `dictaphone status || dictaphone record`
    toggles.
    """
    import json

    from .control import ControlError, running

    replies = []
    for entry in running():
        try:
            replies.append(entry.request("status", timeout=5))
        except (ControlError, DictaphoneError):
            continue  # it ended while we asked
    if as_json:
        click.echo(json.dumps(replies, indent=2))
    else:
        for r in replies:
            click.echo(f"{r['id']:>3}  pid {r['pid']:<7} {r['state']:9} {r['duration']:9.1f} s  "
                       f"peak {r['peak_dbfs']:6.1f} dBFS  {r['path']}")
        if not replies:
            say("nothing is recording")
    if not replies:
        raise SystemExit(EXIT_ERROR)


@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be repaired; change nothing.")
def recover(files, dry_run):
    """Repair recordings left by a killed recorder or saved from a pipe.

    WAV: the header's sizes are set to what the file holds. FLAC: the missing total
    length is filled in and a torn last frame cut off. Other formats cannot be
    repaired (Ogg Vorbis and MP3 play up to where they were cut).
    """
    from .recover import recover as repair

    for path in files:
        say(repair(path, dry_run=dry_run).describe())


def main(argv=None) -> None:
    """Entry point: run the CLI, turning every error into one line and an exit status."""
    debug = os.environ.get("DICTAPHONE_TRACEBACK") == "1"
    try:
        cli.main(args=argv, prog_name="dictaphone", standalone_mode=False)
    except click.exceptions.Abort:
        say("dictaphone: aborted")
        raise SystemExit(EXIT_INTERRUPTED)
    except click.ClickException as e:  # usage errors: one line, exit 2
        ctx = getattr(e, "ctx", None)
        where = f"dictaphone {ctx.info_name}" if ctx is not None and ctx.parent else "dictaphone"
        say(f"{where}: error: {e.format_message()}")
        raise SystemExit(e.exit_code)
    except DictaphoneError as e:
        if debug:
            raise
        fail(str(e), EXIT_USAGE if e.usage else EXIT_ERROR)
    except KeyboardInterrupt:
        say("dictaphone: interrupted")
        raise SystemExit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # stdout's reader went away (e.g. `dictaphone formats | head -1`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(EXIT_OK)
    except OSError as e:
        if debug:
            raise
        fail(e.strerror or str(e), EXIT_ERROR)


if __name__ == "__main__":
    main()
