"""`dictaphone import`: recordings from elsewhere."""

from __future__ import annotations

import os
import sys

import click

from ..errors import DictaphoneError
from .app import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, Duration, cli, fail, one_line, say


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

