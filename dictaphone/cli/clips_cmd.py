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


LIST_FIELDS = ("name", "path", "duration", "created", "format", "size", "samplerate", "channels",
               "device", "dropped_frames", "transcript", "speakers", "gaps", "markers", "missing")
#: clips read from the index at a time while a listing is shown
CHUNK = 200


def open_library_index():
    """The library's index, brought up to date; its warning (read-only or full disk) said once."""
    from ..library.index import open_index

    index = open_index()
    index.sync()
    if index.warning:
        say(f"dictaphone: warning: {index.warning}")
    return index


def _newest(index, limit):
    """The clips newest first, read from the index a chunk at a time."""
    before, left = None, limit
    while left is None or left > 0:
        n = CHUNK if left is None else min(CHUNK, left)
        chunk = index.clips(limit=n, before=before, sync=False)
        yield from chunk
        if len(chunk) < n:
            return
        before = (chunk[-1].created or "", chunk[-1].name)
        if left is not None:
            left -= len(chunk)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list, one clip a line: name, path, duration, created, format, size, "
                   "transcript (first words), speakers, markers, ...")
@click.option("-n", "--limit", type=click.IntRange(min=1), metavar="N", help="Only the N newest clips.")
@click.option("--no-pager", is_flag=True, help="Print everything, also on a terminal (no pager).")
def list_(as_json, limit, no_pager):
    """List the clips in the library, newest first.

    On a terminal a long list goes through a pager (less; $PAGER or $DICTAPHONE_PAGER
    choose another): the newest clips show at once. The list comes from the library's
    index (see 'dictaphone index'), which notices every change to the clip directory.
    """
    from ..library.clips import clip_dir

    index = open_library_index()
    total = index.count(sync=False)
    if as_json:
        out = sys.stdout
        out.write("[")
        first = True
        for c in _newest(index, limit):
            out.write(("\n" if first else ",\n") + json.dumps({k: getattr(c, k) for k in LIST_FIELDS}))
            first = False
        out.write("\n]\n" if not first else "]\n")
        out.flush()
        return
    if not total:
        say(f"no clips in {clip_dir()} (record one with: dictaphone record --name NAME)")
        return
    import shutil

    from . import pager
    from .text import ClipLines

    sample = index.clips(limit=min(CHUNK, limit or CHUNK), sync=False)
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 200
    table = ClipLines(sample, width=width)
    bold = "\033[1m{}\033[0m" if sys.stdout.isatty() else "{}"

    def lines():
        yield bold.format(table.header())
        for c in _newest(index, limit):
            yield table.line(c)

    pager.show(lines(), pager=not no_pager)
    if limit is not None and total > limit:
        say(f"{limit} of {total} clips (the newest); without --limit, all of them")


@cli.command("index")
@click.option("--rebuild", is_flag=True, help="Throw the index away and read every clip again.")
@click.option("--json", "as_json", is_flag=True, help="What the index holds, as JSON.")
def index_(rebuild, as_json):
    """The library's index: what it holds, or --rebuild it.

    The index (an SQLite database in .dictaphone-index/ in the clip directory) is made
    from the clips' files, which stay the truth; every command brings it up to date with
    the directory before it answers, and a damaged one is rebuilt on its own. This
    command also looks at every file (a file overwritten in place by another program is
    otherwise noticed within minutes); --rebuild starts afresh.
    """
    import time

    from ..library.index import open_index

    index = open_index()
    started = time.monotonic()
    if rebuild:
        count = index.rebuild()
    else:
        index.sync(full=True)  # every file looked at, whatever the directory says
        count = index.count(sync=False)
    took = time.monotonic() - started
    if index.warning:
        say(f"dictaphone: warning: {index.warning}")
    info = index.stats()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        where = info["path"] if info["on_disk"] else "memory only"
        click.echo(f"{count} clips, {info['transcribed']} with transcripts, {info['segments']} "
                   f"segments; {where} ({info['bytes'] / 1e6:.1f} MB)")
    if rebuild:
        say(f"rebuilt the index of {count} clips in {took:.1f} s")


@cli.command()
@click.argument("old")
@click.argument("new")
def rename(old, new):
    """Rename a clip."""
    from ..library.clips import rename as do_rename
    from .edit_cmd import refuse_if_recording

    refuse_if_recording(old)  # the recorder would save its metadata beside the old name
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

    from .edit_cmd import refuse_if_recording

    # all must exist, and none be in the middle of a recording, before any is deleted
    targets = [find(name) for name in clip_words(names)]
    for clip in targets:
        refuse_if_recording(clip.name)  # the recorder would say "Saved" of a file that is gone
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
        from .text import clock

        for m in found:  # milliseconds: a marker is exact to the frame
            click.echo(f"{m.number:3}  {clock(m.time, 3)}  {m.label}")


SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def _fit(line: str) -> str:
    """``line`` cut to the terminal's width (less one column): a longer one wraps, and the
    next redraw (``\r``) then starts on the wrapped line, so every update scrolled the
    terminal by a line (play's keys hint alone is 70 columns)."""
    import shutil

    from rich.cells import cell_len, set_cell_size

    room = max(shutil.get_terminal_size().columns - 1, 1)
    return line if cell_len(line) <= room else set_cell_size(line, room - 1) + "…"


class Speed(click.ParamType):
    name = "speed"

    def convert(self, value, param, ctx):
        text = str(value).strip().lower()
        text = text[:-1] if text.endswith(("x", "×")) else text  # one x: '1.5xx' is no speed
        try:
            speed = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a speed (0.5 to 2, e.g. 1.5 or 1.5x)", param, ctx)
        if not 0.5 <= speed <= 2.0:
            self.fail(f"{value!r}: the speed is 0.5 to 2 (times normal)", param, ctx)
        return speed


def _step(speed: float, up: bool) -> float:
    if up:
        return next((s for s in SPEEDS if s > speed + 1e-9), SPEEDS[-1])
    return next((s for s in reversed(SPEEDS) if s < speed - 1e-9), SPEEDS[0])


@cli.command()
@click.argument("clip", nargs=-1, required=True, metavar="NAME|PATH")
@click.option("-D", "--device", help="Output device: an index or part of a name.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.option("--at", "at", metavar="TIME|MARK",
              help="Start here: a time (1:30, 90.5, 90s) or a marker (its number, e.g. 3, or its label).")
@click.option("--speed", type=Speed(), default=1.0, metavar="X",
              help="Play faster or slower, 0.5 to 2 (the pitch stays); [ and ] change it.")
@click.option("--skip-silence", is_flag=True,
              help="Cut silent stretches (0.5 s or more below -50 dBFS) to 0.25 s; s toggles it.")
def play(clip, device, quiet, at, speed, skip_silence):
    """Play a clip (or any audio file).

    \b
    Keys: Space pause/resume · ←/→ 5 s back/forward · [ ] slower/faster
    (0.5× to 2×, the pitch stays) · s skip silences on/off · m next marker ·
    q, Esc or Ctrl-C stops.

    --at starts at a time or a marker ('dictaphone marks NAME' lists them); a plain
    number is a marker's number, so write 90s or 1:30 for a time.
    """
    import select
    import signal
    import threading

    from ..capture.player import Player
    from ..containers.markers import load, resolve_position
    from ..library.clips import resolve
    from .terminal import (BACK, FASTER, FORWARD, HANGUP, NEXT_MARK, PAUSE, SKIP_SILENCE, SLOWER,
                           STOP, Keys, parse_play_keys)
    from .text import clock

    path = resolve(one_clip(clip))
    start = 0.0
    marks = load(path)
    if at is not None:
        start = resolve_position(marks, at, where=os.path.basename(path))
    player = Player(path, device=device, start=start, speed=speed, skip_silence=skip_silence)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    show = not quiet and sys.stderr.isatty()
    note, note_until = "", 0.0

    def flash(text: str) -> None:
        nonlocal note, note_until
        import time

        note, note_until = text, time.monotonic() + 2.0

    def act(action: str) -> bool:
        """Do what a key says; False to stop."""
        if action in (STOP, HANGUP):
            return False  # q, or the terminal is gone (never read it in a loop)
        if action == PAUSE:
            flash("paused" if player.toggle_pause() else "resumed")
        elif action in (BACK, FORWARD):
            where = player.seek(player.position + (5.0 if action == FORWARD else -5.0))
            flash(f"{'→' if action == FORWARD else '←'} {clock(where)}")
        elif action in (SLOWER, FASTER):
            player.speed = _step(player.speed, action == FASTER)
            flash(f"speed {player.speed:g}×")
        elif action == SKIP_SILENCE:
            player.skip_silence = not player.skip_silence
            flash(f"skip silences {'on' if player.skip_silence else 'off'}")
        elif action == NEXT_MARK:
            here = player.position
            nxt = next((m for m in marks if m.time > here + 0.5), None)
            if nxt is None:
                flash("no marker after this point")
            else:
                player.seek(nxt.time)
                flash(f"⚑ {nxt.number} {nxt.label}")
        return True

    try:
        player.start()
        keys = Keys(parser=parse_play_keys) if Keys.available() else None
        with (keys if keys else _Null()):
            while not player.wait(0) and not stop.is_set():
                if keys is not None:
                    readable, _, _ = select.select([keys], [], [], 0.1)
                    if readable and not all(act(a) for a in keys.read()):
                        break
                else:
                    player.wait(0.1)
                if show:
                    import time

                    total = f" / {clock(player.duration)}" if player.duration else ""
                    state = "⏸" if player.paused else "▶"
                    extra = (f"  {player.speed:g}×" if player.speed != 1 else "") + \
                            ("  skipping silences" if player.skip_silence else "")
                    hint = note if time.monotonic() < note_until else "q stops · space pause · ←/→ 5 s · [ ] speed · s silences · m marker"
                    line = f"{state} {os.path.basename(path)}  {clock(player.position)}{total}{extra}  ({hint})"
                    sys.stderr.write(f"\r{_fit(line)}\033[K")
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
