"""The click group, shared parameter types, messages and exit codes."""

from __future__ import annotations

import re

import click

from .. import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def say(message: str) -> None:
    click.echo(message, err=True)


def one_line(message: str) -> str:
    """An error message as exactly one line: control characters that came from the user
    (a file name with a newline, say) are shown escaped, as Python writes them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def fail(message: str, code: int) -> None:
    say(f"dictaphone: error: {one_line(message)}")
    raise SystemExit(code)


def clip_words(words: tuple[str, ...] | list[str]) -> list[str]:
    """The names a command was given, where several unquoted words may be one clip's name:
    ``play live test`` is the clip 'live test' when no file or clip is called 'live' or
    'test' alone (a shell splits an unquoted name at its spaces)."""
    import os

    from ..errors import InvalidArgumentError
    from ..library.clips import find

    def there(word: str) -> bool:
        if word == "-" or os.path.lexists(word):
            return True
        try:
            return find(word, missing_ok=True) is not None
        except InvalidArgumentError:
            return False

    words = list(words)
    if len(words) > 1:
        missing = [w for w in words if not there(w)]
        joined = " ".join(words)
        if missing and there(joined):
            return [joined]
        if missing and not any(os.sep in w or os.path.splitext(w)[1] for w in words):
            # (words that look like file names are file names: the usual message is better)
            from ..library.clips import ClipNotFoundError, did_you_mean

            raise ClipNotFoundError(f"no clip or file named {missing[0]!r}; if {joined!r} is one "
                                    f"name, quote it{did_you_mean(joined)}")
    return words


def one_clip(words: tuple[str, ...]) -> str:
    """The one NAME|PATH of play, show and marks: several words are one name (quoted or
    not); a name that is not there then says so with the closest names."""
    return words[0] if len(words) == 1 else " ".join(words)


class Duration(click.ParamType):
    """Seconds as 90, 1.5, 90s, 5m, 1h, 1:30 or 1:02:03. In the clock form every field
    but the first is 0 to 59 (1:99 and 1:-5 are typos, not durations)."""

    name = "duration"
    _UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
    _NUMBER = r"[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?"

    def __init__(self, zero: bool = False):
        #: whether 0 is a value (e.g. --reconnect 0: off) rather than an error
        self.zero = zero

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            text = str(value).strip().lower()
            hint = f"{value!r} is not a duration (try 90, 1.5, 5m, 1h or 1:30)"
            if ":" in text:
                parts = text.split(":")
                if len(parts) > 3 or not all(re.fullmatch(r"[0-9]+(\.[0-9]+)?", p) for p in parts):
                    self.fail(hint, param, ctx)
                if any(float(p) >= 60 for p in parts[1:]):
                    self.fail(f"{value!r}: minutes and seconds after a ':' go from 0 to 59", param, ctx)
                seconds = 0.0
                for part in parts:
                    seconds = seconds * 60 + float(part)
            else:
                m = re.fullmatch(rf"({self._NUMBER})\s*([smh]?)", text)
                if not m:
                    self.fail(hint, param, ctx)
                seconds = float(m.group(1)) * self._UNITS[m.group(2)]
        if seconds != seconds or seconds == float("inf"):
            self.fail(f"{value!r} is too long to be a duration", param, ctx)
        if self.zero and seconds == 0:
            return 0.0
        if not seconds > 0:
            self.fail(f"{value!r} must be more than zero seconds", param, ctx)
        return seconds


class Bounded(click.IntRange):
    """A whole number in a range, shown in --help as click shows any range
    (``[1000<=x<=768000]``), refused in the words the library uses for it (``sample
    rate 5 is out of range (1000 to 768000 Hz)``)."""

    def __init__(self, low: int, high: int, what: str, unit: str = ""):
        super().__init__(low, high)
        self.what = what
        self.unit = unit

    def convert(self, value, param, ctx):
        try:
            number = click.INT.convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not a whole number ({self.what})", param, ctx)
        if not self.min <= number <= self.max:
            self.fail(f"{self.what} {number} is out of range ({self.min} to {self.max}{self.unit})",
                      param, ctx)
        return number


#: the sample encodings of PCM (wav, raw; flac takes the first two), in libsndfile's case
SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT")


class Subtype(click.ParamType):
    """A PCM sample encoding, any case, shown and returned in libsndfile's (PCM_16):
    click's Choice with case_sensitive=False would show them in lower case."""

    name = "subtype"

    def get_metavar(self, param, ctx=None):
        return "[" + "|".join(SUBTYPES) + "]"

    def convert(self, value, param, ctx):
        wanted = str(value).strip().upper()
        if wanted not in SUBTYPES:
            self.fail(f"{value!r} is not one of {', '.join(SUBTYPES)}", param, ctx)
        return wanted


class Sectioned(click.Command):
    """A command whose options --help shows in titled groups (``sections``: title and the
    options' parameter names, in order); options not named go to a last "Other" group."""

    def __init__(self, *args, sections: tuple[tuple[str, tuple[str, ...]], ...] = (), **kw):
        super().__init__(*args, **kw)
        self.sections = sections

    def format_options(self, ctx, formatter):
        records = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx)
                   if not isinstance(p, click.Argument)}
        placed = set()
        for title, names in self.sections:
            rows = [records[n] for n in names if records.get(n) is not None]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [r for n, r in records.items() if n not in placed and r is not None]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)


class Group(click.Group):
    """The command list of ``dictaphone --help`` shows each command's whole first
    sentence, wrapped, instead of cutting it at the terminal's width with "..."."""

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class Decibels(click.ParamType):
    """A level in dBFS, -100 to 0 (NaN and infinities refused)."""

    name = "dbfs"

    def convert(self, value, param, ctx):
        try:
            level = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a level in dBFS (a number from -100 to 0)", param, ctx)
        if not -100 <= level <= 0:  # (False for NaN too)
            self.fail(f"{value!r} is not between -100 and 0 dBFS", param, ctx)
        return level


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dictaphone")
@click.pass_context
def cli(ctx):
    """A dictaphone for the terminal: record real audio to a file or a pipe.

    \b
      dictaphone record memo.ogg        record until q, Enter, Esc or Ctrl-C
      dictaphone record -n "idea"       record a named clip into the library
      dictaphone record - -f wav | ...  stream a WAV to another program
      dictaphone stop                   stop it from another shell
      dictaphone mark "question 2"      flag this moment (or press m); marks NAME lists them
      dictaphone list / show / play     the clip library (play: space, arrows, [ ], s, m)
      dictaphone import memo.m4a        a recording made elsewhere becomes a clip
      dictaphone trim / export          a part as a new clip; a clip in another format
      dictaphone transcribe "idea"      what was said (search WORDS finds it later)
      dictaphone doctor                 check the set-up
    """
    if ctx.invoked_subcommand != "record":
        # Only a recording keeps the stop signals caught at start-up (it finalizes its
        # file on them); every other command gets Ctrl-C and SIGTERM back as usual.
        from ..stopsignals import release

        release()


