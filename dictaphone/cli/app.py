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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
      dictaphone list / show / play     the clip library
      dictaphone transcribe "idea"      what was said (search WORDS finds it later)
      dictaphone doctor                 check the set-up
    """
    if ctx.invoked_subcommand != "record":
        # Only a recording keeps the stop signals caught at start-up (it finalizes its
        # file on them); every other command gets Ctrl-C and SIGTERM back as usual.
        from ..stopsignals import release

        release()


