"""The click group, shared parameter types, messages and exit codes."""

from __future__ import annotations

import re

import click

from .. import __version__

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

    def __init__(self, zero: bool = False):
        #: whether 0 is a value (e.g. --reconnect 0: off) rather than an error
        self.zero = zero

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
        if self.zero and seconds == 0:
            return 0.0
        if not 0 < seconds < float("inf"):
            self.fail(f"{value!r} must be more than zero seconds", param, ctx)
        return seconds


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dictaphone")
def cli():
    """A dictaphone for the terminal: record real audio to a file or a pipe.

    \b
      dictaphone record memo.ogg        record until q, Enter, Esc or Ctrl-C
      dictaphone record -n "idea"       record a named clip into the library
      dictaphone record - -f wav | ...  stream a WAV to another program
      dictaphone stop                   stop it from another shell
      dictaphone list / show / play     the clip library
      dictaphone doctor                 check the set-up
    """


