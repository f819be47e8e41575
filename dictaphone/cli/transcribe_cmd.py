"""`dictaphone transcribe|search`: speech to text, and finding words in saved transcripts.

faster-whisper is imported only inside ``transcribe``, and only when something has to be
recognised: printing a saved transcript and searching need no engine.
"""

from __future__ import annotations

import os
import sys

import click

from ..containers.formats import MAX_CHANNELS, MAX_RATE, MIN_RATE
from .app import EXIT_ERROR, EXIT_USAGE, Bounded, Subtype, cli, clip_words, fail, say

FORMATS = ("txt", "srt", "vtt", "json")


def _render(transcript, fmt: str) -> str:
    return {"txt": transcript.to_txt, "srt": transcript.to_srt, "vtt": transcript.to_vtt,
            "json": lambda: transcript.to_json() + "\n"}[fmt]()


def _write_atomically(path: str, text: str, force: bool) -> None:
    """Write ``path`` whole or not at all; an existing file only with ``force``. A failure
    (a full disk, a read-only directory) is one line naming ``path``, exit 1."""
    from ..atomic import write_text

    try:
        write_text(path, text, overwrite=force)
    except FileExistsError:
        fail(f"{path} exists (use --force to overwrite it)", EXIT_USAGE)
    except OSError as e:
        fail(f"cannot write {path}: {(e.strerror or str(e)).lower()}; nothing was written",
             EXIT_ERROR)


def _output_kind(path: str) -> str:
    """atomic.output_kind; what it refuses (a block device, a dangling symlink) is one
    line, exit 2."""
    from ..atomic import NotRegularError, output_kind

    try:
        return output_kind(path)
    except NotRegularError as e:
        fail(f"-o {e}", EXIT_USAGE)


class _Progress:
    """A progress bar of seconds recognised, on stderr when it is a terminal; else nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self._bar.start()
        return self

    def task(self, description: str):
        if self._bar is None:
            return None
        task = self._bar.add_task(description, total=None)
        bar = self._bar

        def update(done: float, total: float) -> None:
            bar.update(task, completed=done, total=max(total, 1e-9))

        return update

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="FILE|CLIP...")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True,
              help="txt: a line a segment; srt/vtt: subtitles; json: segments with word times.")
@click.option("-o", "--output", type=click.Path(), metavar="PATH",
              help="Write to PATH instead of stdout (a directory: one file per input).")
@click.option("--force", is_flag=True, help="Overwrite an existing -o file.")
@click.option("-m", "--model", metavar="NAME|PATH",
              help="Whisper size (tiny.en, base.en, small, ...) or a CTranslate2 model directory. "
                   "Default: $DICTAPHONE_MODEL, else base.en.")
@click.option("-l", "--language", metavar="CODE", help="Language code (en, de, ...). Default: detect (en for .en models).")
@click.option("--redo", is_flag=True, help="Recognise again even if a transcript is saved.")
@click.option("-r", "--samplerate", type=Bounded(MIN_RATE, MAX_RATE, "sample rate", " Hz"),
              help="Raw files: rate in Hz.")
@click.option("-c", "--channels", type=Bounded(1, MAX_CHANNELS, "channel count"),
              help="Raw files: channels (default 1).")
@click.option("--subtype", type=Subtype(), help="Raw files: sample format (default PCM_16).")
@click.option("--speakers", is_flag=True,
              help="Label who speaks: 'Speaker 1', 'Speaker 2'... or the name of a known voice "
                   "(dictaphone speakers add). Needs the voice encoder: pip install --no-deps resemblyzer.")
@click.option("--num-speakers", type=Bounded(1, 20, "number of speakers"), metavar="N",
              help="With --speakers: there are N speakers (default: found from the voices).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no notes on stderr.")
def transcribe(inputs, fmt, output, force, model, language, redo, samplerate, channels, subtype,
               speakers, num_speakers, quiet):
    """Print what was said in recordings (clip names or files of any format dictaphone writes;
    - reads one from stdin).

    The transcript is saved beside the audio (NAME.EXT.transcript.json) and printed at once
    the next time, without the model, unless --redo (or another --model or --language).
    Only what the speech detector hears as speech is recognised: silence and noise give no
    text. Models are fetched on first use into the Hugging Face cache.

    \b
      dictaphone transcribe memo.ogg
      dictaphone transcribe "shopping list" -f srt -o list.srt
      dictaphone transcribe talk.raw -r 16000 --model small --language de
      dictaphone record -d 30 - -f wav | dictaphone transcribe -
      dictaphone transcribe interview --speakers --num-speakers 2 -f srt

    With --speakers, segments are split where the speaker changes and each segment and word
    carries its speaker (txt: a "Speaker 1:" line at each change; srt: [Speaker 1]; vtt:
    <v Speaker 1>). A saved transcript keeps its labels (and names given with speakers
    rename-in); they are found again with --redo, or when --num-speakers differs.
    """
    from ..speech.transcribe import audio_input, model_choice
    from ..library.transcript import saved, sidecar_path

    asked_model = model_choice(model) if model is not None else None  # "" is refused, not "unset"
    if language is not None and not language.strip():
        fail("--language cannot be empty: give a code such as en, or leave it out to detect it", EXIT_USAGE)
    if sum(i == "-" for i in inputs) > 1:
        fail("- (stdin) can be given once", EXIT_USAGE)
    items = [audio_input(i, samplerate, channels, subtype) for i in clip_words(inputs)]
    if (samplerate or channels or subtype) and not any(i.raw for i in items):
        fail("-r, -c and --subtype are for raw (headerless) files only", EXIT_USAGE)
    if output is not None and not output.strip():
        fail("-o is empty; give a file or a directory, or leave -o out to print to stdout",
             EXIT_USAGE)
    out_dir = None
    if output is not None:
        if os.path.isdir(output):
            out_dir = output
        elif len(items) > 1:
            fail(f"-o {output}: several inputs need a directory to write one file each", EXIT_USAGE)
        elif not os.path.isdir(os.path.dirname(os.path.abspath(output))):
            fail(f"-o {output}: no such directory", EXIT_USAGE)
        elif _output_kind(output) == "file" and not force:
            # (a FIFO, /dev/stdout, /dev/fd/N... are written into: nothing there to keep)
            fail(f"{output} exists (use --force to overwrite it)", EXIT_USAGE)
        elif os.path.exists(output) and any(_same_file(output, i.path) for i in items):
            fail(f"-o {output} is the recording itself: give another file", EXIT_USAGE)
        elif any(os.path.realpath(output) in _kept_beside(i) for i in items):
            fail(f"-o {output} is one of the files kept with the recording (its transcript, "
                 "markers or clip metadata): give another file", EXIT_USAGE)
    elif len(items) > 1 and fmt in ("srt", "vtt"):
        fail(f"several inputs do not make one {fmt.upper()} file: use -o DIRECTORY", EXIT_USAGE)
    if out_dir is not None:
        # Two inputs of the same name (a/x.wav, b/x.wav) would write one file, the second
        # over the first: refused before anything is recognised or written.
        targets: dict[str, object] = {}
        for item in items:
            target = _target(out_dir, item, fmt)
            other = targets.setdefault(target, item)
            if other is not item and not _same_file(other.path, item.path):
                fail(f"{other.name} and {item.name} would both be written to {target}: "
                     "transcribe them one at a time, or rename one", EXIT_USAGE)
            if not force and os.path.lexists(target):
                fail(f"{target} exists (use --force to overwrite it)", EXIT_USAGE)

    # A saved transcript stands unless the user asks for another model or language.
    lang = language.strip().lower() if language is not None else None
    results: dict[int, object] = {}
    if not redo:
        for n, item in enumerate(items):
            # The header is read only when a transcript is saved (libsndfile's MP3 decoder
            # prints notes on stderr about a damaged file; the engine's reader says it in one line).
            if not item.stdin and os.path.exists(sidecar_path(item.path)):
                t = saved(item.path, model=asked_model, language=lang, duration=item.duration())
                if t is not None:
                    results[n] = t
    if num_speakers is not None:
        speakers = True
    labeller = None
    if speakers:
        # The voice encoder is checked before anything is recognised or written.
        from ..speech.speakers import Labeller

        labeller = Labeller().load()
        labeller.voices()  # a damaged voices file says so now
    relabel = [n for n, t in results.items() if speakers and _needs_labels(t, num_speakers)]
    todo = [n for n in range(len(items)) if n not in results]
    unsaved: list = []  # clips whose new transcript could not be saved (printed all the same)
    for n in todo:  # a raw file's saved transcript prints without its rate; recognising needs it
        if items[n].clip and not os.path.lexists(items[n].path):  # removed by hand: say so as play does
            from ..library.clips import check_present, find

            check_present(find(items[n].name, missing_ok=True))
        if items[n].raw and not items[n].samplerate:
            fail(f"{items[n].path} is raw audio (no header): give its rate with -r "
                 "(and -c and --subtype if it is not mono PCM_16)", EXIT_USAGE)
    if todo:
        from ..speech.transcribe import Transcriber, open_16k, read_stdin

        engine = Transcriber(model, language, download_progress=not quiet)
        # Each file is opened before the model loads, so a file that is not audio says so
        # (not that a model is missing); nothing is printed until every input is done. A
        # file is decoded and recognised in windows (memory does not grow with its length);
        # an interruption saves nothing (the transcript is written once, whole, at the end).
        with _Progress(enabled=not quiet and sys.stderr.isatty()) as progress:
            for n in todo:
                item = items[n]
                audio = read_stdin() if item.stdin else open_16k(item.path, item.samplerate,
                                                                  item.channels, item.subtype)
                engine.load()
                task = progress.task(item.name)
                if item.stdin or not hasattr(audio, "blocks"):
                    t = engine.transcribe_16k(audio, progress=task)
                else:
                    with audio:
                        t = engine.transcribe_long(audio, progress=task)
                if labeller is not None:
                    # The speaker step needs the whole recording at once (64 KB a second).
                    if hasattr(audio, "blocks"):
                        from ..speech.transcribe import read_audio

                        audio = read_audio(item.path, item.samplerate, item.channels, item.subtype)
                    t = labeller.label(t, audio, num_speakers)
                if not item.stdin and not _save(item, t, quiet):  # (a stream has no file
                    unsaved.append(item)                           # to keep it beside)
                results[n] = t
    for n in relabel:  # a saved transcript labelled afresh: its words stay, no Whisper
        from ..speech.transcribe import read_audio

        item = items[n]
        audio = read_audio(item.path, item.samplerate, item.channels, item.subtype)
        results[n] = labeller.label(results[n], audio, num_speakers)
        if not _save(item, results[n], quiet):
            unsaved.append(item)
    for n, item in enumerate(items):
        if results[n].empty and not quiet:
            say(f"dictaphone: no speech in {item.name}")
    _emit([(items[n], results[n]) for n in range(len(items))], fmt, output, out_dir, force)
    if unsaved:
        # The text is out (stdout or -o); the library is not up to date: exit 1.
        raise SystemExit(EXIT_ERROR)


def _needs_labels(transcript, num_speakers) -> bool:
    """A saved transcript is labelled again when it has no labels, or not the number asked
    for (its labels, and names given since, are kept otherwise)."""
    if transcript.empty:
        return False
    if not transcript.labelled:
        return True
    return num_speakers is not None and len(transcript.speakers) != num_speakers


def _kept_beside(item) -> set[str]:
    """The files dictaphone keeps beside a recording, which -o must not replace."""
    if item.stdin:
        return set()
    from ..containers.markers import sidecar_path as markers_path
    from ..library.transcript import sidecar_path

    return {os.path.realpath(p) for p in (sidecar_path(item.path), markers_path(item.path),
                                          item.path + ".json")}


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _target(out_dir: str, item, fmt: str) -> str:
    base = item.name if item.clip or item.stdin else os.path.basename(item.path)
    return os.path.join(out_dir, f"{base}.{fmt}")


def _save(item, transcript, quiet: bool) -> bool:
    """Save the transcript beside the audio; False when a clip's could not be (a full or
    read-only library). The text is printed either way: recognising it again would be
    the only other way to get it. A clip's unsaved transcript is a warning and exit 1 at
    the end (`search` cannot find it, the next `transcribe` recognises it again); a file's
    outside the library is a note (a read-only directory is common there)."""
    from ..library.transcript import save

    try:
        save(item.path, transcript)
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        if item.clip:
            say(f"dictaphone: warning: the transcript of clip '{item.name}' was not saved ({reason}); "
                "it is printed, but 'dictaphone search' will not find it")
            return False
        if not quiet:
            say(f"dictaphone: note: transcript not saved beside {item.path} ({e.strerror})")
    return True


def _emit(pairs, fmt, output, out_dir, force) -> None:
    if out_dir is not None:
        written = set()
        for item, t in pairs:
            target = _target(out_dir, item, fmt)
            if target not in written:  # the same file given twice is written once
                _write_atomically(target, _render(t, fmt), force)
                written.add(target)
        return
    if fmt == "json" and len(pairs) > 1:
        import json

        text = json.dumps([dict(t.to_dict(), name=item.name, path=item.path) for item, t in pairs],
                          indent=2, ensure_ascii=False) + "\n"
    elif fmt == "txt" and len(pairs) > 1:
        text = "".join(f"==> {item.name} <==\n{t.to_txt()}" + ("\n" if i < len(pairs) - 1 else "")
                       for i, (item, t) in enumerate(pairs))
    else:
        text = _render(pairs[0][1], fmt)
    if output is not None:
        _write_atomically(output, text, force)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def stamp(seconds: float) -> str:
    """m:ss (h:mm:ss from an hour): where a match is, as a player shows it."""
    from .text import clock

    return clock(seconds, 0)


class When(click.ParamType):
    """A time for --since/--until (see dictaphone.library.index.parse_when)."""

    name = "time"

    def __init__(self, end: bool = False):
        self.end = end

    def convert(self, value, param, ctx):
        from ..errors import InvalidArgumentError
        from ..library.index import parse_when

        try:
            return parse_when(str(value), end=self.end)
        except InvalidArgumentError as e:
            self.fail(str(e), param, ctx)


@cli.command()
@click.argument("words", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list: name, path, start, end, text, spans, speaker, created.")
@click.option("--since", type=When(), metavar="TIME", help="Only clips made since TIME (2026-11-24, yesterday, 3d, 2w).")
@click.option("--until", type=When(end=True), metavar="TIME", help="Only clips made before TIME (a date: to its end).")
@click.option("--clip", "clip_names", multiple=True, metavar="NAME", help="Only in this clip (repeat for more).")
@click.option("--speaker", metavar="NAME", help="Only what this speaker said (transcribe --speakers labels).")
@click.option("-n", "--limit", type=click.IntRange(min=1), metavar="N", help="Only the N best hits (it says how many more).")
@click.option("--no-pager", is_flag=True, help="Print every hit, also on a terminal (no pager).")
def search(words, as_json, since, until, clip_names, speaker, limit, no_pager):
    """Find where WORDS were said, in every saved transcript of the clip library.

    Every word must be said in the clip, in any order; "quoted words" are a phrase, in
    that order; dent* is a prefix. Word forms match each other (dentists finds dentist,
    planning finds plan), any case, accents or not. The best matches come first (the
    rarer the words and the closer together, the better), then the newest clips. Exit 1
    when nothing matches.

    \b
      dictaphone search dentist morning
      dictaphone search '"kitchen sink"' --json
      dictaphone search plan* --since 2w --speaker Anna
    """
    from ..library.index import QueryError, snippet

    # One argument of several words ("kitchen sink", quoted in the shell) is a phrase.
    query = " ".join(f'"{w}"' if len(w.split()) > 1 and '"' not in w else w for w in words)
    for name in clip_names:
        from ..library.clips import check_name, find

        check_name(name)
        find(name)  # a --clip that is not there (a typo) is said, with the closest names, not "no match"
    from .clips_cmd import open_library_index

    index = open_library_index()
    try:
        results = index.search(query, since=since, until=until, clips=list(clip_names) or None,
                               speaker=speaker, limit=limit, sync=False)
    except QueryError as e:
        fail(str(e), EXIT_USAGE)
    hits = results.hits
    if as_json:
        import json

        out = sys.stdout
        out.write("[")
        for i, h in enumerate(hits):
            out.write(("\n" if i == 0 else ",\n") + json.dumps(h.to_json(), ensure_ascii=False))
        out.write("\n]\n" if hits else "]\n")
        out.flush()
    elif hits:
        import shutil

        from . import pager

        tty = sys.stdout.isatty()
        columns = shutil.get_terminal_size().columns if tty else 0
        width = min(30, max(len(h.name) for h in hits))
        on, off = ("\033[1;7m", "\033[0m") if tty else ("", "")

        def lines():
            for h in hits:
                name = h.name if len(h.name) <= width else h.name[:width - 1] + "…"
                who = f"{h.speaker}: " if h.speaker else ""
                lead = f"{name:<{width}}  {stamp(h.start)}  {who}"
                room = max(30, columns - len(lead) - 1) if tty else 10_000
                cut, spans = snippet(h.text, h.spans, width=room)
                out, at = [], 0
                for a, b in spans:
                    out += [cut[at:a], on, cut[a:b], off]
                    at = b
                out.append(cut[at:])
                yield lead + "".join(out)

        pager.show(lines(), pager=not no_pager)
    if not hits:
        say(f"dictaphone: no match for {query!r} in the saved transcripts")
        raise SystemExit(EXIT_ERROR)
    if len(hits) < results.total:
        say(f"{len(hits)} of {results.total} hits (the best); --limit {results.total} shows them all")
