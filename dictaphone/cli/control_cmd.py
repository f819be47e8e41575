"""`dictaphone stop|pause|resume|status`: control running recordings."""

from __future__ import annotations

import click

from .app import EXIT_ERROR, cli, say


def _control(command: str, id: str | None, all_: bool, **params) -> list[dict]:
    from ..control.registry import select

    return [entry.request(command, **params) for entry in select(id, all_)]


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


def _state_change(command: str, id: str | None, all_: bool) -> None:
    for reply in _control(command, id, all_):
        say(f"{reply['id']}: {reply['state']} at {reply['duration']:.1f} s ({reply['path']})")


@cli.command()
@click.argument("id", required=False)
@click.option("--all", "all_", is_flag=True, help="Pause every running recording.")
def pause(id, all_):
    """Pause a running recording (paused time is left out of the file)."""
    _state_change("pause", id, all_)


@cli.command()
@click.argument("id", required=False)
@click.option("--all", "all_", is_flag=True, help="Resume every paused recording.")
def resume(id, all_):
    """Resume a paused recording."""
    _state_change("resume", id, all_)


@cli.command()
@click.argument("label", required=False)
@click.option("--id", "id_", metavar="ID", help="The recording (its id or pid), when several run.")
@click.option("--all", "all_", is_flag=True, help="Mark every running recording.")
@click.option("--json", "as_json", is_flag=True, help="Print the marker(s) as JSON on stdout.")
def mark(label, id_, all_, as_json):
    """Add a marker to a running recording, at this moment.

    LABEL is one line of text (default "Marker N"). Like the m key in the recorder's
    terminal; the marker goes into the file (WAV cue points, FLAC/Ogg chapters), the
    clip's metadata or a NAME.markers.json sidecar, and the --events log.
    """
    import json

    from ..containers.markers import clean_label, one_line
    from .text import clock

    empty = False
    if label is not None:
        clean_label(label, 1)  # refuse a label that is too long before reaching anyone
        empty = not one_line(label)
    replies = _control("mark", id_, all_, label=label)
    for reply in replies:
        m = reply["marker"]
        where = (reply["path"] if not reply.get("starts_file")
                 else f"starts {reply['path']}" if reply.get("path") else "starts the next file")
        note = "; the label given was empty, so it has the default one" if empty else ""
        say(f"{reply['id']}: marker {m['number']} {m['label']!r} at {clock(m['time'])} ({where}){note}")
    if as_json:
        click.echo(json.dumps([dict(r["marker"], id=r["id"], path=r["path"]) for r in replies], indent=2))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def status(as_json):
    """Show the running recordings: id, pid, path, state, duration, level.

    Exits 1 when nothing is recording, so `dictaphone status || dictaphone record`
    toggles.
    """
    import json

    from ..control.registry import statuses

    replies = statuses(timeout=5)
    if as_json:
        click.echo(json.dumps(replies, indent=2))
    else:
        for r in replies:
            lost = r.get("device_lost")
            lost = f"  DEVICE LOST ({lost['reason']}), waiting {lost['left']:.0f} s" if lost else ""
            marks = f"  {r['markers']} marker{'s' if r['markers'] > 1 else ''}" if r.get("markers") else ""
            click.echo(f"{r['id']:>3}  pid {r['pid']:<7} {r['state']:9} {r['duration']:9.1f} s  "
                       f"peak {r['peak_dbfs']:6.1f} dBFS  {r['path']}{marks}{lost}")
        if not replies:
            say("nothing is recording")
    if not replies:
        raise SystemExit(EXIT_ERROR)


