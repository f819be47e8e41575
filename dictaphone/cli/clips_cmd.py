"""`dictaphone list|play|rename|delete|show`: the clip library."""

from __future__ import annotations

import json
import os
import sys

import click

from .app import EXIT_USAGE, Decibels, cli, clip_words, fail, one_clip, say


def _stdout_console():
    from rich.console import Console

    return Console(highlight=False)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list: name, path, duration, created, format, size, transcript (first words).")
def list_(as_json):
    """List the clips in the library, newest first."""
    from ..library.clips import clip_dir, clips

    found = clips()
    if as_json:
        click.echo(json.dumps([{k: c.to_json()[k] for k in
                                ("name", "path", "duration", "created", "format", "size",
                                 "samplerate", "channels", "device", "dropped_frames", "transcript",
                                 "gaps", "markers", "missing")}
                               for c in found], indent=2))
        return
    if not found:
        say(f"no clips in {clip_dir()} (record one with: dictaphone record --name NAME)")
        return
    from .ui import clip_table

    console = _stdout_console()
    console.print(clip_table(found, width=console.width))


@cli.command()
@click.argument("old")
@click.argument("new")
def rename(old, new):
    """Rename a clip."""
    from ..library.clips import rename as do_rename

    clip = do_rename(old, new)
    say(f"renamed {old!r} to {clip.name!r}")


@cli.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-y", "--yes", is_flag=True, help="Do not ask (for scripts).")
def delete(names, yes):
    """Delete clips from the library (asks first, unless --yes).

    Only clips in the library are deleted, by name; a path is refused.
    """
    from ..library.clips import delete as do_delete
    from ..library.clips import find

    # all must exist before any is deleted
    targets = [find(name) for name in clip_words(names)]
    if not yes:
        if not sys.stdin.isatty():
            fail("not deleting without confirmation; use --yes in scripts", EXIT_USAGE)
        listing = ", ".join(repr(c.name) for c in targets)
        if not click.confirm(f"Delete {listing}?", default=False, err=True):
            say("nothing deleted")
            return
    for clip in targets:
        do_delete(clip.name)
        say(f"deleted {clip.name!r}")


@cli.command()
@click.argument("clip", nargs=-1, required=True, metavar="NAME|PATH")
@click.option("--json", "as_json", is_flag=True, help="A JSON list: number, time (seconds), label.")
@click.option("--audacity", is_flag=True, help="An Audacity label track (start, end, label; tab-separated).")
def marks(clip, as_json, audacity):
    """List a clip's (or an audio file's) markers: number, time, label.

    They come from the clip's metadata or the file's NAME.markers.json, else from the
    file itself (a WAV's cue points, FLAC/Ogg chapter comments). --audacity prints a
    label track for Audacity's File > Import > Labels.
    """
    from ..library.clips import resolve
    from ..containers.markers import load, to_audacity

    if as_json and audacity:
        fail("give either --json or --audacity, not both", EXIT_USAGE)
    path = resolve(one_clip(clip))
    found = load(path)
    if not found:
        from ..containers.markers import check_audio

        check_audio(path)  # "no markers" only for audio
    if as_json:
        click.echo(json.dumps([m.to_json() for m in found], indent=2, ensure_ascii=False))
    elif audacity:
        click.echo(to_audacity(found), nl=False)
    elif not found:
        say(f"no markers in {path}")
    else:
        from ..containers.markers import format_time

        for m in found:
            click.echo(f"{m.number:3}  {format_time(m.time)}  {m.label}")


@cli.command()
@click.argument("clip", nargs=-1, required=True, metavar="NAME|PATH")
@click.option("-D", "--device", help="Output device: an index or part of a name.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.option("--at", "at", metavar="TIME|MARK",
              help="Start here: a time (1:30, 90.5, 90s) or a marker (its number, e.g. 3, or its label).")
def play(clip, device, quiet, at):
    """Play a clip (or any audio file). q, Esc or Ctrl-C stops.

    --at starts at a time or a marker ('dictaphone marks NAME' lists them); a plain
    number is a marker's number, so write 90s or 1:30 for a time.
    """
    import select
    import signal
    import threading

    from ..library.clips import resolve
    from ..capture.player import Player
    from .terminal import HANGUP, STOP, Keys
    from .text import clock

    path = resolve(one_clip(clip))
    start = 0.0
    if at is not None:
        from ..containers.markers import load, resolve_position

        start = resolve_position(load(path), at, where=os.path.basename(path))
    player = Player(path, device=device, start=start)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    show = not quiet and sys.stderr.isatty()
    try:
        player.start()
        keys = Keys() if Keys.available() else None
        with (keys if keys else _Null()):
            while not player.wait(0) and not stop.is_set():
                if keys is not None:
                    readable, _, _ = select.select([keys], [], [], 0.1)
                    if readable and {STOP, HANGUP} & set(keys.read()):
                        break  # q, or the terminal is gone (never read it in a loop)
                else:
                    player.wait(0.1)
                if show:
                    total = f" / {clock(player.duration)}" if player.duration else ""
                    sys.stderr.write(f"\r▶ {os.path.basename(path)}  {clock(player.position)}{total}  (q stops) ")
                    sys.stderr.flush()
    finally:
        player.stop()
        signal.signal(signal.SIGINT, previous)
        if show:
            sys.stderr.write("\r\033[K")
    if player.error:
        fail(str(player.error), 1)
    if not quiet:
        since = f"from {clock(start)} to " if start else ""
        say(f"played {os.path.basename(path)}: {since}{clock(player.position)}")


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@cli.command()
@click.argument("clip", nargs=-1, required=True, metavar="NAME|PATH")
@click.option("-w", "--width", type=click.IntRange(10, 1000), help="Columns (default: the terminal's width).")
@click.option("-H", "--height", type=click.IntRange(2, 100), default=12, show_default=True, help="Rows of waveform.")
@click.option("--silence", type=Decibels(), default=-50.0, show_default=True, help="Silence threshold, dBFS.")
def show(clip, width, height, silence):
    """Draw a clip's waveform, levels, silences and markers, and its transcript.

    The transcript is the one saved by 'dictaphone transcribe' (or record --transcribe),
    under the waveform; the waveform is drawn in the terminal's width.
    """
    from ..library.clips import resolve
    from ..library.waveform import analyse
    from .ui import waveform_view

    from ..containers import markers as markers_mod

    path = resolve(one_clip(clip))
    console = _stdout_console()
    columns = width or max(10, console.width)
    wf = analyse(path, columns, silence_dbfs=silence)
    console.print(waveform_view(wf, columns, height, markers=markers_mod.load(path)))
    from ..library.transcript import load

    saved = load(path)
    if saved is not None:
        from .ui import transcript_view

        console.print(transcript_view(saved))
