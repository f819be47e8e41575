"""`dictaphone import|trim|export`: recordings from elsewhere, cut and sent elsewhere."""

from __future__ import annotations

import os
import sys

import click

from ..errors import DictaphoneError
from .app import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, Duration, cli, fail, one_line, say


def _terminate_as_interrupt() -> None:
    """SIGTERM and SIGHUP (at their default, which ends the process on the spot) act as
    Ctrl-C does for the commands that make files: a KeyboardInterrupt, so the temporary
    file is removed and the exit is 130. edit.between_blocks holds them while a block is
    encoded; before it (the temporary made, the encoder opening) and after it (the clip
    being added), the default killed the process and left a .dictaphone-*.tmp behind."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    saved = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            try:
                saved[sig] = signal.signal(sig, interrupt)
            except ValueError:  # not the main thread: signals do not reach it anyway
                pass

    def restore():
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    click.get_current_context().call_on_close(restore)


def refuse_if_recording(name: str) -> None:
    """A clip that a running recorder is writing is not trimmed, renamed or deleted: an in-place trim
    replaced the file under the recorder, whose further audio then went nowhere (a 6 s
    recording kept 2.2 s, its metadata still saying 6 s); after a rename the recorder
    said "Saved NAME.wav" and the clip under its new name had no metadata at all; after a
    delete it said "Saved" of a clip that was gone. The page refuses the same (409)."""
    from ..control import registry
    from ..library import clips as library

    clip = library.find(name)
    if not registry.running():
        return
    try:
        statuses = registry.statuses(timeout=2.0)
    except DictaphoneError:
        return
    mine = os.path.realpath(clip.path)
    if any(os.path.realpath(p) == mine for st in statuses for p in (st.get("paths") or [st.get("path")]) if p):
        fail(f"{clip.name!r} is being recorded; stop it first (dictaphone stop)", EXIT_USAGE)


@cli.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("-n", "--name", metavar="NAME", help="The clip's name (one FILE only). "
              "Default: the file's name without its extension (NAME-2 if taken).")
@click.option("--move", is_flag=True, help="Remove each file once it is a clip.")
@click.option("-q", "--quiet", is_flag=True, help="No line per file.")
def import_(files, name, move, quiet):
    """Add audio files made elsewhere to the library, as clips.

    A phone's .m4a (AAC), a browser's .webm (Opus), .mp4, .ogg, .opus, .mp3, .wav,
    .flac: what a browser can play is kept byte for byte (the audio of a video is
    copied out unchanged); anything else that can be decoded is converted, to FLAC when
    lossless or Ogg Vorbis when lossy, and the line says so. M4A, WebM and MP4 need the
    'transcribe' extra (PyAV). The clip's date is the recording's own (the file's
    creation_time tag, else its creation or modification time).

    A file that cannot be imported is reported in one line and skipped; the rest are
    imported, and the exit status is 1 if any failed.

    \b
      dictaphone import ~/Downloads/*.m4a
      dictaphone import meeting.webm --name "team meeting" --move
    """
    from ..library.importer import import_file

    _terminate_as_interrupt()

    if name is not None and len(files) > 1:
        fail("--name names one clip: give one FILE with it", EXIT_USAGE)
    failed = 0
    total = len(files)
    for n, path in enumerate(files, 1):
        where = f"[{n}/{total}] " if total > 1 else ""
        try:
            done = import_file(path, name=name, move=move)
        except KeyboardInterrupt:
            say(f"dictaphone: interrupted: {path} was not imported"
                + (f" ({n - 1 - failed} imported before it)" if n > 1 else ""))
            raise SystemExit(EXIT_INTERRUPTED)
        except DictaphoneError as e:
            failed += 1
            say(f"dictaphone: {where}{one_line(str(e))}" if str(e).startswith(path)
                else f"dictaphone: {where}{one_line(path)}: {one_line(str(e))}")
            continue
        except OSError as e:
            failed += 1
            say(f"dictaphone: {where}{one_line(path)}: {e.strerror or e}")
            continue
        if not quiet:
            moved = ", file removed" if done.moved else ""
            say(f"{where}imported {one_line(path)} as {done.clip.name!r}: {done.how}{moved}")
    if failed:
        if total > 1:
            say(f"dictaphone: {failed} of {total} files not imported")
        raise SystemExit(EXIT_ERROR)


class Time(click.ParamType):
    """A moment in a clip: 90, 90.5, 90s, 1:30, 1:02:03.5 (0 allowed)."""

    name = "time"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        from ..containers.markers import parse_time

        t = parse_time(str(value))
        if t is None:
            self.fail(f"{value!r} is not a time in the clip (try 90, 12.5, 12s or 1:30)", param, ctx)
        return t


def _notes(result) -> str:
    return "".join(f"; {n}" for n in result.notes)


@cli.command()
@click.argument("clip", metavar="NAME")
@click.option("--from", "start", type=Time(), metavar="TIME", help="Keep from here (default: the start).")
@click.option("--to", "end", type=Time(), metavar="TIME", help="Keep up to here (default: the end).")
@click.option("-n", "--name", "new_name", metavar="NEW", help="The new clip's name (default: 'NAME (trimmed)').")
@click.option("--in-place", is_flag=True, help="Replace the clip itself (once the new file is complete).")
def trim(clip, start, end, new_name, in_place):
    """Keep a part of a clip, exactly to the frame, as a new clip (the original stays,
    unless --in-place).

    Markers and transcript words inside the part are kept, their times moved. A lossless
    clip (WAV, FLAC) keeps every sample as it was; a lossy one is encoded again (M4A as
    Ogg Vorbis, WebM as Opus: the line says so).

    \b
      dictaphone trim interview --from 1:30 --to 12:00
      dictaphone trim memo --from 2.5 --in-place
    """
    from ..library.edit import trim as do_trim

    _terminate_as_interrupt()
    refuse_if_recording(clip)

    result = do_trim(clip, start, end, new_name=new_name, in_place=in_place)
    kept = f", {result.markers} marker(s)" if result.markers else ""
    if in_place:
        say(f"trimmed {clip!r} in place to {result.duration:.3f} s{kept}{_notes(result)}")
    else:
        say(f"trimmed {clip!r} into {result.clip.name!r} ({result.duration:.3f} s{kept}){_notes(result)}")


@cli.command()
@click.argument("clip", metavar="NAME|PATH")
@click.argument("output", metavar="OUT")
@click.option("-f", "--format", "fmt", metavar="FORMAT",
              help="wav, flac, ogg, opus, mp3 or raw (default: from OUT's extension).")
@click.option("--from", "start", type=Time(), metavar="TIME", help="Only from here.")
@click.option("--to", "end", type=Time(), metavar="TIME", help="Only up to here.")
@click.option("--subtitles", type=click.Choice(["srt", "vtt"]), help="Also write its transcript as OUT's name .srt/.vtt.")
@click.option("--force", is_flag=True, help="Replace an existing OUT (and subtitles file).")
def export(clip, output, fmt, start, end, subtitles, force):
    """Write a clip (or an audio file) to OUT in any format dictaphone writes, with its
    markers (a WAV's cue chunk; chapters in FLAC and Ogg).

    OUT is written whole or not at all; an existing file is kept unless --force. A FIFO,
    a device or - (stdout) is written into as it is: give -f then.

    \b
      dictaphone export interview interview.flac --subtitles srt
      dictaphone export memo - -f wav | sox - -n stat
    """
    from ..library.edit import export as do_export

    _terminate_as_interrupt()

    if not output:
        fail("OUT cannot be empty: give a file name, or - for stdout", EXIT_USAGE)
    try:
        result = do_export(clip, output, fmt, start=start, end=end, subtitles=subtitles, force=force)
    except FileExistsError:
        fail(f"{output} exists (use --force to replace it)", EXIT_USAGE)
    except BrokenPipeError:
        raise
    except OSError as e:
        fail(f"cannot write {output}: {(e.strerror or str(e)).lower()}; nothing was written", EXIT_ERROR)
    marks = f", {result.markers} marker(s)" if result.markers else ""
    subs = f", subtitles in {result.subtitles}" if result.subtitles else ""
    where = "stdout" if output == "-" else output
    say(f"exported {clip!r} to {where} ({result.format}, {result.duration:.3f} s{marks}{subs}){_notes(result)}")
