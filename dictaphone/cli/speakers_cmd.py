"""`dictaphone speakers ...`: voices known by name (kept as voice prints, never audio), and
naming a speaker of one clip's transcript."""

from __future__ import annotations

import json
import re

import click

from .app import EXIT_USAGE, cli, fail, say

_RANGE = re.compile(r"^(?P<src>.+)@(?P<a>[0-9:.]*s?)-(?P<b>[0-9:.]*s?)$")


def _source(spec: str):
    """FILE|CLIP[@START-END] -> (audio input, (start, end) or None)."""
    import os

    from ..containers.markers import parse_time
    from ..speech.transcribe import audio_input

    m = _RANGE.match(spec)
    if m and not os.path.exists(spec):
        a = parse_time(m.group("a")) if m.group("a") else 0.0
        b = parse_time(m.group("b")) if m.group("b") else None
        if a is None or (m.group("b") and b is None):
            fail(f"{spec}: the range is START-END in seconds or [h:]mm:ss (e.g. interview@1:05-2:30)",
                 EXIT_USAGE)
        if b is not None and b <= a:
            fail(f"{spec}: the range ends before it starts", EXIT_USAGE)
        return audio_input(m.group("src")), (a, b)
    return audio_input(spec), None


@cli.group()
def speakers():
    """Voices known by name: later transcripts (transcribe --speakers) call them by it.

    \b
      dictaphone speakers add Anna interview@0:05-0:40
      dictaphone speakers list
      dictaphone speakers rename-in standup "Speaker 2" Ben --remember
    """


@speakers.command()
@click.argument("name")
@click.argument("source", metavar="FILE|CLIP[@START-END]")
@click.option("--replace", is_flag=True, help="Make NAME's voice print again if it is known.")
def add(name, source, replace):
    """Keep NAME's voice from a recording (or a part of it: @START-END, seconds or mm:ss).

    Only a voice print (256 numbers) is kept, in the clip directory's .voices.json, never
    the audio. When the recording holds several voices, the one who speaks most is kept.
    """
    from ..library import voices
    from ..speech.speakers import MIN_PRINT, Labeller, print_of
    from ..speech.transcribe import read_audio

    name = voices.check_name(name)
    if not replace and voices.find(voices.load(), name) is not None:
        fail(f"a voice named {name!r} is known already (use --replace to make it again, or another name)",
             EXIT_USAGE)
    item, span = _source(source)
    labeller = Labeller().load()
    audio = read_audio(item.path, item.samplerate, item.channels, item.subtype)
    if span is not None:
        a, b = span
        if a >= len(audio) / 16000:
            fail(f"{source}: {item.name} is only {len(audio) / 16000:.1f} s long", EXIT_USAGE)
        audio = audio[int(a * 16000):None if b is None else int(b * 16000)]
    vector, seconds, encoder, count = print_of(audio, labeller)
    if seconds < MIN_PRINT:
        fail(f"{'no speech' if not seconds else f'only {seconds:.1f} s of speech'} in {source}: "
             f"a voice print needs {MIN_PRINT:g} s", EXIT_USAGE)
    voice = voices.add(name, encoder, vector, seconds, source=source, replace=replace)
    note = f" (the one who speaks most of {count} voices)" if count > 1 else ""
    say(f"dictaphone: {voice.name}'s voice is known now, from {seconds:.1f} s of speech{note}")


@speakers.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list: name, seconds, added, source, encoder.")
def list_(as_json):
    """The known voices."""
    from ..library import voices

    known = voices.load()
    if as_json:
        click.echo(json.dumps([v.summary() for v in known], indent=2, ensure_ascii=False))
        return
    if not known:
        say("no known voices (keep one with: dictaphone speakers add NAME CLIP)")
        return
    width = max(len(v.name) for v in known)
    for v in known:
        click.echo(f"{v.name:<{width}}  {v.seconds:5.1f} s  {v.added[:10]}  {v.source}")


@speakers.command()
@click.argument("old")
@click.argument("new")
def rename(old, new):
    """Call the known voice OLD by NEW from now on (transcripts saved already keep theirs)."""
    from ..library import voices

    v = voices.rename(old, new)
    say(f"dictaphone: the voice {old!r} is {v.name!r} now")


@speakers.command()
@click.argument("name")
def remove(name):
    """Forget the known voice NAME (its voice print is deleted)."""
    from ..library import voices

    v = voices.remove(name)
    say(f"dictaphone: forgot {v.name!r}'s voice")


@speakers.command("rename-in")
@click.argument("clip", metavar="CLIP|FILE")
@click.argument("old")
@click.argument("new")
@click.option("--remember", is_flag=True,
              help="Also keep the voice as a known one, so later transcripts name it.")
def rename_in(clip, old, new, remember):
    """Call speaker OLD of one transcript NEW ("Speaker 2" -> Anna).

    \b
      dictaphone speakers rename-in interview "Speaker 2" Anna --remember
    """
    from ..speech.speakers import rename_in as rename
    from ..speech.transcribe import audio_input

    item = audio_input(clip)
    t, voice = rename(item.path, old, new, remember=remember, source=item.name)
    extra = f"; {voice.name}'s voice is known now" if voice is not None else ""
    say(f"dictaphone: {old} is {new} in {item.name}{extra}")
